"""The status vocabulary's rules: which statuses count as failed, ended or open, the precedence
that turns a stage's instances into one status, the approval rule, and how a stopped or skipped
execution that never started ends.

``state.py`` names the statuses and their transitions; this module holds every set and order of
them, and the reducer (``run_state``) and every view that shows a run ask it, so that none can
disagree. It imports nothing heavy: reading history (``runs list``) loads it. The rules and the
reasons for them are in docs/run-state.md.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import TYPE_CHECKING, Final

from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.state import RunStatus, StageStatus

if TYPE_CHECKING:
    from taskdaemon.pipeline.records import ApprovalWait

__all__ = [
    "ACTIVE_STAGE_STATUSES",
    "ENDED_STAGE_STATUSES",
    "FAILED_STAGE_STATUSES",
    "GOING_RUN_STATUSES",
    "HALTED_ACTIONS",
    "INTERRUPTED",
    "NOT_STARTED_STAGE_STATUSES",
    "NO_SPAN_REASON",
    "OPEN_RUN_STATUSES",
    "OTHER_ERROR_TYPE",
    "RUN_RECORD_STATUSES",
    "STAGE_PRECEDENCE",
    "TERMINAL_STAGE_STATUSES",
    "awaiting_approval",
    "exception_type_name",
    "execution_numbers",
    "failure_error_type",
    "halted_executions",
    "is_failed",
    "not_reached_reason",
    "run_failed",
    "stage_status_of",
]

#: The status of a run or attempt whose writer is gone before it ended (records only).
INTERRUPTED: Final = "interrupted"

#: The skip reason of a stage an ended run names that has no span at all in its source (records
#: only). The engine writes a skip span for each stage that never ran, so such a stage's spans
#: are lost or not yet in the source: a backend may receive the run span before a batch that
#: ended earlier (``visualization._stored`` waits a while for them).
NO_SPAN_REASON: Final = "never ran"

#: A stage (or attempt) with one of these failed: the run fails unless its strategy continues.
FAILED_STAGE_STATUSES: Final = frozenset({StageStatus.FAILURE, StageStatus.TIMEOUT})
#: An execution with one of these ran to an end (a skipped one never ran).
ENDED_STAGE_STATUSES: Final = FAILED_STAGE_STATUSES | {StageStatus.SUCCESS, StageStatus.CANCELLED}
#: A stage with one of these can change no more (``StageStatus.is_final``).
TERMINAL_STAGE_STATUSES: Final = frozenset(s for s in StageStatus if s.is_final)
#: A stage with one of these has not been queued yet.
NOT_STARTED_STAGE_STATUSES: Final = frozenset({StageStatus.PENDING, StageStatus.WAITING})
#: A stage with one of these is in progress: considered, not yet at an end.
ACTIVE_STAGE_STATUSES: Final = (
    frozenset(StageStatus) - TERMINAL_STAGE_STATUSES - {StageStatus.PENDING}
)

#: Every status a ``RunRecord`` can have: the run statuses past ``pending``, and ``interrupted``.
RUN_RECORD_STATUSES: Final = (
    RunStatus.RUNNING.value,
    RunStatus.SUCCESS.value,
    RunStatus.FAILURE.value,
    RunStatus.CANCELLED.value,
    INTERRUPTED,
    RunStatus.PAUSED.value,
)
#: A run record with one of these has no end (yet): its run span is open.
OPEN_RUN_STATUSES: Final = frozenset({RunStatus.RUNNING.value, RunStatus.PAUSED.value, INTERRUPTED})
#: A run record with one of these is still driven by its process (an ``interrupted`` one is not):
#: a reader following it waits for more.
GOING_RUN_STATUSES: Final = frozenset({RunStatus.RUNNING.value, RunStatus.PAUSED.value})

#: An execution a replay fed from the record (``telemetry.STATUS_REPLAYED``, a span's status;
#: the engine has no such state).
REPLAYED: Final = "replayed"

#: Which status names a stage whose instances disagree: the first that any instance has wins.
#: In-flight states come first (the stage is not done while any instance is), then the failures,
#: worst first: a fan-out stage with one failed instance and others cancelled by the stop that
#: failure caused says ``failure``, the cause.
STAGE_PRECEDENCE: Final = (
    StageStatus.PAUSED.value,
    StageStatus.RUNNING.value,
    INTERRUPTED,
    StageStatus.RETRYING.value,
    StageStatus.QUEUED.value,
    StageStatus.FAILURE.value,
    StageStatus.TIMEOUT.value,
    StageStatus.CANCELLED.value,
)
_RANK: Final = {status: rank for rank, status in enumerate(STAGE_PRECEDENCE)}

#: The ``error.type`` of a failure that names no type (semconv's fallback).
OTHER_ERROR_TYPE: Final = "_OTHER"


def is_failed(status: str) -> bool:
    """True for a failed stage or attempt status (``failure``, ``timeout``)."""
    return status in FAILED_STAGE_STATUSES


def stage_status_of(attempts: Iterable[tuple[int, str]]) -> str:
    """A stage's status from its ``(instance, status)`` attempts in start order.

    Each instance's last attempt counts. The first of :data:`STAGE_PRECEDENCE` that one of them
    has wins; else their common status when they agree, leaving out the ``replayed`` instances
    (reused from the record, each a success there) when others ran; else ``skipped`` (some
    instance did not run, e.g. the debugger skipped it). ``skipped`` too when there is no
    attempt.
    """
    last_per_instance: dict[int, str] = {}
    for instance, status in attempts:
        last_per_instance[instance] = status
    if len(last_per_instance) == 1:  # the common case; one status is its own best and agrees
        (only,) = last_per_instance.values()
        return only
    best: str | None = None
    for status in last_per_instance.values():
        rank = _RANK.get(status)
        if rank is not None and (best is None or rank < _RANK[best]):
            best = status
    if best is not None:
        return best
    distinct = set(last_per_instance.values())
    if len(distinct) > 1:  # instances a replay reused beside those it ran: these say it
        distinct.discard(REPLAYED)
    return distinct.pop() if len(distinct) == 1 else StageStatus.SKIPPED.value


def run_failed(statuses: Iterable[str]) -> bool:
    """True when one of a run's executions (each one's final status) failed."""
    return any(status in FAILED_STAGE_STATUSES for status in statuses)


def awaiting_approval(waits: Iterable[ApprovalWait]) -> frozenset[str]:
    """Stages awaiting an approval: those with a wait still open, of the waits
    ``records.approval_waits`` makes of the approval records (a request waits until its stage's
    next grant, rejection or timeout). The live state and the stored record both ask this."""
    return frozenset(wait.stage for wait in waits if wait.resolved is None)


def exception_type_name(exception: BaseException) -> str:
    """The type name an exception is recorded under: ``module.QualName``, bare for builtins."""
    kind = type(exception)
    module = kind.__module__
    return f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__


def failure_error_type(status: str, exception: BaseException | None, error_type: str | None) -> str:
    """The ``error.type`` of a failed attempt: ``timeout``; else the exception's class name;
    else the given type; else ``_OTHER`` (semconv's fallback)."""
    if status == StageStatus.TIMEOUT:
        return StageStatus.TIMEOUT.value
    if exception is not None:
        return type(exception).__qualname__
    return error_type or OTHER_ERROR_TYPE


#: The actions of a ``BreakpointResumed`` (span event ``breakpoint.resumed``) that end an
#: execution paused before its start without starting it, and the status it ends with: a stop
#: of the run (a cancel, a failure elsewhere) cancels it; the debugger's ``skip`` skips it.
HALTED_ACTIONS: Final = {"cancel": StageStatus.CANCELLED.value, "skip": StageStatus.SKIPPED.value}


def execution_numbers(stage: str, task_run_id: str) -> tuple[int, int] | None:
    """``(instance, attempt)`` of ``stage``'s execution ``task_run_id``
    (``{stage}.{instance}.{attempt}``, ``events.task_run_id``); None for an id of another
    stage, or not of that shape (a span event of a foreign producer or a damaged store)."""
    prefix = f"{stage}."
    if not task_run_id.startswith(prefix):
        return None
    instance, _, attempt = task_run_id[len(prefix) :].partition(".")
    if ascii_digits(instance) and ascii_digits(attempt):
        return int(instance), int(attempt)
    return None


def halted_executions(
    resumptions: Iterable[tuple[str, str, str]], started: Container[str]
) -> dict[str, dict[str, tuple[int, str]]]:
    """Stage -> {task run id: (instance, status)} of the executions ended while they were
    paused at a breakpoint before they started, from ``(stage, task_run_id, action)``
    breakpoint resumptions: those whose action is one of :data:`HALTED_ACTIONS` and whose task
    run id is not in ``started`` (an execution paused after a failure did start).

    Such an execution was reached (it held its worker slot, its inputs resolved) and ended as
    the engine ends it, ``cancelled`` or ``skipped``; it has no span, since it never started, so
    this is how a record built from spans knows it (docs/run-state.md, "Rules")."""
    halted: dict[str, dict[str, tuple[int, str]]] = {}
    for stage, task_run_id, action in resumptions:
        status = HALTED_ACTIONS.get(action)
        if status is None or task_run_id in started:
            continue
        numbers = execution_numbers(stage, task_run_id)
        if numbers is not None:
            halted.setdefault(stage, {})[task_run_id] = (numbers[0], status)
    return halted


def not_reached_reason(run_status: str) -> str:
    """The skip reason of a stage that had no event at all by the end of its run."""
    return f"not reached: the run ended ({run_status})"
