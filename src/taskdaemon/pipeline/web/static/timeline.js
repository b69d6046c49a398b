// taskdaemon web page: the run page's timeline, one row per stage attempt, its segments as
// bars over the run's time (_views.timeline). Loaded after page.js and before app.js, which
// makes one with window.taskdaemonTimeline(box) and calls it with each state's timeline.
"use strict";

window.taskdaemonTimeline = function (box) {
  const { el, setAttr, setText, fmtDuration, fmtTime } = window.taskdaemonPage;

  // The timeline is updated in place, as the stages table is: one row per attempt, kept from
  // event to event by its stage, instance and attempt, its label and bars written only when
  // they change. Drawn anew at every event, hundreds of rows were thrown away and made again
  // several times a second on a busy run; a new attempt's row is now inserted where it goes.
  const timelineRows = new Map();
  const timelineAxis = el("div", { class: "axis" });
  timelineAxis.append(el("span"), el("span"));
  const timelineHidden = el("p", { class: "muted" });
  const timelineEmpty = el("p", { class: "muted" }, "No stage has started yet.");

  // A label is the stage's name, cut with an ellipsis when long, then what tells the rows
  // of one stage apart, never cut: the instance (of a fan-out), the attempt and the state.
  // Cut at its end, every attempt of a long-named stage read the same ("ingest-custo…").
  function timelineRow(r, t, span, fanned) {
    const key = r.stage + "\u0000" + r.instance + "\u0000" + r.attempt;
    let row = timelineRows.get(key);
    if (!row) {
      row = { div: el("div", { class: "row", "data-stage": r.stage, "data-instance": r.instance, "data-attempt": r.attempt }),
        label: el("span", { class: "label" }), name: el("span", { class: "label-name" }),
        rest: el("span", { class: "label-rest" }), track: el("div", { class: "track" }) };
      row.label.append(row.name, row.rest);
      row.div.append(row.label, row.track);
      timelineRows.set(key, row);
    }
    const rest = (fanned.has(r.stage) ? " [" + r.instance + "]" : "") + (r.attempt > 1 ? " #" + r.attempt : "");
    // Paused before its start, it has no attempt yet: since when, and at which breakpoint.
    const held = r.reason === undefined ? "" : " since " + fmtTime(r.since) + " at " + r.reason;
    setAttr(row.label, "title", r.stage + rest + ": " + r.status + held);
    setText(row.name, r.stage);
    setText(row.rest, rest + " · " + r.status);
    r.segments.forEach((seg, i) => {
      let bar = row.track.children[i];
      if (!bar) {
        bar = row.track.appendChild(el("div"));
        bar.append(document.createTextNode(""), el("span", { class: "for-screen-readers" }));
      }
      const last = i === r.segments.length - 1;
      // An interrupted run's open attempt ends where its process was last seen alive (the
      // server's ``last_seen``): it died after that, at a time nothing recorded.
      const cut = r.interrupted && last;
      setAttr(bar, "class", "seg seg-" + seg.kind + (r.open && last ? " open" : "") + (cut ? " interrupted" : ""));
      setAttr(bar, "data-kind", seg.kind);
      // Its kind shows; its length too to a screen reader, as its title to a pointer: one
      // heard "queued running" and no time at all, which was the bars' whole point.
      // A replay's fed attempt did no work: its mark has no length to say.
      const length = (seg.kind === "replayed" ? "" : " " + fmtDuration(seg.end - seg.start))
        + (cut ? " or more: interrupted; its end is the last sign of life of the run's process, at "
          + fmtTime(t.last_seen) : "");
      setAttr(bar, "title", seg.kind + length);
      setText(bar.firstChild, seg.kind);
      setText(bar.lastChild, length);
      const left = (100 * (seg.start - t.start) / span) + "%";
      const width = (100 * Math.max(0, seg.end - seg.start) / span) + "%";
      if (bar.style.left !== left) bar.style.left = left;
      if (bar.style.width !== width) bar.style.width = width;
    });
    while (row.track.children.length > r.segments.length) row.track.lastElementChild.remove();
    return [key, row.div];
  }

  return function renderTimeline(t) {
    const span = Math.max(1e-6, t.end - t.start);
    setText(timelineAxis.firstElementChild, "0s");
    setText(timelineAxis.lastElementChild, fmtDuration(span));
    const fanned = new Set(t.rows.filter((r) => r.instance).map((r) => r.stage));
    const rows = t.rows.map((r) => timelineRow(r, t, span, fanned));
    const keys = new Set(rows.map(([key]) => key));
    for (const key of Array.from(timelineRows.keys())) if (!keys.has(key)) timelineRows.delete(key);
    const wanted = [timelineAxis, ...rows.map(([, div]) => div)];
    if (t.hidden) { setText(timelineHidden, t.hidden + " more attempts not shown"); wanted.push(timelineHidden); }
    if (!t.rows.length) wanted.push(timelineEmpty);
    // Each element is put where it goes only when it is not there: a row that stays is not
    // moved, and those no longer wanted end up after the wanted ones, and go.
    wanted.forEach((node, i) => { if (box.children[i] !== node) box.insertBefore(node, box.children[i] || null); });
    while (box.children.length > wanted.length) box.lastElementChild.remove();
  };
};
