"""What a run span's events say of its stages, read in the order they happened: the approvals
they waited for, their latest trigger evaluations before they started, their pauses at
breakpoints (now, and the time paused), and the executions a stop cancelled, or the debugger
skipped, while paused before their start. Part of run reconstruction (``reconstruct``): a
stage that never started has no span, so the run span's events are all there is of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.records import (
    ApprovalWait,
    AttemptRecord,
    PausedBeforeStart,
    approval_waits,
    paused_before_start,
)
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.status_rules import HALTED_ACTIONS, execution_numbers, halted_executions
from taskdaemon.pipeline.tracking._attribute_values import (
    float_attribute,
    int_attribute,
    text_or_none,
)
from taskdaemon.pipeline.tracking.spans import SpanEventRecord, SpanRecord, epoch_seconds

__all__ = [
    "Cause",
    "Pause",
    "approval_waits_of",
    "halted_by_stops",
    "in_time_order",
    "latest_evaluations",
    "paused_before_start_of",
    "paused_executions",
    "seconds_paused",
]


def in_time_order(events: Iterable[SpanEventRecord]) -> list[SpanEventRecord]:
    """``events`` by time, then name: the order they happened in, whatever order the source
    gave them in (Jaeger sorts a span's events by name). What is read from several events (a
    sum of pauses, the latest stop's cause, events published in turn) is then the same from
    every source."""
    return sorted(events, key=lambda e: (e.time_ns, e.name))


def approval_waits_of(root: SpanRecord | None) -> tuple[ApprovalWait, ...]:
    """Every approval a stage waited for, by the run span's approval events; those still open
    are the stages awaiting an approval (``status_rules.awaiting_approval``)."""
    records = []
    for event in in_time_order(root.events) if root is not None else ():
        if event.name in (t.EVENT_APPROVAL_REQUESTED, t.EVENT_APPROVAL_RESOLVED):
            stage = event.attributes.get(t.CICD_TASK_NAME)
            if isinstance(stage, str):
                at = epoch_seconds(event.time_ns)
                records.append((stage, event.name == t.EVENT_APPROVAL_REQUESTED, at))
    return approval_waits(records)


def latest_evaluations(root: SpanRecord | None) -> dict[str, dict[int, bool]]:
    """Stage -> trigger index -> whether its latest ``trigger.evaluated`` on the run span held
    (a stage not started has no span of its own: its evaluations are on the run span)."""
    held: dict[str, dict[int, bool]] = {}
    for event in in_time_order(root.events) if root is not None else ():
        if event.name == t.EVENT_TRIGGER_EVALUATED:
            stage = event.attributes.get(t.CICD_TASK_NAME)
            index = int_attribute(event.attributes.get(t.TRIGGER_INDEX))
            if isinstance(stage, str) and index is not None:
                satisfied = event.attributes.get(t.TRIGGER_SATISFIED) is True
                held.setdefault(stage, {})[index] = satisfied
    return held


class Pause(NamedTuple):
    """An execution paused now, as its ``breakpoint.hit`` event says: its stage, a failure
    pause's error, when it paused and the breakpoint's reason."""

    stage: str
    error: str | None
    since: float
    reason: str


def paused_executions(root: SpanRecord) -> dict[str, Pause]:
    """Task run id -> its pause, of each execution whose latest breakpoint event on the run
    span is ``breakpoint.hit`` (paused now; docs/debugging.md, "Spans"), in the order they
    paused. The error is a failure pause's: its attempt failed, but its span ends only when it
    resumes, so the hit event is where the record finds why it paused."""
    latest: dict[str, Pause | None] = {}
    for event in in_time_order(root.events):
        if event.name in (t.EVENT_BREAKPOINT_HIT, t.EVENT_BREAKPOINT_RESUMED):
            trid = event.attributes.get(t.CICD_TASK_RUN_ID)
            stage = event.attributes.get(t.CICD_TASK_NAME)
            if not (isinstance(trid, str) and isinstance(stage, str)):
                continue
            latest.pop(trid, None)  # a pause again is in the order it paused last
            if event.name == t.EVENT_BREAKPOINT_HIT:
                error = text_or_none(event.attributes.get(t.STAGE_ERROR_MESSAGE))
                reason = redact_text(str(event.attributes.get(t.BREAKPOINT_REASON, "")))
                latest[trid] = Pause(stage, error, epoch_seconds(event.time_ns), reason)
    return {trid: pause for trid, pause in latest.items() if pause is not None}


def paused_before_start_of(
    pauses: Iterable[tuple[str, Pause]], attempts: tuple[AttemptRecord, ...]
) -> tuple[PausedBeforeStart, ...]:
    """The stage's executions paused now before their start: paused, with no span among its
    ``attempts`` (its span starts when it does), instance and attempt read from the task run
    id (``status_rules.execution_numbers``)."""
    started = {attempt.task_run_id for attempt in attempts}
    held: dict[str, tuple[int, int, float, str] | None] = {}
    for trid, pause in pauses:
        numbers = None if trid in started else execution_numbers(pause.stage, trid)
        if numbers is not None:
            held[trid] = (*numbers, pause.since, pause.reason)
    return paused_before_start(held)


def seconds_paused(root: SpanRecord | None) -> dict[str, float]:
    """Task run id -> seconds it was paused at breakpoints, summed over the run span's
    ``breakpoint.resumed`` events."""
    totals: dict[str, float] = {}
    for event in in_time_order(root.events) if root is not None else ():
        if event.name == t.EVENT_BREAKPOINT_RESUMED:
            trid = event.attributes.get(t.CICD_TASK_RUN_ID)
            seconds = float_attribute(event.attributes.get(t.BREAKPOINT_PAUSED))
            if isinstance(trid, str) and seconds is not None:
                totals[trid] = totals.get(trid, 0.0) + seconds
    return totals


Cause = tuple[str | None, str | None]  # (cancel reason, cancel cause)


def halted_by_stops(
    root: SpanRecord | None, spans: Iterable[SpanRecord]
) -> tuple[dict[str, dict[str, tuple[int, str]]], dict[str, Cause]]:
    """Stage -> {task run id: (instance, status)} of the executions a stop cancelled, or the
    debugger skipped, while paused before their start: the run span's ``breakpoint.resumed``
    events (``status_rules.halted_executions``) naming an execution none of ``spans`` is of; and
    stage -> (reason, cause) of the stop that cancelled the latest of them, as its event says
    (``taskdaemon.stage.cancel_reason``, ``.cancel_cause``). The execution spans are looked at
    only when such an event exists (most runs have none)."""
    if root is None:
        return {}, {}
    resumptions = []
    why: dict[str, Cause] = {}  # task run id -> the stop's reason and cause
    for event in in_time_order(root.events):
        if event.name == t.EVENT_BREAKPOINT_RESUMED:
            attrs = event.attributes
            stage = attrs.get(t.CICD_TASK_NAME)
            trid = attrs.get(t.CICD_TASK_RUN_ID)
            action = attrs.get(t.BREAKPOINT_ACTION)
            if isinstance(stage, str) and isinstance(trid, str) and action in HALTED_ACTIONS:
                resumptions.append((stage, trid, action))
                reason = text_or_none(attrs.get(t.STAGE_CANCEL_REASON))
                cause = text_or_none(attrs.get(t.STAGE_CANCEL_CAUSE))
                if reason or cause:
                    why[trid] = (reason, cause)
    if not resumptions:
        return {}, {}
    started = {
        trid
        for span in spans
        if span is not root and isinstance(trid := span.attributes.get(t.CICD_TASK_RUN_ID), str)
    }
    halted = halted_executions(resumptions, started)
    causes = {
        stage: why[trid]
        for stage, executions in halted.items()
        for trid in executions
        if trid in why
    }
    return halted, causes
