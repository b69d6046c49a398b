"""Debug mode in the engine: breakpoints (before, conditional, on failure, on an event), pausing,
stepping, skipping, retrying and overriding inputs, and several runs debugged at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.events import (
    BreakpointHit,
    BreakpointResumed,
    InputOverridden,
    StageStarted,
)
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import ErrorStrategy, InputMapping, OnEvent
from taskdaemon.pipeline.state import RunStatus, StageStatus


class Calls:
    """Handlers that record the order stages ran in and the inputs they saw."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.inputs: dict[str, dict[str, Any]] = {}

    def handler(self, result: Any = None) -> Any:
        async def run(ctx: StageContext) -> Any:
            self.order.append(ctx.stage)
            self.inputs[ctx.stage] = dict(ctx.inputs)
            return result

        return run


def spec_pipeline() -> Any:
    """planning -> specification -> implementation, specification reading the plan."""
    return pipeline(
        stage("planning"),
        stage(
            "specification",
            *after("planning"),
            inputs=(InputMapping("plan", "stages.planning.outputs.plan"),),
        ),
        stage("implementation", *after("specification")),
        name="feature",
    )


async def test_the_spec_example_pauses_before_the_stage_and_runs_on_continue() -> None:
    """``with_debug(True)``, ``set_breakpoint("specification")``, ``execute``: the stage pauses
    before it starts (run and stage paused, handler not called) and the run ends on continue."""
    calls = Calls()
    recorder = Recorder()
    resolver = Resolver(
        {
            "planning": calls.handler({"plan": "p1"}),
            "specification": calls.handler(),
            "implementation": calls.handler(),
        }
    )
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("specification")
        task = asyncio.create_task(debug.execute(spec_pipeline(), {"goal": "x"}))
        paused = await debug.wait_paused()
        assert paused is not None
        assert paused.stage == "specification"
        assert paused.inputs == {"plan": "p1"}
        handle = engine.get_run(paused.run_id)
        assert handle.status is RunStatus.PAUSED
        assert handle.snapshot().stage_status["specification"] is StageStatus.PAUSED
        assert calls.order == ["planning"]
        assert debug.continue_(paused.run_id, by="tester") == 1
        result = await task
    assert result.succeeded
    assert calls.order == ["planning", "specification", "implementation"]
    names = [
        type(e).__name__ for e in recorder.events if getattr(e, "stage", "") == "specification"
    ]
    hit, resumed, started = (
        names.index("BreakpointHit"),
        names.index("BreakpointResumed"),
        names.index("StageStarted"),
    )
    assert hit < resumed < started
    (resumed_event,) = recorder.of(BreakpointResumed)
    assert (resumed_event.action, resumed_event.by) == ("continue", "tester")


async def test_without_debug_mode_no_gate_is_installed() -> None:
    """An engine gets its pause gate only from ``with_debug(True)``; ``False`` removes it."""
    async with Engine(resolver=Resolver()) as engine:
        assert engine._pause_gate is None
        debug = engine.with_debug(True)
        assert engine._pause_gate is not None
        assert engine.with_debug(True) is debug
        assert engine.with_debug(False) is None
        assert engine._pause_gate is None


async def test_a_conditional_breakpoint_pauses_only_the_instance_its_cel_selects() -> None:
    """``when`` is CEL over the event (and request, stages, inputs): of three event instances
    only the heavy one pauses."""
    calls = Calls()

    async def publish(ctx: StageContext) -> None:
        for name in ("light", "heavy", "medium"):
            ctx.publish("spec.ready", {"spec": {"name": name}})

    p = pipeline(
        stage("specification", emits=("spec.ready",)),
        stage(
            "implementation",
            OnEvent("spec.ready"),
            parallel_instances=5,
            inputs=(InputMapping("name", "event.spec.name"),),
        ),
    )
    seen: list[str] = []
    two_ran = asyncio.Event()

    async def record(ctx: StageContext) -> None:
        seen.append(ctx.inputs["name"])
        if len(seen) == 2:
            two_ran.set()

    async with Engine(
        resolver=Resolver({"specification": publish, "implementation": record})
    ) as engine:
        debug = engine.with_debug(True)
        bp = debug.set_breakpoint("implementation", when="event.spec.name == 'heavy'")
        task = asyncio.create_task(debug.execute(p))
        paused = await debug.wait_paused()
        assert paused is not None
        assert paused.inputs == {"name": "heavy"}
        await two_ran.wait()  # the other two instances are not held
        assert sorted(seen) == ["light", "medium"]
        assert len(debug.paused()) == 1
        assert bp.hits == 1
        debug.continue_()
        assert (await task).succeeded
    assert sorted(seen) == ["heavy", "light", "medium"]
    del calls


