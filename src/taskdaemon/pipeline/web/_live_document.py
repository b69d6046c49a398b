"""The live state document of a run of this process, kept between changes: each delta built
from what changed, not from the whole run rendered again.

A run's stream (``_streams.Feed``) rendered the whole document (``_views.run_state``) at each
change and diffed it with the last (``_deltas.state_delta``): a change of one stage of a run
of 5,000 cost the render of 5,000. A run of this process comes from the engine's watcher as
changes (``DagWatcher.watch(changes=True)``): the run's fields whole and only the stages an
event touched since the last item (``RunState.changed_since``). :class:`LiveDocument` keeps
the document's parts by key (each node by stage, each stage's timeline rows, uncut) and
renders only the stages named, so a change costs about what changed. The delta is the one
``state_delta`` makes from the two whole documents (same form, ``_deltas``); the whole
document is made from the kept parts when a client needs it (one joins, one takes no deltas,
there is no delta).

The timeline's cut (``_views.MAX_ROWS``: the first rows in the nodes' order are sent, the
rest counted in ``hidden``) is kept as where it falls: the stage holding the last row sent,
and how many of that stage's rows are sent. A row added or dropped before it moves it by
walking from stage to stage, so its cost is the distance moved (the stages without a row
passed over), not the run; the first time a run has more rows than the cut, and a change
that can touch every stage (the run's start and end, secrets learnt since), cost a whole
render, as every change did before. A row put first in its stage goes after the last row
sent of the nearest stage before it with one, found by walking back likewise.

The timeline's ``start`` is the least of the run's start and the first moment of each row
seen: a live run's rows all begin after its start (queued, awaiting an approval, paused),
so it is the run's start, as the whole render computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from taskdaemon.pipeline.web._deltas import keyed_change, row_key, state_delta, untimed
from taskdaemon.pipeline.web._views import MAX_ROWS

__all__ = ["LiveDocument"]

#: The document's top-level fields besides its nodes and timeline.
_FIELDS = ("run", "now", "quiet_since", "no_span", "controls")

#: ``render(snapshot, quiet_since, max_rows)``: ``_views.run_state`` of the snapshot.
Render = Callable[[Any, Any, int], dict[str, Any]]


#: ``LiveDocument._cut`` when every row is sent.
_ALL = 1 << 62


class LiveDocument:
    """One run's document (``_views.run_state``), kept by parts (module docstring).

    :meth:`update` folds in one item of ``RunData.follow_changes`` (``(snapshot, stages)``,
    ``stages`` None for a whole snapshot) and returns the delta from
    the document before, None when the whole document is to be sent; :meth:`whole` is the
    document now. ``max_rows``: the timeline's cut.
    """

    def __init__(self, render: Render, max_rows: int = MAX_ROWS) -> None:
        self._render = render
        self._max = max_rows
        self._fields: dict[str, Any] = {}
        self._order: list[str] = []  # the nodes' names, in the document's order
        self._index: dict[str, int] = {}
        self._nodes: dict[str, dict[str, Any]] = {}
        self._rows: dict[str, list[dict[str, Any]]] = {}  # each stage's rows, uncut
        self._total = 0  # rows of every stage
        # The cut: the rows of the stages before ``_cut`` are sent, and ``_kept`` of its own
        # (``_ALL``: every row is sent).
        self._cut = _ALL
        self._kept = 0
        self._timeline: dict[str, Any] = {}  # start, end, last_seen
        self.loaded = False

    # --- the document now -------------------------------------------------------------------

    def whole(self) -> dict[str, Any]:
        """The whole document now (as ``_views.run_state`` renders it)."""
        now = self._fields["now"]
        rows: list[dict[str, Any]] = []
        for index, name in enumerate(self._order):
            sent = self._sent(index)
            if sent:
                rows.extend(self._timed(row, now) for row in self._rows[name][:sent])
        run = self._fields["run"]
        starts = [row["segments"][0]["start"] for row in rows]
        if run is not None:  # as ``_views.timeline``: the run's start, or a row's before it
            starts.append(run["start"])
        start = min(starts, default=now)
        return {
            "run": self._fields["run"],
            "nodes": [self._nodes[name] for name in self._order],
            "timeline": {
                "start": start,
                "end": self._timeline["end"],
                "rows": rows,
                "hidden": self._total - len(rows),
                "last_seen": self._timeline["last_seen"],
            },
            "now": now,
            "quiet_since": self._fields["quiet_since"],
            "no_span": self._fields["no_span"],
            "controls": self._fields["controls"],
        }

    @staticmethod
    def _timed(row: dict[str, Any], now: Any) -> dict[str, Any]:
        """``row`` with an open last segment ending at ``now`` (``_views.timeline``)."""
        if not row.get("open") or not row["segments"]:
            return row
        *kept, last = row["segments"]
        return {**row, "segments": [*kept, {**last, "end": now}]}

    # --- a change ---------------------------------------------------------------------------

    def update(self, item: Any, base: int, deltas: bool = True) -> Any | None:
        """Fold in ``item``; the delta (``_deltas``) from the document before, applied to
        event ``base``, or None when the whole document is to be sent. The delta is made
        whether a client takes deltas (``deltas``) or not: the parts are kept either way, and
        it costs what changed."""
        snapshot, stages = item
        document = self._render(snapshot, None, _ALL)  # a run of this process is never quiet
        if stages is None or not self.loaded:
            old = self.whole() if self.loaded else None
            self._load(document)
            return None if old is None else state_delta(old, self.whole(), base)
        return self._change(document, stages, base)

    def _load(self, document: dict[str, Any]) -> None:
        """Keep the parts of the whole uncut ``document``."""
        self._fields = {field: document[field] for field in _FIELDS}
        self._order = [node["name"] for node in document["nodes"]]
        self._index = {name: index for index, name in enumerate(self._order)}
        self._nodes = {node["name"]: node for node in document["nodes"]}
        self._rows = {}
        for row in document["timeline"]["rows"]:
            self._rows.setdefault(row["stage"], []).append(row)
        self._total = len(document["timeline"]["rows"])
        self._timeline = {k: document["timeline"][k] for k in ("start", "end", "last_seen")}
        self._find_cut()
        self.loaded = True

    def _find_cut(self) -> None:
        """Where the cut falls, found from the first stage."""
        self._cut, self._kept = _ALL, 0
        if self._total <= self._max:
            return
        left = self._max
        for index, name in enumerate(self._order):
            count = len(self._rows.get(name, ()))
            if count >= left:
                self._cut, self._kept = index, left
                return
            left -= count

    def _sent(self, index: int) -> int:
        """How many rows of the stage at ``index`` are sent."""
        if index < self._cut:
            return len(self._rows.get(self._order[index], ()))
        return self._kept if index == self._cut else 0

    def _change(self, document: dict[str, Any], stages: frozenset[str], base: int) -> Any | None:
        """Keep a change of ``stages`` (``document``: the run's fields whole, only those
        stages' nodes and uncut rows); its delta, None for the whole document."""
        state: dict[str, Any] = {}
        for field in _FIELDS:
            if document[field] != self._fields[field]:
                state[field] = self._fields[field] = document[field]
        for name in sorted(stages - self._index.keys()):  # a stage no item held before
            self._index[name] = len(self._order)
            self._order.append(name)
        changed = sorted(self._index[name] for name in stages)
        rendered = {node["name"]: node for node in document["nodes"]}
        node_puts = []
        for index in changed:
            name = self._order[index]
            node = rendered.get(name)
            if node is not None and node != self._nodes.get(name):
                self._nodes[name] = node
                node_puts.append([self._order[index - 1] if index else None, node])
        if len(self._nodes) != len(self._order):
            return None  # a stage without a node: the document's nodes would miss it
        # The rows: kept, then the cut moved, then each stage's sent rows compared.
        old = {index: self._rows.get(self._order[index], []) for index in changed}
        old_sent = {index: self._sent(index) for index in changed}
        old_cut, old_kept, old_total = self._cut, self._kept, self._total
        fresh: dict[str, list[dict[str, Any]]] = {name: [] for name in stages}
        for row in document["timeline"]["rows"]:
            fresh[row["stage"]].append(row)
        for index in changed:
            name = self._order[index]
            self._total += len(fresh[name]) - len(old[index])
            self._rows[name] = fresh[name]
        self._move_cut(
            old_total, [(i, len(self._rows[self._order[i]]) - len(old[i])) for i in changed]
        )
        low, high = sorted((old_cut, self._cut))
        touched = sorted({*changed, *range(low, min(high, len(self._order) - 1) + 1)})
        row_puts: list[list[Any]] = []
        drops: list[Any] = []
        for index in touched:
            name = self._order[index]
            if index in old:
                before = old[index][: old_sent[index]]
            else:  # its rows did not change; the cut passed over them
                sent = self._rows.get(name, [])
                was = len(sent) if index < old_cut else old_kept if index == old_cut else 0
                before = sent[:was]
            after = self._rows.get(name, [])[: self._sent(index)]
            # Each put after the last row sent of the stages before (its place in the rows).
            previous = self._last_sent_before(index) if after else None
            change = keyed_change(before, after, row_key, untimed, previous)
            if change is None:
                return None
            row_puts += change["put"]
            drops += change["drop"]
        timeline: dict[str, Any] = {}
        starts = [put[1]["segments"][0]["start"] for put in row_puts]
        fields = {
            "start": min([self._timeline["start"], *starts]),
            "end": document["timeline"]["end"],
            "last_seen": document["timeline"]["last_seen"],
        }
        for field, value in fields.items():
            if value != self._timeline[field]:
                timeline[field] = self._timeline[field] = value
        hidden = max(0, self._total - self._max)
        if hidden != max(0, old_total - self._max):
            timeline["hidden"] = hidden
        carried = len(node_puts) + len(row_puts)
        if carried and 2 * carried >= len(self._order) + self._total - hidden:
            return None
        if node_puts:
            state["nodes"] = {"put": node_puts, "drop": []}
        if row_puts or drops:
            timeline["rows"] = {"put": row_puts, "drop": drops}
        if timeline:
            state["timeline"] = timeline
        return {"base": base, "state": state}

    def _move_cut(self, old_total: int, grown: list[tuple[int, int]]) -> None:
        """Move the cut after the stages at ``grown``'s indexes gained (or lost) rows; there
        were ``old_total`` rows before (module docstring)."""
        if self._total <= self._max or old_total <= self._max:
            self._find_cut()  # every row sent (no walk), or the run's rows just passed the cut
            return
        cut, kept = self._cut, self._kept
        kept -= sum(rows for index, rows in grown if index < cut)
        while kept <= 0:  # rows added before it: its last rows go
            cut -= 1
            kept += len(self._rows.get(self._order[cut], ()))
        while kept > len(self._rows.get(self._order[cut], ())):  # rows gone before it
            kept -= len(self._rows.get(self._order[cut], ()))
            cut += 1
        self._cut, self._kept = cut, kept

    def _last_sent_before(self, index: int) -> Hashable:
        """The key of the last row sent of the nearest stage before ``index`` with one."""
        for earlier in range(index - 1, -1, -1):
            sent = self._sent(earlier)
            if sent:
                return row_key(self._rows[self._order[earlier]][sent - 1])
        return None
