"""The debug session's commands one by one: continue, step, skip, retry and override (what
each resumes, returns and refuses), and detach."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline_engine_debug_support import chain, paused_at, session, two_paused
from pipeline_engine_support import Recorder, after, fail, pipeline, stage
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.events import BreakpointResumed, InputOverridden, StageSkipped
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import ErrorStrategy, InputMapping, OnEvent
from taskdaemon.pipeline.state import StageStatus

# ---------------------------------------------------------------------- resuming


async def test_step_puts_the_run_in_step_mode_and_continue_without_a_stage_leaves_it() -> None:
    """``is_stepping`` is true after ``step`` and false after ``continue_(run_id)``."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("a")
        paused = await paused_at(debug, chain())
        before = debug.is_stepping(paused.run_id)
        debug.step(paused.run_id)
        during = debug.is_stepping(paused.run_id)
        debug.continue_(paused.run_id)
        after_it = debug.is_stepping(paused.run_id)
    assert (False, True, False) == (before, during, after_it)


async def test_continue_of_every_run_leaves_step_mode_everywhere() -> None:
    """``continue_()`` with no run and no stage ends step mode of every run."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("a")
        paused = await paused_at(debug, chain())
        debug.step(paused.run_id)
        debug.continue_()
        stepping = debug.is_stepping(paused.run_id)
    assert stepping is False


async def test_continue_of_one_stage_keeps_step_mode() -> None:
    """``continue_(run_id, stage)`` resumes that stage and leaves the run in step mode."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("a")
        paused = await paused_at(debug, chain())
        debug.step(paused.run_id)
        while [x.stage for x in debug.paused(paused.run_id)] != ["b"]:
            await debug.wait_paused(paused.run_id)
            await asyncio.sleep(0)
        resumed = debug.continue_(paused.run_id, "b")
        stepping = debug.is_stepping(paused.run_id)
        debug.continue_()
    assert (1, True) == (resumed, stepping)


async def test_continue_of_a_stage_resumes_only_that_stage() -> None:
    """Of two paused stages, ``continue_(run_id, stage)`` resumes the one named."""
    b_ran = asyncio.Event()

    async def mark(ctx: StageContext) -> None:
        b_ran.set()

    p = pipeline(stage("a"), stage("b"), concurrency=2)
    async with session(handlers={"b": mark}) as (_engine, debug):
        debug.set_breakpoint(None)
        handle = await two_paused(debug, p)
        resumed = debug.continue_(handle.run_id, "b")
        await b_ran.wait()
        left = [x.stage for x in debug.paused()]
        debug.continue_()
    assert (1, ["a"]) == (resumed, left)


async def test_continue_of_a_run_counts_every_pause_it_resumed() -> None:
    """``continue_(run_id)`` with two executions paused resumes both and returns 2."""
    p = pipeline(stage("a"), stage("b"), concurrency=2)
    async with session() as (engine, debug):
        debug.set_breakpoint(None)
        handle = await two_paused(debug, p)
        resumed = debug.continue_(handle.run_id)
        result = await engine.get_run(handle.run_id).wait()
    assert (2, True) == (resumed, result.succeeded)


async def test_step_with_nothing_paused_returns_none_and_the_next_execution_pauses() -> None:
    """``step`` of a run with nothing paused gives None; the next ready execution pauses."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def held(ctx: StageContext) -> dict[str, Any]:
        started.set()
        await release.wait()
        return {"x": 1}

    async with session(handlers={"a": held}) as (_engine, debug):
        handle = await debug.start(chain())
        await started.wait()
        stepped = debug.step(handle.run_id)
        release.set()
        paused = await debug.wait_paused(handle.run_id)
        assert paused is not None
        debug.continue_()
    assert (None, "b", "step") == (stepped, paused.stage, paused.reason)


async def test_stepping_a_stage_that_is_not_paused_is_refused() -> None:
    """``step(run_id, stage)`` for a stage that is not paused, or that the run does not have,
    is a PipelineError, and a refused step leaves the run out of step mode: else its next
    ready execution would pause for a command that did nothing."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        with pytest.raises(PipelineError) as refused:
            debug.step(paused.run_id, "c")
        with pytest.raises(PipelineError):
            debug.step(paused.run_id, "nosuch")
        stepping = debug.is_stepping(paused.run_id)
        debug.continue_()
    assert f"stage 'c' of run {paused.run_id} is not paused" == str(refused.value)
    assert stepping is False


async def test_a_second_continue_of_the_same_pause_resumes_nothing() -> None:
    """A pause already resumed (its coroutine not yet run) is not counted again."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        first = debug.continue_(paused.run_id)
        second = debug.continue_(paused.run_id)
    assert (1, 0) == (first, second)


async def test_skipping_when_nothing_is_paused_is_refused() -> None:
    """``skip`` of a run with nothing paused says nothing is paused."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("c")
        paused = await paused_at(debug, chain())
        debug.continue_()
        handle = await debug.start(pipeline(stage("a"), stage("b", *after("a")), name="q"))
        debug.set_breakpoint("b", pipeline="q")
        await debug.wait_paused(handle.run_id)
        with pytest.raises(PipelineError) as refused:
            debug.skip(paused.run_id)
        debug.continue_()
    assert "cannot skip a stage: nothing is paused" == str(refused.value)


