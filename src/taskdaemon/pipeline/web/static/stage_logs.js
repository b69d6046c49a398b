// taskdaemon web page: the stage panel's log records (the stage's logs stream). Loaded after
// page.js and before app.js, which makes one with window.taskdaemonStageLogs(body): follow(name)
// follows a stage's records, again(name) follows them anew if their stream was refused.
"use strict";

window.taskdaemonStageLogs = function (body) {
  const { el, fmtTime } = window.taskdaemonPage;

  // The stage's log records: a live tail by SSE (each event is the whole tail, at most a
  // few hundred records), one stream at a time, closed when another stage is selected.
  let logStream = null;

  function followLogs(name) {
    if (logStream) { logStream.close(); logStream = null; }
    const section = document.getElementById("stage-logs");
    const lines = document.getElementById("log-lines");
    const logNote = document.getElementById("logs-note");
    section.dataset.stage = name;
    lines.replaceChildren();
    if (!body.dataset.logs) {
      section.dataset.logState = "unavailable";
      logNote.textContent = "This server's span source keeps no run logs (the embedded store and debug dumps do).";
      return;
    }
    section.dataset.logState = "connecting";
    logNote.textContent = "Loading the stage's logs…";
    const source = new EventSource(body.dataset.logs + "?stage=" + encodeURIComponent(name), { withCredentials: true });
    logStream = source;
    source.onmessage = (event) => { if (logStream === source) renderLogs(JSON.parse(event.data)); };
    source.addEventListener("end", () => {
      source.close();
      if (logStream === source) section.dataset.logState = "complete";
    });
    source.addEventListener("problem", (event) => {
      if (logStream === source) logNote.textContent = "Log updates interrupted: " + JSON.parse(event.data).error + " (reconnecting)";
    });
    source.onerror = () => {
      if (logStream === source && section.dataset.logState !== "complete") section.dataset.logState = "reconnecting";
    };
  }

  function renderLogs(tail) {
    const section = document.getElementById("stage-logs");
    const lines = document.getElementById("log-lines");
    const pinned = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
    section.dataset.logState = tail.live ? "live" : "complete";
    section.dataset.total = String(tail.total);
    lines.replaceChildren(...tail.records.map((r) => {
      const level = String(r.level).toLowerCase();
      const item = el("li", { "data-id": r.id, "data-level": level });
      const parts = [el("span", { class: "log-time" }, fmtTime(r.time)), el("span", { class: "log-level level-" + level }, level)];
      if (r.instance !== null && r.attempt !== null) parts.push(el("span", { class: "muted" }, r.instance + "." + r.attempt));
      parts.push(el("span", { class: "log-body" }, r.body));
      // Spaces between the fields, not margins alone: a line copied, or read by a screen
      // reader, was "09:38:28INFO0.1stage release.0.1 started".
      parts.forEach((part, i) => item.append(...(i === 0 ? [part] : [" ", part])));
      return item;
    }));
    if (pinned) lines.scrollTop = lines.scrollHeight;
    let text = tail.total === 0 ? "No log records" : tail.hidden
      ? "The last " + tail.records.length + " of " + tail.total + " records"
      : tail.total + (tail.total === 1 ? " record" : " records");
    text += tail.live ? "; following live." : ".";
    document.getElementById("logs-note").textContent = text;
  }

  // The run's stream came back after the server refused both (a restart, too many streams):
  // a log stream the browser gave up on is opened again.
  function again(name) {
    if (logStream && logStream.readyState === EventSource.CLOSED && name) followLogs(name);
  }

  return { follow: followLogs, again: again };
};
