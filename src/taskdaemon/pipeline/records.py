"""Frozen snapshots of runs as rebuilt from spans: what history, reports, renderers and replay read.

``tracking.reconstruct_run`` builds them from the spans of one trace; any span source (SQLite
store, Tempo, Jaeger, OTLP-JSON files) gives the same record for the same spans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from taskdaemon.pipeline.frozen import field, frozen
from taskdaemon.pipeline.landing import late_by
from taskdaemon.pipeline.value_methods import ValueMethods

__all__ = [
    "ApprovalWait",
    "AttemptRecord",
    "EdgeRecord",
    "PausedBeforeStart",
    "RunRecord",
    "RunSummary",
    "StageRecord",
    "TriggerRecord",
    "approval_waits",
    "lasted_at_least",
    "outcome_error",
    "paused_before_start",
    "stage_cancel_cause",
    "stage_error",
    "triggers_held",
]


@frozen
class AttemptRecord(ValueMethods):
    """One execution (attempt of one instance) of a stage. Times are epoch seconds."""

    task_run_id: str
    instance: int
    attempt: int
    status: str  # a StageStatus value, or "running" / "paused" / "interrupted" while open
    start: float
    end: float | None
    queue_time: float | None = None
    trigger_wait: float | None = None
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    inputs: str | None = None  # captured JSON text (capped, redacted)
    outputs: str | None = None
    error: str | None = None
    error_type: str | None = None
    span_id: str = ""
    # A stop of the run cancelled this attempt: why, and the stage whose failure stopped it.
    cancel_reason: str | None = None
    cancel_cause: str | None = None
    # Seconds this execution was paused at debugger breakpoints; None when it never was.
    paused_time: float | None = None
    # When this open attempt paused at its failure (a ``failure`` breakpoint): it ran until
    # then, and the timeline draws it so. None unless it is paused there now.
    paused_since: float | None = None
    # Fed by a replay from its record: the attempts the record made, which it stands for, and
    # the status the record gave it, which the replay's run took as the stage's outcome.
    replayed_attempts: int | None = None
    replayed_status: str | None = None
    # Read from the spans for the report's critical path (``reporting._stats``), not compared
    # (a live record, built from the engine's own records, has neither): the span ids of the
    # executions its ``triggered_by`` links name, and the (time, event type) of each
    # ``pipeline.event.published`` event on its span.
    triggered_by: tuple[str, ...] = field(default=(), compare=False, repr=False)
    published: tuple[tuple[float, str], ...] = field(default=(), compare=False, repr=False)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, None while open."""
        return None if self.end is None else max(0.0, self.end - self.start)

    @property
    def attempts_made(self) -> int:
        """The attempts this execution counts for in every view's ATTEMPTS: its number, or the
        record's attempts when a replay fed it (its one execution stands for them; a 1 would
        say the original never retried: docs/architecture.md, "Command line")."""
        return self.replayed_attempts or self.attempt


@frozen
class TriggerRecord(ValueMethods):
    """One trigger of a stage as a reader knows it: only the fields of its ``kind`` are set.

    ``kind`` is a trigger kind of the model (``on_completion``, ``on_event``, ``on_condition``,
    ``manual``) or ``unknown`` when the spans carry a trigger no reader understands; then only
    ``description`` (the ``describe()`` text, for people) is known.
    """

    kind: str
    description: str
    stage: str | None = None
    success_only: bool | None = None
    event_type: str | None = None
    filter: str | None = None
    expression: str | None = None
    approval_required: bool | None = None
    timeout: float | None = None


@frozen
class PausedBeforeStart(ValueMethods):
    """An execution paused at a breakpoint before its start, and still paused: it has no
    attempt yet (its span starts when it does), so without this a view that draws a row per
    attempt would show nothing of it while a user waits on it. ``since`` is when it paused
    (epoch seconds); ``reason`` is the breakpoint's, as its ``breakpoint.hit`` says it
    (``#1 before build``, ``step``, ``event spec.ready``)."""

    task_run_id: str
    instance: int
    attempt: int
    since: float
    reason: str