async def test_skipping_a_stage_that_is_not_paused_is_refused() -> None:
    """``skip`` of a named stage that is not paused says that stage is not paused."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        with pytest.raises(PipelineError) as refused:
            debug.skip(paused.run_id, "c")
        debug.continue_()
    assert "cannot skip c: stage 'c' is not paused" == str(refused.value)


async def test_retrying_an_execution_paused_before_it_started_is_refused() -> None:
    """``retry`` needs a pause at a failure; one before the start is refused with why."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        with pytest.raises(PipelineError) as refused:
            debug.retry(paused.run_id, "b")
        debug.continue_()
    expected = "cannot retry 'b': only a failed execution paused at its failure can be retried"
    assert expected == str(refused.value)


async def test_skip_and_retry_return_the_pause_they_resumed() -> None:
    """``skip`` returns the paused execution it skipped, as it was."""
    async with session() as (engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        skipped = debug.skip(paused.run_id)
        result = await engine.get_run(paused.run_id).wait()
    assert (paused, StageStatus.SKIPPED) == (skipped, result.stage_status["b"])


async def test_retry_returns_the_failed_pause_it_resumed() -> None:
    """``retry`` returns the paused failure it resumed, with its error."""
    calls = [0]

    async def once(ctx: StageContext) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("first")

    async with session(handlers={"b": once}) as (engine, debug):
        debug.set_breakpoint("b", on="failure")
        paused = await paused_at(debug, chain())
        retried = debug.retry(paused.run_id)
        result = await engine.get_run(paused.run_id).wait()
    assert (paused, "first", True) == (retried, retried.error, result.succeeded)


async def test_a_skip_resumed_on_one_instance_of_several_leaves_the_stage_to_its_others() -> None:
    """Skipping one of two event instances records no ``StageSkipped``: the other runs."""
    recorder = Recorder()
    ran: list[int] = []

    async def publish(ctx: StageContext) -> None:
        for n in (1, 2):
            ctx.publish("go", {"n": n})

    async def record(ctx: StageContext) -> None:
        ran.append(ctx.inputs["n"])

    p = pipeline(
        stage("a", emits=("go",)),
        stage("b", OnEvent("go"), parallel_instances=2, inputs=(InputMapping("n", "event.n"),)),
    )
    async with session(recorder, {"a": publish, "b": record}) as (engine, debug):
        debug.set_breakpoint("b", when="inputs.n == 1")
        paused = await paused_at(debug, p)
        debug.skip(paused.run_id)
        await engine.get_run(paused.run_id).wait()
    skipped = [e.stage for e in recorder.of(StageSkipped)]
    assert ([], [2]) == (skipped, ran)


# ---------------------------------------------------------------------- overriding


async def test_overriding_an_input_twice_lists_it_once() -> None:
    """Two overrides of the same input leave one name in ``overridden`` and the last value."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        debug.override(paused.run_id, "b", "x", 2)
        debug.override(paused.run_id, "b", "x", 3)
        (now,) = debug.paused()
        debug.continue_()
    assert (("x",), {"x": 3}) == (now.overridden, now.inputs)


async def test_an_override_without_a_name_is_by_the_api() -> None:
    """An override without ``by`` is recorded as by ``api``, as a resume without one is."""
    recorder = Recorder()
    async with session(recorder) as (engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        debug.override(paused.run_id, "b", "x", 2)
        debug.continue_()
        await engine.get_run(paused.run_id).wait()
    assert "api" == recorder.of(InputOverridden)[0].by


async def test_overriding_an_input_of_a_stage_without_inputs_is_refused() -> None:
    """A stage with no inputs names none in the refusal."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("c")
        paused = await paused_at(debug, chain())
        with pytest.raises(PipelineError) as refused:
            debug.override(paused.run_id, "c", "x", 2)
        debug.continue_()
    assert "stage 'c' has no input 'x' (inputs: none)" == str(refused.value)


async def test_overriding_an_input_after_a_failure_is_refused() -> None:
    """Inputs can only be overridden before the execution starts; the refusal says how to
    retry with another value (it said only the rule, to a user who wanted just that)."""
    async with session(handlers={"b": fail}) as (_engine, debug):
        debug.set_breakpoint("b", on="failure")
        paused = await paused_at(debug, chain())
        with pytest.raises(PipelineError) as refused:
            debug.override(paused.run_id, "b", "x", 2)
        debug.continue_()
    why = (
        "inputs can only be overridden before the execution starts (to retry it with another "
        "value: a start breakpoint on the stage, then retry, and override at its pause)"
    )
    assert f"cannot override an input of 'b': {why}" == str(refused.value)


# ---------------------------------------------------------------------- detach


async def test_detach_resumes_everything_paused_as_debug_mode_off() -> None:
    """``detach`` resumes each paused execution with ``by`` "debug mode off"."""
    recorder = Recorder()
    async with session(recorder) as (engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        debug.detach()
        result = await engine.get_run(paused.run_id).wait()
    (resumed,) = recorder.of(BreakpointResumed)
    assert (True, "continue", "debug mode off") == (result.succeeded, resumed.action, resumed.by)


async def test_detach_forgets_the_breakpoints_and_step_mode() -> None:
    """After ``detach`` no breakpoint is left and no run is stepping."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("a")
        paused = await paused_at(debug, chain())
        debug.step(paused.run_id)
        debug.detach()
        left = (debug.breakpoints(), debug.is_stepping(paused.run_id))
    assert ([], False) == left


# ---------------------------------------------------------------------- more of the contract


async def test_the_breakpoints_of_a_finished_run_can_be_listed() -> None:
    """``breakpoints(run_id)`` reads a run that has ended."""
    async with session() as (_engine, debug):
        handle = await debug.start(chain())
        await handle.wait()
        bp = debug.set_breakpoint("a")
        listed = debug.breakpoints(handle.run_id)
    assert [bp] == listed


async def test_a_run_started_by_the_session_gets_its_request_and_options() -> None:
    """``start`` passes the request and the engine's options (here the run id) on."""
    p = pipeline(stage("a", inputs=(InputMapping("n", "request.n"),)))
    async with session() as (_engine, debug):
        debug.set_breakpoint("a")
        paused = await paused_at(debug, p, request={"n": 4}, run_id="run-4")
        debug.continue_()
    assert ("run-4", {"n": 4}) == (paused.run_id, paused.inputs)


async def test_step_records_its_action_and_who() -> None:
    """The execution ``step`` resumes is recorded with action ``step`` and who stepped."""
    recorder = Recorder()
    async with session(recorder) as (engine, debug):
        debug.set_breakpoint("c")
        paused = await paused_at(debug, chain())
        debug.step(paused.run_id, by="tester")
        debug.continue_(paused.run_id)
        await engine.get_run(paused.run_id).wait()
    resumed = recorder.of(BreakpointResumed)[0]
    assert ("step", "tester") == (resumed.action, resumed.by)


@pytest.mark.parametrize("command", ["continue_", "step", "skip"])
async def test_a_resume_without_a_name_is_by_the_api(command: str) -> None:
    """``continue_``, ``step`` and ``skip`` without ``by`` record ``api`` as who resumed."""
    recorder = Recorder()
    async with session(recorder) as (engine, debug):
        debug.set_breakpoint("c")
        paused = await paused_at(debug, chain())
        getattr(debug, command)(paused.run_id)
        debug.continue_()
        await engine.get_run(paused.run_id).wait()
    assert "api" == recorder.of(BreakpointResumed)[0].by


@pytest.mark.parametrize("command", ["step", "skip"])
async def test_a_command_takes_a_pause_of_its_own_run(command: str) -> None:
    """With two runs paused, ``step`` (or ``skip``) of the second takes the second's pause
    only, and returns it."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        first = await paused_at(debug, chain())
        second = await paused_at(debug, chain())
        taken = getattr(debug, command)(second.run_id)
        still = debug.paused(first.run_id)
        debug.continue_()
    assert (second, [first]) == (taken, still)


async def test_a_retry_without_a_name_is_by_the_api() -> None:
    """``retry`` without ``by`` records ``api`` as who resumed."""
    recorder = Recorder()
    async with session(recorder, {"b": fail}) as (engine, debug):
        debug.set_breakpoint("b", on="failure")
        paused = await paused_at(debug, chain())
        debug.retry(paused.run_id)
        debug.delete_breakpoint()
        await engine.get_run(paused.run_id).wait()
    assert ("retry", "api") == (
        recorder.of(BreakpointResumed)[0].action,
        recorder.of(BreakpointResumed)[0].by,
    )


async def test_retry_takes_a_pause_of_its_own_run() -> None:
    """With two runs paused at a failure, ``retry`` of the second run retries its stage."""
    async with session(handlers={"b": fail}) as (_engine, debug):
        debug.set_breakpoint("b", on="failure")
        first = await paused_at(debug, chain())
        second = await paused_at(debug, chain())
        retried = debug.retry(second.run_id, "b")
        still = debug.paused(first.run_id)
        debug.delete_breakpoint()
        debug.continue_()
    assert (second, [first]) == (retried, still)


async def test_retry_takes_the_stage_it_names() -> None:
    """With two stages of a run paused at their failures, ``retry`` of the second named
    retries that one."""
    p = pipeline(stage("a"), stage("b"), concurrency=2, error_strategy=ErrorStrategy.CONTINUE)
    async with session(handlers={"a": fail, "b": fail}) as (_engine, debug):
        debug.set_breakpoint(None, on="failure")
        handle = await two_paused(debug, p)
        _first, second = debug.paused()
        retried = debug.retry(handle.run_id, second.stage)
        debug.delete_breakpoint()
        debug.continue_()
    assert second == retried
