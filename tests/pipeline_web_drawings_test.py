"""One drawing of a run's DAG for every viewer while its states stay the same
(``web/_drawings.py``)."""

from __future__ import annotations

import asyncio

import pytest

from pipeline_visualization_support import feature_delivery
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord
from taskdaemon.pipeline.visualization import dag_snapshot
from taskdaemon.pipeline.visualization._snapshot import DagSnapshot
from taskdaemon.pipeline.web._drawings import RunDrawings

T0 = 1_700_000_000.0


def _snapshot(planning: str = "running", end: float | None = None) -> DagSnapshot:
    """feature_delivery with ``planning`` in state ``planning`` (ended at ``end``)."""
    attempt = AttemptRecord("planning.0", 0, 1, planning, T0, end)
    run = RunRecord(
        run_id="ab" * 16,
        pipeline="feature_delivery",
        status="running",
        start=T0,
        end=None,
        stages=(StageRecord("planning", "plan", planning, (attempt,)),),
        edges=(),
    )
    return dag_snapshot(feature_delivery(), run)


class _Maker:
    """Draws ``drawing N`` on its Nth call, after ``gate`` opens when one is given."""

    def __init__(self, gate: asyncio.Event | None = None, fail: bool = False) -> None:
        self.calls = 0
        self.gate = gate
        self.fail = fail

    async def __call__(self) -> bytes:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("dot failed")
        return f"drawing {self.calls}".encode()


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_requests_for_the_same_states_share_one_drawing() -> None:
    """A second request for the same states (a later duration of the running stage) within
    ``max_age`` gets the first drawing; ``dot`` runs once."""
    drawings, make = RunDrawings(), _Maker()
    first = await drawings.draw("r", _snapshot(), make)
    second = await drawings.draw("r", _snapshot(), make)
    assert (b"drawing 1", b"drawing 1", 1) == (first, second, make.calls)


async def test_a_state_change_is_drawn_again() -> None:
    """A stage's new state makes a new drawing at once."""
    drawings, make = RunDrawings(), _Maker()
    await drawings.draw("r", _snapshot(), make)
    after = await drawings.draw("r", _snapshot("success", T0 + 1), make)
    assert (b"drawing 2", 2) == (after, make.calls)


async def test_a_drawing_older_than_max_age_is_made_again() -> None:
    """Past ``max_age`` the same states are drawn again (the running durations catch up)."""
    clock = _Clock()
    drawings, make = RunDrawings(max_age=10.0, clock=clock), _Maker()
    await drawings.draw("r", _snapshot(), make)
    clock.now += 10.0
    within = await drawings.draw("r", _snapshot(), make)
    clock.now += 0.5
    past = await drawings.draw("r", _snapshot(), make)
    assert (b"drawing 1", b"drawing 2") == (within, past)


async def test_requests_while_it_is_drawn_wait_for_that_drawing() -> None:
    """Requests that come while the drawing is being made wait for it: ``dot`` runs once."""
    gate = asyncio.Event()
    drawings, make = RunDrawings(), _Maker(gate)
    tasks = [asyncio.create_task(drawings.draw("r", _snapshot(), make)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert ([b"drawing 1"] * 3, 1) == (results, make.calls)


async def test_a_failed_drawing_is_not_kept() -> None:
    """A drawing that failed raises for the request, and the next request tries again."""
    drawings, failing = RunDrawings(), _Maker(fail=True)
    with pytest.raises(RuntimeError, match="dot failed"):
        await drawings.draw("r", _snapshot(), failing)
    again = await drawings.draw("r", _snapshot(), _Maker())
    assert b"drawing 1" == again


async def test_a_cancelled_request_leaves_the_drawing_to_the_next() -> None:
    """When the request making the drawing goes away, one waiting for it makes it itself."""
    gate = asyncio.Event()
    drawings, slow = RunDrawings(), _Maker(gate)
    first = asyncio.create_task(drawings.draw("r", _snapshot(), slow))
    await asyncio.sleep(0)
    second = asyncio.create_task(drawings.draw("r", _snapshot(), _Maker()))
    await asyncio.sleep(0)
    first.cancel()
    assert b"drawing 1" == await second


async def test_runs_kept_are_bounded() -> None:
    """At most ``runs`` runs' drawings are kept: the least recently asked for goes first."""
    drawings, make = RunDrawings(runs=2), _Maker()
    for run in ("a", "b", "c"):
        await drawings.draw(run, _snapshot(), make)
    await drawings.draw("a", _snapshot(), make)
    assert 4 == make.calls
