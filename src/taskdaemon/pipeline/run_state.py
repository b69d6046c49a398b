"""The event reducer: the one model of a run's state that every view shares.

``apply(state, event) -> state`` folds engine events into a :class:`RunState` whose
:meth:`RunState.record` is the same frozen ``RunRecord`` that ``tracking.reconstruct_run``
rebuilds from the run's spans, timings aside (a property test holds the two to that, field by
field), so that the views that show a run (the live watcher, the server, the monitor, span
reconstruction, reports) cannot disagree. Both sides decide what a status means by the rules of
``status_rules`` (which statuses failed, the precedence over a stage's instances, the approval
rule, how an execution stopped before its start ends).

A few fields only the span side knows: ``AttemptRecord.span_id`` (``""`` here),
``RunRecord.attributes`` (the raw run-span attributes; empty here), the measured CPU time of
in-process stages, and payload text unless the state was given the same encoder the monitor
uses (``payloads=``).

While a run is open the live record is finer than the stored one: spans cannot show a stage that
is ``queued`` or ``waiting`` for its triggers (stored records say ``pending`` unless it waits for
an approval), so the live record says so and the stored one catches up when the run ends. A
stage the run's end caught waiting for a retry is ``cancelled`` in both, and so is one a stop
cancelled while it was paused before its start (``status_rules.halted_executions``; an
execution skipped there is ``skipped`` alike).

The state is mutable and ``apply`` returns the state it was given: copying the books on every
event would cost O(stages) per event on the engine's thread. Take :meth:`RunState.record` for a
frozen snapshot. Pure: no I/O, no clocks, no OpenTelemetry. The rules and the reasons for them
are in docs/run-state.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from taskdaemon.pipeline.durations import epoch_ns
from taskdaemon.pipeline.foreign_text import handler_error_text
from taskdaemon.pipeline.masked_values import MASKED
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.run_state_books import AttemptBook, StageBook, again
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.status_rules import (
    FAILED_STAGE_STATUSES,
    HALTED_ACTIONS,
    OTHER_ERROR_TYPE,
    awaiting_approval,
    exception_type_name,
    failure_error_type,
    not_reached_reason,
)
from taskdaemon.pipeline.telemetry import PIPELINE_SCHEDULED_AT

if TYPE_CHECKING:  # readers of stored runs import this module: it must not load the engine's model
    from taskdaemon.pipeline.events import (
        ApprovalRequested,
        ApprovalResolved,
        BreakpointHit,
        BreakpointResumed,
        EngineEvent,
        RunFinished,
        RunStarted,
        StageFinished,
        StageQueued,
        StageRetrying,
        StageSkipped,
        StageStarted,
        StageWaiting,
        TriggerEvaluated,
    )
    from taskdaemon.pipeline.model import Pipeline

    # The engine imports this module for its status rules before its first stage starts; the
    # record classes are built only when a run is read (``frozen``, ``record``): imported there.
    from taskdaemon.pipeline.records import EdgeRecord, RunRecord

__all__ = [
    "RunState",
    "apply",
]

PayloadText = Callable[[Mapping[str, Any]], str | None]


class RunState:
    """The state of one run as its engine events describe it (see the module docstring).

    ``payloads`` turns a stage's inputs or outputs into the text a record keeps (the monitor's
    capture); without it records carry no payloads.
    """

    # fmt: off
    __slots__ = ("_approval_log", "_changed", "_masked", "_stages", "_whole_at", "end", "error",
        "error_type", "payloads", "pipeline", "pipeline_name", "replay_of", "run_id",
        "scheduled_at", "start", "started_by", "status", "version")
    # fmt: on

    def __init__(
        self,
        run_id: str,
        pipeline_name: str,
        *,
        start: float = 0.0,
        payloads: PayloadText | None = None,
    ) -> None:
        self.run_id = run_id
        self.pipeline_name = pipeline_name
        self.pipeline: Pipeline | None = None
        self.status: str = RunStatus.RUNNING.value
        self.start = start
        self.end: float | None = None
        self.started_by: str | None = None
        self.error: str | None = None
        self.error_type: str | None = None
        self.replay_of: str | None = None
        self.scheduled_at: float | None = None  # ``RunStarted.scheduled_at``
        self.payloads = payloads
        self._stages: dict[str, StageBook] = {}
        self._approval_log: list[tuple[str, bool, float]] = []  # (stage, is_request, at)
        # ``MASKED.generation`` the texts kept were redacted under (see ``record``).
        self._masked = MASKED.generation
        # What changed since a version (``changed_since``): events applied and re-maskings so
        # far, each stage's last change (oldest first), and the last change of any stage.
        self.version = 0
        self._changed: dict[str, int] = {}
        self._whole_at = 0

    @property
    def finished(self) -> bool:
        """True once the run ended."""
        return self.end is not None

    @property
    def awaiting_approval(self) -> frozenset[str]:
        """The stages waiting for an approval now (none once the run ended)."""
        from taskdaemon.pipeline.records import approval_waits  # noqa: PLC0415 - see the top

        if self.finished:
            return frozenset()
        return awaiting_approval(approval_waits(self._approval_log))

    def apply(self, event: EngineEvent) -> RunState:
        """Fold one event of this run into the state; return the state."""
        name = type(event).__name__
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, event)
            self.version += 1
            stage = getattr(event, "stage", None)
            if name in _ANY_STAGE or not isinstance(stage, str):
                self._whole_at = self.version
            else:
                self._changed.pop(stage, None)
                self._changed[stage] = self.version
        return self

    def changed_since(self, version: int) -> frozenset[str] | None:
        """The stages whose record may differ from what it was at ``version`` (a ``version``
        read before); None when any may (the run started or ended, texts were masked again).

        The stages changed last are found first and the walk stops at the first one not
        changed since: its cost is the number of stages changed, not the run's."""
        if version < self._whole_at or MASKED.generation != self._masked:
            return None
        names = []
        for name in reversed(self._changed):
            if self._changed[name] <= version:
                break
            names.append(name)
        return frozenset(names)

    def record(self, stages: frozenset[str] | None = None) -> RunRecord:
        """A frozen ``RunRecord`` of the state now; with ``stages``, holding only those stages
        (known to the state) and their approval waits, and no edges: what changed of the run,
        its run-level fields whole (``changed_since``).

        Each text is redacted once, as its event arrives; a value known as a secret since (a
        stage returned it under ``token``) was not masked in the texts kept before, the
        triggers among them, so they are redacted again, once per change of what is known
        (``MASKED.generation``), as the stored rows are (``tracking/_remask``)."""
        from taskdaemon.pipeline.records import (  # noqa: PLC0415
            EdgeRecord,
            RunRecord,
            approval_waits,
        )

        masked = MASKED.generation  # read first: a value learnt meanwhile is masked next time
        if masked != self._masked:
            self.error = again(self.error)
            for stage in self._stages.values():
                stage.mask_again()
            self._masked = masked
            self.version += 1
            self._whole_at = self.version

        names = list(self._stages)
        edges: tuple[EdgeRecord, ...] = ()
        approvals = self._approval_log
        if stages is not None:
            names = [name for name in stages if name in self._stages]
            approvals = [entry for entry in approvals if entry[0] in stages]
        elif self.pipeline is not None:
            defined = [stage.name for stage in self.pipeline.stages]
            known = set(defined)
            names = defined + [name for name in names if name not in known]
            edges = tuple(EdgeRecord(e.source, e.target, e.label) for e in self.pipeline.edges)
        return RunRecord(
            run_id=self.run_id,
            pipeline=self.pipeline_name,
            status=self.status,
            start=self.start,
            end=self.end,
            stages=tuple(self._stages[name].frozen(name) for name in names),
            edges=edges,
            definition_hash=self.pipeline.definition_hash if self.pipeline else None,
            started_by=self.started_by,
            error=self.error,
            error_type=self.error_type,
            replay_of=self.replay_of,
            # What a view reads of the run span's attributes before the span is stored: the
            # scheduled time (``landing``), as the monitor writes it.
            attributes={}
            if self.scheduled_at is None
            else {PIPELINE_SCHEDULED_AT: epoch_ns(self.scheduled_at)},
            approvals=approval_waits(approvals),
        )

    # --- event handlers ---------------------------------------------------------------------

    def _stage(self, name: str) -> StageBook:
        stage = self._stages.get(name)
        if stage is None:
            stage = self._stages[name] = StageBook()
        return stage

    def _payload(self, value: Mapping[str, Any]) -> str | None:
        if self.payloads is None:
            return None
        text = self.payloads(value)
        return None if text is None else redact_text(text)

    def _run_started(self, event: RunStarted) -> None:
        # Imported here: readers of stored runs (``runs list``) never need it, nor its orjson.
        from taskdaemon.pipeline.telemetry_codec import trigger_record  # noqa: PLC0415

        pipeline = event.pipeline
        self.pipeline = pipeline
        self.pipeline_name = pipeline.name
        self.start = event.at
        self.started_by = event.started_by
        self.replay_of = event.replay_of
        self.scheduled_at = event.scheduled_at
        for definition in pipeline.stages:
            stage = self._stage(definition.name)
            stage.loop = definition.loop
            stage.trigger_specs = tuple(map(trigger_record, definition.triggers))
            stage.triggers = tuple(trigger.description for trigger in stage.trigger_specs)
            stage.upstream = tuple(pipeline.upstream.get(definition.name, ()))
            stage.trigger_mode = str(definition.trigger_mode)

    def _run_finished(self, event: RunFinished) -> None:
        status = str(event.status)
        for stage in self._stages.values():
            stage.queued.clear()
            stage.stopped = {instance for instance, _ in stage.retrying}
            stage.retrying.clear()
            stage.paused.clear()
            for attempt in stage.attempts.values():
                if attempt.end is None:  # ended as cancelled, without an error (the monitor's)
                    attempt.status = StageStatus.CANCELLED.value
                    attempt.end = event.at
            if not stage.attempts and not stage.halted and stage.status != StageStatus.SKIPPED:
                stage.status = StageStatus.SKIPPED.value
                stage.skip_reason = not_reached_reason(status)
        self.status = status
        self.end = event.at
        if event.status is RunStatus.FAILURE:
            self.error_type = event.error_type or OTHER_ERROR_TYPE
            self.error = redact_text(event.error or self.error_type)
        elif event.status is RunStatus.CANCELLED and event.error:
            self.error = redact_text(event.error)  # who cancelled, as the run span keeps it

    def _stage_waiting(self, event: StageWaiting | ApprovalRequested) -> None:
        stage = self._stage(event.stage)
        if stage.status == StageStatus.PENDING:
            stage.status = StageStatus.WAITING.value

    def _approval_requested(self, event: ApprovalRequested) -> None:
        self._stage_waiting(event)
        self._approval_log.append((event.stage, True, event.at))

    def _trigger_evaluated(self, event: TriggerEvaluated) -> None:
        self._stage(event.stage).held[event.trigger_index] = event.satisfied

    def _approval_resolved(self, event: ApprovalResolved) -> None:
        self._approval_log.append((event.stage, False, event.at))

    def _stage_queued(self, event: StageQueued) -> None:
        stage = self._stage(event.stage)
        stage.queued.add(event.task_run_id)
        stage.seen_queued.add(event.task_run_id)
        stage.retrying.discard((event.instance, event.attempt - 1))

    def _stage_started(self, event: StageStarted) -> None:
        stage = self._stage(event.stage)
        stage.loop = event.loop
        stage.queued.discard(event.task_run_id)
        stage.seen_queued.discard(event.task_run_id)
        stage.attempts[event.task_run_id] = AttemptBook(
            task_run_id=event.task_run_id,
            instance=event.instance,
            attempt=event.attempt,
            start=event.at,
            queue_time=max(0.0, event.at - event.queued_at - event.paused),
            # The first attempt's only, as on the spans (``monitor/_worker._trigger_wait``).
            trigger_wait=(
                max(0.0, event.queued_at - event.considered_at) if event.attempt == 1 else None
            ),
            inputs=None if self.payloads is None else self._payload(event.inputs),
            paused_time=stage.paused_time.get(event.task_run_id),
        )

    def _stage_finished(self, event: StageFinished) -> None:
        stage = self._stage(event.stage)
        stage.queued.discard(event.task_run_id)
        attempt = stage.attempts.get(event.task_run_id)
        if attempt is None:
            if event.task_run_id in stage.seen_queued:
                # Ended before it started (cancelled while queued): it never ran, and has no
                # span. A retry so ended leaves its instance where the spans leave it: its
                # last attempt failed with ``will_retry`` (``reconstruct._retry_status``).
                if event.attempt > 1:
                    stage.retrying.add((event.instance, event.attempt - 1))
                return
            # Started before this state saw the run: keep what can be known of it.
            attempt = AttemptBook(event.task_run_id, event.instance, event.attempt, event.at)
            stage.attempts[event.task_run_id] = attempt
        if attempt.end is not None:
            return
        status = str(event.status)
        attempt.status = status
        attempt.end = event.at
        attempt.cpu_seconds = event.cpu_seconds
        attempt.peak_memory_bytes = event.peak_memory_bytes
        attempt.cancel_reason = event.cancel_reason or None
        attempt.cancel_cause = event.cancel_cause or None
        if status in FAILED_STAGE_STATUSES:
            attempt.error_type = failure_error_type(status, event.exception, event.error_type)
            attempt.error = redact_text(event.error or attempt.error_type)
        else:
            exception = event.exception
            message = handler_error_text(exception) if exception is not None else ""
            if status == StageStatus.CANCELLED and attempt.cancel_reason:
                message = f"cancelled: {attempt.cancel_reason}"
            attempt.error = redact_text(message) if message else None
            attempt.error_type = None if exception is None else exception_type_name(exception)
        if status == StageStatus.SUCCESS and self.payloads is not None:
            attempt.outputs = self._payload(event.outputs)
        if event.will_retry:
            stage.retrying.add((event.instance, event.attempt))

    def _stage_retrying(self, event: StageRetrying) -> None:
        self._stage(event.stage).retrying.add((event.instance, event.attempt))

    def _stage_skipped(self, event: StageSkipped) -> None:
        stage = self._stage(event.stage)
        if stage.attempts or stage.status == StageStatus.SKIPPED:
            return  # the first reason wins; a stage that ran keeps its attempts' status
        stage.status = StageStatus.SKIPPED.value
        stage.skip_reason = event.reason
        stage.skip_cause = (event.cancel_reason or None, event.cancel_cause or None)

    def _breakpoint_hit(self, event: BreakpointHit) -> None:
        stage = self._stage(event.stage)
        attempt = stage.attempts.get(event.task_run_id)
        held = (event.instance, event.attempt, event.at, redact_text(event.reason))
        stage.paused[event.task_run_id] = None if attempt is not None else held
        if attempt is not None:  # a failure pause: since when, and why before its end says it
            attempt.paused_since = event.at
            if event.error:
                attempt.error = redact_text(event.error)
        if not self.finished:
            self.status = RunStatus.PAUSED.value  # while anything in it is paused

    def _breakpoint_resumed(self, event: BreakpointResumed) -> None:
        stage = self._stage(event.stage)
        stage.paused.pop(event.task_run_id, None)
        total = stage.paused_time.get(event.task_run_id, 0.0) + float(event.paused)
        stage.paused_time[event.task_run_id] = total
        attempt = stage.attempts.get(event.task_run_id)
        if attempt is not None:
            attempt.paused_time = total
        elif event.action in HALTED_ACTIONS:  # paused before its start, then ended
            stage.halted[event.task_run_id] = (event.instance, HALTED_ACTIONS[event.action])
            if event.cancel_reason or event.cancel_cause:
                stage.halted_cause = (event.cancel_reason or None, event.cancel_cause or None)
        if self.status == RunStatus.PAUSED and not any(s.paused for s in self._stages.values()):
            self.status = RunStatus.RUNNING.value


