"""What a run records as its triggers fire: ``StageWaiting``, event verdicts as
``TriggerEvaluated``, ``EventPublished``, the upstream executions that fired a stage, the
reasons a stage can no longer fire, and events published while the run stops."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from pipeline_engine_support import Recorder, Resolver, after, fail, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.events import (
    EventPublished,
    StageQueued,
    StageSkipped,
    StageStarted,
    StageWaiting,
    TaskRunRef,
    TriggerEvaluated,
)
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import ErrorStrategy, OnCondition, OnEvent, TriggerMode
from taskdaemon.pipeline.state import RunStatus, StageStatus

pytestmark = pytest.mark.timeout(10)

NOW = 5.0


def clock() -> float:
    """The engine's clock in these tests: always ``NOW``."""
    return NOW


async def emit_two(ctx: StageContext) -> None:
    """Publish ``go`` twice, with ``n`` 1 then 2."""
    ctx.publish("go", {"n": 1})
    ctx.publish("go", {"n": 2})


async def run_recorded(p: Any, handlers: dict[str, Any] | None = None) -> tuple[Recorder, str]:
    """Run ``p`` to its end under a recorder and the fixed clock; the recorder and run id."""
    recorder = Recorder()
    async with Engine(resolver=Resolver(handlers), observers=[recorder], clock=clock) as engine:
        result = await engine.run(p)
    return recorder, result.run_id


async def test_a_stage_that_becomes_considerable_records_stage_waiting() -> None:
    """``StageWaiting`` names the run, pipeline and stage, when it began to wait and when it
    could first be considered."""
    recorder, run_id = await run_recorded(pipeline(stage("a"), stage("b", *after("a"))))
    waiting = [e for e in recorder.of(StageWaiting) if e.stage == "b"]
    expected = [(run_id, "p", "b", NOW, NOW)]
    assert expected == [(e.run_id, e.pipeline, e.stage, e.at, e.considered_at) for e in waiting]


async def test_a_published_event_is_recorded_with_its_sequence_and_source() -> None:
    """``EventPublished`` names the run, pipeline, type, payload, the run's event number from
    1, the time and the execution that published it."""
    p = pipeline(stage("a", emits=("go",)), stage("b", OnEvent("go"), parallel_instances=2))
    recorder, run_id = await run_recorded(p, {"a": emit_two})
    expected = [
        (run_id, "p", "go", {"n": 1}, 1, NOW, TaskRunRef("a", 0, 1)),
        (run_id, "p", "go", {"n": 2}, 2, NOW, TaskRunRef("a", 0, 1)),
    ]
    actual = [
        (e.run_id, e.pipeline, e.event_type, dict(e.payload), e.event_id, e.at, e.source)
        for e in recorder.of(EventPublished)
    ]
    assert expected == actual


async def test_an_events_verdict_without_a_filter_is_recorded_satisfied() -> None:
    """Each event a listener without a filter takes is a satisfied ``TriggerEvaluated`` of its
    trigger, numbered by the event, with no values read."""
    p = pipeline(stage("a", emits=("go",)), stage("b", OnEvent("go"), parallel_instances=2))
    recorder, run_id = await run_recorded(p, {"a": emit_two})
    expected = [
        (run_id, "p", "b", 0, "on_event", "on event go", True, True, NOW, f"event {n}: no filter")
        for n in (1, 2)
    ]
    verdicts = [e for e in recorder.of(TriggerEvaluated) if e.stage == "b"]
    actual = [
        (
            e.run_id,
            e.pipeline,
            e.stage,
            e.trigger_index,
            e.trigger_type,
            e.description,
            e.satisfied,
            e.stage_ready,
            e.at,
            e.detail,
        )
        for e in verdicts
    ]
    assert (expected, [None, None]) == (actual, [e.values for e in verdicts])


async def test_an_event_a_filter_refuses_is_recorded_unsatisfied_with_what_it_read() -> None:
    """A filter's verdict records the event it read; a refused event is not satisfied and
    does not make the stage ready."""
    p = pipeline(
        stage("a", emits=("go",)),
        stage("b", OnEvent("go", filter="event.n == 2"), parallel_instances=2),
    )
    recorder, _run_id = await run_recorded(p, {"a": emit_two})
    verdicts = [e for e in recorder.of(TriggerEvaluated) if e.stage == "b"]
    expected = [
        (False, False, {"event": {"n": 1}}),
        (True, True, {"event": {"n": 2}}),
    ]
    actual = [(e.satisfied, e.stage_ready, dict(e.values or {})) for e in verdicts]
    assert expected == actual