@frozen
class StageRecord(ValueMethods):
    """A stage of the run with every execution it had (none when it never ran)."""

    name: str
    loop: str
    status: str  # final status of the stage: its last attempt's, or "skipped"
    attempts: tuple[AttemptRecord, ...] = ()
    triggers: tuple[str, ...] = ()  # descriptions, for people
    upstream: tuple[str, ...] = ()
    skip_reason: str | None = None
    trigger_mode: str | None = None  # "any" | "all" as the spans record it; None if unknown
    # Why a stop of the run cancelled (or skipped) this stage, and the stage that caused it.
    cancel_reason: str | None = None
    cancel_cause: str | None = None
    # The triggers themselves, aligned with ``triggers``; empty when whoever built the record
    # knew only the descriptions (renderers then read those).
    trigger_specs: tuple[TriggerRecord, ...] = ()
    # The positions (in ``triggers``) of the triggers whose latest evaluation held while the
    # stage had not started, in order: what it no longer waits for. Empty once it started.
    triggers_held: tuple[int, ...] = ()
    # Its executions paused now before their start, in the order they paused (see the class).
    paused_before_start: tuple[PausedBeforeStart, ...] = ()


def paused_before_start(
    paused: Mapping[str, tuple[int, int, float, str] | None],
) -> tuple[PausedBeforeStart, ...]:
    """``StageRecord.paused_before_start`` from task run id -> ``(instance, attempt, since,
    reason)`` of each execution paused now, in the order they paused: None for one paused after
    it started (at a failure), which its attempt shows."""
    return tuple(
        PausedBeforeStart(task_run_id, *held)
        for task_run_id, held in paused.items()
        if held is not None
    )


def triggers_held(latest: Mapping[int, bool]) -> tuple[int, ...]:
    """``StageRecord.triggers_held`` of a stage not started, from whether each trigger's
    latest evaluation held (by position)."""
    return tuple(sorted(index for index, held in latest.items() if held))


@frozen
class EdgeRecord(ValueMethods):
    """A DAG edge as recorded on the spans, with its trigger label (``model.Edge.label``:
    ``on completion``, ``on completion\n(any result)`` or ``on event\n{type}``; empty when
    the spans do not say). The trigger itself is the target stage's (``StageRecord.
    trigger_specs``)."""

    source: str
    target: str
    label: str


@frozen
class ApprovalWait(ValueMethods):
    """A stage's wait for a manual approval: from its request to its resolution (granted,
    rejected or timed out), ``resolved`` None while it still waits."""

    stage: str
    requested: float
    resolved: float | None = None


def approval_waits(records: Iterable[tuple[str, bool, float]]) -> tuple[ApprovalWait, ...]:
    """The approval waits of ``(stage, is_request, time)`` approval records in time order: each
    request until the next resolution of its stage (a resolution with no request open is
    dropped)."""
    waits: list[ApprovalWait] = []
    open_at: dict[str, int] = {}  # stage -> index in waits of its open request
    for stage, is_request, at in records:
        if is_request:
            if stage not in open_at:
                open_at[stage] = len(waits)
                waits.append(ApprovalWait(stage, at))
        elif stage in open_at:
            index = open_at.pop(stage)
            waits[index] = ApprovalWait(stage, waits[index].requested, at)
    return tuple(waits)


