"""The report's arithmetic (``reporting/_stats``), case by case: percentiles by linear
interpolation between closest ranks, and a run's critical path as its module docstring (and
docs/reports.md) defines it: blockers by their end or by a publish, ties, the tolerance, the
waits, and the intervals, upstream stages and fired events read from a rebuilt run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import pytest

from taskdaemon.pipeline.records import AttemptRecord, EdgeRecord, RunRecord, StageRecord
from taskdaemon.pipeline.reporting import _stats
from taskdaemon.pipeline.reporting._stats import (
    CriticalPath,
    CriticalStep,
    critical_chain,
    critical_path,
    percentile,
    run_critical_path,
    run_fired,
    run_upstream,
    stage_intervals,
)


class Counted(Sequence[float]):
    """A sequence that counts the items read (the span store answers each with a query)."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.read: list[int] = []

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        assert isinstance(index, int)
        self.read.append(index)
        return self.values[index]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7], 0.0, 7.0),
        ([7], 0.5, 7.0),
        ([7], 1.0, 7.0),
        ([1, 2, 3, 4], 0.0, 1.0),
        ([1, 2, 3, 4], 1.0, 4.0),
        ([1, 2, 3, 4], 0.5, 2.5),  # h = 1.5
        ([10, 20, 40], 0.25, 15.0),  # h = 0.5
        ([10, 20, 40], 0.75, 30.0),  # h = 1.5
        ([10, 20, 40], 0.5, 20.0),  # h = 1: exactly a rank
        ([0, 100], 0.9, 90.0),
        ([1, 1, 1, 9], 0.95, 7.8),  # h = 2.85
    ],
)
def test_percentile_interpolates_between_closest_ranks(
    values: list[int], q: float, expected: float | None
) -> None:
    """numpy's default method (type 7), exactly; a float even for ints; None for no values."""
    got = percentile(values, q)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-12)
        assert type(got) is float


def test_percentile_reads_at_most_two_items() -> None:
    """Only the two items around the rank are read (one at the top), by index."""
    values = Counted([1.0, 2.0, 3.0, 4.0, 5.0])
    assert percentile(values, 0.5) == 3.0
    assert sorted(set(values.read)) in ([2], [2, 3])
    values.read.clear()
    assert percentile(values, 0.3) == pytest.approx(2.2)  # h = 1.2
    assert sorted(set(values.read)) == [1, 2]
    values.read.clear()
    assert percentile(values, 1.0) == 5.0
    assert values.read == [4]


@pytest.mark.parametrize("q", [-0.01, 1.01, float("nan")])
def test_percentile_refuses_a_quantile_outside_0_1(q: float) -> None:
    """A quantile outside [0, 1] is a ValueError naming it."""
    with pytest.raises(ValueError, match=r"^quantile must be within \[0, 1\], not "):
        percentile([1.0], q)


def test_a_step_s_duration_and_a_path_s_length() -> None:
    """A step lasts from its start to its end (never less than 0); a path covers every step's
    wait and duration."""
    first = CriticalStep("a", 10.0, 12.5, 1.0)
    second = CriticalStep("b", 13.0, 12.0, 0.5, event="e")
    assert first.duration == 2.5
    assert second.duration == 0.0
    assert CriticalPath("r", 9.0, (first, second)).length == 4.0
    assert CriticalPath("r", 9.0, ()).length == 0


def test_no_stage_no_path() -> None:
    """A run with no ended stage has no critical path."""
    assert critical_path(0.0, {}, {}) == ()
    assert critical_chain(0.0, {}, lambda _: ()) == []


def test_a_chain_with_waits() -> None:
    """A chain a → b → c: each step's wait is from its blocker's end (the run's start for the
    first); a branch that ended earlier is not on the path."""
    intervals = {"a": (1.0, 3.0), "b": (4.0, 6.0), "c": (6.5, 9.0), "side": (3.5, 5.0)}
    upstream = {"b": {"a"}, "c": {"b", "side"}, "side": {"a"}}
    assert critical_path(0.0, intervals, upstream) == (
        CriticalStep("a", 1.0, 3.0, 1.0),
        CriticalStep("b", 4.0, 6.0, 1.0),
        CriticalStep("c", 6.5, 9.0, 0.5),
    )


def test_the_last_stage_by_its_end_then_its_start_then_its_name() -> None:
    """The path ends at the stage that ended last; among equal ends the one that started
    later, then the name that sorts first."""
    assert [s.stage for s in critical_path(0.0, {"a": (1.0, 5.0), "b": (2.0, 4.0)}, {})] == ["a"]
    assert [s.stage for s in critical_path(0.0, {"a": (1.0, 5.0), "b": (2.0, 5.0)}, {})] == ["b"]
    assert [s.stage for s in critical_path(0.0, {"b": (2.0, 5.0), "a": (2.0, 5.0)}, {})] == ["a"]
    three = {"c": (3.0, 5.0), "b": (2.0, 5.0), "a": (3.0, 5.0)}
    assert [s.stage for s in critical_path(0.0, three, {})] == ["a"]


