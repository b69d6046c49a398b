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
    pipeline_labels_folded_total{label}                         Counter        {fold}

plus the semconv run metrics ``cicd.pipeline.run.duration`` (s; ``cicd.pipeline.name``,
``cicd.pipeline.result``), ``cicd.pipeline.run.active`` (``cicd.pipeline.name``,
``cicd.pipeline.run.state=executing``) and ``cicd.pipeline.run.errors`` (``cicd.pipeline.name``,
``error.type``). Histograms get ``telemetry.DURATION_BUCKETS`` (seconds, 1 ms to 4 h) through
the bucket advisory, so no View is needed and the SDK's millisecond defaults never apply.

Statuses: runs are counted as ``success``, ``failure`` or ``cancelled``; stage executions
(every attempt and instance) as ``success``, ``failure``, ``timeout`` or ``cancelled``. Skipped
stages never executed and are not counted. A pipeline's run series of the three statuses
exist, at 0, from its first run's start, and so do the execution series of the four statuses
of every stage of the run's DAG (``PipelineMetrics._run_series_born`` and
``_stage_series_born`` say why, and what bounds them). A replay's fed execution (its
recorded outputs returned, no handler run) is counted as ``replayed`` in
``pipeline_stage_executions_total`` only: it records no duration, queue time or trigger wait,
so the histograms (and the percentiles built from them across statuses) hold real executions
only. Trigger wait is
recorded once per stage instance (its first attempt: later attempts wait for a backoff, not a
trigger); queue time per attempt.

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
``limits[label]`` distinct values and folds later ones into ``#other#``, and the label
combinations of each instrument with more than one free label through a ``SeriesBudget`` that
keeps them under the OTel SDK's cardinality limit, so the SDK never folds a series silently
into its overflow point; every fold is counted in ``pipeline_labels_folded_total``, logged
once (``_labels`` says why) and alerted (``PipelineLabelsFolded``).

Modules:

* ``_instruments``: ``PipelineMetrics``, the instruments above and their recording methods.
* ``_direct``: a synchronous instrument's records handed straight to the SDK's aggregations,
  when the instruments are the SDK's own.
* ``_labels``: the label guard and the series budget, which keep each label and instrument's
  series under their caps (cardinality).
* ``_aggregates``: the in-process aggregates behind ``PipelineMonitor.get_metrics()``, kept
  without any OpenTelemetry reader.
* ``_sampler``: the resource gauges' sampling of running stages' CPU and memory, over
  ``process_tree``.
"""

from taskdaemon.pipeline.metrics._aggregates import MonitorMetrics, RunAggregates, StageMetrics
from taskdaemon.pipeline.metrics._direct import sdk_checked
from taskdaemon.pipeline.metrics._instruments import PipelineMetrics
from taskdaemon.pipeline.metrics._labels import DEFAULT_LABEL_LIMITS, LabelGuard
from taskdaemon.pipeline.metrics._sampler import ResourceSampler

__all__ = [
    "DEFAULT_LABEL_LIMITS",
    "LabelGuard",
    "MonitorMetrics",
    "PipelineMetrics",
    "ResourceSampler",
    "RunAggregates",
    "StageMetrics",
    "sdk_checked",
]
