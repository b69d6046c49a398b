"""Run and stage states, their allowed transitions, and the timestamps that make waits exact.

A run moves ``pending → running → (paused) → success | failure | cancelled``.
A stage (one attempt of one instance) moves
``pending → waiting → queued → running → success | failure | timeout | cancelled | skipped``,
with ``retrying`` between a failed attempt and the next one. An execution stopped at a debugger
breakpoint is ``paused``: from ``queued`` (before it starts) or ``running`` (after its handler
failed, before the error strategy acts), and it goes back to where it was when resumed.

*Trigger wait* is ``queued − considered`` (``considered`` is the first moment the stage could be
looked at: the run start for entry stages, otherwise the start of its earliest upstream stage) and
*queue time* is ``running − queued``.
"""

from __future__ import annotations

from enum import StrEnum

from taskdaemon.pipeline.errors import InvalidTransitionError
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.value_methods import ValueMethods

__all__ = [
    "RUN_TRANSITIONS",
    "STAGE_TRANSITIONS",
    "RunStatus",
    "StageStatus",
    "StageTimes",
    "check_run_transition",
    "check_stage_transition",
]


class RunStatus(StrEnum):
    """Where a pipeline run is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for the three end states."""
        return self in _FINAL_RUN


class StageStatus(StrEnum):
    """Where one stage (attempt, instance) is in its life."""

    PENDING = "pending"
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    PAUSED = "paused"
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        """True once the stage can change no more."""
        return self in _FINAL_STAGE


_FINAL_RUN = frozenset({RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELLED})
_FINAL_STAGE = frozenset(
    {
        StageStatus.SUCCESS,
        StageStatus.FAILURE,
        StageStatus.TIMEOUT,
        StageStatus.CANCELLED,
        StageStatus.SKIPPED,
    }
)

RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.PAUSED, RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELLED}
    ),
    RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.SUCCESS: frozenset(),
    RunStatus.FAILURE: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}

_ENDINGS = frozenset({StageStatus.CANCELLED, StageStatus.SKIPPED})
STAGE_TRANSITIONS: dict[StageStatus, frozenset[StageStatus]] = {
    StageStatus.PENDING: frozenset({StageStatus.WAITING}) | _ENDINGS,
    StageStatus.WAITING: frozenset({StageStatus.QUEUED}) | _ENDINGS,
    StageStatus.QUEUED: frozenset({StageStatus.RUNNING, StageStatus.PAUSED}) | _ENDINGS,
    StageStatus.RUNNING: frozenset(
        {
            StageStatus.PAUSED,
            StageStatus.SUCCESS,
            StageStatus.FAILURE,
            StageStatus.TIMEOUT,
            StageStatus.CANCELLED,
            StageStatus.RETRYING,
        }
    ),
    StageStatus.RETRYING: frozenset({StageStatus.QUEUED, StageStatus.CANCELLED}),
    # Back to where it paused (queued or running), or skipped / cancelled at the breakpoint.
    StageStatus.PAUSED: frozenset({StageStatus.QUEUED, StageStatus.RUNNING}) | _ENDINGS,
    StageStatus.SUCCESS: frozenset(),
    StageStatus.FAILURE: frozenset(),
    StageStatus.TIMEOUT: frozenset(),
    StageStatus.CANCELLED: frozenset(),
    StageStatus.SKIPPED: frozenset(),
}


def check_run_transition(current: RunStatus, new: RunStatus) -> None:
    """Raise InvalidTransitionError unless a run may move from ``current`` to ``new``."""
    if new not in RUN_TRANSITIONS[current]:
        raise InvalidTransitionError(f"run cannot move from {current} to {new}")


def check_stage_transition(current: StageStatus, new: StageStatus) -> None:
    """Raise InvalidTransitionError unless a stage may move from ``current`` to ``new``."""
    if new not in STAGE_TRANSITIONS[current]:
        raise InvalidTransitionError(f"stage cannot move from {current} to {new}")


@frozen
class StageTimes(ValueMethods):
    """Wall-clock timestamps (epoch seconds) of one stage attempt; ``None`` until reached.

    ``paused``: seconds the attempt was held at a debugger breakpoint between ``queued`` and
    ``running`` (not a timestamp; 0 when it was not).
    """

    pending: float | None = None
    considered: float | None = None
    waiting: float | None = None
    queued: float | None = None
    running: float | None = None
    ended: float | None = None
    paused: float = 0.0

    @property
    def trigger_wait(self) -> float | None:
        """Seconds from the first moment the stage could be considered until it was queued."""
        if self.queued is None or self.considered is None:
            return None
        return max(0.0, self.queued - self.considered)

    @property
    def queue_time(self) -> float | None:
        """Seconds the stage spent ready but without a free worker slot (a breakpoint's pause
        is not queueing: it is left out, as from the span's ``taskdaemon.stage.queue_time_s``)."""
        if self.running is None or self.queued is None:
            return None
        return max(0.0, self.running - self.queued - self.paused)

    @property
    def duration(self) -> float | None:
        """Seconds the attempt ran."""
        if self.ended is None or self.running is None:
            return None
        return max(0.0, self.ended - self.running)