def test_the_blocker_is_the_upstream_that_ended_last_with_ties_broken() -> None:
    """Of several upstream stages, the one that ended last; on equal ends the one that started
    later, then the name that sorts first. Stages that did not run, or ended after the stage
    started (beyond the 1 ms tolerance), are not blockers."""
    base = {"z": (10.0, 12.0)}
    cases: list[tuple[dict[str, tuple[float, float]], list[str]]] = [
        ({"x": (0.0, 5.0), "y": (1.0, 6.0)}, ["y", "z"]),
        ({"x": (0.0, 6.0), "y": (1.0, 6.0)}, ["y", "z"]),
        ({"y": (1.0, 6.0), "x": (1.0, 6.0)}, ["x", "z"]),
        ({"x": (0.0, 5.0), "y": (1.0, 10.0005)}, ["y", "z"]),  # within the tolerance
        ({"x": (0.0, 5.0), "y": (1.0, 10.002)}, ["x", "z"]),  # after the start
    ]
    for extra, expected in cases:
        intervals = {**extra, **base}
        upstream = {"z": {"x", "y", "never"}}
        assert [s.stage for s in critical_path(0.0, intervals, upstream)] == expected, extra


def test_a_blocker_within_the_tolerance_waits_nothing() -> None:
    """A blocker that ended just after its dependant started (clock steps) releases it with a
    wait of 0, never a negative one."""
    steps = critical_path(0.0, {"a": (0.0, 5.0005), "b": (5.0, 6.0)}, {"b": ["a"]})
    assert steps == (CriticalStep("a", 0.0, 5.0005, 0.0), CriticalStep("b", 5.0, 6.0, 0.0))


def test_a_cycle_in_the_upstream_map_ends() -> None:
    """A stage is on the path once: an upstream map that loops (which a DAG never does, but a
    rebuilt run's lists may) still ends."""
    intervals = {"a": (1.0, 1.0), "b": (1.0, 1.0)}
    steps = critical_path(0.0, intervals, {"a": {"b"}, "b": {"a"}})
    assert [s.stage for s in steps] == ["b", "a"]
    looped = critical_path(0.0, {"a": (1.0, 2.0)}, {"a": {"a"}})
    assert looped == (CriticalStep("a", 1.0, 2.0, 1.0),)


def test_a_publish_releases_the_stage_it_fired() -> None:
    """A stage fired by an event is released by the publish: the publishing stage's step ends
    there and names the event, its wait from its own blocker's end; the fired stage waits from
    the publish. The last publish before the start counts, not one after it."""
    intervals = {"plan": (0.0, 1.0), "spec": (1.5, 7.0), "impl": (4.0, 8.0)}
    upstream = {"spec": {"plan"}}
    fired = {
        "impl": [("spec", 2.0, "spec.ready"), ("spec", 3.0, "spec.ready"), ("spec", 5.0, "late")]
    }
    assert critical_path(0.0, intervals, upstream, fired) == (
        CriticalStep("plan", 0.0, 1.0, 0.0),
        CriticalStep("spec", 1.5, 3.0, 0.5, event="spec.ready"),
        CriticalStep("impl", 4.0, 8.0, 1.0),
    )
    # The tuple form the store's writer takes: the same steps.
    chain = critical_chain(
        0.0, intervals, lambda s: upstream.get(s, ()), lambda s: fired.get(s, ())
    )
    assert chain == [
        ("plan", 0.0, 1.0, 0.0, None),
        ("spec", 1.5, 3.0, 0.5, "spec.ready"),
        ("impl", 4.0, 8.0, 1.0, None),
    ]


def test_a_stage_both_upstream_and_publisher() -> None:
    """A stage that is both upstream and publisher is taken at its end when it ended before
    the start (its later publishes do not move it), else at its publish; a stage that ended
    within the tolerance after the start is taken at its publish."""
    fired = {"b": [("a", 2.0, "go")]}
    ended_before = critical_path(0.0, {"a": (0.0, 3.0), "b": (4.0, 5.0)}, {"b": ["a"]}, fired)
    assert ended_before == (CriticalStep("a", 0.0, 3.0, 0.0), CriticalStep("b", 4.0, 5.0, 1.0))
    just_after = critical_path(0.0, {"a": (0.0, 4.0005), "b": (4.0, 5.0)}, {"b": ["a"]}, fired)
    assert just_after == (
        CriticalStep("a", 0.0, 2.0, 0.0, event="go"),
        CriticalStep("b", 4.0, 5.0, 2.0),
    )
    # A publish after its end (clock steps) within the tolerance of the start: the later one.
    late = {"b": [("a", 4.0005, "go")]}
    steps = critical_path(0.0, {"a": (0.0, 3.0), "b": (4.0, 5.0)}, {"b": ["a"]}, late)
    assert steps == (
        CriticalStep("a", 0.0, 4.0005, 0.0, event="go"),
        CriticalStep("b", 4.0, 5.0, 0.0),
    )


