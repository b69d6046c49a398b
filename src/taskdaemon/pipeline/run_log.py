"""Run logs: engine events turned into structured ``logging`` records tied to their spans.

The engine knows nothing of logging configuration or OTel: :class:`RunLog` is a hook of the
monitor (``PipelineMonitor.add_event_hook``), called on the monitor's worker thread after each
engine event is handled, with the span that event belongs to. It writes stdlib records, so they
reach every handler the process installed (console, the span store's log table, OTLP). Each
record carries ``run_id``, ``pipeline``, ``stage``, ``instance``, ``attempt``, ``trace_id``,
``span_id`` (the ones that apply; the run's span for run-level records), ``event`` (a dotted
name) and the fields below; its time is the event's, but for the end of an attempt that paused
at a failure breakpoint: that record is written when the pause is resumed, after the pause's
and the resumption's, so it takes the resumption's time, and ``logs`` reads the failure (the
pause's record names its error), the pause, the resumption and the outcome in that order, with
no time going back (the attempt's span still ends at the failure: a pause is not run time).

Levels (``TASKDAEMON_LOG_LEVEL`` / ``--log-level``), by logger:

* ``taskdaemon.run.lifecycle`` (INFO and up, the default level): run started / finished
  (ERROR when it failed, WARNING when cancelled); stage started, finished (ERROR on failure or
  timeout, WARNING when cancelled or retried), retried (WARNING, with ``delay_s``), skipped;
  an execution paused at a debugger's breakpoint and resumed (with who resumed it, how and
  after how long), and an input overridden there (WARNING, the new value): what a debugger did
  to a run is part of its history, or its logs would show a stage start late and run with an
  input its definition never gave it; a replay's fed execution (``replay.run``: its handler
  did not run, the record's outputs were returned) writes one record at its end in place of
  its start and end, ``stage a.0.1 replayed from run ID: success`` (``event``
  ``stage.replayed``, with ``status``, ``error_type``, ``replayed_from``, the recorded run's
  id, and ``replayed_attempts``; the end's level), so that its logs do not tell of work nobody
  did; ``success after 2 attempts`` when the record retried it, whose attempts the one fed
  execution stands for, and ``status`` the recorded one (the engine's may differ: a recorded
  cancellation is fed as a failure);
* ``taskdaemon.run.decision`` (DEBUG): each trigger evaluation (``trigger``, ``expression`` for
  CEL triggers, ``values`` it read, redacted, ``result``, ``stage_ready``); the wait for a worker
  slot (``wait_s``, on queueing and on start); the resolved data mappings (``inputs`` on start,
  ``outputs`` on success); approvals requested and resolved;
* ``taskdaemon.run.event`` (TRACE): every engine event, as its type and fields (an execution it
  refers to by its task run id, ``a.0.1``, as spans and the other records name it).

Values are redacted (``redaction.redact``) and cut to :data:`MAX_VALUE_CHARS` of JSON. Nothing
is computed for a level that is off (one ``isEnabledFor`` per event). How a record reaches its
handlers, as a ``logging`` record or a row straight to the span store's log writer, and when
those rows are handed over: ``run_log_emit``, the base class. A stage's start and end when
only lifecycle records are on: ``run_log_lean``, the lean path, between the two.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Final

from opentelemetry.trace import SpanContext

from taskdaemon.pipeline._record_queue import turn as _turn
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    BreakpointHit,
    BreakpointResumed,
    EngineEvent,
    InputOverridden,
    RunFinished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageRetrying,
    StageSkipped,
    StageStarted,
    TaskRunRef,
    TriggerEvaluated,
)
from taskdaemon.pipeline.log_levels import TRACE
from taskdaemon.pipeline.model import OnCondition, OnEvent, Pipeline
from taskdaemon.pipeline.payloads import shown_repr, value_text
from taskdaemon.pipeline.record_fields import fields as record_fields
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.redaction import redact
from taskdaemon.pipeline.run_log_lean import LeanRunLog, status_and_error
from taskdaemon.pipeline.run_log_scope import (
    DECISION_LOGGER,
    EVENT_LOGGER,
    LIFECYCLE_LOGGER,
    takes,
    wants,
)
from taskdaemon.pipeline.status_rules import is_failed

__all__ = ["DECISION_LOGGER", "EVENT_LOGGER", "LIFECYCLE_LOGGER", "MAX_VALUE_CHARS", "RunLog"]

#: JSON of a logged value (inputs, CEL values, event fields) is cut past this many characters.
MAX_VALUE_CHARS: Final = 2048

_lifecycle = logging.getLogger(LIFECYCLE_LOGGER)
_decision = logging.getLogger(DECISION_LOGGER)
_event = logging.getLogger(EVENT_LOGGER)


def _value(value: Any) -> str:
    """Redacted, bounded JSON of ``value``."""
    try:
        text = json.dumps(redact(value), default=_json_default, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        try:
            text = shown_repr(value)
        except RecursionError:
            text = f"<{type(value).__qualname__} nested without end>"
    return cut(text, MAX_VALUE_CHARS)


def _json_default(value: Any) -> str:
    """An execution an event refers to (``fired_by``, ``previous_attempt``, ``source``) as
    the task run id every span and record names it by, else the object's text: taskdaemon's
    own, never a handler's (``payloads.value_text``)."""
    if isinstance(value, TaskRunRef):
        return value.task_run_id
    return str(value) if type(value).__module__.startswith("taskdaemon.") else value_text(value)


