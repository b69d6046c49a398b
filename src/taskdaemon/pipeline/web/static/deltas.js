// taskdaemon web page: the run stream's deltas (web/_deltas.py says their form and why).
// Loaded before app.js, which keeps the last state the stream sent, untouched by drawing, and
// gives it with each delta to window.taskdaemonDeltas.apply, which returns the new state; it
// asks what it says of the whole run (counts, stages waiting) of window.taskdaemonDeltas too.
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

  // An event's work on the page is the size of what it changed, not of the run: each state
  // the stream sent has a book, made once from the whole state, that finds an item by its key
  // (`at`: key -> number, its index once `base` is taken off, so that the rows the timeline's
  // cut drops from its top cost what they drop), knows the open rows, and counts what the
  // page says of all the stages (states, the stages to approve and to resume) as they change.
  // Rare changes are made as before, walking the list: a new item anywhere but at its end (a
  // retry's row), a drop anywhere but at its top.
  const books = new WeakMap();
  // See `layout`. A whole state's number is the last one when its drawing's key (made once,
  // as its book is) is the last whole state's and no delta changed it since: a stream of
  // whole states whose durations tick lays the DAG out once.
  let layouts = 0;
  let laidOut = null;
  const drawKey = (s) => s.nodes.map((n) => n.name + "\u0000" + n.state + "\u0000" + n.attempts).join("\u0001") + "\u0002" + (s.run && s.run.status);
  function moved() { laidOut = null; return ++layouts; }

  function List(list, key) {
    const at = new Map();
    list.forEach((item, i) => at.set(id(key(item)), i));
    return { list: list, key: key, at: at, base: 0 };
  }
  const find = (l, k) => (l.at.has(k) ? l.list[l.at.get(k) - l.base] : undefined);

  function Tally() { return { states: new Map(), approvable: new Set(), resumable: new Set() }; }
  function count(tally, node, sign) {
    tally.states.set(node.state, (tally.states.get(node.state) || 0) + sign);
    for (const set of ["approvable", "resumable"]) {
      if (sign > 0 && node[set]) tally[set].add(node.name);
      else if (sign < 0) tally[set].delete(node.name);
    }
  }

  function book(state) {
    let b = books.get(state);
    if (!b) {
      b = { nodes: List(state.nodes, nodeKey), rows: List(state.timeline.rows, rowKey), open: new Set(),
        tally: Tally(), layout: 0, status: state.run && state.run.status };
      const key = drawKey(state);
      if (laidOut !== key) { laidOut = key; ++layouts; }
      b.layout = layouts;
      for (const node of state.nodes) count(b.tally, node, 1);
      for (const r of state.timeline.rows) if (r.open) b.open.add(id(rowKey(r)));
      books.set(state, b);
    }
    return b;
  }

  // `l`'s list after `change`; calls `gone(item)` and `came(item)` for the items it takes
  // out and puts in (a put of a kept key does both).
  function update(l, change, gone, came) {
    const { list, key } = l;
    const drops = change.drop.map(id);
    const top = drops.every((k, i) => l.at.get(k) - l.base === i);
    let last = list.length ? id(key(list[list.length - 1])) : "";
    for (const [prev, item] of change.put) {
      const k = id(key(item));
      if (l.at.has(k)) continue;
      if ((prev === null ? "" : id(prev)) !== last) last = null;
      else last = k;
    }
    for (const k of drops) { const item = find(l, k); if (item !== undefined) gone(item); }
    if (!top || last === null) {
      // Rare: walked as the list is.
      for (const [, item] of change.put) { const old = find(l, id(key(item))); if (old !== undefined) gone(old); came(item); }
      l.list = keyed(list, change, key);
      l.at = List(l.list, key).at;
      l.base = 0;
      return l.list;
    }
    list.splice(0, drops.length);
    for (const k of drops) l.at.delete(k);
    l.base += drops.length;
    for (const [, item] of change.put) {
      const k = id(key(item));
      if (l.at.has(k)) { gone(find(l, k)); list[l.at.get(k) - l.base] = item; }
      else { l.at.set(k, l.base + list.length); list.push(item); }
      came(item);
    }
    return list;
  }

  // The state after `delta` (an event's "state"), made from `state`, which it changes.
  function apply(state, delta) {
    const b = book(state);
    for (const [field, value] of Object.entries(delta)) {
      if (field === "nodes") {
        // The drawing's layout shows the stages, their states and attempts.
        const was = new Map();
        let changed = value.drop.length > 0;
        state.nodes = update(b.nodes, value, (n) => { count(b.tally, n, -1); was.set(n.name, n); }, (n) => {
          count(b.tally, n, 1);
          const old = was.get(n.name);
          if (!old || old.state !== n.state || old.attempts !== n.attempts) changed = true;
        });
        if (changed) b.layout = moved();
      } else if (field !== "timeline") state[field] = value;
    }
    for (const [field, value] of Object.entries(delta.timeline || {})) {
      if (field === "rows") {
        state.timeline.rows = update(b.rows, value, (r) => b.open.delete(id(rowKey(r))),
          (r) => { if (r.open) b.open.add(id(rowKey(r))); });
      } else state.timeline[field] = value;
    }
    if (state.run && state.run.status !== b.status) { b.status = state.run.status; b.layout = moved(); }
    // An open row's last segment ends at the state's "now", which a delta does not repeat.
    for (const k of b.open) {
      const r = find(b.rows, k);
      if (r && r.segments.length) r.segments[r.segments.length - 1].end = state.now;
    }
    return state;
  }

  // What the page says of all of `state`'s stages: the count of stages in each state, and the
  // stages that wait for an approval (`approvable`) or in the debugger (`resumable`), in the
  // stages' order.
  function tally(state) { return book(state).tally; }
  function nodesWhere(state, which) {
    const b = book(state);
    const at = (name) => b.nodes.at.get(id(name));
    return Array.from(b.tally[which]).sort((x, y) => at(x) - at(y)).map((name) => find(b.nodes, id(name)));
  }
  function node(state, name) { return find(book(state).nodes, id(name)); }
  // A number that changes when what the DAG's drawing shows changes: the stages, their states
  // and attempts, the run's status (app.js draws it again then).
  function layout(state) { return book(state).layout; }

  return { apply, tally, nodesWhere, node, layout };
})();