async def test_a_condition_can_read_the_resolved_inputs_and_bad_ones_are_refused() -> None:
    """A condition over ``inputs`` holds or not per execution; one that does not compile is a
    one-line PipelineError when set."""
    p = pipeline(
        stage("a", inputs=(InputMapping("n", "request.n"),)),
    )
    async with Engine(resolver=Resolver()) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("a", when="inputs.n > 5")
        assert (await debug.execute(p, {"n": 1})).succeeded  # not paused
        task = asyncio.create_task(debug.execute(p, {"n": 9}))
        paused = await debug.wait_paused()
        assert paused is not None
        assert paused.inputs == {"n": 9}
        debug.continue_()
        await task
        with pytest.raises(PipelineError, match="breakpoint condition"):
            debug.set_breakpoint("a", when="nonsense(")
        with pytest.raises(PipelineError, match="unknown variable"):
            debug.set_breakpoint("a", when="result.x")


def failing_once() -> tuple[Any, list[int]]:
    """A handler that fails on its first call and succeeds afterwards."""
    count = [0]

    async def handler(ctx: StageContext) -> dict[str, Any]:
        count[0] += 1
        if count[0] == 1:
            raise RuntimeError("flaky")
        return {"ok": True}

    return handler, count


async def test_a_failure_breakpoint_pauses_before_the_error_strategy_and_retry_reruns() -> None:
    """On failure the execution pauses with its error and the run is not yet stopped (the
    downstream stage is still waiting); ``retry`` runs a new attempt at once and the run
    succeeds, with attempt 1 marked failed."""
    handler, count = failing_once()
    recorder = Recorder()
    p = pipeline(stage("build"), stage("ship", *after("build")))
    async with Engine(resolver=Resolver({"build": handler}), observers=[recorder]) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint(None, on="failure")
        task = asyncio.create_task(debug.execute(p))
        paused = await debug.wait_paused()
        assert paused is not None
        assert (paused.kind, paused.stage, paused.error) == ("failure", "build", "flaky")
        run = engine.get_run(paused.run_id)
        assert run.status is RunStatus.PAUSED
        assert run.snapshot().stage_status["ship"] is StageStatus.WAITING  # strategy not acted
        with pytest.raises(PipelineError, match="only an execution paused before it starts"):
            debug.skip(paused.run_id)
        debug.retry(paused.run_id, by="tester")
        result = await task
    assert result.succeeded
    assert count[0] == 2
    attempts = result.executions["build"]
    assert [(e.attempt, e.status) for e in attempts] == [
        (1, StageStatus.FAILURE),
        (2, StageStatus.SUCCESS),
    ]
    (resumed,) = recorder.of(BreakpointResumed)
    assert resumed.action == "retry"


async def test_continue_at_a_failure_breakpoint_lets_the_error_strategy_stop_the_run() -> None:
    """``continue`` after a failure: strategy ``fail`` stops the run, the downstream is skipped."""
    handler, _count = failing_once()
    p = pipeline(stage("build"), stage("ship", *after("build")), error_strategy=ErrorStrategy.FAIL)
    async with Engine(resolver=Resolver({"build": handler})) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("build", on="failure")
        task = asyncio.create_task(debug.execute(p))
        paused = await debug.wait_paused()
        assert paused is not None
        debug.continue_(paused.run_id)
        result = await task
    assert result.status is RunStatus.FAILURE
    assert result.stage_status["ship"] is StageStatus.SKIPPED


async def test_an_event_breakpoint_pauses_the_executions_that_event_starts() -> None:
    """``on="event:TYPE"`` pauses each execution an event of that type starts, and nothing
    else."""

    async def publish(ctx: StageContext) -> None:
        ctx.publish("spec.ready", {"n": 1})

    p = pipeline(
        stage("specification", emits=("spec.ready",)),
        stage("implementation", OnEvent("spec.ready")),
        stage("docs", *after("specification")),
    )
    recorder = Recorder()
    async with Engine(
        resolver=Resolver({"specification": publish}), observers=[recorder]
    ) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint(None, on="event:spec.ready")
        task = asyncio.create_task(debug.execute(p))
        paused = await debug.wait_paused()
        assert paused is not None
        assert paused.stage == "implementation"
        assert paused.reason.startswith("event spec.ready")
        debug.continue_()
        assert (await task).succeeded
    assert [e.stage for e in recorder.of(BreakpointHit)] == ["implementation"]


