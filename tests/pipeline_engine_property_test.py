"""Engine invariants over random DAGs (hypothesis): trigger order, no double runs,
termination, and the concurrency bound, all checked from the event stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_engine_support import FakeSleep, Recorder, entry, pipeline, retry
from taskdaemon.pipeline.engine import Engine, RunResult
from taskdaemon.pipeline.events import (
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
)
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    ErrorStrategy,
    OnCompletion,
    Pipeline,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.state import StageStatus

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Case:
    pipeline: Pipeline
    failures: dict[str, int]  # failing attempts before success (99: always fails)
    yields: dict[str, int]  # loop turns each handler takes


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 10))
    stages: list[Stage] = []
    failures: dict[str, int] = {}
    yields: dict[str, int] = {}
    for i in range(n):
        name = f"s{i}"
        parents = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        triggers = tuple(
            OnCompletion(f"s{p}", success_only=draw(st.booleans())) for p in sorted(parents)
        )
        mode = draw(st.sampled_from(TriggerMode))
        policy = retry(draw(st.integers(1, 3))) if draw(st.booleans()) else None
        stages.append(
            Stage(name, "python", triggers or (entry(),), trigger_mode=mode, retry=policy)
        )
        failures[name] = draw(st.sampled_from([0, 0, 1, 99]))
        yields[name] = draw(st.integers(0, 3))
    p = pipeline(
        *stages,
        concurrency=draw(st.integers(1, 4)),
        error_strategy=draw(st.sampled_from(ErrorStrategy)),
        retry=retry(2),
    )
    return Case(p, failures, yields)


async def execute(case: Case) -> tuple[RunResult, Recorder]:
    calls: dict[str, int] = {}

    async def handler(ctx: StageContext) -> dict[str, int]:
        calls[ctx.stage] = calls.get(ctx.stage, 0) + 1
        for _ in range(case.yields[ctx.stage]):
            await asyncio.sleep(0)
        if calls[ctx.stage] <= case.failures[ctx.stage]:
            raise RuntimeError("planned failure")
        return {"n": calls[ctx.stage]}

    class AllHandler:
        def resolve(self, pipeline: Pipeline, stage: Stage) -> object:
            return handler

    recorder = Recorder()
    engine = Engine(resolver=AllHandler(), observers=[recorder], sleep=FakeSleep())  # type: ignore[arg-type]
    handle = await engine.start_run(case.pipeline)
    # A hang surfaces as TimeoutError here (leaving `async with` would wait for the run).
    result = await asyncio.wait_for(handle.wait(), timeout=10)
    return result, recorder


def accepts(trigger: OnCompletion, status: StageStatus) -> bool:
    if status is StageStatus.SUCCESS:
        return True
    ran = {StageStatus.FAILURE, StageStatus.TIMEOUT, StageStatus.CANCELLED}
    return not trigger.success_only and status in ran


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
@pytest.mark.slow
def test_random_dags_keep_the_engine_invariants(case: Case) -> None:
    """Random DAGs: starts follow satisfied triggers, no double runs, termination, slot bound."""
    result, recorder = asyncio.run(execute(case))
    events = recorder.events
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)
    assert 1 == sum(isinstance(e, RunFinished) for e in events)

    final: dict[str, StageStatus] = {}
    attempts: dict[str, list[int]] = {}
    running = 0
    policies = {s.name: s for s in case.pipeline.stages}
    for event in events:
        if isinstance(event, StageStarted):
            running += 1
            assert running <= case.pipeline.concurrency
            assert 0 == event.instance
            attempts.setdefault(event.stage, []).append(event.attempt)
            stage = policies[event.stage]
            completions = [t for t in stage.triggers if isinstance(t, OnCompletion)]
            if completions and event.attempt == 1:
                satisfied = [t.stage in final and accepts(t, final[t.stage]) for t in completions]
                expected = all if stage.trigger_mode is TriggerMode.ALL else any
                assert expected(satisfied), (event.stage, satisfied)
        elif isinstance(event, StageFinished):
            running -= 1
            if not event.will_retry:
                final[event.stage] = event.status

    for name, seen in attempts.items():
        # one instance; attempts 1..k in order; only retried after a failed attempt
        assert list(range(1, len(seen) + 1)) == seen
        stage = policies[name]
        policy = stage.retry or (
            case.pipeline.retry if case.pipeline.error_strategy is ErrorStrategy.RETRY else None
        )
        assert len(seen) <= (policy.max_attempts if policy else 1)

    for name, status in result.stage_status.items():
        assert status.is_final, (name, status)
    assert result.status.is_final


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.integers(0, 9), max_size=12),
    parallel=st.integers(1, 4),
    concurrency=st.integers(1, 4),
    yields=st.integers(0, 3),
)
def test_event_fan_out_keeps_its_bounds(
    values: list[int], parallel: int, concurrency: int, yields: int
) -> None:
    """One instance per matching event, never more than parallel_instances (or slots) at once."""
    from taskdaemon.pipeline.model import InputMapping, OnEvent

    async def emit(ctx: StageContext) -> None:
        for value in values:
            ctx.publish("item", {"v": value})

    async def work(ctx: StageContext) -> dict[str, int]:
        for _ in range(yields):
            await asyncio.sleep(0)
        return {"v": ctx.inputs["v"]}

    class Handlers:
        def resolve(self, pipeline: Pipeline, stage: Stage) -> object:
            return emit if stage.name == "src" else work

    p = pipeline(
        Stage("src", "python", (entry(),), emits=("item",)),
        Stage(
            "work",
            "python",
            (OnEvent("item", "event.v >= 5"),),
            parallel_instances=parallel,
            inputs=(InputMapping("v", "event.v"),),
        ),
        concurrency=concurrency,
    )

    async def go() -> tuple[RunResult, Recorder]:
        recorder = Recorder()
        engine = Engine(resolver=Handlers(), observers=[recorder])  # type: ignore[arg-type]
        handle = await engine.start_run(p)
        return await asyncio.wait_for(handle.wait(), timeout=10), recorder

    result, recorder = asyncio.run(go())
    expected = [v for v in values if v >= 5]
    outputs = [e.outputs["v"] for e in result.executions["work"]]
    assert expected == outputs
    running = peak = 0
    for event in recorder.events:
        if isinstance(event, StageStarted) and event.stage == "work":
            running += 1
            peak = max(peak, running)
        elif isinstance(event, StageFinished) and event.stage == "work":
            running -= 1
    assert peak <= min(parallel, concurrency)
    assert (StageStatus.SUCCESS if expected else StageStatus.SKIPPED) == result.stage_status["work"]
