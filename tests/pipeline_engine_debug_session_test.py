"""The debug session's contract, one behaviour at a time: breakpoints set, listed and deleted,
runs named by a prefix of their id, and what a pause records and restores (the engine
scenarios are in ``pipeline_debug_engine_test.py``; commands and inspection in
``pipeline_engine_debug_commands_test.py`` and ``pipeline_engine_debug_inspect_test.py``)."""

from __future__ import annotations

import asyncio

import pytest

from pipeline_engine_debug_support import chain, paused_at, session, two_paused
from pipeline_engine_support import Recorder, Resolver, fail, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.events import BreakpointHit, BreakpointResumed
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import ErrorStrategy
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.state import RunStatus, StageStatus

# ---------------------------------------------------------------------- breakpoints


@pytest.mark.parametrize("on", ["begin", "event:", "events:x", "Start"])
async def test_a_breakpoint_on_anything_but_start_failure_or_an_event_type_is_refused(
    on: str,
) -> None:
    """``on`` must be ``start``, ``failure`` or ``event:`` followed by a type."""
    async with session() as (_engine, debug):
        with pytest.raises(PipelineError) as refused:
            debug.set_breakpoint("a", on=on)
    expected = f"breakpoint 'on' must be start, failure or event:TYPE, not {on!r}"
    assert expected == str(refused.value)


async def test_a_breakpoint_on_an_event_type_of_one_character_is_taken() -> None:
    """``event:`` followed by any type, however short, is a kind a breakpoint can have."""
    async with session() as (_engine, debug):
        bp = debug.set_breakpoint("a", on="event:x")
    assert "event:x" == bp.on


async def test_a_refused_condition_or_kind_is_quoted_cut_in_its_error() -> None:
    """A 100,000-character condition that does not compile, or ``on``, is quoted in the one-line
    refusal by its first 39 characters and an ellipsis, as every refusal quotes
    (``quoting.quote``), not whole."""
    async with session() as (_engine, debug):
        errors = []
        for when, on in (("x" * 100_000, "start"), (None, "y" * 100_000)):
            with pytest.raises(PipelineError) as refused:
                debug.set_breakpoint("a", when, on)
            errors.append(str(refused.value))
    expected = [
        f"breakpoint condition '{'x' * 39}…': expression is 100000 characters long "
        "(the limit is 8192)",
        f"breakpoint 'on' must be start, failure or event:TYPE, not '{'y' * 39}…'",
    ]
    assert expected == errors


async def test_a_refused_breakpoint_takes_no_number() -> None:
    """Breakpoints are numbered 1, 2, 3 as they are taken: a condition that does not compile,
    or a bad ``on``, refused in between, leaves no gap in ``info breakpoints``."""
    async with session() as (_engine, debug):
        first = debug.set_breakpoint("a")
        for when, on in (("(((", "start"), (None, "begin")):
            with pytest.raises(PipelineError):
                debug.set_breakpoint("b", when, on)
        second = debug.set_breakpoint("b")
    assert (1, 2) == (first.id, second.id)


async def test_a_session_keeps_at_most_256_breakpoints() -> None:
    """The 257th breakpoint is refused in one line and takes no number; deleting one makes
    room. Before, any number was kept, each one set going over all the others: 20,000 held a
    ``replay`` for most of a minute before its run started."""
    async with session() as (_engine, debug):
        for _ in range(256):
            debug.set_breakpoint("a")
        with pytest.raises(PipelineError) as refused:
            debug.set_breakpoint("a", on="failure")
        debug.delete_breakpoint(1)
        again = debug.set_breakpoint("a", on="failure")
    said = "a session keeps at most 256 breakpoints (delete one first)"
    assert (said, 257, 256) == (str(refused.value), again.id, len(debug.breakpoints()))


async def test_a_breakpoint_records_what_it_was_set_with() -> None:
    """A breakpoint keeps its stage, kind, condition, pipeline (a Pipeline's name) and run, and
    ids count from 1."""
    async with session() as (_engine, debug):
        first = debug.set_breakpoint("b", "inputs.x > 0", "failure", pipeline=chain())
        second = debug.set_breakpoint(None, on="event:go", run_id="abc")
    expected = [
        (1, "b", "failure", "inputs.x > 0", "p", None),
        (2, None, "event:go", None, None, "abc"),
    ]
    actual = [(b.id, b.stage, b.on, b.when, b.pipeline, b.run_id) for b in (first, second)]
    assert expected == actual