async def test_step_on_a_fan_out_runs_exactly_one_ready_execution_at_a_time_in_order() -> None:
    """After the fan-out's source, every ready execution pauses; each ``step`` runs exactly
    the one that became ready first, and the others stay paused."""
    calls = Calls()
    ran = asyncio.Event()

    def tracked(name: str) -> Any:
        async def run(ctx: StageContext) -> None:
            calls.order.append(name)
            ran.set()

        return run

    p = pipeline(
        stage("a"),
        stage("b", *after("a")),
        stage("c", *after("a")),
        stage("d", *after("a")),
        concurrency=4,
    )
    resolver = Resolver({name: tracked(name) for name in "abcd"})
    async with Engine(resolver=resolver) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("a")
        task = asyncio.create_task(debug.execute(p))
        first = await debug.wait_paused()
        assert first is not None
        run_id = first.run_id
        assert debug.step(run_id) is not None  # a runs, the run is in step mode
        for expected_done, expected_paused in (
            (["a"], ["b", "c", "d"]),
            (["a", "b"], ["c", "d"]),
            (["a", "b", "c"], ["d"]),
        ):
            while len(debug.paused(run_id)) < len(expected_paused):
                await debug.wait_paused(run_id)
                await asyncio.sleep(0)
            assert [x.stage for x in debug.paused(run_id)] == expected_paused
            assert calls.order == expected_done
            ran.clear()
            stepped = debug.step(run_id)
            assert stepped is not None
            assert stepped.stage == expected_paused[0]
            await ran.wait()
        debug.continue_(run_id)
        assert (await task).succeeded
    assert calls.order == ["a", "b", "c", "d"]


async def test_skip_ends_the_execution_skipped_and_what_needs_it_too() -> None:
    """``skip`` at a breakpoint: the handler never runs, the stage and its dependants end
    ``skipped`` with the reason, and the run still succeeds."""
    calls = Calls()
    p = pipeline(stage("a"), stage("b", *after("a")), stage("c", *after("b")))
    resolver = Resolver({n: calls.handler() for n in "abc"})
    async with Engine(resolver=resolver) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("b")
        task = asyncio.create_task(debug.execute(p))
        paused = await debug.wait_paused()
        assert paused is not None
        debug.skip(paused.run_id, "b", by="tester")
        result = await task
    assert result.succeeded
    assert calls.order == ["a"]
    assert result.stage_status["b"] is StageStatus.SKIPPED
    assert result.stage_status["c"] is StageStatus.SKIPPED
    assert result.skip_reasons["b"] == "skipped at a breakpoint by tester"


async def test_an_input_override_is_what_the_stage_runs_with_and_is_recorded() -> None:
    """``override`` replaces a resolved input before the stage starts; the handler sees the new
    value and an ``InputOverridden`` record keeps the old and new ones."""
    calls = Calls()
    recorder = Recorder()
    resolver = Resolver(
        {"planning": calls.handler({"plan": "p1"}), "specification": calls.handler()}
    )
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("specification")
        task = asyncio.create_task(debug.execute(spec_pipeline()))
        paused = await debug.wait_paused()
        assert paused is not None
        debug.override(paused.run_id, "specification", "plan", {"steps": 2}, by="tester")
        assert debug.paused()[0].inputs == {"plan": {"steps": 2}}
        debug.continue_()
        assert (await task).succeeded
    assert calls.inputs["specification"] == {"plan": {"steps": 2}}
    (override,) = recorder.of(InputOverridden)
    assert (override.name, override.old, override.new, override.by) == (
        "plan",
        "p1",
        {"steps": 2},
        "tester",
    )
    started = [e for e in recorder.of(StageStarted) if e.stage == "specification"]
    assert started[0].inputs == {"plan": {"steps": 2}}


async def test_overriding_an_input_the_stage_does_not_declare_is_refused() -> None:
    """``override`` of a name that is not one of the stage's inputs (a typo) is refused with
    the stage's input names, rather than adding an input the stage never reads."""
    calls = Calls()
    resolver = Resolver({"planning": calls.handler({"plan": "p1"})})
    async with Engine(resolver=resolver) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("specification")
        task = asyncio.create_task(debug.execute(spec_pipeline()))
        paused = await debug.wait_paused()
        assert paused is not None
        with pytest.raises(PipelineError) as refused:
            debug.override(paused.run_id, "specification", "plna", 2, by="tester")
        debug.continue_()
        await task
    expected = "stage 'specification' has no input 'plna' (inputs: plan)"
    assert expected == str(refused.value)


