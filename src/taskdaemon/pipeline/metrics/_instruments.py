"""The OTel instruments (listed in the package docstring) and their recording methods."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation

from taskdaemon import __version__
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.metrics._direct import direct_recorder
from taskdaemon.pipeline.metrics._labels import SDK_CARDINALITY_LIMIT, LabelGuard, SeriesBudget
from taskdaemon.pipeline.metrics._sampler import ResourceSampler
from taskdaemon.pipeline.state import RunStatus, StageStatus

__all__ = ["PipelineMetrics"]

# The package's logger, as before the split: a failed sample is the metrics' failure.
_logger = logging.getLogger("taskdaemon.pipeline.metrics")


#: At most this many attribute dicts per cache (labels are already capped by the guard).
_CACHED_MAX = 100_000

#: The statuses a run ends with (``RunStatus``' final ones): each pipeline's
#: ``pipeline_executions_total`` series for them exist, at 0, from its first run on.
RUN_STATUSES = tuple(str(status) for status in RunStatus if status.is_final)

#: At most this many stage execution series are made at 0 in a process: half the OTel SDK's
#: default cardinality limit of an instrument (``_labels`` says what happens past it), the
#: other half left to the series executions add.
_MADE_AHEAD_MAX = SDK_CARDINALITY_LIMIT // 2

#: The statuses a stage execution is counted with (``StageStatus``' final ones less
#: ``skipped``, never counted): each stage's ``pipeline_stage_executions_total`` series for
#: them exist, at 0, from the start of the first run whose DAG holds it.
STAGE_STATUSES = tuple(
    str(status) for status in StageStatus if status.is_final and status is not StageStatus.SKIPPED
)


class _FlatLabels(dict[tuple[str, ...], dict[str, Any]]):
    """The attribute dicts of one set of label names by their flat label values: a record's
    look-up is one subscript; a miss (``__missing__``) makes the dict through ``make`` (pairs
    of name and value), passes it through the instruments' ``SeriesBudget`` and keeps it
    while under the bound. The only dicts its instruments record with: the budget then
    bounds their series."""

    def __init__(self, make: Callable[..., dict[str, Any]], guard: LabelGuard, *names: str) -> None:
        super().__init__()
        self._make = make
        self._names = names
        self.budget = SeriesBudget(guard, *names)

    def __missing__(self, key: tuple[str, ...]) -> dict[str, Any]:
        labels = self.budget.admit(self._make(*zip(self._names, key, strict=True)))
        if len(self) < _CACHED_MAX:
            self[key] = labels
        return labels


class PipelineMetrics:
    """Every pipeline instrument, created from one meter, plus the recording methods.

    Recording methods take plain label values and fold them through the ``LabelGuard``;
    attribute dicts are cached per label combination (attribute hashing dominates the SDK's
    recording cost). ``resource_sampling=False`` keeps the two gauges but observes nothing.

    With the API's ``NoOpMeterProvider`` (what ``taskdaemon run`` has without a metric reader)
    ``recording`` is False and the recording methods return at once: the no-op instruments
    would drop every record, so folding labels and building attribute dicts for them (a new
    stage name misses every cache, so each stage of a run paid it) records nothing. The label
    guard then admits nothing either. A proxy provider (the global one before any is set) may
    become real later, so it records as usual.
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
        #: False when every record would be dropped (the API's no-op provider); see above.
        self.recording = not isinstance(provider, metrics_api.NoOpMeterProvider)
        meter = provider.get_meter(t.SCOPE_NAME, __version__, schema_url=t.SCHEMA_URL)
        self.guard = label_guard or LabelGuard()
        self.sampler = sampler or ResourceSampler()
        self.resource_sampling = resource_sampling
        self._attrs: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        #: Pipelines whose run-status series exist (``_run_series_born``).
        self._born: set[str] = set()
        #: Per pipeline, the stage names whose status series exist (``_stage_series_born``).
        self._stages_born: dict[str, frozenset[str]] = {}
        #: Stage execution series made at 0 so far (at most ``_MADE_AHEAD_MAX``).
        self._made_ahead = 0
        # The attribute dicts of every instrument with more than one free label, by their
        # flat label values, in front of ``_attrs``: the same dicts, found without
        # ``_labels``' call and its tuple of pairs (five records a stage). Exact: a folded
        # value never changes once folded (the guard's sets only grow), so a dict cached once
        # is what ``_labels`` would give again. Each is the only one its instruments record
        # with, so its ``SeriesBudget`` keeps them under the SDK's cardinality limit (the
        # guard's caps admit 101 x 21 runs' (pipeline, status) and 101 x 101 of the others).
        # The instruments left out have one free label, at most 101 series:
        # ``pipeline_active_executions`` and ``cicd.pipeline.run.active`` (its state is
        # always ``executing``).
        guard = self.guard
        self._stage_attrs = _FlatLabels(self._labels, guard, t.LABEL_PIPELINE, t.LABEL_STAGE)
        self._finished_attrs = _FlatLabels(
            self._labels, guard, t.LABEL_PIPELINE, t.LABEL_STAGE, t.LABEL_STATUS
        )
        self._trigger_attrs = _FlatLabels(
            self._labels, guard, t.LABEL_PIPELINE, t.LABEL_STAGE, t.LABEL_TRIGGER_TYPE
        )
        self._run_attrs = _FlatLabels(self._labels, guard, t.LABEL_PIPELINE, t.LABEL_STATUS)
        self._result_attrs = _FlatLabels(
            self._labels, guard, t.CICD_PIPELINE_NAME, t.CICD_PIPELINE_RESULT
        )
        self._error_attrs = _FlatLabels(self._labels, guard, t.CICD_PIPELINE_NAME, t.ERROR_TYPE)
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
        # The per-stage records, straight to the SDK's aggregations (``_direct``): the same
        # data points for several times less work a record.
        self._record_queue_time = direct_recorder(self.stage_queue_time)
        self._record_trigger_wait = direct_recorder(self.trigger_wait_time)
        self._count_stage = direct_recorder(self.stage_executions)
        self._record_stage_duration = direct_recorder(self.stage_duration)
        self._count_trigger = direct_recorder(self.trigger_evaluations)
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
        self.labels_folded = meter.create_counter(
            t.METRIC_LABELS_FOLDED,
            unit=t.UNIT_FOLDS,
            description="Label values folded into #other# (once per new label combination).",
        )
        # The per-run records too: a run's start and end are handled on the thread that
        # settles the monitor's queue, which is the event loop's (``PipelineMonitor.on_event``),
        # so their work delays the run's first stage and its return.
        self._add_active = direct_recorder(self.active_executions)
        self._add_cicd_active = direct_recorder(self.cicd_run_active)
        self._count_run = direct_recorder(self.executions)
        self._record_run_duration = direct_recorder(self.execution_duration)
        self._record_cicd_duration = direct_recorder(self.cicd_run_duration)
        self._count_run_error = direct_recorder(self.cicd_run_errors)
        self._fold_attrs: dict[str, dict[str, str]] = {}
        if self.recording:
            guard.on_fold = self._folded
            # Each label's series at 0 from the start, as every loss counter's: a first fold
            # is then growth that increase() sees. The labels: each the guard caps, then each
            # budget's set (``cicd.pipeline.run.state`` has one value: it never folds).
            budgets = [
                cache.budget
                for cache in (
                    self._stage_attrs,
                    self._finished_attrs,
                    self._trigger_attrs,
                    self._run_attrs,
                    self._result_attrs,
                    self._error_attrs,
                )
            ]
            names = [name for budget in budgets for name in budget.other]
            for label in dict.fromkeys([*names, *(budget.label for budget in budgets)]):
                self.labels_folded.add(0, self._fold_label(label))

    def _fold_label(self, label: str) -> dict[str, str]:
        attrs = self._fold_attrs.get(label)
        if attrs is None:  # label keys are the code's own: a handful
            attrs = self._fold_attrs.setdefault(label, {t.LABEL_LABEL: label})
        return attrs

    def _folded(self, label: str) -> None:
        """The guard (or a series budget) folded a value of ``label``: counted."""
        self.labels_folded.add(1, self._fold_label(label))

    def _labels(self, *pairs: tuple[str, str]) -> dict[str, Any]:
        key = pairs
        cached = self._attrs.get(key)
        if cached is None:
            cached = {label: self.guard.fold(label, value) for label, value in pairs}
            if len(self._attrs) < _CACHED_MAX:  # bounded: labels are already capped by the guard
                self._attrs[key] = cached
        return cached

    # Recording ------------------------------------------------------------------------------

    def run_started(self, pipeline: str, stages: Collection[str] = ()) -> None:
        """A run of the DAG of ``stages`` (their names) began."""
        if not self.recording:
            return
        if pipeline not in self._born:
            self._run_series_born(pipeline)
        born = self._stages_born.get(pipeline)
        if born is None or not born.issuperset(stages):
            self._stage_series_born(pipeline, stages, born)
        self._add_active(1, self._labels((t.LABEL_PIPELINE, pipeline)))
        self._add_cicd_active(
            1,
            self._labels(
                (t.CICD_PIPELINE_NAME, pipeline), (t.CICD_PIPELINE_RUN_STATE, "executing")
            ),
        )

    def _run_series_born(self, pipeline: str) -> None:
        """Make the pipeline's ``pipeline_executions_total`` series of every run status exist,
        at 0, before its first run ends (once per pipeline and process).

        Prometheus' ``rate()`` and ``increase()`` see only what a series grew by between its
        samples: a series that first appeared at 1 hides that run, so a pipeline's first
        failure was missing from ``pipeline:execution_failure_ratio:rate30m`` and from
        ``PipelineFailureRateHigh``'s ``>= 3`` guard (one run fewer per status series born in
        their window).

        The per-stage series are made by ``_stage_series_born``.
        """
        self._born.add(pipeline)
        for status in RUN_STATUSES:
            self._count_run(0, self._run_attrs[pipeline, status])

    def _stage_series_born(
        self, pipeline: str, stages: Collection[str], born: frozenset[str] | None
    ) -> None:
        """Make ``pipeline_stage_executions_total{pipeline,stage,status}`` exist, at 0, for
        every stage of ``stages`` not in ``born`` (those of the DAG last made) and every
        counted status, before the run executes any: a stage's first failure (or timeout) is
        then growth that ``increase()`` and ``PipelineStageFailed`` see, even when a retry or
        ``error_strategy: continue`` keeps the run itself from failing.

        Once a DAG per pipeline and process: later runs of it only check their stage names
        against ``born`` (one set comparison a run, nothing a stage attempt); only the last
        DAG's names are kept, so a pipeline whose stages change holds no more than its
        current ones (adding 0 to a series that exists changes nothing). Bounded twice:
        stage names past the label guard's limit fold into ``#other#``, whose series are made
        once, and no more than ``_MADE_AHEAD_MAX`` series are made in a process, so that
        those made ahead never push the SDK past its cardinality limit (which the guard's
        500 stages x four statuses would): a 10,000-stage pipeline has its first 250 stages'
        series made at 0, in the DAG's order, and the others born at their first execution,
        as before. The duration histograms cannot be made empty through the OTel API (a
        record is an observation), so their series are born at a stage's first execution;
        the executions counter is the one that counts failures.
        """
        self._stages_born[pipeline] = frozenset(stages)
        made: set[str] = set()
        # In the DAG's order: a set's would let the hash seed pick the stages the guard admits
        # (or the bound leaves out) when there is room for some of them only.
        for stage in stages:
            if self._made_ahead + len(STAGE_STATUSES) > _MADE_AHEAD_MAX:
                return
            if born is not None and stage in born:
                continue
            series = [self._finished_attrs[pipeline, stage, status] for status in STAGE_STATUSES]
            folded = series[0][t.LABEL_STAGE]
            if folded in made:  # ``#other#``, already made for an earlier stage
                continue
            made.add(folded)
            self._made_ahead += len(STAGE_STATUSES)
            for labels in series:
                self._count_stage(0, labels)

    def run_finished(
        self, pipeline: str, status: str, result: str, duration: float, error_type: str | None
    ) -> None:
        """A run ended with ``status`` (RunStatus value) and semconv ``result``."""
        if not self.recording:
            return
        self._add_active(-1, self._labels((t.LABEL_PIPELINE, pipeline)))
        self._add_cicd_active(
            -1,
            self._labels(
                (t.CICD_PIPELINE_NAME, pipeline), (t.CICD_PIPELINE_RUN_STATE, "executing")
            ),
        )
        labels = self._run_attrs[pipeline, status]
        self._count_run(1, labels)
        self._record_run_duration(duration, labels)
        self._record_cicd_duration(duration, self._result_attrs[pipeline, result])
        if error_type is not None:
            self._count_run_error(1, self._error_attrs[pipeline, error_type])

    def stage_started(
        self, pipeline: str, stage: str, queue_time: float, trigger_wait: float | None
    ) -> None:
        """A stage execution got its slot."""
        if not self.recording:
            return
        labels = self._stage_attrs[pipeline, stage]
        self._record_queue_time(queue_time, labels)
        if trigger_wait is not None:
            self._record_trigger_wait(trigger_wait, labels)

    def stage_finished(self, pipeline: str, stage: str, status: str, duration: float) -> None:
        """A stage execution ended with ``status`` (StageStatus value)."""
        if not self.recording:
            return
        labels = self._finished_attrs[pipeline, stage, status]
        self._count_stage(1, labels)
        self._record_stage_duration(duration, labels)

    def stage_fed(self, pipeline: str, stage: str) -> None:
        """A replay's fed execution ended: counted under status ``replayed``, with no duration
        (it did no work; the duration histograms hold real executions only)."""
        if not self.recording:
            return
        self._count_stage(1, self._finished_attrs[pipeline, stage, t.STATUS_REPLAYED])

    def trigger_evaluated(self, pipeline: str, stage: str, trigger_type: str) -> None:
        """One trigger was evaluated."""
        if not self.recording:
            return
        self._count_trigger(1, self._trigger_attrs[pipeline, stage, trigger_type])

    # Observation ----------------------------------------------------------------------------

    def _observations(self, values: dict[tuple[str, str], float]) -> Iterable[Observation]:
        return [Observation(value, self._stage_attrs[p, s]) for (p, s), value in values.items()]

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
