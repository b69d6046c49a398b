"""What changed between two live states of a run (``_views.run_state``): the stream's deltas.

A client that asks for them (``GET /api/runs/{id}/stream?delta=1``) is sent the whole state
first, as every client is, then at each change an ``event: delta`` holding only what changed
since the state it was sent last, so a change costs about what changed: one stage's new state
in a run of 5,000 stages, not the 5,000 (figures in ``benchmarks/README.md``, live53).

A delta (:func:`state_delta`) is ``{"base": ID, "state": {...}}``: ``base`` the id of the event
whose state it applies to, and ``state`` the new values of the document's top-level fields
that changed (``run``, ``now``, ``quiet_since``, ``no_span``, ``controls``: whole), except its
two lists, which change by key:

* ``nodes`` (keyed by ``name``) and ``timeline.rows`` (keyed by ``[stage, instance,
  attempt]``) are ``{"put": [[AFTER, ITEM], ...], "drop": [KEY, ...]}``: ``put`` the items new
  or changed, in the new list's order, each to replace the item of its key where it is, or,
  new, to go right after the item keyed ``AFTER`` (null: first); ``drop`` the keys gone. The
  timeline's other fields (``start``, ``end``, ``hidden``, ``last_seen``) come whole when
  they changed.
* An open timeline row's last segment ends at the state's ``now`` (``_views.timeline``): a
  delta leaves that end out of what counts as a change, and the client sets it to the new
  ``now``. Otherwise every queued and running row of a run would be in every delta.

There is no delta (None, and the whole state is sent) when the lists' kept items changed
their order or a key is not unique, when an open row's last segment does not end at ``now``,
or when the delta would carry half the state's items or more (it would be about as big as the
state, which the page applies more simply). A client that receives a delta whose ``base`` is
not the id of the last state it applied has missed one (it cannot, on one connection: a
dropped client's stream ends): it asks for the whole state again by reconnecting.

Decided: deltas are asked for, not the default. ``/api/runs/{id}/stream``'s events are a
contract whose clients read each event's ``data`` as the whole state (``onmessage``); an
``event: delta`` would be ignored by them, and they would show the run's first state for
good.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

__all__ = ["keyed_change", "row_key", "state_delta", "untimed"]

#: The timeline's fields besides its rows.
_TIMELINE_FIELDS = ("start", "end", "hidden", "last_seen")


def state_delta(old: Mapping[str, Any], new: Mapping[str, Any], base: int) -> Any | None:
    """The delta from ``old`` to ``new`` (see the module docstring), applied to the state of
    event ``base``; None when the whole ``new`` state is to be sent instead."""
    if (
        set(old) != set(new)
        or not set(old["timeline"]) == set(new["timeline"]) == {"rows", *_TIMELINE_FIELDS}
        or not (_open_rows_end_at_now(old) and _open_rows_end_at_now(new))
    ):
        return None
    state = {
        field: value
        for field, value in new.items()
        if field not in ("nodes", "timeline") and old[field] != value
    }
    nodes = keyed_change(old["nodes"], new["nodes"], _node_key, lambda node: node)
    rows = keyed_change(old["timeline"]["rows"], new["timeline"]["rows"], row_key, untimed)
    if nodes is None or rows is None:
        return None
    carried = len(nodes["put"]) + len(rows["put"])
    if carried and 2 * carried >= len(new["nodes"]) + len(new["timeline"]["rows"]):
        return None
    if nodes["put"] or nodes["drop"]:
        state["nodes"] = nodes
    timeline = {
        name: new["timeline"][name]
        for name in _TIMELINE_FIELDS
        if old["timeline"][name] != new["timeline"][name]
    }
    if rows["put"] or rows["drop"]:
        timeline["rows"] = rows
    if timeline:
        state["timeline"] = timeline
    return {"base": base, "state": state}


def _node_key(node: Mapping[str, Any]) -> Hashable:
    name: str = node["name"]
    return name


def row_key(row: Mapping[str, Any]) -> Hashable:
    return (row["stage"], row["instance"], row["attempt"])


def untimed(row: Mapping[str, Any]) -> Any:
    """``row`` without its open last segment's end (the state's ``now``)."""
    if not row.get("open") or not row["segments"]:
        return row
    *kept, last = row["segments"]
    return {**row, "segments": [*kept, {**last, "end": None}]}


def _open_rows_end_at_now(state: Mapping[str, Any]) -> bool:
    return all(
        row["segments"][-1]["end"] == state["now"]
        for row in state["timeline"]["rows"]
        if row.get("open") and row["segments"]
    )


def keyed_change(
    old: Sequence[Mapping[str, Any]],
    new: Sequence[Mapping[str, Any]],
    key: Callable[[Mapping[str, Any]], Hashable],
    compared: Callable[[Mapping[str, Any]], Any],
    previous: Hashable = None,
) -> dict[str, Any] | None:
    """``{"put", "drop"}`` from list ``old`` to list ``new`` (module docstring), an item put
    when its ``compared`` form changed; None when a key repeats or the items both lists hold
    are not in the same order in each. ``previous``: the key of the item before ``new``'s
    first, when the lists are a part of a longer one (None: the list's start)."""
    before = {key(item): item for item in old}
    after = [key(item) for item in new]
    if len(before) != len(old) or len(set(after)) != len(after):
        return None
    present = set(after)
    if [k for k in before if k in present] != [k for k in after if k in before]:
        return None
    put: list[list[Any]] = []
    for k, item in zip(after, new, strict=True):
        if k not in before or compared(before[k]) != compared(item):
            put.append([_wire(previous), item])
        previous = k
    return {"put": put, "drop": [_wire(k) for k in before if k not in present]}


def _wire(key: Hashable) -> Any:
    """A key as JSON: a row's tuple as a list."""
    return list(key) if isinstance(key, tuple) else key