class RunLog(LeanRunLog):
    """The monitor hook writing run logs (see the module docstring)."""

    def __init__(
        self, fed: Callable[[str, str, int], tuple[str, int, Any] | None] | None = None
    ) -> None:
        """``fed(run_id, stage, instance)``: when a replay feeds that execution from its record,
        the recorded status, the attempts the record made of it and its recorded inputs (None
        when it evaluated its own: a reused instance), else None (asked for the runs that are
        replays only; the monitor's span hook knows)."""
        super().__init__()
        self._fed = fed
        self._pipelines: dict[str, Pipeline] = {}
        # The runs under way that are replays: the id of the run each one replays.
        self._replays: dict[str, str] = {}
        # Executions paused at a failure, by (run id, task run id): None, then the time they
        # were resumed, which their end's record takes (module doc).
        self._failure_paused: dict[tuple[str, str], float | None] = {}

    def __call__(self, event: EngineEvent, span: SpanContext | None) -> None:
        """Write the records of ``event`` (never raises into the monitor: it guards hooks)."""
        if self._failure_paused and isinstance(event, StageFinished):
            at = self._failure_paused.pop((event.run_id, event.task_run_id), None)
            event = event if at is None else replace(event, at=at)
        token = _turn.token
        if token is not None:
            lean = self._lean
            if lean[0] is not token:
                lean = self._begin_turn(token)
            if lean[1] is not None:
                build = _LEAN.get(type(event))
                if build is not None:
                    build(self, lean[1], event, span)
                    return
        if isinstance(event, RunStarted):
            self._pipelines[event.run_id] = event.pipeline
            if event.replay_of is not None:
                self._replays[event.run_id] = event.replay_of
        if _event.isEnabledFor(TRACE):
            fields = {
                f.name: getattr(event, f.name)
                for f in record_fields(event)
                if f.name not in {"pipeline", "run_id", "exception"}
            }
            name = type(event).__name__
            self._emit(
                _event,
                TRACE,
                event,
                span,
                "engine event %s %s",
                (name, _value(fields)),
                {"event": f"engine.{name}"},
            )
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, span)
        if isinstance(event, RunFinished):
            self._pipelines.pop(event.run_id, None)
            self._replays.pop(event.run_id, None)

    def _general(self, event: StageStarted | StageFinished, span: SpanContext | None) -> None:
        """The lean path's fallback: ``event``'s record by its handler in ``_HANDLERS``."""
        _HANDLERS[type(event)](self, event, span)

    @staticmethod
    def takes(kind: type) -> bool:
        """Whether the monitor is to call this hook for records of type ``kind`` at the
        loggers' current levels (``run_log_scope.takes``; ``Recorder.handle`` asks once per
        turn of its queue, see the module doc)."""
        return takes(kind)

    @staticmethod
    def wants(kind: type) -> bool:
        """Whether a record of type ``kind`` may write a run log record at the loggers' current
        levels (``run_log_scope.wants``): the monitor does not queue a record that no part of
        it records and no hook wants (``PipelineMonitor.on_event``)."""
        return wants(kind)

    # -- records -------------------------------------------------------------------------------

    def _run_started(self, event: RunStarted, span: SpanContext | None) -> None:
        if _lifecycle.isEnabledFor(logging.INFO):
            self._emit(
                _lifecycle,
                logging.INFO,
                event,
                span,
                "run %s of %s started",
                (event.run_id, event.pipeline.name),
                {"event": "run.started", "started_by": event.started_by},
            )

    def _run_finished(self, event: RunFinished, span: SpanContext | None) -> None:
        status = str(event.status)
        level = {"failure": logging.ERROR, "cancelled": logging.WARNING}.get(status, logging.INFO)
        if _lifecycle.isEnabledFor(level):
            self._emit(
                _lifecycle,
                level,
                event,
                span,
                "run %s finished: %s",
                (event.run_id, status_and_error(status, event.error)),
                {"event": "run.finished", "status": status},
            )

    def _stage_queued(self, event: StageQueued, span: SpanContext | None) -> None:
        if _decision.isEnabledFor(logging.DEBUG):
            self._emit(
                _decision,
                logging.DEBUG,
                event,
                span,
                "%s waits for a worker slot",
                (event.task_run_id,),
                {"event": "slot.waiting"},
            )

    def _stage_started(self, event: StageStarted, span: SpanContext | None) -> None:
        if _decision.isEnabledFor(logging.DEBUG):
            wait = max(0.0, event.at - event.queued_at)
            self._emit(
                _decision,
                logging.DEBUG,
                event,
                span,
                "%s got a worker slot after %.3fs",
                (event.task_run_id, wait),
                {"event": "slot.acquired", "wait_s": round(wait, 6)},
            )
            replayed = self._replayed_from(event)
            given = None if replayed is None else replayed[3]  # a fed stage's evaluate nothing
            inputs = _value(dict(event.inputs) if given is None else given)
            self._emit(
                _decision,
                logging.DEBUG,
                event,
                span,
                "%s resolved inputs %s",
                (event.task_run_id, inputs),
                {"event": "inputs.resolved", "inputs": inputs},
            )
        if _lifecycle.isEnabledFor(logging.INFO) and self._replayed_from(event) is None:
            self._emit(
                _lifecycle,
                logging.INFO,
                event,
                span,
                "stage %s started (attempt %d)",
                (event.task_run_id, event.attempt),
                {"event": "stage.started", "loop": event.loop},
            )

    def _stage_finished(self, event: StageFinished, span: SpanContext | None) -> None:
        status = str(event.status)
        if is_failed(status):
            level = logging.WARNING if event.will_retry else logging.ERROR
        else:
            level = logging.WARNING if status == "cancelled" else logging.INFO
        if status == "success" and _decision.isEnabledFor(logging.DEBUG):
            outputs = _value(dict(event.outputs))
            self._emit(
                _decision,
                logging.DEBUG,
                event,
                span,
                "%s mapped outputs %s",
                (event.task_run_id, outputs),
                {"event": "outputs.mapped", "outputs": outputs},
            )
        if not _lifecycle.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "event": "stage.finished",
            "status": status,
            "error_type": event.error_type,
        }
        replayed = self._replayed_from(event)
        args: tuple[str, ...]
        if replayed is None:
            outcome = status_and_error(status, event.error)
            message, args = "stage %s finished: %s", (event.task_run_id, outcome)
        else:  # fed from the record: one record for its start and end (module doc)
            original, recorded, attempts, _inputs = replayed
            outcome = status_and_error(recorded, event.error)
            if attempts > 1:  # ``status_and_error`` begins with the status
                outcome = f"{recorded} after {attempts} attempts{outcome[len(recorded) :]}"
            message = "stage %s replayed from run %s: %s"
            args = (event.task_run_id, original, outcome)
            fields.update(
                event="stage.replayed",
                status=recorded,
                replayed_from=original,
                replayed_attempts=attempts,
            )
        self._emit(_lifecycle, level, event, span, message, args, fields)

    def _replayed_from(
        self, event: StageStarted | StageFinished
    ) -> tuple[str, str, int, Any] | None:
        """The id of the run a replay feeds this execution from, the recorded status, the
        attempts the record made of it and its recorded inputs (``__init__``); None when it
        runs."""
        original = self._replays.get(event.run_id) if self._replays else None
        if original is None or self._fed is None:
            return None
        recorded = self._fed(event.run_id, event.stage, event.instance)
        return None if recorded is None else (original, *recorded)

    def _stage_retrying(self, event: StageRetrying, span: SpanContext | None) -> None:
        if _lifecycle.isEnabledFor(logging.WARNING):
            self._emit(
                _lifecycle,
                logging.WARNING,
                event,
                span,
                "stage %s retried: attempt %d in %.3fs",
                (event.task_run_id, event.attempt + 1, event.delay),
                {"event": "stage.retrying", "delay_s": event.delay, "error_type": event.error_type},
            )

    def _stage_skipped(self, event: StageSkipped, span: SpanContext | None) -> None:
        if _lifecycle.isEnabledFor(logging.INFO):
            self._emit(
                _lifecycle,
                logging.INFO,
                event,
                span,
                "stage %s skipped: %s",
                (event.stage, event.reason),
                {"event": "stage.skipped"},
            )

    def _trigger_evaluated(self, event: TriggerEvaluated, span: SpanContext | None) -> None:
        if not _decision.isEnabledFor(logging.DEBUG):
            return
        fields: dict[str, Any] = {
            "event": "trigger.evaluated",
            "trigger": event.description,
            "trigger_type": event.trigger_type,
            "result": event.satisfied,
            "stage_ready": event.stage_ready,
        }
        expression = self._expression(event)
        if expression is not None:
            fields["expression"] = expression
        if event.values is not None:
            fields["values"] = _value(dict(event.values))
        self._emit(
            _decision,
            logging.DEBUG,
            event,
            span,
            "%s trigger %d (%s): %s (%s)",
            (
                event.stage,
                event.trigger_index,
                event.description,
                "satisfied" if event.satisfied else "not satisfied",
                event.detail,
            ),
            fields,
        )

    def _expression(self, event: TriggerEvaluated) -> str | None:
        pipeline = self._pipelines.get(event.run_id)
        stage = pipeline.stage_map.get(event.stage) if pipeline is not None else None
        if stage is None or not 0 <= event.trigger_index < len(stage.triggers):
            return None
        trigger = stage.triggers[event.trigger_index]
        if isinstance(trigger, OnCondition):
            return trigger.expression
        if isinstance(trigger, OnEvent):
            return trigger.filter
        return None

    def _approval_requested(self, event: ApprovalRequested, span: SpanContext | None) -> None:
        if _decision.isEnabledFor(logging.DEBUG):
            self._emit(
                _decision,
                logging.DEBUG,
                event,
                span,
                "%s asks for approval",
                (event.stage,),
                {"event": "approval.requested", "timeout_s": event.timeout},
            )

    def _approval_resolved(self, event: ApprovalResolved, span: SpanContext | None) -> None:
        if _decision.isEnabledFor(logging.DEBUG):
            how = "timed out" if event.timed_out else ("approved" if event.approved else "rejected")
            self._emit(
                _decision,
                logging.DEBUG,
                event,
                span,
                "%s approval %s%s",
                (event.stage, how, f" by {event.by}" if event.by else ""),
                {"event": "approval.resolved", "approved": event.approved, "by": event.by},
            )

    def _breakpoint_hit(self, event: BreakpointHit, span: SpanContext | None) -> None:
        if event.kind == "failure":
            self._failure_paused[event.run_id, event.task_run_id] = None
        if _lifecycle.isEnabledFor(logging.INFO):
            self._emit(
                _lifecycle,
                logging.INFO,
                event,
                span,
                "stage %s paused: %s%s",
                (event.task_run_id, event.reason, f": {event.error}" if event.error else ""),
                {"event": "breakpoint.hit", "kind": event.kind},
            )

    def _breakpoint_resumed(self, event: BreakpointResumed, span: SpanContext | None) -> None:
        if (event.run_id, event.task_run_id) in self._failure_paused:
            self._failure_paused[event.run_id, event.task_run_id] = event.at
        if _lifecycle.isEnabledFor(logging.INFO):
            self._emit(
                _lifecycle,
                logging.INFO,
                event,
                span,
                "stage %s resumed: %s by %s after %s",
                (event.task_run_id, event.action, event.by, format_duration(event.paused)),
                {
                    "event": "breakpoint.resumed",
                    "action": event.action,
                    "by": event.by,
                    "paused_s": event.paused,
                },
            )

    def _input_overridden(self, event: InputOverridden, span: SpanContext | None) -> None:
        # {name: value}, as the span event hashes it: a secret input's name redacts its value.
        if _lifecycle.isEnabledFor(logging.WARNING):
            self._emit(
                _lifecycle,
                logging.WARNING,
                event,
                span,
                "stage %s input overridden by %s: %s",
                (event.task_run_id, event.by, _value({event.name: event.new})),
                {"event": "input.overridden", "input": event.name, "by": event.by},
            )


_HANDLERS: Final[dict[type, Any]] = {
    RunStarted: RunLog._run_started,
    RunFinished: RunLog._run_finished,
    StageQueued: RunLog._stage_queued,
    StageStarted: RunLog._stage_started,
    StageFinished: RunLog._stage_finished,
    StageRetrying: RunLog._stage_retrying,
    StageSkipped: RunLog._stage_skipped,
    TriggerEvaluated: RunLog._trigger_evaluated,
    ApprovalRequested: RunLog._approval_requested,
    ApprovalResolved: RunLog._approval_resolved,
    BreakpointHit: RunLog._breakpoint_hit,
    BreakpointResumed: RunLog._breakpoint_resumed,
    InputOverridden: RunLog._input_overridden,
}

#: The records with a lean path, taken when neither TRACE nor DEBUG is on for the turn.
_LEAN: Final[dict[type, Any]] = {
    StageStarted: RunLog._lean_row,
    StageFinished: RunLog._lean_row,
}