async def test_an_empty_condition_is_no_condition() -> None:
    """``when=""`` sets a breakpoint without a condition (``when`` None) that always holds."""
    async with session() as (_engine, debug):
        bp = debug.set_breakpoint("b", when="")
        paused = await paused_at(debug, chain())
        debug.continue_()
    assert (None, "b") == (bp.when, paused.stage)


async def test_a_breakpoint_of_another_kind_or_stage_set_first_does_not_hide_a_later_one() -> None:
    """The breakpoints are each looked at in turn: one on a's failure and one on c's start,
    set before the one on b's start, do not keep the run from pausing at b."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("a", on="failure")
        debug.set_breakpoint("c")
        bp = debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        debug.continue_()
    assert ("b", 1) == (paused.stage, bp.hits)


async def test_deleting_one_breakpoint_keeps_the_others() -> None:
    """``delete_breakpoint(id)`` returns 1 and removes that breakpoint only."""
    async with session() as (_engine, debug):
        one = debug.set_breakpoint("a")
        two = debug.set_breakpoint("b")
        deleted = debug.delete_breakpoint(one.id)
        left = debug.breakpoints()
    assert (1, [two]) == (deleted, left)


async def test_deleting_every_breakpoint_returns_how_many_went() -> None:
    """``delete_breakpoint()`` removes all and returns their number."""
    async with session() as (_engine, debug):
        for name in "abc":
            debug.set_breakpoint(name)
        deleted = debug.delete_breakpoint()
        left = debug.breakpoints()
    assert (3, []) == (deleted, left)


async def test_deleting_an_unknown_breakpoint_is_refused() -> None:
    """An id that is not a breakpoint's is a PipelineError naming it."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("a")
        with pytest.raises(PipelineError) as refused:
            debug.delete_breakpoint(7)
    assert "no breakpoint #7" == str(refused.value)


async def test_a_deleted_breakpoint_no_longer_pauses() -> None:
    """After its only breakpoint is deleted, a run goes through without pausing."""
    async with session() as (_engine, debug):
        bp = debug.set_breakpoint("b")
        debug.delete_breakpoint(bp.id)
        result = await debug.execute(chain())
        paused = debug.paused()
    assert (True, []) == (result.succeeded, paused)


async def test_the_breakpoints_of_a_run_are_those_that_can_apply_to_it() -> None:
    """``breakpoints(run_id)`` keeps the run's own (by a prefix of its id), its pipeline's
    and every pipeline's, and leaves out another run's and another pipeline's."""
    async with session() as (_engine, debug):
        gate = debug.set_breakpoint("c")
        paused = await paused_at(debug, chain())
        run_id = paused.run_id
        own = debug.set_breakpoint("a", run_id=run_id[:6])
        debug.set_breakpoint("a", run_id="not-this-run")
        mine = debug.set_breakpoint("a", pipeline="p")
        debug.set_breakpoint("a", pipeline="other")
        actual = debug.breakpoints(run_id)
        debug.continue_()
    assert [gate, own, mine] == actual


# ---------------------------------------------------------------------- runs by id


async def test_a_run_is_found_by_a_unique_prefix_of_its_id() -> None:
    """Commands take any prefix of a run id that names one run of the engine."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        found = [p.stage for p in debug.paused(paused.run_id)]
        state = debug.state(paused.run_id[:4])
        debug.continue_()
    assert (["b"], paused.run_id) == (found, state["run_id"])


async def test_an_unknown_run_is_refused() -> None:
    """A run id that names no run of the engine is a PipelineError naming it."""
    async with session() as (_engine, debug):
        with pytest.raises(PipelineError) as refused:
            debug.state("nope")
    assert "no run 'nope' in this engine" == str(refused.value)


async def test_a_prefix_shared_by_two_runs_is_refused() -> None:
    """A prefix that two runs share (the empty one, here) names no run."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        await paused_at(debug, chain())
        await paused_at(debug, chain())
        with pytest.raises(PipelineError) as refused:
            debug.state("")
        debug.continue_()
    assert "no run '' in this engine" == str(refused.value)


async def test_stepping_a_finished_run_is_refused() -> None:
    """``step`` needs an open run: a finished one is a PipelineError."""
    async with session() as (_engine, debug):
        handle = await debug.start(chain())
        await handle.wait()
        with pytest.raises(PipelineError) as refused:
            debug.step(handle.run_id)
    assert f"run {handle.run_id} has finished" == str(refused.value)


