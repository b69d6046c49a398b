"""Isolated CEL (evaluated in the worker process) never holds the engine's event loop: a slow
condition, filter or input is awaited while the loop keeps ticking, and its verdict still
decides the run."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline_engine_support import Recorder, Resolver, entry, pipeline, stage
from taskdaemon.pipeline.cel_worker import CelWorker, shared_worker
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import StageStarted, TriggerEvaluated
from taskdaemon.pipeline.expressions import compile_expression
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import InputMapping, OnCondition, OnEvent
from taskdaemon.pipeline.state import RunStatus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

#: Quadratic in the run's data: the static estimate lets it through (it assumes 100 items),
#: 5,000 items make it run for seconds, past the worker's 0.25 s limit.
PAIRS = "request.items.all(x, request.items.all(y, x + y >= 0))"
#: Isolated (a comprehension over the run's data) but quick.
ANY_BIG = "request.items.exists(i, i > 2)"


@pytest.fixture(autouse=True)
def worker() -> Iterator[None]:
    """Starts the shared CEL worker ready, and stops it (and its thread) afterwards."""
    compile_expression(ANY_BIG).evaluate({"request": {"items": [1]}})  # worker up and warm
    yield
    shared_worker().close()


class _LoopProbe:
    """Proves each evaluation in the CEL worker was awaited off the engine's loop: the worker's
    ``evaluate_encoded`` waits, before it sends its request, for the loop to make progress
    (a 10 ms sleeper on it ticks). Called on the loop's own thread it would hold the loop, no
    tick could come, and the wait would give up: a ``False`` in ``off_loop``. An order, not a
    time: no threshold a busy machine can miss."""

    def __init__(self) -> None:
        self.tick = threading.Event()
        self.off_loop: list[bool] = []

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.tick.set()

    def wait_for_the_loop(self) -> None:
        self.tick.clear()
        self.off_loop.append(self.tick.wait(LOOP_WAIT))


#: How long an evaluation waits for the loop to tick: far longer than any scheduling delay.
LOOP_WAIT = 30.0


@contextlib.asynccontextmanager
async def _probed(monkeypatch: pytest.MonkeyPatch) -> Any:
    probe = _LoopProbe()
    original = CelWorker.evaluate_encoded

    def evaluate_encoded(worker: CelWorker, request: bytes) -> Any:
        probe.wait_for_the_loop()
        return original(worker, request)

    monkeypatch.setattr(CelWorker, "evaluate_encoded", evaluate_encoded)
    task = asyncio.ensure_future(probe.run())
    try:
        yield probe
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        monkeypatch.undo()


async def test_a_condition_over_the_time_limit_never_holds_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A condition that runs past the 0.25 s limit is a false verdict with its reason, and it is
    awaited off the loop (the loop waited the whole limit before)."""
    p = pipeline(stage("a", entry()), stage("b", OnCondition(PAIRS)))
    recorder = Recorder()
    async with (
        _probed(monkeypatch) as probe,
        Engine(resolver=Resolver(), observers=[recorder]) as engine,
    ):
        result = await engine.run(p, {"items": list(range(5000))})
    details = [e.detail for e in recorder.of(TriggerEvaluated) if e.stage == "b"]
    assert ("skipped", True) == (
        str(result.stage_status["b"]),
        any("over the time limit" in detail for detail in details),
    )
    assert (True, True) == (bool(probe.off_loop), all(probe.off_loop))


async def test_a_true_isolated_condition_starts_its_stage() -> None:
    """The verdict awaited off the loop is applied: a true condition fires the stage, and the
    run does not end early while the verdict is on its way."""
    p = pipeline(stage("a", entry()), stage("b", OnCondition(ANY_BIG)))
    recorder = Recorder()
    async with Engine(resolver=Resolver(), observers=[recorder]) as engine:
        result = await engine.run(p, {"items": [1, 2, 3]})
    assert (RunStatus.SUCCESS, ["a", "b"]) == (
        result.status,
        [e.stage for e in recorder.of(StageStarted)],
    )


async def test_events_through_an_isolated_filter_keep_their_order() -> None:
    """Events filtered in the worker are admitted in publication order, the rejected ones left
    out, with each verdict reported against its own event number."""
    seen: list[int] = []

    async def emitter(ctx: StageContext) -> dict[str, Any]:
        for n in range(6):
            ctx.publish("item", {"n": n, "tags": [n, n + 1]})
        return {}

    async def consumer(ctx: StageContext) -> dict[str, Any]:
        seen.append(ctx.inputs["event"]["n"])
        return {}

    p = pipeline(
        stage("src", emits=("item",)),
        stage(
            "odd",
            OnEvent("item", "event.tags.exists(t, t % 2 == 0 && t == event.n + 1)"),
            inputs=(InputMapping("event", "event"),),
        ),
    )
    recorder = Recorder()
    resolver = Resolver({"src": emitter, "odd": consumer})  # type: ignore[dict-item]
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        result = await engine.run(p)
    details = [e.detail for e in recorder.of(TriggerEvaluated) if e.stage == "odd"]
    assert (RunStatus.SUCCESS, [1, 3, 5]) == (result.status, seen)
    assert [d.split(":")[0] for d in details] == [f"event {n}" for n in range(1, 7)]
    assert (details[0], details[1]) == ("event 1: filter: False", "event 2: filter: True")


async def test_an_isolated_input_is_awaited_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow input mapping is a missing input (the stage fails with the reason) without the
    loop lagging; a quick one reaches the handler."""
    received: list[Any] = []

    async def handler(ctx: StageContext) -> dict[str, Any]:
        received.append(ctx.inputs["found"])
        return {}

    p = pipeline(
        stage("quick", entry(), inputs=(InputMapping("found", ANY_BIG),)),
        stage("slow", entry(), inputs=(InputMapping("pairs", PAIRS),)),
    )
    resolver = Resolver({"quick": handler})  # type: ignore[dict-item]
    async with _probed(monkeypatch) as probe, Engine(resolver=resolver) as engine:
        result = await engine.run(p, {"items": list(range(5000))})
    assert ([True], "success", "failure") == (
        received,
        str(result.stage_status["quick"]),
        str(result.stage_status["slow"]),
    )
    assert "over the time limit" in (result.executions["slow"][-1].error or "")
    assert (True, True) == (bool(probe.off_loop), all(probe.off_loop))
