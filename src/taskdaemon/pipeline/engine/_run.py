"""One run's state and scheduling: executions, trigger bookkeeping, slots, retries, events."""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from inspect import isawaitable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from taskdaemon.pipeline.engine._results import ExecutionResult, RunResult, StageGateRequest
from taskdaemon.pipeline.errors import (
    ApprovalError,
    ExpressionError,
    InvalidTransitionError,
    PipelineError,
)
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    EngineEvent,
    EventPublished,
    RunFinished,
    RunStarted,
    StageFinished,
    StageProcess,
    StageQueued,
    StageRetrying,
    StageSkipped,
    StageStarted,
    StageWaiting,
    TaskRunRef,
    TriggerEvaluated,
)
from taskdaemon.pipeline.execution import enter_execution, leave_execution
from taskdaemon.pipeline.loops import Handler, StageContext
from taskdaemon.pipeline.model import (
    ErrorStrategy,
    Manual,
    OnCompletion,
    OnCondition,
    Pipeline,
    RetryPolicy,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.run_state import FAILED_STAGE_STATUSES, stage_status_of
from taskdaemon.pipeline.state import STAGE_TRANSITIONS, RunStatus, StageStatus, StageTimes
from taskdaemon.pipeline.triggers import (
    ApprovalState,
    CompiledStage,
    TriggerPlan,
    TriggerState,
    evaluate_completion,
    evaluate_condition,
    evaluate_filter,
    evaluate_manual,
    expression_context,
)

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine._api import Engine

_SATISFIED = TriggerState.SATISFIED
_IMPOSSIBLE = TriggerState.IMPOSSIBLE
_PENDING = TriggerState.PENDING
_ALL = TriggerMode.ALL
_WAITING = StageStatus.WAITING
_QUEUED = StageStatus.QUEUED
_RUNNING = StageStatus.RUNNING
_RETRYING = StageStatus.RETRYING
_SUCCESS = StageStatus.SUCCESS
_FAILURE = StageStatus.FAILURE
_TIMEOUT = StageStatus.TIMEOUT
_CANCELLED = StageStatus.CANCELLED
_SKIPPED = StageStatus.SKIPPED
_FAILED = FAILED_STAGE_STATUSES
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# Shared by stages without on_event triggers: they never append to it.
_NO_EVENTS: deque[Any] = deque(maxlen=0)
_EMPTY: Mapping[str, Any] = MappingProxyType({})


# --------------------------------------------------------------------------- observers


class _Observer:
    __slots__ = ("allocate", "environment", "observer", "on_event")

    def __init__(self, observer: Any) -> None:
        self.observer = observer
        self.on_event: Callable[[EngineEvent], None] = observer.on_event
        self.allocate: Callable[..., Any] | None = getattr(observer, "allocate_run_id", None)
        self.environment: Callable[..., Any] | None = getattr(observer, "stage_environment", None)


# --------------------------------------------------------------------------- plan cache

_PLANS: dict[int, tuple[weakref.ref[Pipeline], TriggerPlan]] = {}


def _plan_for(pipeline: Pipeline) -> TriggerPlan:
    """The compiled plan of ``pipeline``, built once per pipeline object."""
    key = id(pipeline)
    cached = _PLANS.get(key)
    if cached is not None and cached[0]() is pipeline:
        return cached[1]
    names = pipeline.stage_map
    if len(names) != len(pipeline.stages):
        raise PipelineError(f"pipeline {pipeline.name!r} has duplicate stage names")
    for stage in pipeline.stages:
        for trigger in stage.triggers:
            if isinstance(trigger, OnCompletion) and trigger.stage not in names:
                raise PipelineError(
                    f"stage {stage.name!r} waits for the completion of unknown stage "
                    f"{trigger.stage!r}"
                )
    try:
        pipeline.topological_order  # noqa: B018 - raises on a cycle
    except ValueError as exc:
        raise PipelineError(str(exc)) from None
    try:
        plan = TriggerPlan.build(pipeline)
    except ExpressionError as exc:
        raise PipelineError(f"pipeline {pipeline.name!r}: {exc}") from None

    def forget(_ref: weakref.ref[Pipeline], key: int = key) -> None:
        _PLANS.pop(key, None)

    _PLANS[key] = (weakref.ref(pipeline, forget), plan)
    return plan


# --------------------------------------------------------------------------- run state


class _Exec:
    """One attempt of one instance (mutable while it runs)."""

    __slots__ = (
        "attempt",
        "cancel_cause",
        "cpu",
        "ended",
        "error",
        "error_type",
        "memory",
        "outputs",
        "queued",
        "running",
        "started",
        "status",
    )

    def __init__(self, attempt: int, queued: float) -> None:
        self.attempt = attempt
        self.queued = queued
        self.running: float | None = None
        self.ended: float | None = None
        self.status = _QUEUED
        self.outputs: Mapping[str, Any] = {}
        self.error: str | None = None
        self.error_type: str | None = None
        self.cpu: float | None = None
        self.memory: int | None = None
        self.started = False
        self.cancel_cause: str | None = None  # the stage whose failure cancelled this attempt


class _Instance:
    __slots__ = ("event", "executions", "fired_by", "index", "status", "task", "triggers")

    def __init__(
        self,
        index: int,
        event: Mapping[str, Any] | None,
        fired_by: tuple[TaskRunRef, ...],
        triggers: tuple[str, ...],
    ) -> None:
        self.index = index
        self.event = event
        self.fired_by = fired_by
        self.triggers = triggers
        self.status = _WAITING
        self.executions: list[_Exec] = []
        self.task: asyncio.Task[None] | None = None


class _StageRun:
    """The run-time state of one stage."""

    __slots__ = (
        "approval",
        "approval_timer",
        "considered_at",
        "cs",
        "ctx",
        "events",
        "final",
        "fired",
        "fired_by",
        "instances",
        "n_imp",
        "n_sat",
        "name",
        "open_instances",
        "skip_reason",
        "started",
        "states",
        "status",
        "waiting_at",
    )

    def __init__(self, cs: CompiledStage, ctx: dict[str, Any], pending_at: float) -> None:
        self.cs = cs
        self.name = cs.stage.name
        self.ctx = ctx
        self.status = StageStatus.PENDING  # stage-level: pending, waiting, then final
        self.states: dict[int, TriggerState] = dict.fromkeys(cs.other_triggers, _PENDING)
        self.n_sat = 0
        self.n_imp = 0
        self.fired = False
        self.fired_by: dict[int, tuple[TaskRunRef, ...]] | None = None
        self.final = False
        self.started = False
        self.considered_at: float | None = None
        self.waiting_at = pending_at
        self.instances: list[_Instance] = []
        self.open_instances = 0
        self.events: deque[tuple[Mapping[str, Any], TaskRunRef | None]] = (
            deque() if cs.has_events else _NO_EVENTS
        )
        self.approval = ApprovalState.NOT_REQUESTED
        self.approval_timer: asyncio.Task[None] | None = None
        self.skip_reason: str | None = None

    def readiness(self) -> TriggerState:
        """The combined state of the non-event triggers (O(1) from the counters)."""
        n = len(self.states)
        if self.cs.stage.trigger_mode is _ALL:
            if self.n_imp:
                return _IMPOSSIBLE
            return _SATISFIED if self.n_sat == n else _PENDING
        if self.n_sat:
            return _SATISFIED
        return _IMPOSSIBLE if self.n_imp == n else _PENDING

    def gate(self) -> TriggerState:
        """For an event stage in mode ``all``: whether events may start instances."""
        return self.readiness() if self.states else _SATISFIED

    def final_status(self) -> StageStatus:
        if not self.instances:
            return _SKIPPED
        return StageStatus(stage_status_of((inst.index, inst.status) for inst in self.instances))


class _Executions(Mapping[str, tuple[ExecutionResult, ...]]):
    """A finished run's executions per stage, built on first access (most callers never look,
    and building 10,000 records at the end of every run would cost more than running them)."""

    __slots__ = ("_built", "_run")

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._built: dict[str, tuple[ExecutionResult, ...]] = {}

    def __getitem__(self, name: str) -> tuple[ExecutionResult, ...]:
        built = self._built.get(name)
        if built is None:
            run = self._run
            srt = run.stages[name]
            built = tuple(
                ExecutionResult(
                    name,
                    inst.index,
                    ex.attempt,
                    ex.status,
                    StageTimes(
                        run.started_at,
                        srt.considered_at,
                        srt.waiting_at,
                        ex.queued,
                        ex.running,
                        ex.ended,
                    ),
                    ex.outputs,
                    ex.error,
                    ex.error_type,
                    ex.cancel_cause,
                )
                for inst in srt.instances
                for ex in inst.executions
            )
            self._built[name] = built
        return built

    def __iter__(self) -> Iterator[str]:
        return iter(self._run.stages)

    def __len__(self) -> int:
        return len(self._run.stages)

    def __repr__(self) -> str:
        return repr(dict(self))


class _Run:
    """Everything about one run; all methods run on the event loop thread."""

    def __init__(
        self,
        engine: Engine,
        pipeline: Pipeline,
        plan: TriggerPlan,
        run_id: str,
        request: Mapping[str, Any],
    ) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.name = pipeline.name
        self.plan = plan
        self.run_id = run_id
        self.request = request
        self.status = RunStatus.PENDING
        self.started_at = engine._clock()
        self.finished_at: float | None = None
        self.error: str | None = None
        self.error_type: str | None = None
        self.stages_ctx: dict[str, dict[str, Any]] = {}
        self.stages: dict[str, _StageRun] = {}
        for name, cs in plan.stages.items():
            ctx = {"status": "pending", "outputs": {}}
            self.stages_ctx[name] = ctx
            self.stages[name] = _StageRun(cs, ctx, self.started_at)
        self.slots = asyncio.Semaphore(max(1, pipeline.concurrency))
        self.active = 0  # unfinished instances + open approval requests
        self.stopping: RunStatus | None = None  # the final status a stop aims at
        self.finished_queue: deque[_StageRun] = deque()
        self.processing = False
        self.done: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        self.event_seq = 0
        self.handlers: dict[str, Handler] = {}
        self.workspace: str | None = None
        strategy = pipeline.error_strategy
        self.strategy = strategy
        self.default_retry = pipeline.retry if strategy is ErrorStrategy.RETRY else None
        self.first_failure: str | None = None
        # Why a stop cancels what runs ("stage 'x' failed (error_strategy: fail)") and the stage
        # that caused it: every cancelled attempt and skipped stage carries both.
        self.cancel_reason: str | None = None
        self.cancel_cause: str | None = None
        self.result: RunResult | None = None

    # ------------------------------------------------------------------ emitting

    def emit(self, event: EngineEvent) -> None:
        self.engine._emit(event)

    def evaluated(
        self,
        srt: _StageRun,
        index: int,
        state: TriggerState,
        detail: str,
        ready: bool,
        *,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        if self.engine._observers:
            trigger = srt.cs.stage.triggers[index]
            self.emit(
                TriggerEvaluated(
                    self.run_id,
                    self.name,
                    srt.name,
                    index,
                    trigger.kind,
                    srt.cs.descriptions[index],
                    state is _SATISFIED,
                    ready,
                    self.engine._clock(),
                    detail,
                    values,
                )
            )

    # ------------------------------------------------------------------ lifecycle

    def start(self, started_by: str, parent: str | None, replay_of: str | None) -> None:
        self.status = RunStatus.RUNNING
        if self.engine._observers:
            self.emit(
                RunStarted(
                    self.run_id,
                    self.pipeline,
                    self.request,
                    self.started_at,
                    started_by,
                    parent,
                    replay_of,
                )
            )
        self.processing = True
        try:
            for name in self.plan.entry_stages:
                self.consider(self.stages[name], self.started_at)
            for stage in self.pipeline.stages:
                if stage.is_entry and self.stages[stage.name].status is StageStatus.PENDING:
                    self.consider(self.stages[stage.name], self.started_at)
        finally:
            self.processing = False
        self.process()

    def process(self) -> None:
        """Propagate every finished stage to what depends on it, then see if the run is idle."""
        if self.processing:
            return
        self.processing = True
        try:
            queue = self.finished_queue
            while queue:
                self.propagate(queue.popleft())
        finally:
            self.processing = False
        if self.active == 0 and self.result is None:
            self.idle()

    def idle(self) -> None:
        """Nothing can happen by itself any more: close what waits and end the run."""
        if self.stopping is None:
            # Event stages fed from outside close now; their completion may start others.
            for srt in self.stages.values():
                if not srt.final and srt.cs.has_events and srt.instances:
                    self.finalize(srt)
            if self.finished_queue:
                self.process()
                return
        now = self.engine._clock()
        for srt in self.stages.values():
            if not srt.final:
                if srt.instances:
                    self.finalize(srt)
                else:
                    self.skip(srt, self.skip_reason_for(srt), now)
        self.finished_queue.clear()
        self.finish()

    def skip_reason_for(self, srt: _StageRun) -> str:
        if self.stopping is RunStatus.CANCELLED:
            return "run cancelled"
        if self.stopping is RunStatus.FAILURE:
            return f"run failed: {self.first_failure}"
        if srt.cs.has_events and not srt.instances:
            return "no event arrived"
        waiting = [srt.cs.descriptions[i] for i, state in srt.states.items() if state is _PENDING]
        return "triggers can no longer fire" + (f": {', '.join(waiting)}" if waiting else "")

    def finish(self) -> None:
        now = self.engine._clock()
        # a stage can only end cancelled in a run that was not stopped if its handler raised
        # CancelledError by itself: that is no success either
        failed = [s for s in self.stages.values() if s.status in _FAILED or s.status is _CANCELLED]
        if self.stopping is not None:
            status = self.stopping
        elif failed:
            status = RunStatus.FAILURE
        else:
            status = RunStatus.SUCCESS
        if status is RunStatus.FAILURE and self.error is None:
            self.error = self.first_failure
        if status is RunStatus.CANCELLED and self.error is None:
            self.error = "run cancelled"
            self.error_type = "CancelledError"
        self.status = status
        self.finished_at = now
        result = self.snapshot(final=True)
        self.result = result
        if self.engine._observers:
            self.emit(
                RunFinished(
                    self.run_id,
                    self.name,
                    status,
                    now,
                    self.error,
                    self.error_type,
                    result.outputs,
                )
            )
        self.engine._run_finished(self)
        if not self.done.done():
            self.done.set_result(result)

    def snapshot(self, final: bool = False) -> RunResult:
        executions: Mapping[str, tuple[ExecutionResult, ...]] = _Executions(self)
        if not final:  # a live run changes: copy now
            executions = dict(executions)
        return RunResult(
            run_id=self.run_id,
            pipeline=self.name,
            status=self.status,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            stage_status={name: srt.status for name, srt in self.stages.items()},
            executions=executions,
            outputs={name: ctx["outputs"] for name, ctx in self.stages_ctx.items()},
            skip_reasons={
                name: srt.skip_reason
                for name, srt in self.stages.items()
                if srt.skip_reason is not None
            },
        )

    def stop(self, status: RunStatus, reason: str | None = None, cause: str | None = None) -> None:
        """Stop the run: cancel what is queued or running; the run ends ``status``.

        ``cause`` names the stage whose failure stops the run (its error strategy is not
        ``continue``); cancelled attempts and skipped stages then say so.
        """
        if self.stopping is not None or self.result is not None:
            return
        self.stopping = status
        if cause is not None:
            failed = self.stages[cause].instances
            verb = "timed out" if any(i.status is _TIMEOUT for i in failed) else "failed"
            self.cancel_reason = f"stage {cause!r} {verb} (error_strategy: {self.strategy.value})"
            self.cancel_cause = cause
        else:
            self.cancel_reason = reason or "run cancelled"
        ended: list[tuple[_StageRun, _Instance]] = []
        if reason is not None:
            self.error = reason
        for srt in self.stages.values():
            srt.events.clear()
            if srt.approval is ApprovalState.REQUESTED:
                self.withdraw_approval(srt)
            for inst in srt.instances:
                task = inst.task
                if task is None or task.done():
                    continue
                if inst.status is _QUEUED:
                    # End it here: a task cancelled before its first step never runs its
                    # handler code, so it could not report its own end.
                    self.finished(
                        srt,
                        inst,
                        inst.executions[-1],
                        status=_CANCELLED,
                        exception=None,
                        will_retry=False,
                        error=self.cancelled_error(),
                    )
                    _move(srt, inst, _CANCELLED)
                    ended.append((srt, inst))
                task.cancel()
        for srt, inst in ended:
            self.instance_ended(srt, inst)
        self.process()

    # ------------------------------------------------------------------ considering / triggers

    def consider(self, srt: _StageRun, at: float) -> None:
        """The stage can be looked at from now on: emit StageWaiting and evaluate its triggers."""
        if srt.status is not StageStatus.PENDING:
            return
        now = self.engine._clock()
        srt.status = _WAITING
        srt.considered_at = at
        srt.waiting_at = now
        srt.ctx["status"] = "waiting"
        if self.engine._observers:
            self.emit(StageWaiting(self.run_id, self.name, srt.name, now, at))
        cs = srt.cs
        if cs.approval_trigger is not None and cs.stage.trigger_mode is not _ALL:
            self.request_approval(srt)
        triggers = cs.stage.triggers
        for index in cs.other_triggers:
            if srt.final:
                return
            self.evaluate(srt, index, triggers[index])
        if not srt.final:
            self.update(srt)

    def evaluate(self, srt: _StageRun, index: int, trigger: Any) -> None:
        """Re-evaluate one non-event trigger, update the counters, report it."""
        values = None
        if isinstance(trigger, OnCompletion):
            upstream = self.stages[trigger.stage]
            state, detail = evaluate_completion(
                trigger, upstream.status if upstream.final else None
            )
            if state is _SATISFIED and self.engine._observers:  # only StageStarted reads it
                if srt.fired_by is None:
                    srt.fired_by = {}
                srt.fired_by[index] = tuple(
                    TaskRunRef(upstream.name, inst.index, inst.executions[-1].attempt)
                    for inst in upstream.instances
                    if inst.executions
                )
        elif isinstance(trigger, OnCondition):
            compiled = srt.cs.conditions[index]
            values = expression_context(
                compiled.expression, compiled.refs, self.request, self.stages_ctx
            )
            state, detail = evaluate_condition(compiled.expression, values)
        elif isinstance(trigger, Manual):
            state, detail = evaluate_manual(trigger, srt.approval)
        else:  # pragma: no cover - on_event triggers are not evaluated here
            return
        old = srt.states[index]
        if old is not state:
            if old is _SATISFIED:
                srt.n_sat -= 1
            elif old is _IMPOSSIBLE:
                srt.n_imp -= 1
            if state is _SATISFIED:
                srt.n_sat += 1
            elif state is _IMPOSSIBLE:
                srt.n_imp += 1
            srt.states[index] = state
        if self.engine._observers:
            ready = (srt.gate() if srt.cs.has_events else srt.readiness()) is _SATISFIED
            self.evaluated(srt, index, state, detail, ready, values=values)

    def update(self, srt: _StageRun) -> None:
        """Act on a stage's trigger states: fire it, skip it, or ask for its approval."""
        if srt.final or self.stopping is not None:
            return
        cs = srt.cs
        if not cs.has_events:
            if srt.fired:
                return
            readiness = srt.readiness()
            if readiness is _SATISFIED:
                if srt.status is StageStatus.PENDING:
                    self.consider(srt, self.engine._clock())  # evaluates again, then fires
                else:
                    self.fire(srt, None, self.collect_fired_by(srt), None)
            elif readiness is _IMPOSSIBLE:
                self.skip(srt, self.impossible_reason(srt), self.engine._clock())
            elif cs.stage.trigger_mode is _ALL:
                self.maybe_request_approval(srt)
            return
        if cs.stage.trigger_mode is _ALL:
            gate = srt.gate()
            if gate is _IMPOSSIBLE:
                srt.events.clear()
                if not srt.instances:
                    self.skip(srt, self.impossible_reason(srt), self.engine._clock())
                    return
            elif gate is _SATISFIED:
                self.admit(srt)
            else:
                self.maybe_request_approval(srt)
        elif srt.states and not srt.fired and srt.readiness() is _SATISFIED:
            if srt.status is StageStatus.PENDING:
                self.consider(srt, self.engine._clock())  # evaluates again, then fires
                return
            srt.fired = True
            self.fire(srt, None, self.collect_fired_by(srt), None)
        self.check_event_stage(srt)

    def collect_fired_by(self, srt: _StageRun) -> tuple[TaskRunRef, ...]:
        refs: list[TaskRunRef] = []
        fired_by = srt.fired_by
        if fired_by is None or not self.engine._observers:
            return ()
        for index, state in srt.states.items():
            if state is _SATISFIED:
                refs.extend(fired_by.get(index, ()))
        return tuple(refs)

    def impossible_reason(self, srt: _StageRun) -> str:
        if srt.approval is ApprovalState.REJECTED:
            return "approval rejected"
        blocked = [srt.cs.descriptions[i] for i, s in srt.states.items() if s is _IMPOSSIBLE]
        return "triggers can no longer fire: " + ", ".join(blocked)

    def maybe_request_approval(self, srt: _StageRun) -> None:
        """Mode ``all``: ask for the approval once every other trigger holds."""
        index = srt.cs.approval_trigger
        if index is None or srt.approval is not ApprovalState.NOT_REQUESTED:
            return
        if srt.n_sat == len(srt.states) - 1 and srt.states[index] is not _SATISFIED:
            self.request_approval(srt)

    def request_approval(self, srt: _StageRun) -> None:
        if srt.approval is not ApprovalState.NOT_REQUESTED:
            return
        index = srt.cs.approval_trigger
        assert index is not None
        trigger = srt.cs.stage.triggers[index]
        assert isinstance(trigger, Manual)
        srt.approval = ApprovalState.REQUESTED
        self.active += 1
        if self.engine._observers:
            self.emit(
                ApprovalRequested(
                    self.run_id, self.name, srt.name, self.engine._clock(), trigger.timeout
                )
            )
        if trigger.timeout is not None:
            srt.approval_timer = asyncio.get_running_loop().create_task(
                self.approval_timeout(srt, trigger.timeout)
            )

    def withdraw_approval(self, srt: _StageRun) -> None:
        """The stage no longer needs its approval (it fired otherwise, or was skipped): close the
        request with ``ApprovalResolved(approved=False, by="engine")``."""
        srt.approval = ApprovalState.REJECTED
        self.active -= 1
        if srt.approval_timer is not None:
            srt.approval_timer.cancel()
            srt.approval_timer = None
        if self.engine._observers:
            self.emit(
                ApprovalResolved(
                    self.run_id, self.name, srt.name, False, self.engine._clock(), "engine"
                )
            )

    async def approval_timeout(self, srt: _StageRun, seconds: float) -> None:
        await self.engine._sleep(seconds)
        srt.approval_timer = None
        if srt.approval is ApprovalState.REQUESTED:
            self.resolve_approval(srt, approved=False, by="", timed_out=True)

    def resolve_approval(self, srt: _StageRun, *, approved: bool, by: str, timed_out: bool) -> None:
        if srt.approval is not ApprovalState.REQUESTED:
            state = srt.approval.value.replace("_", " ")
            raise ApprovalError(
                f"stage {srt.name!r} of run {self.run_id} is not waiting for an approval "
                f"(approval {state})"
            )
        srt.approval = ApprovalState.APPROVED if approved else ApprovalState.REJECTED
        self.active -= 1
        if srt.approval_timer is not None:
            srt.approval_timer.cancel()
            srt.approval_timer = None
        now = self.engine._clock()
        if self.engine._observers:
            self.emit(
                ApprovalResolved(self.run_id, self.name, srt.name, approved, now, by, timed_out)
            )
        index = srt.cs.approval_trigger
        assert index is not None
        self.evaluate(srt, index, srt.cs.stage.triggers[index])
        if approved:
            self.update(srt)
        elif not srt.final and not srt.instances:
            trigger = srt.cs.stage.triggers[index]
            assert isinstance(trigger, Manual)
            reason = (
                f"approval timed out after {trigger.timeout:g}s"
                if timed_out
                else "approval rejected" + (f" by {by}" if by else "")
            )
            srt.events.clear()
            self.skip(srt, reason, now)
        else:
            self.update(srt)
        self.process()

    # ------------------------------------------------------------------ firing

    def fire(
        self,
        srt: _StageRun,
        event: Mapping[str, Any] | None,
        fired_by: tuple[TaskRunRef, ...],
        event_trigger: int | None,
    ) -> None:
        """Start one instance of the stage (queued, waiting for a worker slot)."""
        if not srt.cs.has_events:
            srt.fired = True
            if srt.approval is ApprovalState.REQUESTED:
                self.withdraw_approval(srt)
        triggers: tuple[str, ...] = ()
        if self.engine._observers:  # only StageStarted reads it: spare the allocations
            descriptions = srt.cs.descriptions
            if event_trigger is not None:
                triggers = (descriptions[event_trigger],)
            triggers += tuple(descriptions[i] for i, s in srt.states.items() if s is _SATISFIED)
        inst = _Instance(len(srt.instances), event, fired_by, triggers)
        srt.instances.append(inst)
        srt.open_instances += 1
        self.active += 1
        self.queue(srt, inst, 1)
        inst.task = asyncio.get_running_loop().create_task(self.execute(srt, inst))

    def queue(self, srt: _StageRun, inst: _Instance, attempt: int) -> _Exec:
        _move(srt, inst, _QUEUED)
        now = self.engine._clock()
        ex = _Exec(attempt, now)
        inst.executions.append(ex)
        if self.engine._observers:
            self.emit(
                StageQueued(
                    self.run_id,
                    self.name,
                    srt.name,
                    inst.index,
                    attempt,
                    now,
                    f"{srt.name}.{inst.index}.{attempt}",
                )
            )
        return ex

    def admit(self, srt: _StageRun) -> None:
        """Start instances for waiting events, up to ``parallel_instances`` unfinished at once."""
        limit = srt.cs.stage.parallel_instances
        while srt.events and srt.open_instances < limit and self.stopping is None:
            payload, source = srt.events.popleft()
            self.fire(srt, payload, (source,) if source else (), srt.cs.event_triggers[0])

    def check_event_stage(self, srt: _StageRun) -> None:
        """Finalize an event stage once nothing can start another instance of it."""
        if srt.final or srt.open_instances or srt.events:
            return
        cs = srt.cs
        if not cs.event_emitters:
            return  # fed from outside: closes when the run is idle
        for emitter in cs.event_emitters:
            if not self.stages[emitter].final:
                return
        if srt.states:
            readiness = srt.readiness()
            if cs.stage.trigger_mode is _ALL:
                if readiness is _PENDING:
                    return
            elif not srt.fired and readiness is _PENDING:
                return
        self.finalize(srt)

    def publish(
        self, event_type: str, payload: Mapping[str, Any], source: TaskRunRef | None
    ) -> None:
        """Publish an event into the run and start the instances it fires."""
        if self.result is not None or self.stopping is not None:
            raise PipelineError(f"run {self.run_id} has finished; cannot publish {event_type!r}")
        self.event_seq += 1
        now = self.engine._clock()
        payload = dict(payload)
        if self.engine._debugger is not None:  # event breakpoints mark this very payload
            self.engine._debugger.published(self, event_type, payload)
        if self.engine._observers:
            self.emit(
                EventPublished(
                    self.run_id, self.name, event_type, payload, self.event_seq, now, source
                )
            )
        for stage_name, index in self.plan.event_listeners.get(event_type, ()):
            srt = self.stages[stage_name]
            if srt.final:
                continue
            if srt.status is StageStatus.PENDING:
                self.consider(srt, now)
                if srt.final:
                    continue
            compiled = srt.cs.filters[index]
            values = None
            if compiled is None:
                accepted, detail = True, "no filter"
            else:
                values = expression_context(
                    compiled.expression,
                    compiled.refs,
                    self.request,
                    self.stages_ctx,
                    {"event": payload},
                )
                accepted, detail = evaluate_filter(compiled.expression, values)
            if self.engine._observers:
                ready = accepted and srt.gate() is _SATISFIED
                self.evaluated(
                    srt,
                    index,
                    _SATISFIED if accepted else _PENDING,
                    f"event {self.event_seq}: {detail}",
                    ready,
                    values=values,
                )
            if accepted:
                srt.events.append((payload, source))
                if srt.cs.stage.trigger_mode is not _ALL or srt.gate() is _SATISFIED:
                    self.admit(srt)
        for stage_name in self.plan.condition_stages:
            self.reevaluate_conditions(self.stages[stage_name])
        self.process()

    def reevaluate_conditions(self, srt: _StageRun) -> None:
        if srt.final or srt.fired or srt.status is StageStatus.PENDING:
            return
        triggers = srt.cs.stage.triggers
        for index in srt.cs.conditions:
            self.evaluate(srt, index, triggers[index])
        self.update(srt)

    # ------------------------------------------------------------------ ending stages

    def skip(self, srt: _StageRun, reason: str, at: float) -> None:
        if srt.final:
            return
        srt.skip_reason = reason
        srt.events.clear()
        if srt.approval is ApprovalState.REQUESTED:
            self.withdraw_approval(srt)
        srt.final = True
        srt.status = _SKIPPED
        srt.ctx["status"] = "skipped"
        if self.engine._observers:
            why, cause = (self.cancel_reason, self.cancel_cause) if self.stopping else (None, None)
            self.emit(StageSkipped(self.run_id, self.name, srt.name, reason, at, why, cause))
        self.finished_queue.append(srt)

    def finalize(self, srt: _StageRun) -> None:
        """Every instance ended and none can start: the stage has its final status."""
        if srt.final:
            return
        if not srt.instances:
            self.skip(srt, self.skip_reason_for(srt), self.engine._clock())
            return
        srt.final = True
        status = srt.final_status()
        srt.status = status
        ctx = srt.ctx
        ctx["status"] = status.value
        if len(srt.instances) == 1:
            ctx["outputs"] = srt.instances[0].executions[-1].outputs
        else:
            ctx["outputs"] = {"instances": [inst.executions[-1].outputs for inst in srt.instances]}
        self.finished_queue.append(srt)

    def propagate(self, srt: _StageRun) -> None:
        """Re-evaluate what a final stage can affect (and nothing else)."""
        if self.stopping is not None:
            return
        plan = self.plan
        stages = self.stages
        touched: list[_StageRun] = []
        for dependent, index in plan.completion_dependents.get(srt.name, ()):
            dep = stages[dependent]
            if dep.final or (dep.fired and not dep.cs.has_events):
                continue
            self.evaluate(dep, index, dep.cs.stage.triggers[index])
            touched.append(dep)
        for reader, index in plan.condition_readers.get(srt.name, ()):
            dep = stages[reader]
            if dep.final or dep.fired:
                continue
            self.evaluate(dep, index, dep.cs.stage.triggers[index])
            touched.append(dep)
        for reader, index in plan.opaque_conditions:
            dep = stages[reader]
            if dep.final or dep.fired:
                continue
            self.evaluate(dep, index, dep.cs.stage.triggers[index])
            touched.append(dep)
        for dep in touched:
            self.update(dep)
        for name in srt.cs.downstream:
            dep = stages[name]
            if dep.cs.has_events and srt.name in dep.cs.event_emitters:
                self.check_event_stage(dep)

    def instance_ended(self, srt: _StageRun, inst: _Instance) -> None:
        srt.open_instances -= 1
        self.active -= 1
        status = inst.status
        if status in _FAILED and self.first_failure is None:
            last = inst.executions[-1]
            self.first_failure = f"stage {srt.name!r} {status.value}: {last.error}"
            self.error_type = last.error_type
        if self.stopping is None:
            if status in _FAILED and self.strategy is not ErrorStrategy.CONTINUE:
                self.stop(RunStatus.FAILURE, self.first_failure, srt.name)
            elif srt.cs.has_events:
                self.admit(srt)
                self.check_event_stage(srt)
            else:
                self.finalize(srt)
        if self.stopping is not None and srt.open_instances == 0 and not srt.final:
            self.finalize(srt)
        self.process()

    def first_start(self, srt: _StageRun, at: float) -> None:
        """A stage's first execution started: its downstream stages become considered."""
        srt.started = True
        srt.status = _RUNNING
        srt.ctx["status"] = "running"
        stages = self.stages
        for name in srt.cs.downstream:
            dep = stages[name]
            if dep.status is StageStatus.PENDING:
                self.consider(dep, at)
        self.process()

    # ------------------------------------------------------------------ executing

    def resolve_inputs(self, srt: _StageRun, inst: _Instance) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        extra = None if inst.event is None else {"event": inst.event}
        for name, compiled, required in srt.cs.inputs:
            expression = compiled.expression
            try:
                inputs[name] = expression.evaluate(
                    expression_context(
                        expression, compiled.refs, self.request, self.stages_ctx, extra
                    )
                )
            except ExpressionError as exc:
                if required:
                    raise _DataError(f"missing required input {name!r}: {exc}") from None
        return inputs

    def map_outputs(self, srt: _StageRun, result: Any) -> Mapping[str, Any]:
        if result is None:
            result = {}
        elif not isinstance(result, Mapping):
            result = {"value": result}
        mappings = srt.cs.outputs
        if mappings is None:
            return result  # type: ignore[no-any-return]
        outputs: dict[str, Any] = {}
        context = {"result": result, "request": self.request}
        for name, compiled, required in mappings:
            try:
                outputs[name] = compiled.expression.evaluate(context)
            except ExpressionError as exc:
                if required:
                    raise _DataError(f"missing required output {name!r}: {exc}") from None
        return outputs

    def handler_for(self, stage: Stage) -> Handler:
        handler = self.handlers.get(stage.name)
        if handler is None:
            try:
                handler = self.engine._resolver_or_default().resolve(self.pipeline, stage)
            except Exception as exc:
                raise _DataError(f"cannot resolve loop {stage.loop!r}: {exc}") from exc
            self.handlers[stage.name] = handler
        return handler

    def retry_policy(self, stage: Stage) -> RetryPolicy | None:
        return stage.retry if stage.retry is not None else self.default_retry

    async def execute(self, srt: _StageRun, inst: _Instance) -> None:
        """Run every attempt of one instance; never raises (outcomes go to the run)."""
        engine = self.engine
        stage = srt.cs.stage
        timeout = stage.timeout if stage.timeout is not None else self.pipeline.timeout
        policy = self.retry_policy(stage)
        max_attempts = policy.max_attempts if policy is not None else 1
        ex = inst.executions[-1]
        try:
            while True:
                retry_now = False
                async with self.slots:
                    status, exception = await self.attempt(srt, inst, ex, timeout)
                    if status in _FAILED and engine._debugger is not None:
                        # A failure breakpoint: before the error strategy acts (engine/_debug.py)
                        retry_now = await engine._debugger.failed(self, srt, inst, ex)
                attempt = ex.attempt
                will_retry = retry_now or (
                    status in _FAILED
                    and attempt < max_attempts
                    and not isinstance(exception, _DataError)
                    and self.stopping is None
                )
                self.finished(
                    srt, inst, ex, status=status, exception=exception, will_retry=will_retry
                )
                if not will_retry:
                    _move(srt, inst, status)
                    break
                delay = 0.0 if retry_now or policy is None else policy.backoff.delay(attempt)
                _move(srt, inst, _RETRYING)
                if engine._observers:
                    self.emit(
                        StageRetrying(
                            self.run_id,
                            self.name,
                            srt.name,
                            inst.index,
                            attempt,
                            f"{srt.name}.{inst.index}.{attempt}",
                            delay,
                            ex.error or "",
                            ex.error_type or "",
                            engine._clock(),
                        )
                    )
                await engine._sleep(delay)
                ex = self.queue(srt, inst, attempt + 1)
        except asyncio.CancelledError:
            if inst.status is _CANCELLED:
                return  # stop() already ended this queued execution
            if inst.status is _QUEUED or inst.status is _RUNNING:
                ex = inst.executions[-1]
                self.finished(
                    srt,
                    inst,
                    ex,
                    status=_CANCELLED,
                    exception=None,
                    will_retry=False,
                    error=self.cancelled_error(),
                )
            _move(srt, inst, _CANCELLED)
        except Exception as exc:
            # A bug in the engine or an observer hook that escaped its guard: end the run
            # rather than leave it waiting forever for this instance.
            logger.exception("internal error in stage %r of run %s", srt.name, self.run_id)
            last = inst.executions[-1]
            last.status = _FAILURE
            last.error = redact_text(f"internal error: {exc!r}")
            last.error_type = type(exc).__qualname__
            inst.status = _FAILURE
            if self.stopping is None:
                self.first_failure = self.first_failure or f"stage {srt.name!r}: {last.error}"
                self.stop(RunStatus.FAILURE, self.first_failure, srt.name)
        self.instance_ended(srt, inst)

    async def attempt(
        self, srt: _StageRun, inst: _Instance, ex: _Exec, limit: float | None
    ) -> tuple[StageStatus, BaseException | None]:
        """One attempt, holding a worker slot. Returns its status and exception."""
        engine = self.engine
        stage = srt.cs.stage
        name = srt.name
        tid = f"{name}.{inst.index}.{ex.attempt}"
        data_error: _DataError | None = None
        inputs: Mapping[str, Any]
        try:
            inputs = self.resolve_inputs(srt, inst) if srt.cs.inputs else _EMPTY
        except _DataError as exc:
            inputs, data_error = {}, exc
        gate = engine._pause_gate
        paused = 0.0
        debugger = engine._debugger
        if gate is not None and (
            debugger is None or debugger.may_pause(self.run_id, name, inst.event)
        ):
            decision = await gate(
                StageGateRequest(
                    self.run_id,
                    self.name,
                    name,
                    inst.index,
                    ex.attempt,
                    tid,
                    stage.loop,
                    inputs,
                    inst.event,
                )
            )
            if decision is not None:
                paused = decision.paused
                if decision.skip:
                    return _SKIPPED, None
                if decision.inputs is not None:
                    inputs, data_error = decision.inputs, None
        _move(srt, inst, _RUNNING)
        now = engine._clock()
        ex.running = now
        ex.status = _RUNNING
        ex.started = True
        environment: Mapping[str, str] = _EMPTY
        if engine._observers:
            previous = TaskRunRef(name, inst.index, ex.attempt - 1) if ex.attempt > 1 else None
            started = StageStarted(
                self.run_id,
                self.name,
                name,
                inst.index,
                ex.attempt,
                tid,
                stage.loop,
                now,
                ex.queued,
                srt.considered_at if srt.considered_at is not None else self.started_at,
                inputs,
                inst.fired_by,
                previous,
                inst.triggers,
                inst.event,
                paused,
            )
            self.emit(started)
            if engine._env_hooks:
                environment = _LazyEnvironment(engine, started)
        if not srt.started:
            self.first_start(srt, now)
        if data_error is not None:
            return _FAILURE, self.failed(ex, data_error)
        context = StageContext(
            run_id=self.run_id,
            pipeline=self.name,
            stage=name,
            loop=stage.loop,
            instance=inst.index,
            attempt=ex.attempt,
            inputs=inputs,
            publish=_Publisher(self, srt, inst, ex),
            report_process=_ProcessReporter(self, name, tid),
            report_usage=_UsageReporter(ex),
            timeout=limit,
            event=inst.event,
            environment=environment,
            workspace=self.workspace,
            command=stage.command,
        )
        deadline = None
        # The handler's own code (its log records above all) knows which execution it serves.
        token = enter_execution(context)
        try:
            handler = self.handler_for(stage)
            if limit is None:  # no timeout: spare the Timeout object on the hot path
                result: Any = handler(context)
                if isawaitable(result):
                    result = await result
            else:
                deadline = asyncio.timeout(limit)
                async with deadline:
                    result = handler(context)
                    if isawaitable(result):
                        result = await result
            ex.outputs = self.map_outputs(srt, result)
        except TimeoutError as exc:
            if deadline is None or not deadline.expired():
                return _FAILURE, self.failed(ex, exc)
            ex.error = f"timed out after {limit:g}s"
            ex.error_type = "TimeoutError"
            return _TIMEOUT, exc
        except Exception as exc:
            return _FAILURE, self.failed(ex, exc)
        finally:
            leave_execution(token)
        return _SUCCESS, None

    @staticmethod
    def failed(ex: _Exec, exc: BaseException) -> BaseException:
        # The message reaches results, the CLI, /api and every view: never with a secret in it.
        ex.error = redact_text(str(exc)) or type(exc).__name__
        ex.error_type = "PipelineError" if isinstance(exc, _DataError) else type(exc).__qualname__
        return exc

    def finished(
        self,
        srt: _StageRun,
        inst: _Instance,
        ex: _Exec,
        *,
        status: StageStatus,
        exception: BaseException | None,
        will_retry: bool,
        error: str | None = None,
    ) -> None:
        # A failure breakpoint set ``ended`` when the handler failed: the pause is not run time.
        now = ex.ended if ex.ended is not None else self.engine._clock()
        ex.ended = now
        ex.status = status
        if error is not None and ex.error is None:
            ex.error = error
            ex.error_type = "CancelledError"
        cancelled = status is _CANCELLED and self.stopping is not None
        if cancelled:
            ex.cancel_cause = self.cancel_cause
        if self.engine._observers:
            self.emit(
                StageFinished(
                    self.run_id,
                    self.name,
                    srt.name,
                    inst.index,
                    ex.attempt,
                    f"{srt.name}.{inst.index}.{ex.attempt}",
                    status,
                    now,
                    ex.outputs,
                    ex.error,
                    ex.error_type,
                    exception,
                    will_retry,
                    ex.cpu,
                    ex.memory,
                    self.cancel_reason if cancelled else None,
                    ex.cancel_cause,
                )
            )

    def cancelled_error(self) -> str:
        """The error of an attempt a stop cancels: ``cancelled: <why>``."""
        return f"cancelled: {self.cancel_reason}" if self.cancel_reason else "cancelled"


def _move(srt: _StageRun, inst: _Instance, new: StageStatus) -> None:
    """Move an instance to ``new``, enforcing the stage state machine of ``state.py``."""
    if new not in STAGE_TRANSITIONS[inst.status]:
        raise InvalidTransitionError(
            f"stage {srt.name!r} instance {inst.index} cannot move from {inst.status} to {new}"
        )
    inst.status = new


class _DataError(PipelineError):
    """A data-flow error (missing input/output, unresolvable loop): never retried."""


class _Publisher:
    """``ctx.publish`` for one execution: only the stage's ``emits``."""

    __slots__ = ("ex", "inst", "run", "srt")

    def __init__(self, run: _Run, srt: _StageRun, inst: _Instance, ex: _Exec) -> None:
        self.run, self.srt, self.inst, self.ex = run, srt, inst, ex

    def __call__(self, event_type: str, payload: Mapping[str, Any]) -> None:
        emits = self.srt.cs.stage.emits
        if event_type not in emits:
            declared = ", ".join(emits) if emits else "none"
            raise PipelineError(
                f"stage {self.srt.name!r} cannot publish {event_type!r}: not in its emits "
                f"(declared: {declared})"
            )
        ref = TaskRunRef(self.srt.name, self.inst.index, self.ex.attempt)
        self.run.publish(event_type, payload, ref)


class _ProcessReporter:
    __slots__ = ("name", "run", "tid")

    def __init__(self, run: _Run, name: str, tid: str) -> None:
        self.run, self.name, self.tid = run, name, tid

    def __call__(self, pid: int) -> None:
        run = self.run
        if run.engine._observers:
            run.emit(
                StageProcess(run.run_id, run.name, self.name, self.tid, pid, run.engine._clock())
            )


class _UsageReporter:
    __slots__ = ("ex",)

    def __init__(self, ex: _Exec) -> None:
        self.ex = ex

    def __call__(self, cpu_seconds: float | None, peak_bytes: int | None) -> None:
        self.ex.cpu = cpu_seconds
        self.ex.memory = peak_bytes


class _LazyEnvironment(Mapping[str, str]):
    """A stage's extra environment, asked of the observers' ``stage_environment`` hooks on
    first read rather than when the stage starts: a handler that never reads it (most Python
    stages) never makes an observer settle its books on the run's critical path. Read it on
    the loop's thread (the ``python`` loop type resolves it before handing a context to a
    worker thread)."""

    __slots__ = ("_engine", "_event", "_resolved")

    def __init__(self, engine: Engine, event: StageStarted) -> None:
        self._engine = engine
        self._event = event
        self._resolved: dict[str, str] | None = None

    def _values(self) -> dict[str, str]:
        if self._resolved is None:
            self._resolved = self._engine._environment(self._event)
        return self._resolved

    def __getitem__(self, key: str) -> str:
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())
