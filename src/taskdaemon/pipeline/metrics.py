"""Pipeline metrics: the OTel instruments in docs/architecture.md, resource sampling, in-process
aggregates.

``PipelineMetrics`` creates every instrument in its constructor, from the ``meter_provider`` it is
given (the global one by default), never at import. With the Prometheus exporter the instruments
render as::

    pipeline_executions_total{pipeline,status}                  Counter        {execution}
    pipeline_execution_duration_seconds{pipeline,status}        Histogram      s
    pipeline_active_executions{pipeline}                        UpDownCounter  {execution}
    pipeline_stage_executions_total{pipeline,stage,status}      Counter        {execution}
    pipeline_stage_duration_seconds{pipeline,stage,status}      Histogram      s
    pipeline_stage_queue_time_seconds{pipeline,stage}           Histogram      s
    pipeline_trigger_evaluations_total{pipeline,stage,trigger_type} Counter    {evaluation}
    pipeline_trigger_wait_time_seconds{pipeline,stage}          Histogram      s
    pipeline_memory_usage_bytes{pipeline,stage}                 ObservableGauge By
    pipeline_cpu_usage_percent{pipeline,stage}                  ObservableGauge %

plus the semconv run metrics ``cicd.pipeline.run.duration`` (s; ``cicd.pipeline.name``,
``cicd.pipeline.result``), ``cicd.pipeline.run.active`` (``cicd.pipeline.name``,
``cicd.pipeline.run.state=executing``) and ``cicd.pipeline.run.errors`` (``cicd.pipeline.name``,
``error.type``). Histograms get ``telemetry.DURATION_BUCKETS`` (seconds, 1 ms to 4 h) through
the bucket advisory, so no View is needed and the SDK's millisecond defaults never apply.

Statuses: runs are counted as ``success``, ``failure`` or ``cancelled``; stage executions
(every attempt and instance) as ``success``, ``failure``, ``timeout`` or ``cancelled``. Skipped
stages never executed and are not counted. Trigger wait is recorded once per stage instance
(its first attempt: later attempts wait for a backoff, not a trigger); queue time per attempt.

Resource gauges are sampled at collection time (scrape or export) by observable callbacks:

* a command stage reports its whole process tree (the pid from ``StageProcess`` and every
  descendant): summed RSS, and CPU percent from the change in user+system CPU time (each live
  process plus what it reaped) between two collections;
* a Python stage runs inside this process, so it reports this process's RSS and CPU.
  Caveat: two Python stages running at once both report the whole process (their work cannot
  be told apart in one interpreter), and the figures include the engine's own overhead.

Instances of one stage are summed for command stages (separate trees) and reported once for
Python stages (one process). A stage appears in the gauges only while it runs.

Cardinality: every label value passes through a ``LabelGuard`` that keeps at most
``limits[label]`` distinct values and folds later ones into ``#other#`` (logged once per label).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics as metrics_api
from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation

from taskdaemon import __version__
from taskdaemon.pipeline import telemetry as t

if TYPE_CHECKING:  # imported by the sampling callbacks: no run waits for it to load
    import psutil

__all__ = [
    "DEFAULT_LABEL_LIMITS",
    "LabelGuard",
    "MonitorMetrics",
    "PipelineMetrics",
    "ResourceSampler",
    "RunAggregates",
    "StageMetrics",
]

_logger = logging.getLogger(__name__)

DEFAULT_LABEL_LIMITS: Mapping[str, int] = {
    t.LABEL_PIPELINE: 100,
    t.LABEL_STAGE: 500,
    t.LABEL_STATUS: 20,
    t.LABEL_TRIGGER_TYPE: 20,
}
_DEFAULT_LIMIT = 100


class LabelGuard:
    """Caps the distinct values of each metric label; later values fold into ``#other#``.

    Values already admitted stay admitted, so a series never changes label mid-life. Thread
    safe (the engine thread records, the reader thread observes). Logs one warning per label
    the first time it folds.
    """

    def __init__(self, limits: Mapping[str, int] | None = None) -> None:
        self._limits = dict(DEFAULT_LABEL_LIMITS if limits is None else limits)
        self._seen: dict[str, set[str]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def limit(self, label: str) -> int:
        """The cap of ``label``."""
        return self._limits.get(label, _DEFAULT_LIMIT)

    def fold(self, label: str, value: str) -> str:
        """``value`` if admitted (or admissible), else ``#other#``."""
        seen = self._seen.get(label)
        if seen is not None and value in seen:
            return value
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) < self.limit(label):
                seen.add(value)
                return value
            if label not in self._warned:
                self._warned.add(label)
                _logger.warning(
                    "metric label %r exceeded %d distinct values; folding the rest into %r",
                    label,
                    self.limit(label),
                    t.OTHER_LABEL_VALUE,
                )
            return t.OTHER_LABEL_VALUE