async def test_waiting_for_a_pause_of_a_run_that_ends_first_gives_none() -> None:
    """``wait_paused(run_id)`` returns None when that run ends without pausing."""
    async with session() as (_engine, debug):
        handle = await debug.start(chain())
        paused = await debug.wait_paused(handle.run_id)
    assert paused is None


# ---------------------------------------------------------------------- pausing


async def test_a_pause_at_a_breakpoint_is_recorded_with_its_reason_and_no_error() -> None:
    """``BreakpointHit`` names the execution, the kind ``start``, the breakpoint and no error."""
    recorder = Recorder()
    async with session(recorder) as (_engine, debug):
        debug.set_breakpoint("b", when="inputs.x == 1")
        paused = await paused_at(debug, chain())
        debug.continue_()
        await _engine.get_run(paused.run_id).wait()
    (hit,) = recorder.of(BreakpointHit)
    expected = (paused.run_id, "p", "b", 0, 1, "b.0.1", "start", "#1 before b if inputs.x == 1")
    actual = (
        hit.run_id,
        hit.pipeline,
        hit.stage,
        hit.instance,
        hit.attempt,
        hit.task_run_id,
        hit.kind,
        hit.reason,
    )
    assert (expected, None) == (actual, hit.error)


async def test_a_pause_at_a_failure_is_recorded_with_the_error() -> None:
    """A failure breakpoint's ``BreakpointHit`` has kind ``failure``, the breakpoint as its
    reason and the attempt's error."""
    recorder = Recorder()
    async with session(recorder, {"b": fail}) as (engine, debug):
        debug.set_breakpoint("b", on="failure")
        paused = await paused_at(debug, chain())
        debug.continue_()
        await engine.get_run(paused.run_id).wait()
    (hit,) = recorder.of(BreakpointHit)
    assert ("failure", "failure: #1 on failure of b", "b broke") == (
        hit.kind,
        hit.reason,
        hit.error,
    )


async def test_a_failure_breakpoint_condition_reads_the_error() -> None:
    """A failure breakpoint's ``when`` sees the attempt's error text."""
    async with session(handlers={"a": fail, "b": fail}) as (_engine, debug):
        debug.set_breakpoint(None, when="error == 'b broke'", on="failure")
        p = pipeline(stage("a"), stage("b"), error_strategy=ErrorStrategy.CONTINUE)
        paused = await paused_at(debug, p)
        debug.continue_()
    assert ("b", "b broke") == (paused.stage, paused.error)


async def test_a_failure_breakpoint_of_another_stage_does_not_pause() -> None:
    """A failure breakpoint of stage c leaves a failing a alone."""
    async with session(handlers={"a": fail}) as (_engine, debug):
        debug.set_breakpoint("c", on="failure")
        result = await debug.execute(chain())
        paused = debug.paused()
    assert (RunStatus.FAILURE, []) == (result.status, paused)