async def test_an_event_that_starts_a_pending_listener_records_it_waiting_first() -> None:
    """An external event for a listener not yet considered makes it wait (``StageWaiting``)
    before its verdict."""
    gate = asyncio.Event()

    async def hold(ctx: StageContext) -> None:
        await gate.wait()

    p = pipeline(stage("hold"), stage("react", OnEvent("ping")), external_events=("ping",))
    recorder = Recorder()
    async with Engine(
        resolver=Resolver({"hold": hold}), observers=[recorder], clock=clock
    ) as engine:
        handle = await engine.start_run(p)
        handle.publish("ping", {"k": 1})
        gate.set()
        await handle.wait()
    names = [
        type(e).__name__
        for e in recorder.events
        if getattr(e, "stage", None) == "react" and type(e) in (StageWaiting, TriggerEvaluated)
    ]
    assert ["StageWaiting", "TriggerEvaluated"] == names


async def test_a_published_event_evaluates_the_waiting_conditions_again() -> None:
    """A stage waiting on a condition gets a new ``TriggerEvaluated`` for each event published
    into the run."""
    gate = asyncio.Event()

    async def hold(ctx: StageContext) -> None:
        await gate.wait()

    p = pipeline(
        stage("hold"),
        stage("react", OnEvent("ping")),
        stage("watch", OnCondition("stages.hold.status == 'success'")),
        external_events=("ping",),
    )
    recorder = Recorder()
    async with Engine(
        resolver=Resolver({"hold": hold}), observers=[recorder], clock=clock
    ) as engine:
        handle = await engine.start_run(p)
        before = [e.satisfied for e in recorder.of(TriggerEvaluated) if e.stage == "watch"]
        handle.publish("ping", {"k": 1})
        handle.publish("ping", {"k": 2})
        after_them = [e.satisfied for e in recorder.of(TriggerEvaluated) if e.stage == "watch"]
        gate.set()
        await handle.wait()
    assert ([False], [False, False, False]) == (before, after_them)


async def test_a_stage_whose_every_trigger_became_impossible_names_them_all() -> None:
    """The skip record lists each trigger that can no longer fire, comma-separated, at the
    time it became so."""
    p = pipeline(
        stage("a"),
        stage("b"),
        stage("c", *after("a", "b")),
        error_strategy=ErrorStrategy.CONTINUE,
    )
    recorder, _run_id = await run_recorded(p, {"a": fail, "b": fail})
    skipped = [(e.reason, e.at) for e in recorder.of(StageSkipped) if e.stage == "c"]
    expected = "triggers can no longer fire: on completion of a, on completion of b"
    assert [(expected, NOW)] == skipped


async def test_a_stage_fired_by_two_completions_names_both_executions() -> None:
    """A stage of two triggers (mode all) is started with both upstream executions as
    ``fired_by``, in trigger order."""
    p = pipeline(stage("a"), stage("b"), stage("c", *after("b", "a"), trigger_mode=TriggerMode.ALL))
    recorder, _run_id = await run_recorded(p)
    (started,) = [e for e in recorder.of(StageStarted) if e.stage == "c"]
    assert (TaskRunRef("b", 0, 1), TaskRunRef("a", 0, 1)) == started.fired_by


async def test_an_event_stage_with_a_completion_trigger_names_the_upstream_execution() -> None:
    """A stage of an event and a completion trigger (mode any) fired by the completion names
    that upstream execution as ``fired_by``."""
    p = pipeline(stage("a"), stage("b", OnEvent("never"), *after("a")), external_events=("never",))
    recorder, _run_id = await run_recorded(p)
    (started,) = [e for e in recorder.of(StageStarted) if e.stage == "b"]
    assert (TaskRunRef("a", 0, 1),) == started.fired_by


