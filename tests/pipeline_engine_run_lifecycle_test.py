"""One run's lifecycle (``engine/_run.py``) as its records and result show it: the run's start
and end records field by field, a live snapshot, the stage status conditions read, the skip
and cancel reasons in words, conditions re-evaluated when a stage they read ends, and event
stages fed by other stages closing as soon as nothing can feed them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from pipeline_engine_support import (
    Clock,
    Recorder,
    Resolver,
    after,
    entry,
    fail,
    pipeline,
    stage,
)
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import (
    ApprovalResolved,
    RunFinished,
    RunStarted,
    StageFinished,
    StageSkipped,
    StageStarted,
    StageWaiting,
    TaskRunRef,
)
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    ErrorStrategy,
    InputMapping,
    Manual,
    OnCondition,
    OnEvent,
    TriggerMode,
)
from taskdaemon.pipeline.state import RunStatus, StageStatus

pytestmark = pytest.mark.timeout(10)

TRACEPARENT = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


async def returns_v(ctx: StageContext) -> Mapping[str, Any]:
    """A handler whose outputs name its stage."""
    return {"v": ctx.stage}


class Gate:
    """A handler that waits until ``open()`` is called (or the test's own timeout)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.entered = asyncio.Event()

    def open(self) -> None:
        self.event.set()

    async def __call__(self, ctx: StageContext) -> Mapping[str, Any]:
        self.entered.set()
        await self.event.wait()
        return {"gated": ctx.stage}


async def test_the_start_and_end_records_carry_every_field_of_the_run() -> None:
    """``RunStarted`` holds the pipeline, the request, the start time, who started the run,
    its parent trace and the run it replays; ``RunFinished`` the pipeline's name, the status,
    the end time and the outputs, with no error. The result's times are the records'."""
    recorder = Recorder()
    p = pipeline(stage("a"), stage("b", *after("a")), name="pipe")
    engine = Engine(resolver=Resolver({"a": returns_v}), observers=[recorder], clock=Clock())
    async with engine:
        result = await engine.run(
            p,
            {"x": 1},
            started_by="cli",
            parent_traceparent=TRACEPARENT,
            replay_of="f" * 32,
        )
    assert result.finished_at is not None
    expected_start = RunStarted(
        run_id=result.run_id,
        pipeline=p,
        request={"x": 1},
        at=result.started_at,
        started_by="cli",
        parent_traceparent=TRACEPARENT,
        replay_of="f" * 32,
    )
    expected_end = RunFinished(
        run_id=result.run_id,
        pipeline="pipe",
        status=RunStatus.SUCCESS,
        at=result.finished_at,
        error=None,
        error_type=None,
        outputs={"a": {"v": "a"}, "b": {}},
    )
    assert [expected_start] == recorder.of(RunStarted)
    assert [expected_end] == recorder.of(RunFinished)
    assert result.started_at < result.finished_at
    assert ("pipe", None) == (result.pipeline, result.error)
    assert {"a": {"v": "a"}, "b": {}} == dict(result.outputs)


async def test_a_failed_run_says_which_stage_failed_and_what_it_skipped() -> None:
    """A stage failing under ``error_strategy: fail`` stops the run: the run's error and error
    type are the stage's, and the stage after it is skipped because the run failed, with the
    cancel reason and cause on its record."""
    recorder = Recorder()
    p = pipeline(stage("a"), stage("b", *after("a")))
    engine = Engine(resolver=Resolver({"a": fail}), observers=[recorder], clock=Clock())
    async with engine:
        result = await engine.run(p)
    error = "stage 'a' failure: a broke"
    [finished] = recorder.of(RunFinished)
    [skipped] = recorder.of(StageSkipped)
    assert (RunStatus.FAILURE, error, "RuntimeError") == (
        finished.status,
        finished.error,
        finished.error_type,
    )
    assert (RunStatus.FAILURE, error) == (result.status, result.error)
    assert {"b": f"run failed: {error}"} == dict(result.skip_reasons)
    assert (
        StageSkipped(
            run_id=result.run_id,
            pipeline="p",
            stage="b",
            reason=f"run failed: {error}",
            at=skipped.at,
            cancel_reason="stage 'a' failed (error_strategy: fail)",
            cancel_cause="a",
        )
        == skipped
    )
    assert skipped.at <= finished.at
    assert {"a": StageStatus.FAILURE, "b": StageStatus.SKIPPED} == dict(result.stage_status)


async def test_a_stage_that_times_out_is_named_as_timed_out_in_the_cancel_reason() -> None:
    """The cancel reason says ``timed out`` when the stopping stage timed out, not
    ``failed``."""
    recorder = Recorder()
    never = Gate()
    p = pipeline(stage("a", timeout=0.05), stage("b", *after("a")))
    engine = Engine(resolver=Resolver({"a": never}), observers=[recorder])
    async with engine:
        result = await engine.run(p)
    [skipped] = recorder.of(StageSkipped)
    assert (StageStatus.TIMEOUT, RunStatus.FAILURE) == (result.stage_status["a"], result.status)
    assert ("stage 'a' timed out (error_strategy: fail)", "a") == (
        skipped.cancel_reason,
        skipped.cancel_cause,
    )


async def test_a_cancelled_run_ends_what_runs_and_what_waits_for_a_slot() -> None:
    """Cancelling a run with one worker slot: the running stage ends cancelled, the stage
    queued for the slot is not reached (its one execution cancelled while queued, its record
    saying so), the stage after them is skipped because the run was cancelled, and the run's
    error says it was cancelled."""
    recorder = Recorder()
    gate = Gate()
    p = pipeline(stage("a"), stage("q"), stage("c", *after("a")), concurrency=1)
    engine = Engine(resolver=Resolver({"a": gate}), observers=[recorder], clock=Clock())
    async with engine:
        handle = await engine.start_run(p)
        await gate.entered.wait()
        handle.cancel()
        result = await handle.wait()
    assert (RunStatus.CANCELLED, "run cancelled") == (result.status, result.error)
    assert {
        "a": StageStatus.CANCELLED,
        "q": StageStatus.SKIPPED,
        "c": StageStatus.SKIPPED,
    } == dict(result.stage_status)
    assert {"q": "not reached: the run ended (cancelled)", "c": "run cancelled"} == dict(
        result.skip_reasons
    )
    [queued] = result.executions["q"]
    assert (StageStatus.CANCELLED, "cancelled: run cancelled") == (queued.status, queued.error)
    q_end = [e for e in recorder.of(StageFinished) if e.stage == "q"]
    assert [(StageStatus.CANCELLED, False, "cancelled: run cancelled")] == [
        (e.status, e.will_retry, e.error) for e in q_end
    ]
    # The stage never reached has no StageSkipped; the one after the cancelled stage has.
    assert [("c", "run cancelled", "run cancelled", None)] == [
        (e.stage, e.reason, e.cancel_reason, e.cancel_cause) for e in recorder.of(StageSkipped)
    ]
    [finished] = recorder.of(RunFinished)
    assert (RunStatus.CANCELLED, "run cancelled", None) == (
        finished.status,
        finished.error,
        finished.error_type,
    )


async def test_a_live_snapshot_is_the_run_as_it_was() -> None:
    """A snapshot taken while a stage runs names the pipeline, holds the run's start time and
    no end, and keeps its executions as they were when it was taken."""
    gate = Gate()
    p = pipeline(stage("a"), stage("b", *after("a")), name="pipe")
    async with Engine(resolver=Resolver({"a": gate}), clock=Clock()) as engine:
        handle = await engine.start_run(p)
        await gate.entered.wait()
        live = handle.snapshot()
        gate.open()
        result = await handle.wait()
    assert ("pipe", RunStatus.RUNNING, result.started_at, None, None) == (
        live.pipeline,
        live.status,
        live.started_at,
        live.finished_at,
        live.error,
    )
    assert {"a": StageStatus.RUNNING, "b": StageStatus.WAITING} == dict(live.stage_status)
    [running] = live.executions["a"]
    [ended] = result.executions["a"]
    assert (StageStatus.RUNNING, result.started_at, None) == (
        running.status,
        running.times.pending,
        running.times.ended,
    )
    assert StageStatus.SUCCESS == ended.status
    assert () == tuple(live.executions["b"])
    assert handle.snapshot() == result


async def test_the_engine_forgets_the_oldest_finished_run_beyond_what_it_keeps() -> None:
    """Each run tells its engine it finished: with ``keep_finished=1`` only the last one is
    kept."""
    p = pipeline(stage("a"))
    async with Engine(resolver=Resolver(), keep_finished=1) as engine:
        first = await engine.run(p)
        second = await engine.run(p)
        kept = [h.run_id for h in engine.runs]
    assert first.run_id != second.run_id
    assert [second.run_id] == kept


async def test_conditions_read_the_statuses_stages_end_with() -> None:
    """Under ``error_strategy: continue``, conditions see ``stages.X.status`` as ``running``
    while X runs (read by a condition the plan cannot see into, evaluated again when another
    stage ends), then ``failure``, ``success`` and ``skipped``; a stage whose triggers can no
    longer fire is skipped naming the ones that still wait."""
    gate = Gate()

    async def quick(ctx: StageContext) -> Mapping[str, Any]:
        await gate.entered.wait()
        return {}

    async def opener(ctx: StageContext) -> Mapping[str, Any]:
        gate.open()
        return {}

    p = pipeline(
        stage("slow"),
        stage("bad"),
        stage("after_bad", *after("bad")),
        stage("quick"),
        stage("sees_running", OnCondition('"slow" in stages && stages.slow.status == "running"')),
        stage("sees_failure", OnCondition('stages.bad.status == "failure"')),
        stage("sees_skipped", OnCondition('stages.after_bad.status == "skipped"')),
        stage("sees_success", OnCondition('stages.slow.status == "success"')),
        stage(
            "stuck",
            OnCondition("request.go == true"),
            *after("bad"),
            OnCondition("request.other == true"),
            trigger_mode=TriggerMode.ANY,
        ),
        error_strategy=ErrorStrategy.CONTINUE,
    )
    resolver = Resolver({"slow": gate, "quick": quick, "bad": fail, "sees_running": opener})
    async with Engine(resolver=resolver) as engine:
        result = await engine.run(p, {"go": False, "other": False})
    assert {
        "slow": StageStatus.SUCCESS,
        "quick": StageStatus.SUCCESS,
        "bad": StageStatus.FAILURE,
        "after_bad": StageStatus.SKIPPED,
        "sees_running": StageStatus.SUCCESS,
        "sees_failure": StageStatus.SUCCESS,
        "sees_skipped": StageStatus.SUCCESS,
        "sees_success": StageStatus.SUCCESS,
        "stuck": StageStatus.SKIPPED,
    } == dict(result.stage_status)
    assert (
        "triggers can no longer fire: on condition request.go == true, "
        "on condition request.other == true"
    ) == result.skip_reasons["stuck"]
    assert RunStatus.FAILURE == result.status
    assert "stage 'bad' failure: bad broke" == result.error


async def test_every_reader_of_an_ending_stage_is_evaluated_again() -> None:
    """When a stage ends, each stage reading it is evaluated again, also those after one that
    has already fired: on completion, by a condition naming it, and by a condition the plan
    cannot see into (re-evaluated on every change)."""
    p = pipeline(
        stage("a"),
        stage("done_first", OnCondition("request.go"), *after("a")),
        stage("done_second", *after("a")),
        stage("named_first", OnCondition('request.go || stages.a.status == "success"')),
        stage("named_second", OnCondition('stages.a.status == "success"')),
        stage(
            "opaque_first",
            OnCondition('"a" in stages && (request.go || stages.a.status == "success")'),
        ),
        stage("opaque_second", OnCondition('"a" in stages && stages.a.status == "success"')),
        stage("waits", *after("a", "opaque_second"), trigger_mode=TriggerMode.ALL),
    )
    async with Engine(resolver=Resolver()) as engine:
        result = await engine.run(p, {"go": True})
    assert dict.fromkeys([s.name for s in p.stages], StageStatus.SUCCESS) == dict(
        result.stage_status
    )
    assert {} == dict(result.skip_reasons)


async def test_closing_the_engine_cancels_an_open_run_for_the_shutdown() -> None:
    """An engine closed while a run holds in ``a`` cancels the run for its shutdown: the run,
    ``a`` and ``c`` (skipped behind ``a``) say so, as they say who after any other cancel
    (they read ``run cancelled``, as if nobody had asked)."""
    gate = Gate()
    p = pipeline(stage("a"), stage("c", *after("a")))
    engine = Engine(resolver=Resolver({"a": gate}), clock=Clock())
    async with engine:
        handle = await engine.start_run(p)
        await gate.entered.wait()
    result = await handle.wait()
    why = "run cancelled by engine shutdown"
    [a] = result.executions["a"]
    assert (RunStatus.CANCELLED, why, f"cancelled: {why}", {"c": why}) == (
        result.status,
        result.error,
        a.error,
        dict(result.skip_reasons),
    )


async def test_an_event_stage_fed_by_a_stage_closes_when_its_emitter_ends() -> None:
    """An event stage fed by another stage ends once its emitter has ended and its events are
    handled, so a stage after it starts while the run is still open; each instance names the
    trigger that fired it."""
    recorder = Recorder()
    released = Gate()

    async def emitter(ctx: StageContext) -> None:
        for n in range(3):
            ctx.publish("item", {"n": n})

    async def release(ctx: StageContext) -> Mapping[str, Any]:
        released.open()
        return {}

    p = pipeline(
        stage("src", emits=("item",)),
        stage("each", OnEvent("item"), parallel_instances=2),
        stage("after_each", *after("each")),
        stage("sees_each", OnCondition('stages.each.status == "success"')),
        stage("hold"),
    )
    resolver = Resolver({"src": emitter, "after_each": release, "hold": released})
    engine = Engine(resolver=resolver, observers=[recorder])
    async with engine:
        result = await engine.run(p)
    assert RunStatus.SUCCESS == result.status
    assert 3 == len(result.executions["each"])
    assert dict.fromkeys([s.name for s in p.stages], StageStatus.SUCCESS) == dict(
        result.stage_status
    )
    assert {"hold": "hold"} == {"hold": result.outputs["hold"]["gated"]}
    each = [e for e in recorder.of(StageStarted) if e.stage == "each"]
    assert [("on event item",)] * 3 == [e.triggers for e in each]
    assert [(TaskRunRef("src", 0, 1),)] * 3 == [e.fired_by for e in each]
    assert [0, 1, 2] == sorted(e.instance for e in each)


async def test_an_event_stage_no_event_reached_is_skipped_saying_so() -> None:
    """A stage fed from outside that received no event is skipped when the run is idle, and
    the stage after it names the trigger that can no longer fire."""
    recorder = Recorder()
    p = pipeline(
        stage("a"),
        stage("react", OnEvent("ping")),
        stage("after_react", *after("react")),
        external_events=("ping",),
    )
    async with Engine(resolver=Resolver(), observers=[recorder]) as engine:
        result = await engine.run(p)
    after_reason = "triggers can no longer fire: on completion of react"
    reasons = {"react": "no event arrived", "after_react": after_reason}
    assert (RunStatus.SUCCESS, reasons) == (result.status, dict(result.skip_reasons))
    assert [
        ("react", "no event arrived", None),
        ("after_react", after_reason, None),
    ] == [(e.stage, e.reason, e.cancel_reason) for e in recorder.of(StageSkipped)]


async def test_an_event_stage_fed_from_outside_closes_first_when_the_run_is_idle() -> None:
    """When nothing else runs, a stage fed from outside that handled events ends first, so the
    stage after it still starts before the run ends."""
    hold = Gate()
    handled = asyncio.Event()

    async def react(ctx: StageContext) -> Mapping[str, Any]:
        handled.set()
        return {"n": ctx.inputs["n"]}

    p = pipeline(
        stage("hold"),
        stage("react", OnEvent("ping"), inputs=(InputMapping("n", "event.n"),)),
        stage("after_react", *after("react")),
        external_events=("ping",),
    )
    resolver = Resolver({"hold": hold, "react": react})
    recorder = Recorder()
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        handle = await engine.start_run(p)
        await hold.entered.wait()
        handle.publish("ping", {"n": 7})
        await handled.wait()
        hold.open()
        result = await handle.wait()
    assert dict.fromkeys(("hold", "react", "after_react"), StageStatus.SUCCESS) == dict(
        result.stage_status
    )
    assert ({"n": 7}, RunStatus.SUCCESS) == (result.outputs["react"], result.status)
    # An event from outside was fired by no execution.
    assert [(("on event ping",), ())] == [
        (e.triggers, e.fired_by) for e in recorder.of(StageStarted) if e.stage == "react"
    ]


async def test_a_stop_withdraws_approvals_and_cancels_every_running_instance() -> None:
    """Cancelling a run withdraws the approval a stage waits for (the engine rejects it), and
    cancels each running instance of an event stage, also one after an instance that ended."""
    recorder = Recorder()
    gate = Gate()
    seen: list[int] = []

    async def react(ctx: StageContext) -> Mapping[str, Any]:
        seen.append(ctx.inputs["n"])
        if ctx.inputs["n"] == 2:
            await gate(ctx)
        return {}

    p = pipeline(
        stage("hold"),
        stage("ok", Manual(approval_required=True)),
        stage(
            "react",
            OnEvent("ping"),
            parallel_instances=2,
            inputs=(InputMapping("n", "event.n"),),
        ),
        external_events=("ping",),
    )
    hold = Gate()
    resolver = Resolver({"hold": hold, "react": react})
    async with Engine(resolver=resolver, observers=[recorder], clock=Clock()) as engine:
        handle = await engine.start_run(p)
        await hold.entered.wait()
        handle.publish("ping", {"n": 1})
        handle.publish("ping", {"n": 2})
        await gate.entered.wait()
        handle.cancel()
        result = await handle.wait()
    assert [1, 2] == seen
    assert [StageStatus.SUCCESS, StageStatus.CANCELLED] == [
        ex.status for ex in result.executions["react"]
    ]
    assert [("ok", False, "engine")] == [
        (e.stage, e.approved, e.by) for e in recorder.of(ApprovalResolved)
    ]
    assert {"ok": "run cancelled"} == dict(result.skip_reasons)
    assert (RunStatus.CANCELLED, StageStatus.CANCELLED) == (
        result.status,
        result.stage_status["hold"],
    )


async def test_a_stage_fired_otherwise_withdraws_the_approval_it_asked_for() -> None:
    """A stage that may start on approval or after another stage withdraws its request for
    approval when the other stage fires it."""
    recorder = Recorder()
    p = pipeline(
        stage("a"),
        stage("b", Manual(approval_required=True), *after("a"), trigger_mode=TriggerMode.ANY),
    )
    async with Engine(resolver=Resolver(), observers=[recorder]) as engine:
        result = await engine.run(p)
    assert (RunStatus.SUCCESS, StageStatus.SUCCESS) == (result.status, result.stage_status["b"])
    assert [("b", False, "engine")] == [
        (e.stage, e.approved, e.by) for e in recorder.of(ApprovalResolved)
    ]


async def test_a_stage_with_an_upstream_and_a_run_start_trigger_starts_with_the_run() -> None:
    """A stage that has an upstream stage but also starts on run start is considered with the
    entry stages: it starts while its upstream still runs, considered at the run's start."""
    recorder = Recorder()
    gate = Gate()

    async def first(ctx: StageContext) -> Mapping[str, Any]:
        await gate.entered.wait()
        gate.open()
        return {}

    p = pipeline(stage("a"), stage("b", entry(), *after("a"), trigger_mode=TriggerMode.ANY))
    engine = Engine(resolver=Resolver({"a": first, "b": gate}), observers=[recorder])
    async with engine:
        result = await engine.run(p)
    assert (RunStatus.SUCCESS, StageStatus.SUCCESS) == (result.status, result.stage_status["b"])
    assert [("a", result.started_at), ("b", result.started_at)] == [
        (e.stage, e.considered_at) for e in recorder.of(StageWaiting)
    ]
    assert result.started_at == result.executions["b"][0].times.considered
    assert [("on run start",)] == [e.triggers for e in recorder.of(StageStarted) if e.stage == "b"]


async def test_cancelling_a_run_a_failure_is_already_stopping_changes_nothing() -> None:
    """A run that a failed stage is stopping stays a failed run when it is cancelled while a
    stage still ends its cancelled attempt: the cancel comes second."""
    cancelled = asyncio.Event()
    release = asyncio.Event()

    async def slow(ctx: StageContext) -> Mapping[str, Any]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            await release.wait()
            raise
        return {}

    async def broken(ctx: StageContext) -> Mapping[str, Any]:
        await asyncio.sleep(0)
        raise RuntimeError("broke")

    p = pipeline(stage("slow"), stage("bad"), stage("c", *after("slow")))
    async with Engine(resolver=Resolver({"slow": slow, "bad": broken})) as engine:
        handle = await engine.start_run(p)
        await cancelled.wait()
        handle.cancel()
        release.set()
        result = await handle.wait()
    error = "stage 'bad' failure: broke"
    assert (RunStatus.FAILURE, error) == (result.status, result.error)
    assert {"c": f"run failed: {error}"} == dict(result.skip_reasons)
    assert (StageStatus.CANCELLED, StageStatus.FAILURE) == (
        result.stage_status["slow"],
        result.stage_status["bad"],
    )


async def test_an_event_stage_whose_emitter_published_nothing_is_skipped_when_it_ends() -> None:
    """An event stage fed by a stage that ended without publishing is skipped at once (no
    event arrived), not when the run is idle: a condition reading it fires while another
    stage still holds the run open."""
    recorder = Recorder()
    hold = Gate()

    async def release(ctx: StageContext) -> Mapping[str, Any]:
        hold.open()
        return {}

    p = pipeline(
        stage("src", emits=("item",)),
        stage("each", OnEvent("item")),
        stage("sees_skip", OnCondition('stages.each.status == "skipped"')),
        stage("hold"),
    )
    resolver = Resolver({"sees_skip": release, "hold": hold})
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        result = await engine.run(p)
    assert (RunStatus.SUCCESS, {"each": "no event arrived"}) == (
        result.status,
        dict(result.skip_reasons),
    )
    [skipped] = recorder.of(StageSkipped)
    assert ("each", "no event arrived") == (skipped.stage, skipped.reason)
    assert result.started_at <= skipped.at


async def test_an_event_stage_stays_open_between_events_while_its_emitter_runs() -> None:
    """An event stage whose instance ended while its emitter still runs is not ended: the
    emitter's next event starts another instance."""
    first_done = asyncio.Event()

    async def emitter(ctx: StageContext) -> None:
        ctx.publish("item", {"n": 1})
        await first_done.wait()
        ctx.publish("item", {"n": 2})

    async def each(ctx: StageContext) -> Mapping[str, Any]:
        first_done.set()
        return {"n": ctx.inputs["n"]}

    p = pipeline(
        stage("src", emits=("item",)),
        stage("each", OnEvent("item"), inputs=(InputMapping("n", "event.n"),)),
    )
    async with Engine(resolver=Resolver({"src": emitter, "each": each})) as engine:
        result = await engine.run(p)
    assert [{"n": 1}, {"n": 2}] == [ex.outputs for ex in result.executions["each"]]
    assert (RunStatus.SUCCESS, StageStatus.SUCCESS) == (result.status, result.stage_status["each"])


async def test_a_stopped_event_stage_ends_once_its_last_running_instance_has_ended() -> None:
    """Cancelling a run while two instances of an event stage run: the stage ends cancelled
    once both have ended, not with the status it had when the first of them ended."""
    hold = Gate()
    both = asyncio.Event()
    started: list[int] = []

    async def react(ctx: StageContext) -> Mapping[str, Any]:
        started.append(ctx.instance)
        if len(started) == 2:
            both.set()
        await asyncio.Event().wait()
        return {}

    p = pipeline(
        stage("hold"),
        stage("react", OnEvent("ping"), parallel_instances=2),
        external_events=("ping",),
    )
    async with Engine(resolver=Resolver({"hold": hold, "react": react})) as engine:
        handle = await engine.start_run(p)
        await hold.entered.wait()
        handle.publish("ping", {})
        handle.publish("ping", {})
        await both.wait()
        handle.cancel()
        result = await handle.wait()
    assert [StageStatus.CANCELLED] * 2 == [ex.status for ex in result.executions["react"]]
    assert {"hold": StageStatus.CANCELLED, "react": StageStatus.CANCELLED} == dict(
        result.stage_status
    )
