"""``state_delta`` in this process (``web/_deltas.py``): each delta's exact form for small
changes, when the whole state is sent instead, and random changes applied back by the same
rules as the page's ``deltas.js`` (``live_changes_support.apply_delta``).
``pipeline_web_stream_deltas_test.py`` applies them with ``deltas.js`` itself in chromium."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from live_changes_support import apply_delta
from taskdaemon.pipeline.web._deltas import state_delta


def node(name: str, state: str = "pending") -> dict[str, Any]:
    return {"name": name, "state": state}


def row(stage: str, attempt: int = 1, *, end: float = 5.0, is_open: bool = False) -> dict[str, Any]:
    return {
        "stage": stage,
        "instance": 0,
        "attempt": attempt,
        "open": is_open,
        "segments": [{"kind": "running", "start": 1.0, "end": end}],
    }


def state(
    nodes: list[dict[str, Any]], rows: list[dict[str, Any]], now: float = 5.0
) -> dict[str, Any]:
    return {
        "run": {"status": "running"},
        "nodes": nodes,
        "timeline": {"start": 1.0, "end": now, "rows": rows, "hidden": 0, "last_seen": None},
        "now": now,
        "quiet_since": None,
        "controls": {"approve": False},
    }


def five() -> dict[str, Any]:
    """Five nodes and five closed rows, so that one or two changes make a delta."""
    names = ["a", "b", "c", "d", "e"]
    return state([node(n) for n in names], [row(n) for n in names])


def test_an_unchanged_state_is_an_empty_delta_on_its_base() -> None:
    assert state_delta(five(), five(), 7) == {"base": 7, "state": {}}


def test_a_changed_node_is_put_after_the_one_before_it() -> None:
    new = five()
    new["nodes"][0]["state"] = "running"
    new["nodes"][2]["state"] = "failure"
    assert state_delta(five(), new, 3) == {
        "base": 3,
        "state": {
            "nodes": {
                "put": [[None, node("a", "running")], ["b", node("c", "failure")]],
                "drop": [],
            }
        },
    }


def test_rows_are_keyed_by_stage_instance_and_attempt_as_lists() -> None:
    old = five()
    new = five()
    new["timeline"]["rows"].insert(0, row("a", 2))
    del new["timeline"]["rows"][3]  # c's
    assert state_delta(old, new, 1) == {
        "base": 1,
        "state": {"timeline": {"rows": {"put": [[None, row("a", 2)]], "drop": [["c", 0, 1]]}}},
    }
    new["timeline"]["rows"].insert(2, row("a", 3))
    delta = state_delta(old, new, 1)
    assert delta is not None
    assert delta["state"]["timeline"]["rows"]["put"] == [
        [None, row("a", 2)],
        [["a", 0, 1], row("a", 3)],
    ]


def test_only_the_fields_that_changed_are_sent_whole() -> None:
    new = five()
    new["run"] = {"status": "success"}
    new["timeline"]["end"] = 6.0
    new["timeline"]["hidden"] = 2
    assert state_delta(five(), new, 2) == {
        "base": 2,
        "state": {"run": {"status": "success"}, "timeline": {"end": 6.0, "hidden": 2}},
    }


def test_an_open_row_ticking_with_now_is_no_change() -> None:
    """Its last segment's end is the state's ``now``: the page sets it; a closed row's end
    that moves is a change."""
    old = state([node("a"), node("b"), node("c")], [row("a", end=5.0, is_open=True), row("b")])
    new = state([node("a"), node("b"), node("c")], [row("a", end=6.0, is_open=True), row("b")], 6)
    assert state_delta(old, new, 1) == {
        "base": 1,
        "state": {"now": 6, "timeline": {"end": 6}},
    }
    closed = copy.deepcopy(new)
    closed["timeline"]["rows"][1]["segments"][0]["end"] = 5.5
    delta = state_delta(old, closed, 1)
    assert delta is not None
    assert delta["state"]["timeline"]["rows"] == {
        "put": [[["a", 0, 1], closed["timeline"]["rows"][1]]],
        "drop": [],
    }


def test_a_timeline_whose_open_rows_only_ticked_is_left_out() -> None:
    """Nothing of the timeline but its open rows' ends moved (with ``now``): the delta has no
    timeline at all, not the whole one."""
    old = state([node("a"), node("b")], [row("a", end=5.0, is_open=True), row("b")])
    new = copy.deepcopy(old)
    new["now"] = new["timeline"]["rows"][0]["segments"][0]["end"] = 6.0
    assert state_delta(old, new, 1) == {"base": 1, "state": {"now": 6.0}}


def test_an_open_row_without_segments_is_compared_whole() -> None:
    empty = row("a", is_open=True)
    empty["segments"] = []
    old = state([node(n) for n in "abcd"], [empty, row("b")])
    assert state_delta(old, copy.deepcopy(old), 1) == {"base": 1, "state": {}}


@pytest.mark.parametrize("which", ["old", "new"])
def test_an_open_row_not_ending_at_now_sends_the_whole_state(which: str) -> None:
    states = {"old": five(), "new": five()}
    states[which]["timeline"]["rows"][4] = row("e", end=4.0, is_open=True)
    assert state_delta(states["old"], states["new"], 1) is None


def test_the_whole_state_when_the_fields_differ_or_keys_repeat_or_move() -> None:
    extra = five()
    extra["paused"] = True
    assert state_delta(five(), extra, 1) is None
    assert state_delta(extra, five(), 1) is None
    timeline = five()
    timeline["timeline"]["more"] = 1
    assert state_delta(timeline, five(), 1) is None
    assert state_delta(five(), timeline, 1) is None
    dropped = five()
    del dropped["timeline"]["hidden"]
    assert state_delta(dropped, dropped, 1) is None
    repeated = five()
    repeated["nodes"].append(node("a"))
    assert state_delta(repeated, five(), 1) is None
    assert state_delta(five(), repeated, 1) is None
    rows = five()
    rows["timeline"]["rows"].append(row("a"))
    assert state_delta(rows, five(), 1) is None
    assert state_delta(five(), rows, 1) is None
    moved = five()
    moved["nodes"][0], moved["nodes"][1] = moved["nodes"][1], moved["nodes"][0]
    assert state_delta(five(), moved, 1) is None


def test_half_the_items_changed_or_more_sends_the_whole_state() -> None:
    """Ten items: four carried is a delta, five is not."""
    new = five()
    for item in (*new["nodes"][:2], *new["timeline"]["rows"][:2]):
        item["changed"] = True
    assert state_delta(five(), new, 1) is not None
    new["nodes"][2]["changed"] = True
    assert state_delta(five(), new, 1) is None


def test_empty_lists_with_nothing_carried_still_make_a_delta() -> None:
    new = state([], [], now=6.0)
    assert state_delta(state([], []), new, 4) == {
        "base": 4,
        "state": {"now": 6.0, "timeline": {"end": 6.0}},
    }


def test_random_changes_applied_back_give_the_new_state() -> None:
    """Rows inserted anywhere, dropped and changed, nodes changed, open rows ticking."""
    rng = random.Random(54)
    names = [f"s{n:02}" for n in range(20)]
    old = state([node(n) for n in names], [row(n, is_open=n < "s05") for n in names])
    deltas = 0
    for step in range(80):
        now = 6.0 + step
        new = copy.deepcopy(old)
        new["now"] = new["timeline"]["end"] = now
        for item in rng.sample(new["nodes"], 2):
            item["state"] = rng.choice(["running", "success", "failure"])
        rows = new["timeline"]["rows"]
        for _ in range(rng.randint(0, 3)):
            if rows and rng.random() < 0.4:
                rows.pop(rng.randrange(len(rows)))
            else:
                key = (rng.choice(names), rng.randint(2, 999))
                if key not in {(r["stage"], r["attempt"]) for r in rows}:
                    rows.insert(rng.randint(0, len(rows)), row(*key, end=now, is_open=True))
        for r in rows:
            if r["open"]:
                r["segments"][-1]["end"] = now
        delta = state_delta(old, new, step)
        if delta is not None:
            assert delta["base"] == step
            assert apply_delta(old, delta["state"]) == new
            deltas += 1
        old = new
    assert deltas > 60
