// taskdaemon web page: the stage panel's details of a picked stage (its record's facts, each
// attempt's times, error, inputs and outputs, the environment of one held at a breakpoint).
// Loaded after page.js and before app.js, which fetches the stage's record and fills the
// panel with window.taskdaemonStageDetail.parts(name, stage, env).
"use strict";

window.taskdaemonStageDetail = (function () {
  const { el, fmtDuration, fmtTime, fmtBytes } = window.taskdaemonPage;

  function fact(list, term, value) {
    list.appendChild(el("dt", null, term));
    list.appendChild(el("dd", null, value));
  }

  // A value's box (an error, inputs, outputs): a long one scrolls in it, which a keyboard
  // user must reach too (tabindex), and a screen reader names it when Tab lands there, with
  // its attempt, as a panel shows several (it was an unnamed text, announced as nothing).
  function valueBox(cls, title, a, text) {
    return el("pre", { class: cls, tabindex: "0", role: "region",
      "aria-label": title + " of instance " + a.instance + ", attempt " + a.attempt }, text);
  }

  function showValue(parent, title, a, text) {
    if (text === null || text === undefined) return;
    parent.appendChild(el("h4", null, title));
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { shown = text; }
    parent.appendChild(valueBox(title.toLowerCase(), title, a, shown));
  }

  // The environment a stage held at a breakpoint will see, as the prompt's env shows it
  // (docs/debugging.md, "The env command"); null where no engine answers (ui).
  async function environment(runId, name) {
    try {
      const response = await fetch("/api/runs/" + encodeURIComponent(runId) + "/debug/env/" + encodeURIComponent(name), { credentials: "same-origin" });
      return response.ok ? (await response.json()).env : null;
    } catch (error) {
      return null;
    }
  }

  // A value on one line of its own: its line breaks and other controls written \\xNN.
  const oneLine = (text) => String(text).replace(/[\u0000-\u001f\u007f]/g, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
  function environmentBox(env) {
    const lines = [];
    if (env.kind === "command") {
      lines.push("command: " + oneLine(env.command), "cwd: " + oneLine(env.cwd), "set by taskdaemon:");
      for (const [name, value] of Object.entries(env.set)) lines.push("  " + oneLine(name) + "=" + oneLine(value));
      lines.push("set as the attempt starts: " + env.at_start.join(", "));
    } else {
      lines.push("runs in taskdaemon's process: its inputs are ctx.inputs, not variables");
    }
    const shown = Object.keys(env.inherited).length;
    lines.push("inherited (" + env.inherited_count + " variables" + (env.inherited_count > shown ? "; the first " + shown + " by name" : "") + "):");
    for (const [name, value] of Object.entries(env.inherited)) lines.push("  " + oneLine(name) + "=" + oneLine(value));
    const box = el("details", { class: "environment", "data-task-run-id": env.task_run_id });
    box.append(el("summary", null, "Environment of " + env.task_run_id), el("pre", null, lines.join("\n")));
    return box;
  }

  // Whether the stage is held at a breakpoint (before its start, or at an attempt's failure).
  function held(stage) {
    return Boolean(stage) && ((stage.paused_before_start || []).length > 0 || stage.attempts.some((a) => a.status === "paused"));
  }

  // The panel's elements for stage ``name`` of the run's record (undefined: not started) and
  // ``env``, its environment when held (null: none to show).
  function parts(name, stage, env) {
    const parts = [el("h3", { "data-stage": name }, name)];
    if (!stage) {
      parts.push(el("p", { class: "muted" }, "Not started yet."));
      return parts;
    }
    const facts = el("dl", { class: "facts" });
    fact(facts, "state", stage.status);
    fact(facts, "loop", stage.loop || "-");
    if (stage.skip_reason) fact(facts, "skipped", stage.skip_reason);
    if (stage.cancel_reason) fact(facts, "cancelled", stage.cancel_reason + (stage.cancel_cause ? " (by " + stage.cancel_cause + ")" : ""));
    // Held at a breakpoint before it started: no attempt below says so.
    for (const p of stage.paused_before_start || []) fact(facts, "paused", p.task_run_id + " since " + fmtTime(p.since) + " at " + p.reason);
    parts.push(facts);
    if (env) parts.push(environmentBox(env));
    if (!stage.attempts.length) parts.push(el("p", { class: "muted" }, "No attempt yet."));
    for (const a of stage.attempts) {
      const box = el("div", { class: "attempt", "data-task-run-id": a.task_run_id });
      // One a replay did not run: replayed (fed) or reused, and the run it was taken from,
      // linked, as replay --step's where says it (its status is the span's, replayed).
      const heading = box.appendChild(el("h4", null, "instance " + a.instance + " · attempt " + a.attempt + " · " + (a.not_run || a.status)));
      if (a.not_run && a.taken_from) {
        heading.append(" from run ", el("a", { class: "taken-from", href: "/runs/" + a.taken_from }, a.taken_from.slice(0, 12)));
      }
      const list = el("dl", { class: "facts" });
      fact(list, "started", fmtTime(a.start));
      // Fed by a replay, its handler did not run: its times are its wait in the replay.
      const fed = a.status === "replayed";
      fact(list, "took", fed ? "-" : a.end === null ? "running" : fmtDuration(a.end - a.start));
      fact(list, "queued", fed ? "-" : fmtDuration(a.queue_time));
      fact(list, "CPU", a.cpu_seconds === null ? "-" : fmtDuration(a.cpu_seconds));
      fact(list, "peak memory", fmtBytes(a.peak_memory_bytes));
      box.appendChild(list);
      if (a.error) box.appendChild(valueBox("error", "Error", a, (a.error_type ? a.error_type + ": " : "") + a.error));
      showValue(box, "Inputs", a, a.inputs);
      showValue(box, "Outputs", a, a.outputs);
      parts.push(box);
    }
    return parts;
  }

  return { parts: parts, held: held, environment: environment };
})();