async def test_an_event_published_while_the_run_stops_is_refused() -> None:
    """A stage that publishes after its run was cancelled gets a PipelineError."""
    refused: list[str] = []
    started = asyncio.Event()

    async def publish_late(ctx: StageContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            try:
                ctx.publish("go", {})
            except PipelineError as exc:
                refused.append(str(exc))
            raise

    p = pipeline(stage("a", emits=("go",)), stage("b", OnEvent("go")))
    async with Engine(resolver=Resolver({"a": publish_late})) as engine:
        handle = await engine.start_run(p)
        await started.wait()
        handle.cancel()
        await handle.wait()
    assert [f"run {handle.run_id} has finished; cannot publish 'go'"] == refused


async def test_a_conditions_verdict_is_recorded_with_what_it_read() -> None:
    """A condition's ``TriggerEvaluated`` names the run, pipeline, stage, trigger, its verdict,
    the stage's readiness, the time, the value and the context it read."""
    p = pipeline(stage("c", OnCondition("request.n > 1")))
    recorder = Recorder()
    async with Engine(resolver=Resolver(), observers=[recorder], clock=clock) as engine:
        result = await engine.run(p, {"n": 2})
    (verdict,) = recorder.of(TriggerEvaluated)
    expected = (
        result.run_id,
        "p",
        "c",
        0,
        "on_condition",
        "on condition request.n > 1",
        True,
        True,
        NOW,
        "value: True",
        {"request": {"n": 2}},
    )
    actual = (
        verdict.run_id,
        verdict.pipeline,
        verdict.stage,
        verdict.trigger_index,
        verdict.trigger_type,
        verdict.description,
        verdict.satisfied,
        verdict.stage_ready,
        verdict.at,
        verdict.detail,
        verdict.values,
    )
    assert expected == actual


async def test_a_completions_verdict_records_no_values() -> None:
    """An ``on_completion`` verdict reads no CEL context: its ``values`` are None."""
    recorder, _run_id = await run_recorded(pipeline(stage("a"), stage("b", *after("a"))))
    verdicts = [(e.detail, e.values) for e in recorder.of(TriggerEvaluated) if e.stage == "b"]
    assert [("a not finished", None), ("a succeeded", None)] == verdicts


async def test_an_event_stage_of_mode_all_whose_completion_failed_is_skipped() -> None:
    """A stage waiting for an event and (mode all) an upstream that failed is skipped with
    the trigger that can no longer fire, though its event may still come."""
    p = pipeline(
        stage("a"),
        stage("b", OnEvent("go"), *after("a"), trigger_mode=TriggerMode.ALL),
        stage("e", emits=("go",)),
        error_strategy=ErrorStrategy.CONTINUE,
    )
    recorder, _run_id = await run_recorded(p, {"a": fail})
    skipped = [(e.reason, e.at) for e in recorder.of(StageSkipped) if e.stage == "b"]
    assert [("triggers can no longer fire: on completion of a", NOW)] == skipped


async def test_an_execution_says_when_its_stage_began_to_wait() -> None:
    """The result's times of an execution hold when its stage began to wait for its
    triggers."""
    p = pipeline(stage("a"), stage("b", *after("a")))
    async with Engine(resolver=Resolver(), clock=clock) as engine:
        result = await engine.run(p)
    assert NOW == result.executions["b"][0].times.waiting


async def test_a_stage_waiting_for_its_upstream_is_waiting() -> None:
    """While its upstream runs, a stage whose trigger does not hold yet is ``waiting``."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def hold(ctx: StageContext) -> None:
        started.set()
        await release.wait()

    p = pipeline(stage("a"), stage("b", *after("a")))
    async with Engine(resolver=Resolver({"a": hold})) as engine:
        handle = await engine.start_run(p)
        await started.wait()
        status = handle.snapshot().stage_status["b"]
        release.set()
        await handle.wait()
    assert StageStatus.WAITING == status


async def test_an_event_stage_fired_by_one_completion_is_not_fired_by_the_next() -> None:
    """A stage of an event and two completion triggers (mode any) starts once, on the first
    completion, not again on the second."""
    gate = asyncio.Event()

    async def slow(ctx: StageContext) -> None:
        await gate.wait()

    async def release(ctx: StageContext) -> None:
        gate.set()

    p = pipeline(
        stage("a"),
        stage("b", *after("a")),
        stage("slow"),
        stage("c", OnEvent("never"), *after("b", "slow")),
        external_events=("never",),
        concurrency=3,
    )
    recorder, _run_id = await run_recorded(p, {"slow": slow, "b": release})
    assert ["c"] == [e.stage for e in recorder.of(StageStarted) if e.stage == "c"]


async def test_a_condition_that_holds_again_counts_once_toward_mode_all() -> None:
    """A stage of mode all whose condition holds is not started by that condition holding
    again (each published event evaluates it again) while its other trigger waits."""
    gate = asyncio.Event()
    slow_started = asyncio.Event()

    async def slow(ctx: StageContext) -> None:
        slow_started.set()
        await gate.wait()

    p = pipeline(
        stage("slow"),
        stage("react", OnEvent("ping")),
        stage(
            "c",
            OnCondition("request.go == true"),
            *after("slow"),
            trigger_mode=TriggerMode.ALL,
        ),
        external_events=("ping",),
        concurrency=3,
    )
    recorder = Recorder()
    async with Engine(resolver=Resolver({"slow": slow}), observers=[recorder]) as engine:
        handle = await engine.start_run(p, {"go": True})
        await slow_started.wait()
        handle.publish("ping", {})
        handle.publish("ping", {})
        queued_early = [e.stage for e in recorder.of(StageQueued)]
        gate.set()
        await handle.wait()
    assert ["slow", "react"] == queued_early


async def test_an_event_starts_a_stage_of_mode_any_whose_other_trigger_waits() -> None:
    """In mode any an accepted event starts an instance while the stage's completion trigger
    still waits."""
    gate = asyncio.Event()
    reacted = asyncio.Event()

    async def slow(ctx: StageContext) -> None:
        await gate.wait()

    async def react(ctx: StageContext) -> None:
        reacted.set()

    p = pipeline(
        stage("slow"),
        stage("b", OnEvent("ping"), *after("slow")),
        external_events=("ping",),
        concurrency=2,
    )
    async with Engine(resolver=Resolver({"slow": slow, "b": react})) as engine:
        handle = await engine.start_run(p)
        handle.publish("ping", {})
        await reacted.wait()
        gate.set()
        result = await handle.wait()
    assert RunStatus.SUCCESS == result.status


async def test_an_event_reaches_the_listeners_after_one_that_is_final() -> None:
    """A listener already final (skipped) does not keep the event from the listeners after it
    in the plan."""

    async def emit_one(ctx: StageContext) -> None:
        ctx.publish("go", {"n": 1})

    p = pipeline(
        stage("a"),
        stage("b", OnEvent("go"), *after("a"), trigger_mode=TriggerMode.ALL),
        stage("c", OnEvent("go")),
        stage("e", *after("a", success_only=False), emits=("go",)),
        error_strategy=ErrorStrategy.CONTINUE,
    )
    recorder, _run_id = await run_recorded(p, {"a": fail, "e": emit_one})
    started = sorted(e.stage for e in recorder.of(StageStarted))
    skipped = [e.stage for e in recorder.of(StageSkipped)]
    assert (["a", "c", "e"], ["b"]) == (started, skipped)


class ValuesAtEvaluation:
    """An observer that copies each verdict's values when it is given (they are live data)."""

    def __init__(self) -> None:
        self.verdicts: list[tuple[str, bool, Any]] = []

    def on_event(self, event: Any) -> None:
        if isinstance(event, TriggerEvaluated) and event.values is not None:
            self.verdicts.append((event.stage, event.satisfied, copy.deepcopy(event.values)))


async def test_an_event_filter_reads_the_request_and_the_stages_as_they_are() -> None:
    """A filter over ``request`` and ``stages`` reads the run's request and the stages'
    states when the event is published."""
    p = pipeline(
        stage("a", emits=("go",)),
        stage(
            "b",
            OnEvent("go", filter="event.n == request.want && stages.a.status == 'running'"),
            parallel_instances=2,
        ),
    )
    observer = ValuesAtEvaluation()
    async with Engine(resolver=Resolver({"a": emit_two}), observers=[observer]) as engine:
        await engine.run(p, {"want": 2})
    read = {"request": {"want": 2}, "stages": {"a": {"status": "running", "outputs": {}}}}
    expected = [("b", False, {**read, "event": {"n": 1}}), ("b", True, {**read, "event": {"n": 2}})]
    assert expected == observer.verdicts


async def test_a_condition_that_cannot_evaluate_says_why_its_stage_was_skipped() -> None:
    """A stage whose condition failed to evaluate until the run ended (a string compared with
    a number) is skipped naming the condition and its last error; it said only that its
    triggers could no longer fire, the error in debug records alone. One that failed before
    ``a`` ended (no key ``n`` yet) and evaluated since without an error (false) names none."""

    async def gives_text(ctx: StageContext) -> dict[str, Any]:
        return {"n": "5"}

    p = pipeline(
        stage("a"),
        stage("typed", OnCondition("stages.a.outputs.n > 3")),
        stage("plain", OnCondition("stages.a.outputs.n == 'six'")),
    )
    async with Engine(resolver=Resolver({"a": gives_text}), clock=clock) as engine:
        result = await engine.run(p)
    typed = result.skip_reasons["typed"]
    head = (
        "triggers can no longer fire: on condition stages.a.outputs.n > 3 "
        "(its last evaluation failed: No such overload"
    )
    expected = (
        True,
        True,
        "triggers can no longer fire: " + p.stage_map["plain"].triggers[0].describe(),
    )
    actual = (typed.startswith(head), typed.endswith(")"), result.skip_reasons["plain"])
    assert expected == actual, typed
