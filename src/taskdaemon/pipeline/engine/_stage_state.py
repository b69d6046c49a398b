"""A run's mutable books per stage: its instances, their executions, the trigger counters.

Plain records with ``__slots__``, changed only on the event loop thread by the run that owns
them; the frozen views of them are :class:`ExecutionResult` and :class:`RunResult`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from taskdaemon.pipeline.engine._results import ExecutionResult
from taskdaemon.pipeline.errors import InvalidTransitionError
from taskdaemon.pipeline.events import TaskRunRef
from taskdaemon.pipeline.model import TriggerMode
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.state import STAGE_TRANSITIONS, StageStatus, StageTimes
from taskdaemon.pipeline.status_rules import FAILED_STAGE_STATUSES
from taskdaemon.pipeline.triggers import ApprovalState, CompiledStage, TriggerState

# Module-level aliases: the scheduler compares against these on every transition.
SATISFIED = TriggerState.SATISFIED
IMPOSSIBLE = TriggerState.IMPOSSIBLE
PENDING = TriggerState.PENDING
ALL = TriggerMode.ALL
WAITING = StageStatus.WAITING
QUEUED = StageStatus.QUEUED
RUNNING = StageStatus.RUNNING
RETRYING = StageStatus.RETRYING
SUCCESS = StageStatus.SUCCESS
FAILURE = StageStatus.FAILURE
TIMEOUT = StageStatus.TIMEOUT
CANCELLED = StageStatus.CANCELLED
SKIPPED = StageStatus.SKIPPED
FAILED = FAILED_STAGE_STATUSES
EMPTY: Mapping[str, Any] = MappingProxyType({})
# Shared by stages without on_event triggers: they never append to it.
_NO_EVENTS: deque[Any] = deque(maxlen=0)


class Execution:
    """One attempt of one instance (mutable while it runs)."""

    __slots__ = (
        "attempt",
        "cancel_cause",
        "cpu",
        "ended",
        "error",
        "error_type",
        "inputs",
        "memory",
        "outputs",
        "paused",
        "queued",
        "running",
        "started",
        "status",
        "task_run_id",
        "thread_cpu",
    )

    # Seconds a breakpoint held the attempt before it started: set only then (0.0 from the
    # pause until it is resumed, so ``reached`` knows it), never in ``__init__`` (every attempt
    # would pay for a value only the debugger gives).
    paused: float
    # The inputs the attempt ran with, kept only in debug mode (likewise never set otherwise): a
    # failure breakpoint's ``when`` and the debugger's ``inputs STAGE`` read them at a failure.
    inputs: Mapping[str, Any]

    def __init__(self, attempt: int, queued: float, task_run_id: str) -> None:
        self.attempt = attempt
        self.queued = queued
        self.task_run_id = task_run_id  # "{stage}.{instance}.{attempt}", made once: every record
        # of the attempt carries it
        self.running: float | None = None
        self.ended: float | None = None
        self.status = QUEUED
        self.outputs: Mapping[str, Any] = {}
        self.error: str | None = None
        self.error_type: str | None = None
        self.cpu: float | None = None
        self.memory: int | None = None
        self.thread_cpu: float | None = None  # ``ctx.report_cpu``: the handler thread's CPU
        self.started = False
        self.cancel_cause: str | None = None  # the stage whose failure cancelled this attempt


class Instance:
    """One instance of a stage (``on_event`` stages have one per admitted event)."""

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
        self.status = WAITING
        self.executions: list[Execution] = []
        self.task: asyncio.Task[None] | None = None


class StageRun:
    """The run-time state of one stage."""

    __slots__ = (
        "approval",
        "approval_timer",
        "condition_errors",
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
        "ready",
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
        self.states: dict[int, TriggerState] = dict.fromkeys(cs.other_triggers, PENDING)
        self.n_sat = 0
        self.n_imp = 0
        # :meth:`readiness`, kept current by ``Triggers.record`` (the one place that changes a
        # trigger's state): read several times a stage, and a frame each time it is computed.
        # Every trigger pending: pending, whatever the mode; only a stage without non-event
        # triggers has another answer.
        self.ready = PENDING if self.states else self.readiness()
        self.fired = False
        self.fired_by: dict[int, tuple[TaskRunRef, ...]] | None = None
        self.final = False
        self.started = False
        self.considered_at: float | None = None
        self.waiting_at = pending_at
        self.instances: list[Instance] = []
        self.open_instances = 0
        self.events: deque[tuple[Mapping[str, Any], TaskRunRef | None]] = (
            deque() if cs.has_events else _NO_EVENTS
        )
        self.approval = ApprovalState.NOT_REQUESTED
        self.approval_timer: asyncio.Task[None] | None = None
        self.skip_reason: str | None = None
        # trigger index -> the error of its condition's last evaluation, while it fails; made
        # by the first one (``note_condition``): a stage that never fails has none.
        self.condition_errors: dict[int, str] | None = None

    def readiness(self) -> TriggerState:
        """The combined state of the non-event triggers (O(1) from the counters); the run reads
        it as :attr:`ready`, computed again here when a trigger's state changes."""
        n = len(self.states)
        if self.cs.stage.trigger_mode is ALL:
            if self.n_imp:
                return IMPOSSIBLE
            return SATISFIED if self.n_sat == n else PENDING
        if self.n_sat:
            return SATISFIED
        return IMPOSSIBLE if self.n_imp == n else PENDING

    def gate(self) -> TriggerState:
        """For an event stage in mode ``all``: whether events may start instances."""
        return self.ready if self.states else SATISFIED


