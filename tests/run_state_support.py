"""What the run_state reducer's tests share: a three-stage definition, one constructor per
engine event the reducer reads (named for a run of it), and folding events into a state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from taskdaemon.pipeline.events import (
    BreakpointHit,
    BreakpointResumed,
    EngineEvent,
    RunFinished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageSkipped,
    StageStarted,
    StageWaiting,
)
from taskdaemon.pipeline.model import (
    Manual,
    OnCompletion,
    OnEvent,
    Pipeline,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.run_state import RunState, apply
from taskdaemon.pipeline.state import RunStatus, StageStatus

RUN = "run-1"
PIPE = Pipeline(
    "p",
    (
        Stage("a", "python", (Manual(),), emits=("item",)),
        Stage("b", "shell", (OnCompletion("a"), OnEvent("item")), trigger_mode=TriggerMode.ALL),
        Stage("c", "python", (OnCompletion("b", success_only=False),)),
    ),
)
SECRET = "password=hunter2"


def run_started(at: float = 10.0, **fields: Any) -> RunStarted:
    return RunStarted(run_id=RUN, pipeline=PIPE, request={}, at=at, **fields)


def ids(stage: str, instance: int, attempt: int) -> dict[str, Any]:
    """The fields that name one execution of ``stage`` in the run."""
    return {
        "run_id": RUN,
        "pipeline": "p",
        "stage": stage,
        "instance": instance,
        "attempt": attempt,
        "task_run_id": f"{stage}.{instance}.{attempt}",
    }


def queued(stage: str, at: float, *, instance: int = 0, attempt: int = 1) -> StageQueued:
    return StageQueued(**ids(stage, instance, attempt), at=at)


def started(
    stage: str,
    at: float,
    *,
    instance: int = 0,
    attempt: int = 1,
    queued_at: float | None = None,
    considered_at: float | None = None,
    paused: float = 0.0,
    inputs: Mapping[str, Any] | None = None,
    loop: str = "python",
) -> StageStarted:
    return StageStarted(
        **ids(stage, instance, attempt),
        loop=loop,
        at=at,
        queued_at=at if queued_at is None else queued_at,
        considered_at=at if considered_at is None else considered_at,
        inputs=inputs or {},
        paused=paused,
    )


def finished(
    stage: str,
    status: StageStatus,
    at: float,
    *,
    instance: int = 0,
    attempt: int = 1,
    **fields: Any,
) -> StageFinished:
    return StageFinished(**ids(stage, instance, attempt), status=status, at=at, **fields)


def hit(stage: str, at: float, *, instance: int = 0, attempt: int = 1) -> BreakpointHit:
    return BreakpointHit(**ids(stage, instance, attempt), at=at, kind="step", reason="step")


def resumed(
    stage: str, at: float, paused: float, *, attempt: int = 1, action: str = "continue"
) -> BreakpointResumed:
    return BreakpointResumed(
        **ids(stage, 0, attempt), at=at, action=action, by="alice", paused=paused
    )


def waiting(stage: str, at: float) -> StageWaiting:
    return StageWaiting(run_id=RUN, pipeline="p", stage=stage, at=at, considered_at=10.0)


def skipped(stage: str, reason: str, at: float, **fields: Any) -> StageSkipped:
    return StageSkipped(run_id=RUN, pipeline="p", stage=stage, reason=reason, at=at, **fields)


def end(status: RunStatus, at: float = 50.0, **fields: Any) -> RunFinished:
    return RunFinished(run_id=RUN, pipeline="p", status=status, at=at, **fields)


def fold(events: Iterable[EngineEvent], **kwargs: Any) -> RunState:
    state: RunState | None = None
    for event in events:
        state = apply(state, event, **kwargs)
    assert state is not None
    return state


def statuses(state: RunState) -> dict[str, str]:
    return {stage.name: stage.status for stage in state.record().stages}