async def test_the_stage_and_run_go_back_to_their_status_after_the_pause() -> None:
    """While paused the stage is ``paused``; resumed by ``step``, it is back to ``queued`` and
    the run to ``running``."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def held(ctx: StageContext) -> None:
        started.set()
        await release.wait()

    async with session(handlers={"b": held}) as (engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        run = engine.get_run(paused.run_id)
        during = (run.status, run.snapshot().stage_status["b"])
        debug.continue_(paused.run_id, "b")
        await started.wait()
        after_it = (run.status, run.snapshot().stage_status["b"])
        release.set()
        await run.wait()
    expected = ((RunStatus.PAUSED, StageStatus.PAUSED), (RunStatus.RUNNING, StageStatus.RUNNING))
    assert expected == (during, after_it)


async def test_a_run_stays_paused_while_another_of_its_executions_is() -> None:
    """Resuming one of two paused executions leaves the run ``paused``."""
    a_ran = asyncio.Event()

    async def mark(ctx: StageContext) -> None:
        a_ran.set()

    p = pipeline(stage("a"), stage("b"), concurrency=2)
    async with session(handlers={"a": mark}) as (engine, debug):
        debug.set_breakpoint(None)
        handle = await two_paused(debug, p)
        debug.continue_(handle.run_id, "a")
        await a_ran.wait()
        status = engine.get_run(handle.run_id).status
        debug.continue_()
    assert RunStatus.PAUSED == status


async def test_a_resume_records_who_resumed_and_how() -> None:
    """``BreakpointResumed`` names the execution, the action and who; ``by`` empty is ``api``."""
    recorder = Recorder()
    async with session(recorder) as (engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        debug.continue_(paused.run_id)
        await engine.get_run(paused.run_id).wait()
    (resumed,) = recorder.of(BreakpointResumed)
    expected = (paused.run_id, "p", "b", 0, 1, "b.0.1", "continue", "api")
    actual = (
        resumed.run_id,
        resumed.pipeline,
        resumed.stage,
        resumed.instance,
        resumed.attempt,
        resumed.task_run_id,
        resumed.action,
        resumed.by,
    )
    assert expected == actual


@pytest.mark.parametrize(
    ("cancels", "by"),
    [
        ([None], "engine"),
        (["ops", None], "ops"),
        (["ops", "dev"], "ops"),
        ([None, "dev"], "engine"),
    ],
)
async def test_a_pause_the_run_s_cancel_ends_is_resumed_by_who_cancelled_first(
    cancels: list[str | None], by: str
) -> None:
    """A run cancelled at a pause resumes it ``cancel`` by whom asked (``engine`` when nobody
    is named); a cancel asked again while the run stops changes neither who nor why."""
    recorder = Recorder()
    async with session(recorder) as (engine, debug):
        debug.set_breakpoint("b")
        paused = await paused_at(debug, chain())
        run = engine.get_run(paused.run_id)
        for who in cancels:
            run.cancel(by=who)
        result = await run.wait()
    (resumed,) = recorder.of(BreakpointResumed)
    why = f"run cancelled by {cancels[0]}" if cancels[0] else "run cancelled"
    assert (resumed.action, resumed.by, result.status, result.error) == (
        "cancel",
        by,
        RunStatus.CANCELLED,
        why,
    )


async def test_a_condition_that_does_not_give_a_bool_is_false_and_kept_as_the_error() -> None:
    """A ``when`` that evaluates to a non-bool does not pause; the breakpoint says why."""
    async with session() as (_engine, debug):
        bp = debug.set_breakpoint("b", when="inputs.x")
        result = await debug.execute(chain())
    assert (True, "'inputs.x' gave 1, not a bool") == (result.succeeded, bp.last_error)


async def test_a_condition_giving_a_secret_keeps_it_redacted_and_cut_in_the_error() -> None:
    """A ``when`` giving a value known as a secret: the breakpoint's error shows neither the
    secret nor more of the value than a refusal quotes."""
    secret = "s3cr3t-" + "q" * 60
    remember_secrets({"token": secret})
    async with session(handlers={"a": lambda ctx: {"x": [secret, "w" * 100]}}) as (_, debug):
        bp = debug.set_breakpoint("b", when="inputs.x")
        result = await debug.execute(chain())
    expected = f"'inputs.x' gave ['[REDACTED]', '{'w' * 23}…, not a bool"
    assert (True, expected) == (result.succeeded, bp.last_error)


async def test_a_condition_that_fails_to_evaluate_is_false_and_kept_as_the_error() -> None:
    """A ``when`` whose evaluation raises does not pause; the breakpoint keeps the error's
    words (``info breakpoints`` shows them)."""
    async with session() as (_engine, debug):
        bp = debug.set_breakpoint("b", when="inputs.missing == 1")
        result = await debug.execute(chain())
    expected = "'inputs.missing == 1': no such key 'missing' (inputs has: 'x')"
    assert (True, expected) == (result.succeeded, bp.last_error)


async def test_each_pause_counts_as_a_hit_of_its_breakpoint() -> None:
    """A breakpoint hit by two runs has ``hits`` 2; one that never held has 0."""
    async with session() as (_engine, debug):
        bp = debug.set_breakpoint("b")
        never = debug.set_breakpoint("c", when="inputs.x == 2")
        for _ in range(2):
            paused = await paused_at(debug, chain())
            debug.continue_()
            await _engine.get_run(paused.run_id).wait()
    assert (2, 0) == (bp.hits, never.hits)


async def test_a_failure_while_the_run_stops_does_not_pause() -> None:
    """An attempt that fails because its run is being cancelled is not held at a failure
    breakpoint: the run ends."""
    started = asyncio.Event()

    async def stubborn(ctx: StageContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("refused to stop") from None

    recorder = Recorder()
    async with session(recorder, {"a": stubborn}) as (_engine, debug):
        debug.set_breakpoint(None, on="failure")
        handle = await debug.start(pipeline(stage("a")))
        await started.wait()
        handle.cancel()
        result = await handle.wait()
    assert (RunStatus.CANCELLED, []) == (result.status, recorder.of(BreakpointHit))


async def test_a_failed_attempt_ends_when_it_failed_not_when_its_pause_ended() -> None:
    """The end time of an attempt held at a failure breakpoint is the time it failed."""
    now = [1000.0]
    async with Engine(resolver=Resolver({"a": fail}), clock=lambda: now[0]) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("a", on="failure")
        paused = await paused_at(debug, pipeline(stage("a")))
        now[0] += 100.0
        debug.continue_()
        result = await engine.get_run(paused.run_id).wait()
    assert 1000.0 == result.executions["a"][0].times.ended


async def test_a_failure_breakpoint_condition_reads_the_request_stages_inputs_and_event() -> None:
    """A failure breakpoint's ``when`` sees the request, the stages, the inputs the attempt ran
    with (b's ``x``) and no event (b is no event stage)."""
    when = "request.n == 1 && stages.a.status == 'success' && inputs == {'x': 1} && event == null"
    async with session(handlers={"b": fail}) as (_engine, debug):
        debug.set_breakpoint("b", when=when, on="failure")
        paused = await paused_at(debug, chain(), request={"n": 1})
        debug.continue_()
    assert ("b", "failure") == (paused.stage, paused.kind)


async def test_a_run_id_that_prefixes_another_names_its_own_run() -> None:
    """An exact run id names its run even when it is also a prefix of another run's id."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        await paused_at(debug, chain(), run_id="r1")
        await paused_at(debug, chain(), run_id="r12")
        state = debug.state("r1")
        debug.continue_()
    assert "r1" == state["run_id"]


async def test_an_empty_run_id_names_no_run() -> None:
    """The empty prefix names no run, even when the engine has only one."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b")
        await paused_at(debug, chain())
        with pytest.raises(PipelineError) as refused:
            debug.state("")
        debug.continue_()
    assert "no run '' in this engine" == str(refused.value)


