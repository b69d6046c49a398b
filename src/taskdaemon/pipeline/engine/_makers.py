"""The makers of the records the engine builds for every stage (``frozen.maker``).

``StageStarted`` and ``StageFinished`` have sixteen and seventeen fields: called with a keyword
for each, CPython 3.11 would pass them through a dict (``frozen.maker`` says why), so their
makers take the first fields by position, as few as keep the call direct, always the leading
identity of the execution in the records' own order (``run_id, pipeline`` and, for
``StageFinished``, ``stage, instance``). Type checkers see those two makers through the
protocols below, which ``tests/pipeline_engine_makers_test.py`` holds to the makers'
real parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

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


class MakeStageStarted(Protocol):
    """``StageStarted``'s maker: ``run_id`` and ``pipeline`` by position."""

    def __call__(
        self,
        run_id: str,
        pipeline: str,
        /,
        *,
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
    ) -> StageStarted: ...


class MakeStageFinished(Protocol):
    """``StageFinished``'s maker: ``run_id``, ``pipeline``, ``stage`` and ``instance`` by
    position."""

    def __call__(
        self,
        run_id: str,
        pipeline: str,
        stage: str,
        instance: int,
        /,
        *,
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
    ) -> StageFinished: ...


task_run_ref = maker(TaskRunRef)  # what fired a stage: one per upstream execution
stage_waiting = maker(StageWaiting)
trigger_evaluated = maker(TriggerEvaluated)
stage_queued = maker(StageQueued)
stage_started: MakeStageStarted = maker(StageStarted, 2)
stage_finished: MakeStageFinished = maker(StageFinished, 4)
