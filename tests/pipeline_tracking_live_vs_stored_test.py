"""Live vs stored (hypothesis): the record ``run_state`` reduces from a run's engine events equals
the record ``reconstruct_run`` rebuilds from the spans the real monitor wrote for that run, and
each stage's status in both is the one the engine's own result gives (start breakpoints held,
resumed or cancelled among what is generated)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline_engine_support import FakeSleep, retry
from taskdaemon.pipeline.cli.run_summary import summary_error
from taskdaemon.pipeline.engine import DebugSession, Engine, RunResult
from taskdaemon.pipeline.events import ApprovalRequested, EngineEvent
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    ErrorStrategy,
    InputMapping,
    Manual,
    OnCompletion,
    OnEvent,
    Pipeline,
    Stage,
    Trigger,
    TriggerMode,
)
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord, stage_error
from taskdaemon.pipeline.run_state import RunState, apply
from taskdaemon.pipeline.tracking import reconstruct_run, span_record_from_sdk

pytestmark = pytest.mark.timeout(120)

# ok: returns; fail: always raises; flaky: fails its first attempt; timeout: outlives its
# stage timeout; cancel: cancels the run and waits to be cancelled; secret: fails with a
# secret-shaped message (redacted on both sides).
BEHAVIOURS = ("ok", "ok", "ok", "fail", "flaky", "timeout", "cancel", "secret")
APPROVALS = ("none", "grant", "reject", "expire")
# A start breakpoint on a stage, and what the driver does when it pauses there: nothing (held
# until a stop of the run, or the driver's cancel once nothing else can move), continue, skip
# (instance 0's pause; any other instance's is continued, so a fan-out ends partly skipped), or
# cancel the run.
BREAKS = ("none", "none", "none", "hold", "continue", "skip", "cancel")


@dataclass(frozen=True)
class Case:
    pipeline: Pipeline
    behaviour: dict[str, str]
    approval: dict[str, str]  # answer given to each stage that asks for an approval
    events: int  # events the first stage publishes for the fan-out stage (when there is one)
    breaks: dict[str, str] = field(default_factory=dict)  # stage -> what its pause gets


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 5))
    stages: list[Stage] = []
    behaviour: dict[str, str] = {}
    approval: dict[str, str] = {}
    fan_out = draw(st.booleans())
    for i in range(n):
        name = f"s{i}"
        parents = sorted(draw(st.sets(st.integers(0, i - 1), max_size=2))) if i else []
        triggers: tuple[Trigger, ...] = tuple(
            OnCompletion(f"s{p}", success_only=draw(st.booleans())) for p in parents
        )
        if not triggers:
            asks = draw(st.sampled_from(APPROVALS))
            if asks != "none":
                approval[name] = asks
            timeout = 0.05 if asks == "expire" else None
            triggers = (Manual(approval_required=asks != "none", timeout=timeout),)
        behaviour[name] = draw(st.sampled_from(BEHAVIOURS))
        stages.append(
            Stage(
                name,
                "python",
                triggers,
                trigger_mode=draw(st.sampled_from(TriggerMode)),
                retry=retry(2, initial=0.0) if draw(st.booleans()) else None,
                timeout=0.05 if behaviour[name] == "timeout" else None,
                emits=("item",) if fan_out and i == 0 else (),
            )
        )
    if fan_out:
        behaviour["fan"] = draw(st.sampled_from(("ok", "ok", "fail", "flaky")))
        stages.append(
            Stage(
                "fan",
                "python",
                (OnEvent("item"),),
                inputs=(InputMapping("v", "event.v"),),
                parallel_instances=draw(st.integers(1, 3)),
            )
        )
    pipeline = Pipeline(
        "live-vs-stored",
        tuple(stages),
        concurrency=draw(st.integers(1, 3)),
        error_strategy=draw(st.sampled_from(ErrorStrategy)),
    )
    breaks = {name: draw(st.sampled_from(BREAKS)) for name in behaviour}
    breaks = {name: action for name, action in breaks.items() if action != "none"}
    return Case(pipeline, behaviour, approval, draw(st.integers(0, 3)) if fan_out else 0, breaks)


class _Live:
    """An engine observer folding events into a ``RunState`` (what the live watcher does)."""

    def __init__(self, capture: PayloadCapture) -> None:
        self.state: RunState | None = None
        self._capture = capture
        self.asked: list[str] = []

    def payload(self, value: Mapping[str, Any]) -> str:
        return self._capture.capture(value).json

    def on_event(self, event: EngineEvent) -> None:
        self.state = apply(self.state, event, payloads=self.payload)
        if isinstance(event, ApprovalRequested):
            self.asked.append(event.stage)


def _stuck(state: dict[str, Any]) -> bool:
    """Whether nothing in the run can move by itself: no execution runs or awaits a retry, and
    no approval is asked (held pauses then wait for a stop that may never come)."""
    for stage in state["stages"].values():
        if stage["approval"] == "requested":
            return False
        if any(status in ("running", "retrying") for status in stage["instances"]):
            return False
    return True


async def execute(case: Case) -> tuple[RunRecord, RunRecord, RunResult]:
    calls: dict[tuple[str, int], int] = {}
    engine: Engine

    async def handler(ctx: StageContext) -> dict[str, Any]:
        key = (ctx.stage, ctx.instance)
        calls[key] = calls.get(key, 0) + 1
        if ctx.stage == "s0":
            for v in range(case.events):
                ctx.publish("item", {"v": v})
        kind = case.behaviour[ctx.stage]
        if kind == "fail" or (kind == "flaky" and calls[key] == 1):
            raise RuntimeError(f"{ctx.stage} broke")
        if kind == "secret":
            raise ValueError("login failed: password=hunter2hunter2")
        if kind == "timeout":
            await asyncio.Event().wait()  # the stage's timeout ends it
        if kind == "cancel":
            engine.cancel(ctx.run_id)
            await asyncio.Event().wait()  # the stop cancels it
        return {"stage": ctx.stage, "attempt": calls[key], "inputs": dict(ctx.inputs)}

    class Handlers:
        def resolve(self, pipeline: Pipeline, stage: Stage) -> object:
            return handler

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    meters = MeterProvider()
    capture = PayloadCapture()
    monitor = PipelineMonitor(
        tracer_provider=provider, meter_provider=meters, capture=capture, resource_sampling=False
    )
    live = _Live(capture)
    engine = Engine(resolver=Handlers(), observers=[monitor, live], sleep=FakeSleep())  # type: ignore[arg-type]
    debug = engine.with_debug(True) if case.breaks else None
    for stage in case.breaks:
        assert debug is not None
        debug.set_breakpoint(stage)
    try:
        handle = await engine.start_run(case.pipeline)
        answered: set[str] = set()
        while not handle.done:
            if debug is not None:
                _drive(engine, debug, handle.run_id, case.breaks)
            for stage in live.asked:
                answer = case.approval.get(stage)
                if stage in answered or handle.done or answer in (None, "expire"):
                    continue
                answered.add(stage)
                if answer == "grant":
                    engine.approve(handle.run_id, stage, "tester")
                else:
                    engine.reject(handle.run_id, stage, "tester")
            await asyncio.sleep(0.001)
        result = await asyncio.wait_for(handle.wait(), timeout=30)
        monitor.flush()
        spans = [span_record_from_sdk(span) for span in exporter.get_finished_spans()]
    finally:
        monitor.close()
        provider.shutdown()
        meters.shutdown()
    assert live.state is not None
    return live.state.record(), reconstruct_run(spans), result


def _drive(engine: Engine, debug: DebugSession, run_id: str, breaks: Mapping[str, str]) -> None:
    """Answer each pause as ``breaks`` says; cancel the run when only held pauses are left."""
    held = False
    for paused in debug.paused(run_id):
        action = breaks.get(paused.stage, "hold")
        if action == "continue":
            debug.continue_(run_id, paused.stage)
        elif action == "skip" and paused.instance == 0:
            debug.skip(run_id, paused.stage)
        elif action == "skip":
            debug.continue_(run_id, paused.stage)
        elif action == "cancel":
            engine.cancel(run_id)
            return
        else:
            held = True
    if held and _stuck(debug.state(run_id)):
        engine.cancel(run_id)


def _attempt(attempt: AttemptRecord) -> AttemptRecord:
    # Timings aside: clock readings. The CPU and memory come on the stage's end record, so live
    # and stored agree on them. span_id is the store's identity of the attempt, which no event
    # carries.
    return replace(
        attempt,
        start=0.0,
        end=None if attempt.end is None else 0.0,
        queue_time=None,
        trigger_wait=None,
        span_id="",
    )


def _stage(stage: StageRecord) -> StageRecord:
    return replace(stage, attempts=tuple(_attempt(a) for a in stage.attempts))


def _run(record: RunRecord) -> RunRecord:
    # ``attributes`` are the raw run-span attributes: only a record rebuilt from spans has them.
    return replace(
        record,
        start=0.0,
        end=None if record.end is None else 0.0,
        stages=tuple(_stage(s) for s in record.stages),
        attributes={},
        approvals=tuple(
            replace(w, requested=0.0, resolved=None if w.resolved is None else 0.0)
            for w in record.approvals
        ),
    )


def _case(stages: tuple[Stage, ...], behaviour: dict[str, str], **fields: Any) -> Case:
    approval = fields.pop("approval", {})
    events = fields.pop("events", 0)
    breaks = fields.pop("breaks", {})
    pipeline = Pipeline("live-vs-stored", stages, **fields)
    return Case(pipeline, behaviour, approval, events, breaks)


def _s(name: str, *triggers: Trigger, **fields: Any) -> Stage:
    return Stage(name, "python", triggers or (Manual(),), **fields)


# Each outcome the comparison is about, checked on every run (the generated cases add variety).
EXAMPLES = (
    _case(  # timeout, then a retried flaky stage, under "continue"
        (
            _s("s0", timeout=0.05),
            _s("s1", OnCompletion("s0", success_only=False), retry=retry(2, initial=0.0)),
        ),
        {"s0": "timeout", "s1": "flaky"},
        error_strategy=ErrorStrategy.CONTINUE,
    ),
    _case(  # a stage cancels the run while another runs; the rest is skipped
        (_s("s0"), _s("s1"), _s("s2", OnCompletion("s0"))),
        {"s0": "timeout", "s1": "cancel", "s2": "ok"},  # s0 waits: the stop cancels it
    ),
    _case(  # approvals granted, rejected and expired
        (
            _s("s0", Manual(approval_required=True)),
            _s("s1", Manual(approval_required=True)),
            _s("s2", Manual(approval_required=True, timeout=0.05)),
            _s("s3", OnCompletion("s1")),
        ),
        {"s0": "ok", "s1": "ok", "s2": "ok", "s3": "ok"},
        approval={"s0": "grant", "s1": "reject", "s2": "expire"},
        error_strategy=ErrorStrategy.CONTINUE,
    ),
    _case(  # fan-out instances retried once each, then a failure with a secret in its message
        (
            _s("s0", emits=("item",)),
            _s(
                "fan",
                OnEvent("item"),
                inputs=(InputMapping("v", "event.v"),),
                parallel_instances=2,
                retry=retry(2, initial=0.0),
            ),
            _s("s1", OnCompletion("fan", success_only=False)),
        ),
        {"s0": "ok", "fan": "flaky", "s1": "secret"},
        events=3,
    ),
    _case(  # a retry queued for the one slot, cancelled unstarted when another stage fails
        (_s("s0", timeout=0.05, retry=retry(2, initial=0.0)), _s("s1"), _s("s2"), _s("s3")),
        {"s0": "timeout", "s1": "ok", "s2": "ok", "s3": "fail"},
        concurrency=1,
    ),
)


# Stages a stop caught before they started: paused at a start breakpoint (then cancelled by
# the run's cancel, or by a failure elsewhere), queued for the one worker slot, on a fan-out.
STOP_EXAMPLES = (
    _case(  # s1 paused when s0's timeout stops the run
        (_s("s0", timeout=0.05), _s("s1")),
        {"s0": "timeout", "s1": "ok"},
        breaks={"s1": "hold"},
    ),
    _case(  # the driver cancels the run while s1 is paused; s2 never considered
        (_s("s0"), _s("s1", OnCompletion("s0")), _s("s2", OnCompletion("s1"))),
        {"s0": "ok", "s1": "ok", "s2": "ok"},
        breaks={"s1": "cancel"},
    ),
    _case(  # s1 queued behind s0 for the one slot when s0's timeout stops the run
        (_s("s0", timeout=0.05), _s("s1")),
        {"s0": "timeout", "s1": "ok"},
        concurrency=1,
    ),
    _case(  # fan#0 paused, fan#1 queued when s1's timeout stops the run
        (
            _s("s0", emits=("item",)),
            _s(
                "fan", OnEvent("item"), inputs=(InputMapping("v", "event.v"),), parallel_instances=2
            ),
            _s("s1", OnCompletion("s0"), timeout=0.05),
        ),
        {"s0": "ok", "fan": "ok", "s1": "timeout"},
        events=2,
        concurrency=2,
        breaks={"fan": "hold"},
    ),
    _case(  # fan#0 fails and stops the run while fan#1 is held at its breakpoint (found by CI)
        (
            _s("s0", emits=("item",)),
            _s(
                "fan",
                OnEvent("item"),
                inputs=(InputMapping("v", "event.v", required=True),),
                parallel_instances=2,
            ),
        ),
        {"s0": "ok", "fan": "fail"},
        events=2,
        concurrency=2,
        breaks={"fan": "continue"},
    ),
    _case(  # fan#0 skipped at its breakpoint, fan#1 queued for the one slot when s2 fails
        (
            _s("s0", emits=("item",)),
            _s("s1"),
            _s("s2", OnCompletion("s0", success_only=False)),
            _s("fan", OnEvent("item"), inputs=(InputMapping("v", "event.v", required=True),)),
        ),
        {"s0": "ok", "s1": "ok", "s2": "fail", "fan": "ok"},
        events=2,
        concurrency=1,
        breaks={"fan": "skip"},
    ),
)

# Executions skipped at a start breakpoint: a one-instance stage, and a fan-out whose instance 0
# is skipped while instance 1 runs (the stage reads ``skipped``: some instance did not run).
SKIP_EXAMPLES = (
    _case(
        (_s("s0"), _s("s1", OnCompletion("s0"))), {"s0": "ok", "s1": "ok"}, breaks={"s0": "skip"}
    ),
    _case(
        (
            _s("s0", emits=("item",)),
            _s(
                "fan", OnEvent("item"), inputs=(InputMapping("v", "event.v"),), parallel_instances=1
            ),
        ),
        {"s0": "ok", "fan": "ok"},
        events=2,
        breaks={"fan": "skip"},
    ),
)


def with_examples(test: Callable[[Case], None]) -> Callable[[Case], None]:
    """``test`` with each of ``EXAMPLES``, ``STOP_EXAMPLES`` and ``SKIP_EXAMPLES`` as an
    explicit example."""
    for case in (*EXAMPLES, *STOP_EXAMPLES, *SKIP_EXAMPLES):
        test = example(case)(test)
    return test


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cases())
@with_examples
def test_live_record_equals_the_record_rebuilt_from_spans(case: Case) -> None:
    """For generated pipelines and runs, the live record equals the stored one, field by field."""
    live, stored, _ = asyncio.run(execute(case))
    live, stored = _run(live), _run(stored)
    assert [s.name for s in stored.stages] == [s.name for s in live.stages]
    for stored_stage, live_stage in zip(stored.stages, live.stages, strict=True):
        assert stored_stage == live_stage, stored_stage.name
    assert stored == live


def _outcomes(record: RunRecord) -> dict[str, tuple[str, str | None]]:
    return {s.name: (s.status, s.skip_reason) for s in record.stages}


def _errors(record: RunRecord) -> dict[str, str | None]:
    """The error ``runs show`` and the web page give each stage: its skip reason, else that of
    its outcome (``records.stage_error``: a stage a stop caught paused before its start, with
    no attempt, says ``cancelled: <why>``)."""
    return {
        s.name: s.skip_reason or stage_error(s.status, s.attempts, s.cancel_reason)
        for s in record.stages
    }


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cases())
@with_examples
def test_each_stage_reads_in_both_records_as_in_the_engines_result(case: Case) -> None:
    """For generated runs (breakpoints held, resumed or cancelled; failures; cancels), each
    stage's status and skip reason in the live and the stored record are the engine's, and
    so is the error of every stage, as ``run``'s summary shows it: the summary counts only
    the executions the records know of (a retry or an instance a stop caught queued has no
    span)."""
    live, stored, result = asyncio.run(execute(case))
    engine = {
        name: (str(status), result.skip_reasons.get(name))
        for name, status in result.stage_status.items()
    }
    assert (engine, engine) == (_outcomes(live), _outcomes(stored))
    errors = _errors(stored)
    summary = {name: summary_error(result, name) for name in errors}
    assert (summary, summary) == (_errors(live), errors)


def test_the_stop_examples_reach_every_stage_a_stop_caught_unstarted() -> None:
    """The stop examples reach a stage cancelled while paused before its start and one not
    reached because the stop caught it queued, so the comparison above is not vacuous."""
    seen: set[tuple[str, str | None]] = set()
    for case in STOP_EXAMPLES:
        _, stored, _ = asyncio.run(execute(case))
        seen.update(
            (stage.status, stage.skip_reason) for stage in stored.stages if not stage.attempts
        )
    assert {
        ("cancelled", None),
        ("skipped", "not reached: the run ended (failure)"),
    } <= seen


def test_the_examples_reach_every_outcome() -> None:
    """The fixed examples reach each stage and run status the comparison is about, so the
    property never passes vacuously."""
    stage_statuses: set[str] = set()
    run_statuses: set[str] = set()
    skip_reasons: set[str] = set()
    instances = 0
    for case in EXAMPLES:
        live, _, _ = asyncio.run(execute(case))
        run_statuses.add(live.status)
        for stage in live.stages:
            stage_statuses.add(stage.status)
            stage_statuses.update(a.status for a in stage.attempts)
            skip_reasons.add(stage.skip_reason or "")
            instances = max([instances, *(a.instance + 1 for a in stage.attempts)])
    assert {"success", "failure", "timeout", "cancelled", "skipped"} <= stage_statuses
    assert {"success", "failure", "cancelled"} <= run_statuses
    assert instances >= 2
    assert any("approval" in reason for reason in skip_reasons), skip_reasons
