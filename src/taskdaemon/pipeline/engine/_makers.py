"""The makers of the records the engine builds for every stage (``frozen.maker``).

The five records a stage makes (``StageWaiting``, ``TriggerEvaluated``, ``StageQueued``,
``StageStarted``, ``StageFinished``) are made with every field passed by position, in the
record's own field order: called with keywords, a function matches each one against its
parameters' names in turn (five to seventeen fields here, several records a stage), and past
fifteen keywords CPython 3.11 passes them through a dict (``frozen.maker`` says why). Type
checkers see the makers through the protocols below, whose parameters
``tests/pipeline_engine_makers_test.py`` holds to the makers' real ones (names, order,
defaults), and that test holds what each maker builds to its class's record; the engine's call
sites name each field in a comment where its value does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from taskdaemon.pipeline.events import (
    StageFinished,
    StageQueued,
    StageStarted,
    StageWaiting,
    TaskRunRef,
    TriggerEvaluated,
)
from taskdaemon.pipeline.frozen import maker
from taskdaemon.pipeline.state import StageStatus

__all__ = [
    "stage_finished",
    "stage_queued",
    "stage_started",
    "stage_waiting",
    "task_run_ref",
    "trigger_evaluated",
]

_R = TypeVar("_R")


class MakeStageWaiting(Protocol):
    """``StageWaiting``'s maker: every field by position."""

    def __call__(
        self, run_id: str, pipeline: str, stage: str, at: float, considered_at: float, /
    ) -> StageWaiting: ...


class MakeTriggerEvaluated(Protocol):
    """``TriggerEvaluated``'s maker: every field by position."""

    def __call__(  # noqa: PLR0917 - the record's fields by position (see above)
        self,
        run_id: str,
        pipeline: str,
        stage: str,
        trigger_index: int,
        trigger_type: str,
        description: str,
        satisfied: bool,
        stage_ready: bool,
        at: float,
        detail: str = ...,
        values: Mapping[str, Any] | None = ...,
        /,
    ) -> TriggerEvaluated: ...


class MakeStageQueued(Protocol):
    """``StageQueued``'s maker: every field by position."""

    def __call__(  # noqa: PLR0917 - the record's fields by position (see above)
        self,
        run_id: str,
        pipeline: str,
        stage: str,
        instance: int,
        attempt: int,
        at: float,
        task_run_id: str,
        /,
    ) -> StageQueued: ...


class MakeStageStarted(Protocol):
    """``StageStarted``'s maker: every field by position."""

    def __call__(  # noqa: PLR0917 - the record's fields by position (see above)
        self,
        run_id: str,
        pipeline: str,
        stage: str,
        instance: int,
        attempt: int,
        task_run_id: str,
        loop: str,
        at: float,
        queued_at: float,
        considered_at: float,
        inputs: Mapping[str, Any],
        fired_by: tuple[TaskRunRef, ...] = ...,
        previous_attempt: TaskRunRef | None = ...,
        triggers: tuple[str, ...] = ...,
        event: Mapping[str, Any] | None = ...,
        paused: float = ...,
        /,
    ) -> StageStarted: ...


class MakeStageFinished(Protocol):
    """``StageFinished``'s maker: every field by position."""

    def __call__(  # noqa: PLR0917 - the record's fields by position (see above)
        self,
        run_id: str,
        pipeline: str,
        stage: str,
        instance: int,
        attempt: int,
        task_run_id: str,
        status: StageStatus,
        at: float,
        outputs: Mapping[str, Any] = ...,
        error: str | None = ...,
        error_type: str | None = ...,
        exception: BaseException | None = ...,
        will_retry: bool = ...,
        cpu_seconds: float | None = ...,
        peak_memory_bytes: int | None = ...,
        cancel_reason: str | None = ...,
        cancel_cause: str | None = ...,
        /,
    ) -> StageFinished: ...


def _by_position(cls: type[_R]) -> Any:
    """``cls``'s maker taking every field by position."""
    return maker(cls, len(cls.__record_fields__))  # type: ignore[attr-defined]


task_run_ref = maker(TaskRunRef)  # what fired a stage: one per upstream execution
stage_waiting: MakeStageWaiting = _by_position(StageWaiting)
trigger_evaluated: MakeTriggerEvaluated = _by_position(TriggerEvaluated)
stage_queued: MakeStageQueued = _by_position(StageQueued)
stage_started: MakeStageStarted = _by_position(StageStarted)
stage_finished: MakeStageFinished = _by_position(StageFinished)