async def test_a_pause_is_not_queue_time_and_does_not_run_the_timeout() -> None:
    """A stage with a 50 ms timeout paused for longer still succeeds, and its StageStarted says
    how long it was paused, which the queue time leaves out."""
    now = [1000.0]
    p = pipeline(stage("a"), stage("b", *after("a"), timeout=0.05))
    recorder = Recorder()
    async with Engine(resolver=Resolver(), observers=[recorder], clock=lambda: now[0]) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("b")
        task = asyncio.create_task(debug.execute(p))
        paused = await debug.wait_paused()
        assert paused is not None
        await asyncio.sleep(0.2)  # real time past the timeout, while paused
        now[0] += 100.0  # and a long pause by the engine's clock
        debug.continue_()
        result = await task
    assert result.succeeded
    (started,) = [e for e in recorder.of(StageStarted) if e.stage == "b"]
    assert started.paused == pytest.approx(100.0)
    assert started.at - started.queued_at - started.paused == pytest.approx(0.0)


async def test_a_pause_is_not_in_the_run_results_queue_time() -> None:
    """The run result's queue time of an execution paused before it started leaves the pause
    out (``taskdaemon run``'s QUEUE column reads it), as its span does."""
    now = [1000.0]
    p = pipeline(stage("a"), stage("b", *after("a")))
    async with Engine(resolver=Resolver(), clock=lambda: now[0]) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("b")
        task = asyncio.create_task(debug.execute(p))
        assert await debug.wait_paused() is not None
        now[0] += 100.0
        debug.continue_()
        result = await task
    (execution,) = result.executions["b"]
    assert 0.0 == execution.times.queue_time


async def test_cancelling_a_paused_run_resumes_it_as_cancelled() -> None:
    """A cancel while paused ends the run ``cancelled``; the pause ends with action cancel."""
    recorder = Recorder()
    async with Engine(resolver=Resolver(), observers=[recorder]) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("b")
        task = asyncio.create_task(debug.execute(pipeline(stage("a"), stage("b", *after("a")))))
        paused = await debug.wait_paused()
        assert paused is not None
        engine.cancel(paused.run_id)
        result = await task
    assert result.status is RunStatus.CANCELLED
    assert result.stage_status["b"] is StageStatus.CANCELLED
    (resumed,) = recorder.of(BreakpointResumed)
    assert (resumed.action, resumed.by) == ("cancel", "engine")
    assert debug.paused() == []


async def test_several_runs_are_debugged_at_once_with_run_and_pipeline_breakpoints() -> None:
    """A run's breakpoint pauses only that run; a pipeline's pauses each of its runs; resuming
    one run leaves the other paused."""
    p = pipeline(stage("a"), stage("b", *after("a")))
    async with Engine(resolver=Resolver()) as engine:
        debug = engine.with_debug(True)
        one = await debug.start(p)
        two = await debug.start(p)
        debug.set_breakpoint("b", run_id=one.run_id)
        assert (await two.wait()).succeeded  # never paused
        first = await debug.wait_paused(one.run_id)
        assert first is not None
        assert first.run_id == one.run_id
        debug.delete_breakpoint()
        debug.set_breakpoint("b", pipeline=p)
        three = await debug.start(p)
        paused = await debug.wait_paused(three.run_id)
        assert paused is not None
        assert {x.run_id for x in debug.paused()} == {one.run_id, three.run_id}
        debug.continue_(one.run_id)
        assert (await one.wait()).succeeded
        assert three.status is RunStatus.PAUSED
        debug.continue_(three.run_id)
        assert (await three.wait()).succeeded


async def test_inspect_shows_inputs_upstream_outputs_triggers_and_pending_events() -> None:
    """``inspect`` of a paused stage: its inputs, upstream outputs and trigger states; ``state``
    lists what is paused and the slots in use."""
    resolver = Resolver({"planning": Calls().handler({"plan": "p1"})})
    async with Engine(resolver=resolver) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("specification")
        task = asyncio.create_task(debug.execute(spec_pipeline()))
        paused = await debug.wait_paused()
        assert paused is not None
        seen = debug.inspect(paused.run_id, "specification")
        assert seen["inputs"] == {"plan": "p1"}
        assert seen["upstream"] == {"planning": {"status": "success", "outputs": {"plan": "p1"}}}
        assert seen["triggers"][0]["state"] == "satisfied"
        assert seen["pending_events"] == []
        state = debug.state(paused.run_id)
        assert state["status"] == "paused"
        assert [x["stage"] for x in state["paused"]] == ["specification"]
        assert state["slots"]["free"] == state["slots"]["size"] - 1  # the paused one holds one
        with pytest.raises(PipelineError, match="no stage 'nope'"):
            debug.inspect(paused.run_id, "nope")
        debug.continue_()
        await task