async def test_a_failure_without_a_breakpoint_is_not_retried() -> None:
    """In debug mode with no breakpoint a failed attempt goes to its error strategy at once:
    one attempt, the run fails."""
    async with session(handlers={"a": fail}) as (_engine, debug):
        result = await debug.execute(pipeline(stage("a")))
    assert (RunStatus.FAILURE, 1) == (result.status, len(result.executions["a"]))


async def test_a_failure_breakpoint_of_another_pipeline_does_not_pause() -> None:
    """A failure breakpoint set for pipeline ``other`` leaves a failure in ``p`` alone."""
    async with session(handlers={"a": fail}) as (_engine, debug):
        debug.set_breakpoint("a", on="failure", pipeline="other")
        result = await debug.execute(pipeline(stage("a")))
        paused = debug.paused()
    assert (RunStatus.FAILURE, []) == (result.status, paused)


async def test_a_failure_breakpoint_of_the_runs_pipeline_pauses() -> None:
    """A failure breakpoint set for the run's pipeline by name pauses its failure."""
    async with session(handlers={"a": fail}) as (_engine, debug):
        debug.set_breakpoint("a", on="failure", pipeline="p")
        paused = await paused_at(debug, pipeline(stage("a")))
        debug.continue_()
    assert ("a", "failure") == (paused.stage, paused.kind)


async def test_a_start_breakpoint_condition_reads_the_stages_and_no_error() -> None:
    """A start breakpoint's ``when`` sees the stages and an empty error."""
    async with session() as (_engine, debug):
        debug.set_breakpoint("b", when="stages.a.status == 'success' && error == ''")
        paused = await paused_at(debug, chain())
        debug.continue_()
    assert "b" == paused.stage


async def test_a_failure_breakpoint_reads_the_inputs_the_attempt_ran_with() -> None:
    """At a failure, the breakpoint's ``when`` sees the failed attempt's resolved inputs, and
    so does ``inspect`` (the debugger's ``inputs STAGE``), as they do before a start. Both
    saw none: a condition over ``inputs`` never held, and ``inputs b`` printed ``{}``."""
    async with session(handlers={"b": fail}) as (engine, debug):
        debug.set_breakpoint("b", when="inputs.x == 1", on="failure")
        paused = await paused_at(debug, chain())
        seen = debug.inspect(paused.run_id, "b")["inputs"]
        debug.continue_()
        await engine.get_run(paused.run_id).wait()
    assert ("b", "b broke", {"x": 1}) == (paused.stage, paused.error, seen)
