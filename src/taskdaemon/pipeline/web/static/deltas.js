// taskdaemon web page: the run stream's deltas (web/_deltas.py says their form and why).
// Loaded before app.js, which keeps the last state the stream sent, untouched by drawing, and
// gives it with each delta to window.taskdaemonDeltas.apply, which returns the new state.
"use strict";

window.taskdaemonDeltas = (function () {
  const id = (key) => JSON.stringify(key);
  const rowKey = (r) => [r.stage, r.instance, r.attempt];
  const nodeKey = (n) => n.name;

  // A keyed list's change: each put item replaces the item of its key where it is, or, new,
  // goes right after the item keyed by its "after" (null: first); dropped keys go.
  function keyed(list, change, key) {
    const put = new Map();
    const after = new Map();
    for (const [prev, item] of change.put) {
      const k = id(key(item));
      put.set(k, item);
      const p = prev === null ? "" : id(prev);
      if (!after.has(p)) after.set(p, []);
      after.get(p).push([k, item]);
    }
    const gone = new Set(change.drop.map(id));
    const had = new Set(list.map((item) => id(key(item))));
    const out = [];
    function follow(k) {
      for (const [next, item] of after.get(k) || []) {
        if (!had.has(next)) { out.push(item); follow(next); }
      }
    }
    follow("");
    for (const item of list) {
      const k = id(key(item));
      if (!gone.has(k)) out.push(put.has(k) ? put.get(k) : item);
      follow(k);
    }
    return out;
  }

  // The state after `delta` (an event's "state"), made from `state`, which it changes.
  function apply(state, delta) {
    for (const [field, value] of Object.entries(delta)) {
      if (field === "nodes") state.nodes = keyed(state.nodes, value, nodeKey);
      else if (field !== "timeline") state[field] = value;
    }
    for (const [field, value] of Object.entries(delta.timeline || {})) {
      if (field === "rows") state.timeline.rows = keyed(state.timeline.rows, value, rowKey);
      else state.timeline[field] = value;
    }
    // An open row's last segment ends at the state's "now", which a delta does not repeat.
    for (const r of state.timeline.rows) {
      if (r.open && r.segments.length) r.segments[r.segments.length - 1].end = state.now;
    }
    return state;
  }

  return { apply };
})();