def reached(inst: Instance) -> bool:
    """Whether one of the instance's executions started or was held at a start breakpoint (its
    ``paused`` is then set): an instance a stop cancelled while it was queued was not."""
    return any(ex.started or hasattr(ex, "paused") for ex in inst.executions)


#: ``state.STAGE_TRANSITIONS``: the hot paths check a move inline, calling :func:`move` only
#: for the error (a Python call per move, three a stage, is a visible cost).
TRANSITIONS = STAGE_TRANSITIONS


def move(srt: StageRun, inst: Instance, new: StageStatus) -> None:
    """Move an instance to ``new``, enforcing the stage state machine of ``state.py``.

    The attempt's three usual moves do the same inline (``if new not in
    TRANSITIONS[inst.status]: move(...)``, which raises, then the store)."""
    if new not in STAGE_TRANSITIONS[inst.status]:
        raise InvalidTransitionError(
            f"stage {srt.name!r} instance {inst.index} cannot move from {inst.status} to {new}"
        )
    inst.status = new


class ExecutionsView(Mapping[str, tuple[ExecutionResult, ...]]):
    """A finished run's executions per stage, built on first access (most callers never look,
    and building 10,000 records at the end of every run would cost more than running them)."""

    __slots__ = ("_built", "_stages", "_started_at")

    def __init__(self, started_at: float, stages: Mapping[str, StageRun]) -> None:
        self._started_at = started_at
        self._stages = stages
        self._built: dict[str, tuple[ExecutionResult, ...]] = {}

    def __getitem__(self, name: str) -> tuple[ExecutionResult, ...]:
        built = self._built.get(name)
        if built is None:
            srt = self._stages[name]
            built = tuple(
                ExecutionResult(
                    stage=name,
                    instance=inst.index,
                    attempt=ex.attempt,
                    status=ex.status,
                    times=StageTimes(
                        self._started_at,
                        srt.considered_at,
                        srt.waiting_at,
                        ex.queued,
                        ex.running,
                        ex.ended,
                        # set only by a breakpoint's pause: no cost for the executions without
                        getattr(ex, "paused", 0.0),
                    ),
                    outputs=ex.outputs,
                    # Redacted when the execution ended: a value learnt since (a later stage
                    # returned it under ``token``) is masked now, as in every view of the run.
                    error=None if ex.error is None else redact_text(ex.error),
                    error_type=ex.error_type,
                    cancel_cause=ex.cancel_cause,
                    held=hasattr(ex, "paused"),
                )
                for inst in srt.instances
                for ex in inst.executions
            )
            self._built[name] = built
        return built

    def __iter__(self) -> Iterator[str]:
        return iter(self._stages)

    def __len__(self) -> int:
        return len(self._stages)

    def __repr__(self) -> str:
        return repr(dict(self))


def note_condition(srt: StageRun, index: int, detail: str) -> None:
    """Keep (or forget) the error of an ``on_condition`` trigger's last evaluation, which the
    stage's skip reason names if the run ends with it still failing (``Run.skip_reason_for``):
    a condition that cannot evaluate (a missing key, a string compared with a number) read
    only ``triggers can no longer fire``, its error in debug records alone."""
    if detail.startswith("error: "):
        if srt.condition_errors is None:
            srt.condition_errors = {}
        srt.condition_errors[index] = detail.removeprefix("error: ")
    elif srt.condition_errors:
        srt.condition_errors.pop(index, None)