@frozen
class RunRecord(ValueMethods):
    """A whole run rebuilt from its spans. ``events_not_read`` / ``links_not_read`` /
    ``attributes_not_read``: span events, links and attributes its spans' source held past
    what a reader keeps of a span (``tracking.spans.bounded``); ``*_dropped_when_written``:
    the events, links and attributes the SDK that recorded the spans dropped past its span
    limits, so that no source holds them (``tracking.spans``, "Dropped when written"). Every
    view of the run mentions each when not zero."""

    run_id: str
    pipeline: str
    status: str  # success | failure | cancelled | running | interrupted
    start: float
    end: float | None
    stages: tuple[StageRecord, ...]
    edges: tuple[EdgeRecord, ...]
    definition_hash: str | None = None
    started_by: str | None = None
    error: str | None = None
    error_type: str | None = None
    replay_of: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events_not_read: int = 0
    links_not_read: int = 0
    # Every approval a stage waited for, in request order (the web page's timeline draws them).
    approvals: tuple[ApprovalWait, ...] = ()
    events_dropped_when_written: int = 0
    links_dropped_when_written: int = 0
    attributes_dropped_when_written: int = 0
    attributes_not_read: int = 0
    # An interrupted run: the last sign of life of the process that ran it (its span writer's
    # last heartbeat, or its latest stored record); the process died after it. Else None.
    last_seen: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, None while running."""
        return None if self.end is None else max(0.0, self.end - self.start)

    @property
    def lasted_at_least(self) -> float | None:
        """An interrupted run's duration as far as it is known: seconds from its start to its
        process's last sign of life (``last_seen``); None for any other run."""
        return lasted_at_least(self.start, self.last_seen)

    def stage(self, name: str) -> StageRecord:
        """The stage called ``name``; KeyError if the run has none."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


@frozen
class RunSummary(ValueMethods):
    """One row of the run history (``taskdaemon runs list``); ``replay_of``: the run this one
    replays (``RunRecord.replay_of``), None for a run that is no replay; ``scheduled_at``: the
    epoch seconds a schedule meant the run to start at (``landing.scheduled_at``), None for a
    run no schedule started; ``last_seen``: an interrupted run's last sign of life
    (``RunRecord.last_seen``), else None."""

    run_id: str
    pipeline: str
    status: str
    start: float
    end: float | None
    stage_count: int = 0
    failed_stages: int = 0
    replay_of: str | None = None
    scheduled_at: float | None = None
    last_seen: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, None while running."""
        return None if self.end is None else max(0.0, self.end - self.start)

    @property
    def lasted_at_least(self) -> float | None:
        """``RunRecord.lasted_at_least``."""
        return lasted_at_least(self.start, self.last_seen)

    @property
    def landing_delay(self) -> float | None:
        """Seconds the run started after its schedule meant it to, at least 0
        (``landing.late_by``); None for a run no schedule started."""
        return late_by(self.scheduled_at, self.start)


def lasted_at_least(start: float, last_seen: float | None) -> float | None:
    """The known part of an interrupted run's duration: from ``start`` to ``last_seen``, at
    least 0; None without a last sign of life. A lower bound, never an end: the process died
    some time after it, so every view says "at least" and none gives it as the duration."""
    return None if last_seen is None else max(0.0, last_seen - start)


def stage_cancel_cause(attempts: tuple[AttemptRecord, ...]) -> tuple[str | None, str | None]:
    """``(cancel_reason, cancel_cause)`` of a stage from its attempts: those of the last
    attempt a stop cancelled, ``(None, None)`` when none was."""
    for attempt in reversed(attempts):
        if attempt.cancel_reason or attempt.cancel_cause:
            return attempt.cancel_reason, attempt.cancel_cause
    return None, None


def outcome_error(attempts: Iterable[tuple[int, str | None]]) -> str | None:
    """The error of a stage's outcome from its ``(instance, error)`` attempts in start order:
    the last error among its instances' final attempts (the errors of attempts that a retry
    made good do not count)."""
    final: dict[int, str | None] = {}
    for instance, error in attempts:
        final[instance] = error
    return next((error for error in reversed(final.values()) if error), None)


#: ``StageStatus.CANCELLED``'s value: importing ``state`` here would load its state machines
#: into ``dag FILE``, which draws records and never moves a status
#: (``tests/pipeline_cli_startup_test.py``).
_CANCELLED = "cancelled"


def stage_error(
    status: str | None, attempts: Iterable[AttemptRecord], cancel_reason: str | None
) -> str | None:
    """The error a view shows for a stage of ``status``: that of its outcome
    (:func:`outcome_error` of its attempts); else, for a ``cancelled`` stage with no attempt
    that says so (a stop caught it paused before its start, so it has none), ``cancelled:
    <cancel_reason>``, the text the engine gives the execution it cancelled. Every view of a
    record (``runs show``, the web page, the DAG) reads a stage's error here, so that it says
    what ``run``'s summary says of the engine's result; a skipped stage's reason is apart."""
    error = outcome_error((attempt.instance, attempt.error) for attempt in attempts)
    if error is None and status == _CANCELLED and cancel_reason:
        return f"cancelled: {cancel_reason}"
    return error