#: Events that may change any stage's record (``RunState.changed_since``).
_ANY_STAGE: Final = frozenset({"RunStarted", "RunFinished"})

# Keyed by the event's class name: importing the event classes would load the engine's model
# (and CEL) into every reader of history, which needs only the vocabulary above.
_HANDLERS: Final[Mapping[str, Callable[[RunState, Any], None]]] = {
    "RunStarted": RunState._run_started,
    "RunFinished": RunState._run_finished,
    "StageWaiting": RunState._stage_waiting,
    "TriggerEvaluated": RunState._trigger_evaluated,
    "ApprovalRequested": RunState._approval_requested,
    "ApprovalResolved": RunState._approval_resolved,
    "StageQueued": RunState._stage_queued,
    "StageStarted": RunState._stage_started,
    "StageFinished": RunState._stage_finished,
    "StageRetrying": RunState._stage_retrying,
    "StageSkipped": RunState._stage_skipped,
    "BreakpointHit": RunState._breakpoint_hit,
    "BreakpointResumed": RunState._breakpoint_resumed,
}


def apply(
    state: RunState | None, event: EngineEvent, *, payloads: PayloadText | None = None
) -> RunState:
    """Fold ``event`` into ``state`` (a new state for the run when ``None``) and return it.

    A state begun from a later event than ``RunStarted`` (an observer attached mid-run) starts
    at that event's time and builds what it can.
    """
    if state is None:
        pipeline = event.pipeline  # RunStarted carries the definition, the others its name
        name = pipeline if isinstance(pipeline, str) else pipeline.name
        state = RunState(event.run_id, name, start=event.at, payloads=payloads)
    return state.apply(event)
