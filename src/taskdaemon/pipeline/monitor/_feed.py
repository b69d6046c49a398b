"""The manual feed: the monitor driven by hand, by code that runs its own stages.

``start_run`` / ``stage_started`` / ``stage_completed`` / ``stage_failed`` / ``finish_run``
synthesise the engine's own records (``RunStarted``, ``StageStarted``, ``StageFinished``,
``RunFinished``) and feed them to ``on_event``, so both paths produce identical telemetry. What
the engine would know (the attempt number, the upstream executions that fired a stage, the
run's final status) is read from the monitor's books. The caller schedules, so queue time and
trigger wait are zero.

``ManualFeed`` is a mixin of ``PipelineMonitor``; it needs the monitor's ``on_event``, clock,
run-id allocation and open-run lookup (the four abstract members below).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.events import (
    EngineEvent,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
    TaskRunRef,
    task_run_id,
)
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.monitor._books import Run
from taskdaemon.pipeline.monitor._spans import traceparent_of
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.status_rules import OTHER_ERROR_TYPE, run_failed

__all__ = ["ManualFeed"]


class ManualFeed(ABC):
    """The manual API of ``PipelineMonitor`` (see the module docstring)."""

    @abstractmethod
    def on_event(self, event: EngineEvent) -> None:
        """Record one engine event."""

    @abstractmethod
    def _now(self) -> float:
        """The monitor's clock (epoch seconds)."""

    @abstractmethod
    def _allocate(self, pipeline: Pipeline, at: float) -> str | None:
        """Start a run span and answer its trace id; None if not tracing."""

    @abstractmethod
    def _run(self, run_id: str) -> Run:
        """The open run ``run_id`` with every queued record handled; RunNotFoundError if none."""

    def start_run(
        self,
        pipeline: Pipeline | str,
        request: Mapping[str, Any] | None = None,
        *,
        context: Context | None = None,
        started_by: str = "api",
        replay_of: str | None = None,
    ) -> str:
        """Start a run by hand; returns its run id (the trace id when tracing, else a uuid4 hex).

        ``context`` is an external parent (linked, see the monitor's module docstring).
        """
        definition = pipeline if isinstance(pipeline, Pipeline) else Pipeline(pipeline, ())
        now = self._now()
        run_id = self._allocate(definition, now) or uuid.uuid4().hex
        self.on_event(
            RunStarted(
                run_id=run_id,
                pipeline=definition,
                request=dict(request or {}),
                at=now,
                started_by=started_by,
                parent_traceparent=None if context is None else traceparent_of(context),
                replay_of=replay_of,
            )
        )
        return run_id

    def stage_started(
        self,
        run_id: str,
        stage: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        instance: int = 0,
        event: Mapping[str, Any] | None = None,
    ) -> str:
        """Start the next attempt of ``stage`` (instance ``instance``); returns its task run id.

        Links to the latest successful execution of each upstream stage, and to the previous
        attempt on a retry. Queue time and trigger wait are zero: the caller schedules.
        """
        run = self._run(run_id)
        attempt = run.attempts.get((stage, instance), 0) + 1
        now = self._now()
        upstream = run.pipeline.upstream.get(stage, ()) if stage in run.info.stages else ()
        last = run.last_success
        fired_by = tuple(TaskRunRef(*last[u]) for u in upstream if u in last)
        info = run.info.stages.get(stage)
        trid = task_run_id(stage, instance, attempt)
        self.on_event(
            StageStarted(
                run_id=run_id,
                pipeline=run.pipeline.name,
                stage=stage,
                instance=instance,
                attempt=attempt,
                task_run_id=trid,
                loop=info.loop if info is not None else "",
                at=now,
                queued_at=now,
                considered_at=now,
                inputs=dict(inputs or {}),
                fired_by=fired_by,
                previous_attempt=TaskRunRef(stage, instance, attempt - 1) if attempt > 1 else None,
                event=event,
            )
        )
        return trid

    def stage_completed(
        self,
        run_id: str,
        stage: str,
        output: Mapping[str, Any] | None = None,
        *,
        instance: int = 0,
    ) -> None:
        """The open attempt of ``stage`` succeeded with ``output``."""
        self._finish_stage(run_id, stage, instance, StageStatus.SUCCESS, outputs=output)

    def stage_failed(
        self,
        run_id: str,
        stage: str,
        error: BaseException | str,
        *,
        instance: int = 0,
        timed_out: bool = False,
        will_retry: bool = False,
    ) -> None:
        """The open attempt of ``stage`` failed (or timed out) with ``error``."""
        self._finish_stage(
            run_id,
            stage,
            instance,
            StageStatus.TIMEOUT if timed_out else StageStatus.FAILURE,
            error=error,
            will_retry=will_retry,
        )

    def finish_run(
        self, run_id: str, status: RunStatus | str | None = None, *, error: str | None = None
    ) -> None:
        """End the run. Without ``status``: failure if an execution's last attempt failed."""
        run = self._run(run_id)
        if status is None:
            final = RunStatus.FAILURE if run_failed(run.last_status.values()) else RunStatus.SUCCESS
        else:
            final = RunStatus(status)
        error_type = None
        if final is RunStatus.FAILURE:
            error_type = "stage_failed" if error is None else OTHER_ERROR_TYPE
        self.on_event(
            RunFinished(
                run_id=run_id,
                pipeline=run.pipeline.name,
                status=final,
                at=self._now(),
                error=error,
                error_type=error_type,
            )
        )

    def _finish_stage(
        self,
        run_id: str,
        stage: str,
        instance: int,
        status: StageStatus,
        *,
        outputs: Mapping[str, Any] | None = None,
        error: BaseException | str | None = None,
        will_retry: bool = False,
    ) -> None:
        run = self._run(run_id)
        attempt = run.attempts.get((stage, instance))
        trid = task_run_id(stage, instance, attempt or 0)
        if attempt is None or trid not in run.open:
            raise RunNotFoundError(
                f"stage {stage!r} instance {instance} is not running in {run_id}"
            )
        exception = error if isinstance(error, BaseException) else None
        error_type = None
        if status is StageStatus.TIMEOUT:
            error_type = t.RESULT_TIMEOUT
        elif exception is not None:
            error_type = type(exception).__qualname__
        elif error is not None:
            error_type = OTHER_ERROR_TYPE
        self.on_event(
            StageFinished(
                run_id=run_id,
                pipeline=run.pipeline.name,
                stage=stage,
                instance=instance,
                attempt=attempt,
                task_run_id=trid,
                status=status,
                at=self._now(),
                outputs=dict(outputs or {}),
                error=None if error is None else str(error),
                error_type=error_type,
                exception=exception,
                will_retry=will_retry,
            )
        )