# --- in-process aggregates ------------------------------------------------------------------


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
            aggregate = self._pipeline(pipeline).stages.setdefault(stage, _StageAggregate())
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


# --- resource sampling ----------------------------------------------------------------------


@dataclass
class _Sampled:
    pipeline: str
    stage: str
    pid: int | None  # None: a Python stage (this process)
    is_command: bool
    process: psutil.Process | None = None
    last_cpu: float | None = None
    last_wall: float | None = None


class ResourceSampler:
    """Tracks running stage executions and measures them when the gauges are collected.

    Keys are ``(run_id, task_run_id)``. Command stages are measured once their pid is known
    (``set_process``); until then they report nothing. All psutil work happens in the
    collection callbacks, never on the engine's thread.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._running: dict[tuple[str, str], _Sampled] = {}
        self._lock = threading.Lock()
        self._self_process: psutil.Process | None = None

    @property
    def _self(self) -> psutil.Process:
        if self._self_process is None:
            import psutil  # noqa: PLC0415 - see TYPE_CHECKING above

            self._self_process = psutil.Process()
        return self._self_process

    def stage_started(
        self,
        key: tuple[str, str],
        pipeline: str,
        stage: str,
        *,
        is_command: bool,
        cpu: float | None = None,
    ) -> None:
        """A stage execution started; Python stages take this process's CPU as baseline
        (``cpu``, the caller's ``time.process_time()`` reading, else read here)."""
        sampled = _Sampled(pipeline, stage, None, is_command)
        if not is_command:
            sampled.last_cpu = time.process_time() if cpu is None else cpu
            sampled.last_wall = self._clock()
        with self._lock:
            self._running[key] = sampled

    def set_process(self, key: tuple[str, str], pid: int) -> None:
        """The execution's work happens in the process tree rooted at ``pid``."""
        with self._lock:
            sampled = self._running.get(key)
            if sampled is not None:
                sampled.pid = pid
                sampled.is_command = True
                sampled.process = None
                sampled.last_cpu = None
                sampled.last_wall = None

    def stage_finished(self, key: tuple[str, str]) -> None:
        """The execution ended: it leaves the gauges."""
        with self._lock:
            self._running.pop(key, None)

    def active(self) -> int:
        """How many executions are tracked."""
        with self._lock:
            return len(self._running)

    def _entries(self) -> list[_Sampled]:
        with self._lock:
            return list(self._running.values())

    def _process(self, sampled: _Sampled) -> psutil.Process | None:
        import psutil  # noqa: PLC0415 - see TYPE_CHECKING above

        if sampled.pid is None:
            return None
        if sampled.process is None:
            try:
                sampled.process = psutil.Process(sampled.pid)
            except psutil.Error:
                return None
        return sampled.process

    @staticmethod
    def _tree(root: psutil.Process) -> list[psutil.Process]:
        import psutil  # noqa: PLC0415 - see TYPE_CHECKING above

        try:
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return [root]

    def memory(self) -> dict[tuple[str, str], float]:
        """RSS bytes per (pipeline, stage) now."""
        import psutil  # noqa: PLC0415 - see TYPE_CHECKING above

        result: dict[tuple[str, str], float] = {}
        own: float | None = None
        for sampled in self._entries():
            label = (sampled.pipeline, sampled.stage)
            if not sampled.is_command:
                if own is None:
                    own = float(self._self.memory_info().rss)
                result[label] = max(result.get(label, 0.0), own)
                continue
            root = self._process(sampled)
            if root is None:
                continue
            total = 0.0
            for process in self._tree(root):
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue
            result[label] = result.get(label, 0.0) + total
        return result

    def cpu_percent(self) -> dict[tuple[str, str], float]:
        """CPU percent per (pipeline, stage) since the previous collection (or the start)."""
        import psutil  # noqa: PLC0415 - see TYPE_CHECKING above

        result: dict[tuple[str, str], float] = {}
        now = self._clock()
        for sampled in self._entries():
            label = (sampled.pipeline, sampled.stage)
            if not sampled.is_command:
                cpu = time.process_time()
                percent = self._delta(sampled, cpu, now)
                if percent is not None:
                    result[label] = max(result.get(label, 0.0), percent)
                continue
            root = self._process(sampled)
            if root is None:
                continue
            tree_cpu = self._tree_cpu(root)
            if tree_cpu is None:
                continue
            if sampled.last_cpu is None:
                # A fresh process tree used nothing before it was created.
                try:
                    created = root.create_time()
                except psutil.Error:
                    continue
                sampled.last_cpu = 0.0
                sampled.last_wall = now - max(0.0, time.time() - created)
            percent = self._delta(sampled, tree_cpu, now)
            if percent is not None:
                result[label] = result.get(label, 0.0) + percent
        return result

    @staticmethod
    def _delta(sampled: _Sampled, cpu: float, now: float) -> float | None:
        last_cpu, last_wall = sampled.last_cpu, sampled.last_wall
        sampled.last_cpu, sampled.last_wall = cpu, now
        if last_cpu is None or last_wall is None or now <= last_wall:
            return None
        return max(0.0, (cpu - last_cpu) / (now - last_wall) * 100.0)

    def _tree_cpu(self, root: psutil.Process) -> float | None:
        import psutil  # noqa: PLC0415 - see TYPE_CHECKING above

        # Each process with what it reaped: every process counts once, alive or reaped.
        try:
            times = root.cpu_times()
        except psutil.Error:
            return None
        total = times.user + times.system + times.children_user + times.children_system
        for process in self._tree(root)[1:]:
            try:
                child = process.cpu_times()
            except psutil.Error:
                continue
            total += child.user + child.system + child.children_user + child.children_system
        return total


# --- instruments ----------------------------------------------------------------------------


class PipelineMetrics:
    """Every pipeline instrument, created from one meter, plus the recording methods.

    Recording methods take plain label values and fold them through the ``LabelGuard``;
    attribute dicts are cached per label combination (attribute hashing dominates the SDK's
    recording cost). ``resource_sampling=False`` keeps the two gauges but observes nothing.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        label_guard: LabelGuard | None = None,
        sampler: ResourceSampler | None = None,
        resource_sampling: bool = True,
    ) -> None:
        provider = meter_provider or metrics_api.get_meter_provider()
        meter = provider.get_meter(t.SCOPE_NAME, __version__, schema_url=t.SCHEMA_URL)
        self.guard = label_guard or LabelGuard()
        self.sampler = sampler or ResourceSampler()
        self.resource_sampling = resource_sampling
        self._attrs: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        buckets = list(t.DURATION_BUCKETS)

        def seconds_histogram(name: str, description: str) -> Histogram:
            # Every duration is in seconds on the schema's buckets (docs/architecture.md).
            return meter.create_histogram(
                name,
                unit=t.UNIT_SECONDS,
                description=description,
                explicit_bucket_boundaries_advisory=buckets,
            )

        self.executions = meter.create_counter(
            t.METRIC_EXECUTIONS, unit=t.UNIT_EXECUTIONS, description="Finished pipeline runs."
        )
        self.execution_duration = seconds_histogram(
            t.METRIC_EXECUTION_DURATION, "Duration of pipeline runs."
        )
        self.active_executions = meter.create_up_down_counter(
            t.METRIC_ACTIVE_EXECUTIONS, unit=t.UNIT_EXECUTIONS, description="Runs in progress."
        )
        self.stage_executions = meter.create_counter(
            t.METRIC_STAGE_EXECUTIONS,
            unit=t.UNIT_EXECUTIONS,
            description="Finished stage executions (every attempt and instance).",
        )
        self.stage_duration = seconds_histogram(
            t.METRIC_STAGE_DURATION, "Duration of stage executions."
        )
        self.stage_queue_time = seconds_histogram(
            t.METRIC_STAGE_QUEUE_TIME, "Time a ready stage waited for a worker slot."
        )
        self.trigger_evaluations = meter.create_counter(
            t.METRIC_TRIGGER_EVALUATIONS,
            unit=t.UNIT_EVALUATIONS,
            description="Trigger evaluations.",
        )
        self.trigger_wait_time = seconds_histogram(
            t.METRIC_TRIGGER_WAIT_TIME,
            "Time from when a stage could be considered until it was ready.",
        )
        self.memory_usage = meter.create_observable_gauge(
            t.METRIC_MEMORY_USAGE,
            callbacks=[self._observe_memory],
            unit=t.UNIT_BYTES,
            description="Resident memory of running stages (process tree for command stages).",
        )
        self.cpu_usage = meter.create_observable_gauge(
            t.METRIC_CPU_USAGE,
            callbacks=[self._observe_cpu],
            unit=t.UNIT_PERCENT,
            description="CPU use of running stages since the previous collection.",
        )
        self.cicd_run_duration = seconds_histogram(
            t.METRIC_CICD_RUN_DURATION, "Duration of a pipeline run grouped by pipeline and result."
        )
        self.cicd_run_active = meter.create_up_down_counter(
            t.METRIC_CICD_RUN_ACTIVE,
            unit=t.UNIT_RUNS,
            description="The number of pipeline runs currently active per state.",
        )
        self.cicd_run_errors = meter.create_counter(
            t.METRIC_CICD_RUN_ERRORS,
            unit=t.UNIT_ERRORS,
            description="The number of errors encountered in pipeline runs.",
        )

    def _labels(self, *pairs: tuple[str, str]) -> dict[str, Any]:
        key = pairs
        cached = self._attrs.get(key)
        if cached is None:
            cached = {label: self.guard.fold(label, value) for label, value in pairs}
            if len(self._attrs) < 100_000:  # bounded: labels are already capped by the guard
                self._attrs[key] = cached
        return cached

    # Recording ------------------------------------------------------------------------------

    def run_started(self, pipeline: str) -> None:
        """A run began."""
        self.active_executions.add(1, self._labels((t.LABEL_PIPELINE, pipeline)))
        self.cicd_run_active.add(
            1,
            self._labels(
                (t.CICD_PIPELINE_NAME, pipeline), (t.CICD_PIPELINE_RUN_STATE, "executing")
            ),
        )

    def run_finished(
        self, pipeline: str, status: str, result: str, duration: float, error_type: str | None
    ) -> None:
        """A run ended with ``status`` (RunStatus value) and semconv ``result``."""
        self.active_executions.add(-1, self._labels((t.LABEL_PIPELINE, pipeline)))
        self.cicd_run_active.add(
            -1,
            self._labels(
                (t.CICD_PIPELINE_NAME, pipeline), (t.CICD_PIPELINE_RUN_STATE, "executing")
            ),
        )
        labels = self._labels((t.LABEL_PIPELINE, pipeline), (t.LABEL_STATUS, status))
        self.executions.add(1, labels)
        self.execution_duration.record(duration, labels)
        self.cicd_run_duration.record(
            duration,
            self._labels((t.CICD_PIPELINE_NAME, pipeline), (t.CICD_PIPELINE_RESULT, result)),
        )
        if error_type is not None:
            self.cicd_run_errors.add(
                1, self._labels((t.CICD_PIPELINE_NAME, pipeline), (t.ERROR_TYPE, error_type))
            )

    def stage_started(
        self, pipeline: str, stage: str, queue_time: float, trigger_wait: float | None
    ) -> None:
        """A stage execution got its slot."""
        labels = self._labels((t.LABEL_PIPELINE, pipeline), (t.LABEL_STAGE, stage))
        self.stage_queue_time.record(queue_time, labels)
        if trigger_wait is not None:
            self.trigger_wait_time.record(trigger_wait, labels)

    def stage_finished(self, pipeline: str, stage: str, status: str, duration: float) -> None:
        """A stage execution ended with ``status`` (StageStatus value)."""
        labels = self._labels(
            (t.LABEL_PIPELINE, pipeline), (t.LABEL_STAGE, stage), (t.LABEL_STATUS, status)
        )
        self.stage_executions.add(1, labels)
        self.stage_duration.record(duration, labels)

    def trigger_evaluated(self, pipeline: str, stage: str, trigger_type: str) -> None:
        """One trigger was evaluated."""
        self.trigger_evaluations.add(
            1,
            self._labels(
                (t.LABEL_PIPELINE, pipeline),
                (t.LABEL_STAGE, stage),
                (t.LABEL_TRIGGER_TYPE, trigger_type),
            ),
        )

    # Observation ----------------------------------------------------------------------------

    def _observations(self, values: dict[tuple[str, str], float]) -> Iterable[Observation]:
        return [
            Observation(value, self._labels((t.LABEL_PIPELINE, p), (t.LABEL_STAGE, s)))
            for (p, s), value in values.items()
        ]

    def _observe_memory(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self.resource_sampling:
            return []
        try:
            return self._observations(self.sampler.memory())
        except Exception:  # a broken sample must not break the whole scrape
            _logger.warning("memory sampling failed", exc_info=True)
            return []

    def _observe_cpu(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self.resource_sampling:
            return []
        try:
            return self._observations(self.sampler.cpu_percent())
        except Exception:
            _logger.warning("cpu sampling failed", exc_info=True)
            return []