def test_publishes_that_do_not_release() -> None:
    """A publish after the start (beyond the tolerance), by a stage that never ended, or by a
    stage already on the path, releases nothing; an event-fired stage released by nothing is
    the first step."""
    intervals = {"a": (0.0, 9.0), "b": (3.0, 4.0)}
    for fired in (
        {"b": [("a", 3.002, "late")]},
        {"b": [("ghost", 1.0, "go")]},
        {"b": [("b", 3.0, "self")]},
        {"c": [("a", 1.0, "other stage")]},
    ):
        steps = critical_path(0.0, {**intervals, "c": (0.0, 1.0)}, {}, fired)
        assert steps == (CriticalStep("a", 0.0, 9.0, 0.0),), fired
        assert critical_chain(0.0, intervals, lambda _: (), lambda s, f=fired: f.get(s, ())) == [
            ("a", 0.0, 9.0, 0.0, None)
        ]
    # b fired by a, ended last: a's publish at 1.0 releases it.
    steps = critical_path(0.5, {"a": (1.0, 9.0), "b": (3.0, 10.0)}, {}, {"b": [("a", 1.0, "e")]})
    assert steps == (
        CriticalStep("a", 1.0, 1.0, 0.5, event="e"),
        CriticalStep("b", 3.0, 10.0, 2.0),
    )


def test_among_publishers_the_last_release_then_the_later_start_then_the_name() -> None:
    """Two publishers release one stage: the later publish wins; on equal times the stage
    that started later, then the name that sorts first; an upstream end later than any
    publish wins over them. The next stage waits from the publish."""
    intervals = {"p": (0.0, 20.0), "q": (1.0, 20.0), "x": (5.0, 6.0), "z": (21.0, 30.0)}
    upstream = {"x": {"y"}, "z": {"x"}}
    cases: list[tuple[dict[str, tuple[float, float]], list[tuple[str, float, str]], Any]] = [
        ({}, [("p", 2.0, "e"), ("q", 3.0, "f")], ("q", 3.0, "f")),
        ({}, [("p", 4.0, "e"), ("q", 3.0, "f")], ("p", 4.0, "e")),
        ({}, [("p", 3.0, "e"), ("q", 3.0, "f")], ("q", 3.0, "f")),
        ({"q": (0.0, 20.0)}, [("q", 3.0, "f"), ("p", 3.0, "e")], ("p", 3.0, "e")),
        ({"y": (0.0, 1.0)}, [("p", 2.0, "e")], ("p", 2.0, "e")),
    ]
    for changed, fired, (blocker, at, event) in cases:
        steps = critical_path(0.0, {**intervals, **changed}, upstream, {"x": fired})
        start = {**intervals, **changed}[blocker][0]
        assert steps == (
            CriticalStep(blocker, start, at, start, event=event),
            CriticalStep("x", 5.0, 6.0, 5.0 - at),
            CriticalStep("z", 21.0, 30.0, 15.0),
        ), fired
    late_end = {**intervals, "y": (0.0, 4.5)}
    steps = critical_path(0.0, late_end, upstream, {"x": [("p", 3.0, "e")]})
    assert steps == (
        CriticalStep("y", 0.0, 4.5, 0.0),
        CriticalStep("x", 5.0, 6.0, 0.5),
        CriticalStep("z", 21.0, 30.0, 15.0),
    )


def _attempt(start: float, end: float | None, span_id: str = "", **fields: Any) -> AttemptRecord:
    return AttemptRecord(
        task_run_id="x",
        instance=0,
        attempt=1,
        status="success" if end is not None else "running",
        start=start,
        end=end,
        span_id=span_id,
        **fields,
    )


def _stage(name: str, *attempts: AttemptRecord, upstream: tuple[str, ...] = ()) -> StageRecord:
    return StageRecord(
        name=name, loop="python", status="success", attempts=attempts, upstream=upstream
    )


