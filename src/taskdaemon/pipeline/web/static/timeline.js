// taskdaemon web page: the run page's timeline, one row per stage attempt, its segments as
// bars over the run's time (_views.timeline). Loaded after page.js and before app.js, which
// makes one with window.taskdaemonTimeline(box) and calls it with each whole state's timeline,
// its .change with a delta's (web/_deltas.py), and its .tick as the run's clock goes on.
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

  // A bar's place is in seconds from the timeline's start (--s) and its length (--d), the
  // scale (--t-span) and the clock (--t-now) the box's, style.css turning them into left and
  // width: as the run goes on only the box's two change, not every bar (an open bar ends at
  // --t-now), so an event that changes one stage changes one row of the page.
  let drawnStart = null;
  const fanned = new Set();  // stages with more than one instance: their rows say which
  const openRows = new Map();  // key -> row data of the rows open now (their lengths grow)
  function setVar(node, name, value) {
    const text = String(value);
    if (node.style.getPropertyValue(name) !== text) node.style.setProperty(name, text);
  }
  function scale(t, now) {
    setVar(box, "--t-span", Math.max(1e-6, Math.max(t.end, now) - t.start));
    setVar(box, "--t-now", now - t.start);
    setText(timelineAxis.firstElementChild, "0s");
    setText(timelineAxis.lastElementChild, fmtDuration(Math.max(1e-6, Math.max(t.end, now) - t.start)));
  }

  // A label is the stage's name, cut with an ellipsis when long, then what tells the rows
  // of one stage apart, never cut: the instance (of a fan-out), the attempt and the state.
  // Cut at its end, every attempt of a long-named stage read the same ("ingest-custo…").
  function timelineRow(r, t, now) {
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
    if (r.open) openRows.set(key, r); else openRows.delete(key);
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
      const open = r.open && last;
      const end = open ? now : seg.end;
      // An interrupted run's open attempt ends where its process was last seen alive (the
      // server's ``last_seen``): it died after that, at a time nothing recorded.
      const cut = r.interrupted && last;
      setAttr(bar, "class", "seg seg-" + seg.kind + (open ? " open" : "") + (cut ? " interrupted" : ""));
      setAttr(bar, "data-kind", seg.kind);
      // Its kind shows; its length too to a screen reader, as its title to a pointer: one
      // heard "queued running" and no time at all, which was the bars' whole point.
      // A replay's fed attempt did no work: its mark has no length to say.
      const notRun = seg.kind === "replayed";
      const length = (notRun ? "" : " " + fmtDuration(end - seg.start))
        + (cut ? " or more: interrupted; its end is the last sign of life of the run's process, at "
          + fmtTime(t.last_seen) : "");
      // The mark keeps the fed look; its words are its row's: a reused instance's "reused".
      const named = notRun ? r.status : seg.kind;
      setAttr(bar, "title", named + length);
      setText(bar.firstChild, named);
      setText(bar.lastChild, length);
      setVar(bar, "--s", seg.start - t.start);
      if (!open) setVar(bar, "--d", Math.max(0, seg.end - seg.start));
    });
    while (row.track.children.length > r.segments.length) row.track.lastElementChild.remove();
    return [key, row.div];
  }

  function place(wanted) {
    // Each element is put where it goes only when it is not there: a row that stays is not
    // moved, and those no longer wanted end up after the wanted ones, and go.
    wanted.forEach((node, i) => { if (box.children[i] !== node) box.insertBefore(node, box.children[i] || null); });
    while (box.children.length > wanted.length) box.lastElementChild.remove();
  }

  function sayHidden(t) {
    setText(timelineHidden, t.hidden + " more attempts not shown");
    if (t.hidden && !timelineHidden.isConnected) box.append(timelineHidden);
    if (!t.hidden && timelineHidden.isConnected) timelineHidden.remove();
    if (t.rows.length && timelineEmpty.isConnected) timelineEmpty.remove();
    if (!t.rows.length && !timelineEmpty.isConnected) box.append(timelineEmpty);
  }

  // The whole timeline, from a whole state.
  function renderTimeline(t) {
    drawnStart = t.start;
    openRows.clear();
    scale(t, t.end);
    fanned.clear();
    for (const r of t.rows) if (r.instance) fanned.add(r.stage);
    const rows = t.rows.map((r) => timelineRow(r, t, t.end));
    const keys = new Set(rows.map(([key]) => key));
    for (const key of Array.from(timelineRows.keys())) if (!keys.has(key)) timelineRows.delete(key);
    const wanted = [timelineAxis, ...rows.map(([, div]) => div)];
    if (t.hidden) { setText(timelineHidden, t.hidden + " more attempts not shown"); wanted.push(timelineHidden); }
    if (!t.rows.length) wanted.push(timelineEmpty);
    place(wanted);
  }

  // A delta's change (`rows`: its {put, drop}, or none) to the timeline `t` it made: the rows
  // it names are drawn, the open ones' lengths said again, the rest left as they are. A
  // timeline whose start moved is drawn whole (every bar's place moved).
  renderTimeline.change = function (t, rows) {
    if (t.start !== drawnStart) { renderTimeline(t); return; }
    scale(t, t.end);
    const key = (k) => k[0] + "\u0000" + k[1] + "\u0000" + k[2];
    for (const gone of (rows && rows.drop) || []) {
      const row = timelineRows.get(key(gone));
      if (row) row.div.remove();
      timelineRows.delete(key(gone));
      openRows.delete(key(gone));
    }
    const redraw = [];
    for (const [after, r] of (rows && rows.put) || []) {
      if (r.instance && !fanned.has(r.stage)) {
        // Its stage fans out now: its other rows say their instance too.
        fanned.add(r.stage);
        redraw.push(...t.rows.filter((other) => other.stage === r.stage && other !== r));
      }
      const [, div] = timelineRow(r, t, t.end);
      const before = after === null ? timelineAxis : (timelineRows.get(key(after)) || {}).div;
      if (before && div.previousElementSibling !== before) before.after(div);
    }
    for (const r of redraw) timelineRow(r, t, t.end);
    for (const r of Array.from(openRows.values())) timelineRow(r, t, t.end);
    sayHidden(t);
  };

  // The run's clock at `now`, between events: the scale and the open rows' lengths.
  renderTimeline.tick = function (t, now) {
    scale(t, now);
    for (const r of Array.from(openRows.values())) timelineRow(r, t, now);
  };

  return renderTimeline;
};
