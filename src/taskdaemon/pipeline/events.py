"""The engine's event records and the observer protocol.

The engine emits one frozen record per transition, in order, synchronously, to every registered
observer. Observers (the OTel monitor, the debugger, the CLI progress view, tests) rebuild
whatever they need from this stream; the engine knows nothing of them. An observer that raises
is logged and ignored: observing never changes what the pipeline does.

Timestamps (``at``) are wall-clock epoch seconds from the engine's injected clock.

Identity: a run has a ``run_id`` (32 lowercase hex, equal to its trace id when monitored); one
execution of one stage is identified inside its run by ``task_run_id``
(``"{stage}.{instance}.{attempt}"``, instance from 0, attempt from 1).

Records are built with keyword arguments only (``kw_only``): most have five to seventeen
fields, several of the same type, so a positional call that swaps two of them would still
type-check. ``TaskRunRef``, a three-field reference, stays positional.

Optional observer hooks (looked up once, when the observer is registered; each guarded the
same way as ``on_event``):

* ``allocate_run_id(pipeline, request, *, at) -> str | None``: called before a run starts; the
  first observer that answers a 32-hex id names the run (the monitor answers its trace id).
  ``at`` is the run's start (its ``RunStarted.at``), passed only to a hook that takes an
  ``at`` keyword (or ``**kwargs``): a hook of the first form, ``(pipeline, request)``, is
  still called with those two.
* ``stage_environment(event: StageStarted) -> Mapping[str, str]``: extra environment variables
  for a command stage's subprocess (the monitor answers ``TRACEPARENT``/``TRACESTATE``).
* ``wants_record(kind: type) -> bool``: asked, each time, before the engine builds a record an
  observer may do without (``StageWaiting``, ``StageQueued``); the record is built when some
  observer wants it, and an observer without the hook wants every record (the monitor declines
  the two when none of its hooks wants them, e.g. the run log at INFO).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol, TypeAlias, runtime_checkable

from taskdaemon.pipeline.frozen import field, frozen
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.value_methods import ValueMethods

__all__ = [
    "OPTIONAL_RECORDS",
    "ApprovalRequested",
    "ApprovalResolved",
    "BreakpointHit",
    "BreakpointResumed",
    "EngineEvent",
    "EngineObserver",
    "EventPublished",
    "InputOverridden",
    "RunFinished",
    "RunStarted",
    "StageFinished",
    "StageProcess",
    "StageQueued",
    "StageRetrying",
    "StageSkipped",
    "StageStarted",
    "StageWaiting",
    "TaskRunRef",
    "TriggerEvaluated",
    "task_run_id",
]


def task_run_id(stage: str, instance: int, attempt: int) -> str:
    """The id of one execution of a stage inside its run."""
    return f"{stage}.{instance}.{attempt}"


@frozen
class TaskRunRef(ValueMethods):
    """A reference to one stage execution (for links: what fired a trigger, the last attempt)."""

    stage: str
    instance: int
    attempt: int

    @property
    def task_run_id(self) -> str:
        """The ``task_run_id`` of the referenced execution."""
        return task_run_id(self.stage, self.instance, self.attempt)


@frozen(kw_only=True)
class RunStarted(ValueMethods):
    """A run began (its entry stages are about to be considered)."""

    run_id: str
    pipeline: Pipeline
    request: Mapping[str, Any]
    at: float
    started_by: str = "api"  # "cli", "api", "replay", "schedule", ...
    parent_traceparent: str | None = None  # W3C traceparent of an external parent, if any
    replay_of: str | None = None  # run id of the original run when this run is a replay
    scheduled_at: float | None = None  # epoch seconds a schedule meant it to start at, if any


@frozen(kw_only=True)
class RunFinished(ValueMethods):
    """A run ended; ``status`` is success, failure or cancelled."""

    run_id: str
    pipeline: str
    status: RunStatus
    at: float
    error: str | None = None
    error_type: str | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)


@frozen(kw_only=True)
class StageWaiting(ValueMethods):
    """A stage became considerable and now waits for its triggers (or an approval).

    ``considered_at`` is the first moment the stage could be considered (run start for entry
    stages, else the start of its earliest upstream stage); trigger wait counts from there.
    """

    run_id: str
    pipeline: str
    stage: str
    at: float
    considered_at: float


@frozen(kw_only=True)
class TriggerEvaluated(ValueMethods):
    """One trigger of a stage was evaluated. ``satisfied`` is the trigger's own answer;
    ``stage_ready`` whether the stage as a whole (ANY/ALL) is now ready."""

    run_id: str
    pipeline: str
    stage: str
    trigger_index: int
    trigger_type: str  # on_completion | on_event | on_condition | manual
    description: str
    satisfied: bool
    stage_ready: bool
    at: float
    detail: str = ""  # e.g. the upstream result, the filter's value, the evaluation error
    # What a CEL condition or filter read (its context, pruned to the variables it names);
    # None for other triggers. Live engine data: observers must copy what they keep.
    values: Mapping[str, Any] | None = None


@frozen(kw_only=True)
class ApprovalRequested(ValueMethods):
    """A stage with a ``manual {approval_required: true}`` trigger asks for approval."""

    run_id: str
    pipeline: str
    stage: str
    at: float
    timeout: float | None = None


@frozen(kw_only=True)
class ApprovalResolved(ValueMethods):
    """An approval was granted or rejected (``approved``), or timed out (``timed_out``)."""

    run_id: str
    pipeline: str
    stage: str
    approved: bool
    at: float
    by: str = ""
    timed_out: bool = False


@frozen(kw_only=True)
class StageQueued(ValueMethods):
    """A stage execution is ready and waits for a worker slot."""

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int
    at: float
    task_run_id: str


@frozen(kw_only=True)
class StageStarted(ValueMethods):
    """A stage execution got a worker slot and its handler is about to run.

    ``fired_by`` are the upstream executions whose completion (or emitted event) fired the
    trigger; ``previous_attempt`` is set on retries; ``event`` is the event that started an
    instance of an ``on_event`` stage.
    """

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int
    task_run_id: str
    loop: str
    at: float
    queued_at: float
    considered_at: float
    inputs: Mapping[str, Any]
    fired_by: tuple[TaskRunRef, ...] = ()
    previous_attempt: TaskRunRef | None = None
    triggers: tuple[str, ...] = ()  # descriptions of the triggers that were satisfied
    event: Mapping[str, Any] | None = None
    paused: float = 0.0  # seconds the execution spent paused at a breakpoint before it started


@frozen(kw_only=True)
class StageProcess(ValueMethods):
    """A command stage spawned its subprocess (for resource sampling of the process tree)."""

    run_id: str
    pipeline: str
    stage: str
    task_run_id: str
    pid: int
    at: float


@frozen(kw_only=True)
class StageRetrying(ValueMethods):
    """A failed attempt will be retried after ``delay`` seconds."""

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int  # the attempt that failed
    task_run_id: str
    delay: float
    error: str
    error_type: str
    at: float


@frozen(kw_only=True)
class StageFinished(ValueMethods):
    """A stage execution ended: success, failure, timeout or cancelled.

    On a retried failure ``StageFinished(status=FAILURE, will_retry=True)`` is followed by
    ``StageRetrying`` and a new ``StageQueued``. ``exception`` is the handler's exception,
    unchanged, when there was one.
    """

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int
    task_run_id: str
    status: StageStatus
    at: float
    outputs: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    exception: BaseException | None = None
    will_retry: bool = False
    # user+system CPU of a command stage's process tree (``report_usage``), else of the thread
    # that ran a Python handler (``report_cpu``; docs/architecture.md, "Telemetry schema")
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None  # peak RSS of a command stage's process tree
    # Set when a stopped run cancelled this execution: why ("stage 'build' failed
    # (error_strategy: fail)", "run cancelled") and the stage whose failure stopped it, if any.
    cancel_reason: str | None = None
    cancel_cause: str | None = None


@frozen(kw_only=True)
class StageSkipped(ValueMethods):
    """A stage will never run in this run (upstream failed, no event arrived, run ended)."""

    run_id: str
    pipeline: str
    stage: str
    reason: str
    at: float
    # Set when the run was stopped: why, and the stage whose failure stopped it (if one did).
    cancel_reason: str | None = None
    cancel_cause: str | None = None


@frozen(kw_only=True)
class EventPublished(ValueMethods):
    """An event was published into a run, by a stage (``source_stage``) or from outside."""

    run_id: str
    pipeline: str
    event_type: str
    payload: Mapping[str, Any]
    event_id: int  # sequence number inside the run, from 1
    at: float
    source: TaskRunRef | None = None


@frozen(kw_only=True)
class BreakpointHit(ValueMethods):
    """An execution paused at a debugger breakpoint (see ``engine/_debug.py``).

    ``kind`` is ``start`` (before the execution starts: a breakpoint, a step, an event
    breakpoint) or ``failure`` (its handler failed; the error strategy waits). ``reason`` says
    which: ``breakpoint 2: before build``, ``step``, ``event spec.ready``, ``failure``.
    """

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int
    task_run_id: str
    at: float
    kind: str
    reason: str
    error: str | None = None


@frozen(kw_only=True)
class BreakpointResumed(ValueMethods):
    """A paused execution went on: ``action`` is ``continue``, ``step``, ``skip``, ``retry`` or
    ``cancel`` (the run stopped while it was paused); ``by`` says who; ``paused`` is seconds.

    At a ``cancel`` by a stop of the run, ``cancel_reason`` and ``cancel_cause`` say why, as
    ``StageFinished``'s do: an execution paused before its start then ends with no span of its
    own, and this is what its record keeps of the stop (docs/run-state.md, "Rules")."""

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int
    task_run_id: str
    at: float
    action: str
    by: str
    paused: float
    cancel_reason: str | None = None
    cancel_cause: str | None = None


@frozen(kw_only=True)
class InputOverridden(ValueMethods):
    """An input of a paused execution was replaced before it started (old and new values)."""

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int
    task_run_id: str
    at: float
    name: str
    old: Any
    new: Any
    by: str


EngineEvent: TypeAlias = (
    RunStarted
    | RunFinished
    | StageWaiting
    | TriggerEvaluated
    | ApprovalRequested
    | ApprovalResolved
    | StageQueued
    | StageStarted
    | StageProcess
    | StageRetrying
    | StageFinished
    | StageSkipped
    | EventPublished
    | BreakpointHit
    | BreakpointResumed
    | InputOverridden
)

#: The records the engine asks ``wants_record`` about before it builds them (module docstring).
OPTIONAL_RECORDS: Final = frozenset({StageWaiting, StageQueued})


@runtime_checkable
class EngineObserver(Protocol):
    """Receives every engine event, in order, on the engine's event loop thread.

    Must not block: do I/O elsewhere. Exceptions are logged and swallowed by the engine; a
    class that sets ``guards_itself = True`` promises that its ``on_event`` and
    ``wants_record`` never raise, and is then called without the engine's guard when it is
    the only observer.
    """

    def on_event(self, event: EngineEvent) -> None:
        """Handle one event."""