def test_intervals_upstream_and_fired_of_a_rebuilt_run() -> None:
    """A stage spans its first attempt's start to its last attempt's end, and has none while
    an attempt is open or without attempts; upstream stages come from the edges and the
    stages' lists; a stage's fired events are those of the executions its attempts'
    ``triggered_by`` links name, in order."""
    run = RunRecord(
        run_id="r",
        pipeline="p",
        status="success",
        start=0.0,
        end=20.0,
        stages=(
            _stage("a", _attempt(3.0, 5.0), _attempt(1.0, 2.0), _attempt(6.0, 9.0)),
            _stage(
                "pub",
                _attempt(1.0, 15.0, "s1", published=((2.0, "go"), (4.0, "go"))),
                _attempt(1.5, 16.0, "s2", published=((3.0, "more"),)),
                upstream=("a",),
            ),
            _stage("open", _attempt(1.0, 2.0), _attempt(3.0, None)),
            _stage("none"),
            _stage(
                "fed",
                _attempt(5.0, 6.0, triggered_by=("s2", "unknown")),
                _attempt(7.0, 17.0, triggered_by=("s1",)),
                upstream=("open",),
            ),
        ),
        edges=(EdgeRecord("a", "fed", "on completion"), EdgeRecord("open", "fed", "x")),
    )
    assert stage_intervals(run) == {"a": (1.0, 9.0), "pub": (1.0, 16.0), "fed": (5.0, 17.0)}
    assert run_upstream(run) == {
        "fed": {"a", "open"},
        "a": set(),
        "pub": {"a"},
        "open": set(),
        "none": set(),
    }
    assert run_fired(run) == {"fed": [("pub", 3.0, "more"), ("pub", 2.0, "go"), ("pub", 4.0, "go")]}
    path = run_critical_path(run)
    assert path.run_id == "r"
    assert path.run_duration == 20.0
    assert path.steps == critical_path(0.0, stage_intervals(run), run_upstream(run), run_fired(run))
    assert path.steps == (
        CriticalStep("pub", 1.0, 4.0, 1.0, event="go"),
        CriticalStep("fed", 5.0, 17.0, 1.0),
    )


def test_a_run_without_publishes_fires_nothing_and_an_open_run_lasts_0() -> None:
    """No publish in the run: no fired events at all; a run not ended has a duration of 0 on
    its path."""
    run = RunRecord(
        run_id="r",
        pipeline="p",
        status="running",
        start=1.0,
        end=None,
        stages=(
            _stage("a", _attempt(2.0, 3.0, "s1")),
            _stage("b", _attempt(4.0, 5.0, triggered_by=("s1",))),
        ),
        edges=(),
    )
    assert run_fired(run) == {}
    path = run_critical_path(run)
    assert path.run_duration == 0.0
    assert path.steps == (CriticalStep("b", 4.0, 5.0, 3.0),)
    assert _stats._TOLERANCE == 1e-3


def test_the_edges_of_the_tolerance_and_of_equal_times() -> None:
    """An upstream end or a publish exactly at the start plus the tolerance still releases
    the stage; an upstream that ended exactly at the start is taken at its end (not at an
    earlier publish); of two releases at the same time by one stage, its end is kept over a
    publish, and the first publish over a later-listed one."""
    limit = 4.0 + _stats._TOLERANCE
    steps = critical_path(0.0, {"a": (0.0, limit), "b": (4.0, 5.0)}, {"b": ["a"]})
    assert [s.stage for s in steps] == ["a", "b"]
    steps = critical_path(
        0.0, {"a": (0.0, 9.0), "b": (4.0, 10.0)}, {}, {"b": [("a", limit, "edge")]}
    )
    assert [(s.stage, s.event) for s in steps] == [("a", "edge"), ("b", None)]
    fired = {"b": [("a", 2.0, "early")]}
    steps = critical_path(0.0, {"a": (0.0, 4.0), "b": (4.0, 5.0)}, {"b": ["a"]}, fired)
    assert steps == (CriticalStep("a", 0.0, 4.0, 0.0), CriticalStep("b", 4.0, 5.0, 0.0))
    at_end = {"b": [("a", 3.0, "at the end")]}
    steps = critical_path(0.0, {"a": (0.0, 3.0), "b": (4.0, 5.0)}, {"b": ["a"]}, at_end)
    assert steps == (CriticalStep("a", 0.0, 3.0, 0.0), CriticalStep("b", 4.0, 5.0, 1.0))
    twice = {"b": [("a", 2.0, "first"), ("a", 2.0, "second")]}
    steps = critical_path(0.0, {"a": (0.0, 9.0), "b": (4.0, 10.0)}, {}, twice)
    assert steps == (
        CriticalStep("a", 0.0, 2.0, 0.0, event="first"),
        CriticalStep("b", 4.0, 10.0, 2.0),
    )
