"""The in-process aggregates behind ``PipelineMonitor.get_metrics()``: counts, averages and
duration percentiles per pipeline and stage, kept without any OpenTelemetry reader."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MonitorMetrics", "RunAggregates", "StageMetrics"]


@dataclass(frozen=True, slots=True)
class StageMetrics:
    """Aggregates of one stage's executions (every attempt and instance)."""

    stage: str
    count: int
    success_count: int
    failure_count: int
    avg_duration: float
    avg_queue_time: float


@dataclass(frozen=True, slots=True)
class MonitorMetrics:
    """A snapshot of what the monitor has seen. Durations in seconds.

    ``success_rate`` is successful / finished runs (0.0 before the first run ends);
    percentiles are linear interpolations over the last ``RunAggregates.window`` run durations.
    """

    total_runs: int
    successful_runs: int
    failed_runs: int
    cancelled_runs: int
    active_runs: int
    success_rate: float
    avg_execution_time: float
    p50_execution_time: float
    p90_execution_time: float
    p99_execution_time: float
    stages: Mapping[str, StageMetrics] = field(default_factory=dict)


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class _StageAggregate:
    count: int = 0
    success: int = 0
    failure: int = 0
    duration_sum: float = 0.0
    queue_sum: float = 0.0
    queue_count: int = 0


@dataclass
class _PipelineAggregate:
    finished: int = 0
    success: int = 0
    failure: int = 0
    cancelled: int = 0
    active: int = 0
    duration_sum: float = 0.0
    durations: deque[float] = field(default_factory=deque)
    stages: dict[str, _StageAggregate] = field(default_factory=dict)


class RunAggregates:
    """Per-pipeline counters behind ``PipelineMonitor.get_metrics()``.

    Keeps the last ``window`` run durations per pipeline for percentiles (memory stays bounded
    in a long-lived server). Stages are keyed by name; without a pipeline filter the stages of
    every pipeline with the same name are merged.
    """

    def __init__(self, window: int = 10_000) -> None:
        self.window = window
        self._pipelines: dict[str, _PipelineAggregate] = {}
        self._lock = threading.Lock()

    def _pipeline(self, name: str) -> _PipelineAggregate:
        aggregate = self._pipelines.get(name)
        if aggregate is None:
            aggregate = self._pipelines[name] = _PipelineAggregate(
                durations=deque(maxlen=self.window)
            )
        return aggregate

    def run_started(self, pipeline: str) -> None:
        """Count an active run."""
        with self._lock:
            self._pipeline(pipeline).active += 1

    def run_finished(self, pipeline: str, status: str, duration: float) -> None:
        """Count a finished run."""
        with self._lock:
            aggregate = self._pipeline(pipeline)
            aggregate.active = max(0, aggregate.active - 1)
            aggregate.finished += 1
            if status == "success":
                aggregate.success += 1
            elif status == "cancelled":
                aggregate.cancelled += 1
            else:
                aggregate.failure += 1
            aggregate.duration_sum += duration
            aggregate.durations.append(duration)

    def stage_finished(
        self, pipeline: str, stage: str, status: str, duration: float, queue_time: float | None
    ) -> None:
        """Count one finished stage execution."""
        with self._lock:
            # ``_pipeline``, inline: one call less a stage, the pipeline nearly always known.
            known = self._pipelines.get(pipeline)
            stages = (known if known is not None else self._pipeline(pipeline)).stages
            aggregate = stages.get(stage)
            if aggregate is None:  # not setdefault: it would build an aggregate every call
                aggregate = stages[stage] = _StageAggregate()
            aggregate.count += 1
            if status == "success":
                aggregate.success += 1
            else:
                aggregate.failure += 1
            aggregate.duration_sum += duration
            if queue_time is not None:
                aggregate.queue_sum += queue_time
                aggregate.queue_count += 1

    def snapshot(self, pipeline: str | None = None) -> MonitorMetrics:
        """A frozen snapshot of one pipeline, or of all of them merged."""
        with self._lock:
            if pipeline is not None:
                chosen = [self._pipelines[pipeline]] if pipeline in self._pipelines else []
            else:
                chosen = list(self._pipelines.values())
            finished = sum(a.finished for a in chosen)
            success = sum(a.success for a in chosen)
            durations = sorted(d for a in chosen for d in a.durations)
            duration_sum = sum(a.duration_sum for a in chosen)
            merged: dict[str, _StageAggregate] = {}
            for aggregate in chosen:
                for name, stage in aggregate.stages.items():
                    into = merged.setdefault(name, _StageAggregate())
                    into.count += stage.count
                    into.success += stage.success
                    into.failure += stage.failure
                    into.duration_sum += stage.duration_sum
                    into.queue_sum += stage.queue_sum
                    into.queue_count += stage.queue_count
            return MonitorMetrics(
                total_runs=finished,
                successful_runs=success,
                failed_runs=sum(a.failure for a in chosen),
                cancelled_runs=sum(a.cancelled for a in chosen),
                active_runs=sum(a.active for a in chosen),
                success_rate=success / finished if finished else 0.0,
                avg_execution_time=duration_sum / finished if finished else 0.0,
                p50_execution_time=_percentile(durations, 0.5),
                p90_execution_time=_percentile(durations, 0.9),
                p99_execution_time=_percentile(durations, 0.99),
                stages={
                    name: StageMetrics(
                        stage=name,
                        count=s.count,
                        success_count=s.success,
                        failure_count=s.failure,
                        avg_duration=s.duration_sum / s.count if s.count else 0.0,
                        avg_queue_time=s.queue_sum / s.queue_count if s.queue_count else 0.0,
                    )
                    for name, s in merged.items()
                },
            )
