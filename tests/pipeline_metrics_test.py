"""PipelineMonitor metrics: instrument values, buckets, Prometheus exposition, label folding,
resource gauges and the in-process ``get_metrics()`` snapshot."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal._view_instrument_match import _DEFAULT_CARDINALITY_LIMIT
from opentelemetry.sdk.metrics._internal.measurement import Measurement
from opentelemetry.sdk.metrics._internal.measurement_consumer import (
    SynchronousMeasurementConsumer,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline_monitor_support import (
    Feed,
    Telemetry,
    chain_pipeline,
    example_pipeline,
    play_example_run,
)
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.metrics import LabelGuard, MonitorMetrics, PipelineMetrics, StageMetrics
from taskdaemon.pipeline.metrics._labels import SDK_CARDINALITY_LIMIT
from taskdaemon.pipeline.model import Manual, Pipeline, Stage
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.state import RunStatus, StageStatus

ROOT = Path(__file__).resolve().parent.parent


def _run_chain(feed: Feed, *, fail: bool = False, seconds: float = 2.0) -> None:
    feed.start_run()
    feed.trigger("a", 0, "manual")
    feed.start("a", queue=0.5, wait=0.25)
    feed.tick(seconds)
    if fail:
        feed.finish("a", status=StageStatus.FAILURE, error="x", error_type="ValueError")
        feed.finish_run(RunStatus.FAILURE, error_type="stage_failed")
    else:
        feed.finish("a")
        feed.finish_run()
    feed.tick(10)


def test_run_counters_and_durations(tel: Telemetry) -> None:
    """Runs are counted by pipeline and status, with their durations in the histogram."""
    feed = Feed(tel, chain_pipeline(("a",)))
    _run_chain(feed)
    _run_chain(feed)
    _run_chain(feed, fail=True)
    assert {
        (("pipeline", "chain"), ("status", "success")): 2,
        (("pipeline", "chain"), ("status", "failure")): 1,
        (("pipeline", "chain"), ("status", "cancelled")): 0,  # there from the first run on
    } == tel.values(t.METRIC_EXECUTIONS)
    histograms = tel.histograms(t.METRIC_EXECUTION_DURATION)
    success = histograms[(("pipeline", "chain"), ("status", "success"))]
    assert (2, 5.0, t.DURATION_BUCKETS) == (
        success.count,
        success.sum,
        tuple(success.explicit_bounds),
    )
    assert 2 == success.bucket_counts[t.DURATION_BUCKETS.index(2.5)]


def test_stage_counters_durations_and_waits(tel: Telemetry) -> None:
    """Stage executions, durations, queue time and trigger wait carry pipeline and stage."""
    feed = Feed(tel, chain_pipeline(("a",)))
    _run_chain(feed)
    _run_chain(feed, fail=True, seconds=0.02)
    assert {
        (("pipeline", "chain"), ("stage", "a"), ("status", "success")): 1,
        (("pipeline", "chain"), ("stage", "a"), ("status", "failure")): 1,
        # there from the first run's start on, as every stage's of its DAG
        (("pipeline", "chain"), ("stage", "a"), ("status", "timeout")): 0,
        (("pipeline", "chain"), ("stage", "a"), ("status", "cancelled")): 0,
    } == tel.values(t.METRIC_STAGE_EXECUTIONS)
    durations = tel.histograms(t.METRIC_STAGE_DURATION)
    failed = durations[(("pipeline", "chain"), ("stage", "a"), ("status", "failure"))]
    assert (1, 1) == (failed.count, failed.bucket_counts[t.DURATION_BUCKETS.index(0.025)])
    stage = (("pipeline", "chain"), ("stage", "a"))
    queue = tel.histograms(t.METRIC_STAGE_QUEUE_TIME)[stage]
    wait = tel.histograms(t.METRIC_TRIGGER_WAIT_TIME)[stage]
    assert ((2, 1.0), (2, 0.5)) == ((queue.count, queue.sum), (wait.count, wait.sum))


def test_every_stage_of_the_dag_is_counted_at_zero_from_the_run_start(tel: Telemetry) -> None:
    """At a run's start, before any stage executes, each stage of its DAG has its execution
    series of the four counted statuses at 0: its first failure is growth from 0."""
    feed = Feed(tel, chain_pipeline(("a", "b", "c")))
    feed.start_run()
    assert {
        (("pipeline", "chain"), ("stage", stage), ("status", status)): 0
        for stage in ("a", "b", "c")
        for status in ("success", "failure", "timeout", "cancelled")
    } == tel.values(t.METRIC_STAGE_EXECUTIONS)


def test_stage_series_made_at_zero_are_bounded_by_the_label_guard(tel: Telemetry) -> None:
    """Stage names past the guard's cap fold into ``#other#`` when made at 0 too: a DAG of
    ten stages under a cap of two makes three stages' series; a later DAG of the pipeline
    adds its new stages', and the earlier series stay as they are."""
    metrics = PipelineMetrics(
        meter_provider=tel.meter_provider, label_guard=LabelGuard({"stage": 2})
    )
    metrics.run_started("p", [f"s{index}" for index in range(10)])
    metrics.stage_finished("p", "s9", "failure", 1.0)
    metrics.run_started("p", [f"s{index}" for index in range(10)])
    metrics.run_started("q", ["s0", "t"])
    statuses = ("success", "failure", "timeout", "cancelled")
    assert {
        **{
            (("pipeline", "p"), ("stage", stage), ("status", status)): 0
            for stage in ("s0", "s1", "#other#")
            for status in statuses
        },
        (("pipeline", "p"), ("stage", "#other#"), ("status", "failure")): 1,
        **{
            (("pipeline", "q"), ("stage", stage), ("status", status)): 0
            for stage in ("s0", "#other#")
            for status in statuses
        },
    } == tel.values(t.METRIC_STAGE_EXECUTIONS)


def test_stage_series_made_at_zero_stay_under_the_sdks_cardinality_limit(
    tel: Telemetry,
) -> None:
    """A process makes at most 1,000 stage series at 0 (250 stages, in the DAG's order), half
    the SDK's 2,000 attribute sets an instrument: a 300-stage DAG's later stages are born at
    their first execution, and none is folded into the SDK's overflow point."""
    metrics = PipelineMetrics(meter_provider=tel.meter_provider)
    names = [f"s{index:03}" for index in range(300)]
    metrics.run_started("p", names)
    metrics.stage_finished("p", "s299", "failure", 1.0)
    values = tel.values(t.METRIC_STAGE_EXECUTIONS)
    assert (1001, {"p"}, 1, 0) == (
        len(values),
        {dict(key)["pipeline"] for key in values},
        values[(("pipeline", "p"), ("stage", "s299"), ("status", "failure"))],
        sum(1 for key in values if dict(key)["stage"] in names[250:299]),
    )


def test_trigger_wait_counts_first_attempts_only(tel: Telemetry) -> None:
    """A retry records queue time again but no second trigger wait."""
    feed = Feed(tel, chain_pipeline(("a",)))
    feed.start_run()
    feed.start("a")
    feed.finish("a", status=StageStatus.FAILURE, error="x", will_retry=True)
    feed.start("a", attempt=2)
    feed.finish("a", attempt=2)
    feed.finish_run()
    stage = (("pipeline", "chain"), ("stage", "a"))
    assert (2, 1) == (
        tel.histograms(t.METRIC_STAGE_QUEUE_TIME)[stage].count,
        tel.histograms(t.METRIC_TRIGGER_WAIT_TIME)[stage].count,
    )


def test_trigger_evaluations_by_type(tel: Telemetry) -> None:
    """Every trigger evaluation is counted with its stage and trigger type."""
    play_example_run(Feed(tel, example_pipeline()))
    name = ("pipeline", "feature-delivery")
    assert {
        (name, ("stage", "planning"), ("trigger_type", "manual")): 1,
        (name, ("stage", "specification"), ("trigger_type", "on_completion")): 1,
        (name, ("stage", "implementation"), ("trigger_type", "on_event")): 2,
        (name, ("stage", "release"), ("trigger_type", "on_completion")): 1,
        (name, ("stage", "release"), ("trigger_type", "on_condition")): 1,
        (name, ("stage", "release"), ("trigger_type", "manual")): 1,
    } == tel.values(t.METRIC_TRIGGER_EVALUATIONS)


def test_active_executions_rise_and_fall(tel: Telemetry) -> None:
    """The active gauge is 1 while a run is open and 0 after it ends."""
    feed = Feed(tel, chain_pipeline(("a",)))
    feed.start_run()
    during = tel.values(t.METRIC_ACTIVE_EXECUTIONS)
    feed.finish_run(RunStatus.CANCELLED)
    after = tel.values(t.METRIC_ACTIVE_EXECUTIONS)
    key = (("pipeline", "chain"),)
    assert ({key: 1}, {key: 0}) == (during, after)


def test_a_runs_records_after_the_first_skip_the_sdks_path(
    tel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's start and end are handled on the event loop's thread: only label sets not seen
    before take the SDK's own path, so a second run of a pipeline hands its records to the
    aggregations directly (``metrics._direct``), with the values the SDK's path records."""
    metrics = PipelineMetrics(meter_provider=tel.meter_provider)
    consumed: list[str] = []
    own = SynchronousMeasurementConsumer.consume_measurement

    def counted(consumer: SynchronousMeasurementConsumer, measurement: Measurement) -> None:
        consumed.append(measurement.instrument.name)
        own(consumer, measurement)

    monkeypatch.setattr(SynchronousMeasurementConsumer, "consume_measurement", counted)
    through_sdk = []
    for _ in range(2):
        metrics.run_started("p")
        metrics.run_finished("p", "failure", "failure", 1.5, "stage_failed")
        through_sdk.append(len(consumed))
        consumed.clear()
    p, cicd = ("pipeline", "p"), ("cicd.pipeline.name", "p")
    duration = tel.histograms(t.METRIC_EXECUTION_DURATION)[(p, ("status", "failure"))]
    assert (
        [8, 0],
        {
            (p, ("status", s)): 2 if s == "failure" else 0
            for s in ("success", "failure", "cancelled")
        },
        (2, 3.0),
        {(p,): 0},
        {(cicd, ("cicd.pipeline.run.state", "executing")): 0},
        {(cicd, ("error.type", "stage_failed")): 2},
    ) == (
        through_sdk,
        tel.values(t.METRIC_EXECUTIONS),
        (duration.count, duration.sum),
        tel.values(t.METRIC_ACTIVE_EXECUTIONS),
        tel.values(t.METRIC_CICD_RUN_ACTIVE),
        tel.values(t.METRIC_CICD_RUN_ERRORS),
    )


def test_semconv_run_metrics(tel: Telemetry) -> None:
    """cicd.pipeline.run.* are recorded with the semconv attributes."""
    feed = Feed(tel, chain_pipeline(("a",)))
    _run_chain(feed)
    _run_chain(feed, fail=True)
    name = ("cicd.pipeline.name", "chain")
    durations = tel.histograms(t.METRIC_CICD_RUN_DURATION)
    assert {
        (name, ("cicd.pipeline.result", "success")): 1,
        (name, ("cicd.pipeline.result", "failure")): 1,
    } == {key: point.count for key, point in durations.items()}
    assert {(name, ("error.type", "stage_failed")): 1} == tel.values(t.METRIC_CICD_RUN_ERRORS)
    assert {(name, ("cicd.pipeline.run.state", "executing")): 0} == tel.values(
        t.METRIC_CICD_RUN_ACTIVE
    )


def test_histograms_use_second_buckets(tel: Telemetry) -> None:
    """Every duration histogram has the second-based DURATION_BUCKETS, not the SDK defaults."""
    play_example_run(Feed(tel, example_pipeline()))
    names = [
        t.METRIC_EXECUTION_DURATION,
        t.METRIC_STAGE_DURATION,
        t.METRIC_STAGE_QUEUE_TIME,
        t.METRIC_TRIGGER_WAIT_TIME,
        t.METRIC_CICD_RUN_DURATION,
    ]
    bounds = {
        name: {tuple(p.explicit_bounds) for p in tel.histograms(name).values()} for name in names
    }
    assert {name: {t.DURATION_BUCKETS} for name in names} == bounds


def _documented_series() -> dict[str, str]:
    """The ``pipeline_*`` series of docs/architecture.md's "Metrics" table, each with its
    instrument's kind as the Prometheus exposition types it."""
    kinds = {"Counter": "counter", "Histogram": "histogram"}  # the rest are gauges
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("\n### Metrics\n", 1)[1].split("\n#", 1)[0]
    rows = (line.split("|") for line in table.splitlines() if line.startswith("| `"))
    return {
        cells[4].strip(" `"): kinds.get(cells[2].strip(), "gauge")
        for cells in rows
        if cells[4].strip(" `").startswith("pipeline_")
    }


def test_prometheus_exposition_names_types_and_labels() -> None:
    """The Prometheus exporter renders exactly the documented names (docs/architecture.md's
    table, which the README points to: it said "the ten" of eleven), types and labels."""
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(disable_target_info=True, registry=registry)
    provider = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(meter_provider=provider)
    feed = Feed(telemetry, example_pipeline(), resource_sampling=True)
    play_example_run(feed)
    feed.start_run()
    feed.start("planning")  # open: the resource gauges have a running stage to report
    text = generate_latest(registry).decode()
    feed.finish("planning")
    feed.finish_run()
    telemetry.shutdown()
    types = dict(
        line.split(" ")[2:4] for line in text.splitlines() if line.startswith("# TYPE pipeline_")
    )
    assert (
        {
            "pipeline_executions_total": "counter",
            "pipeline_execution_duration_seconds": "histogram",
            "pipeline_active_executions": "gauge",
            "pipeline_stage_executions_total": "counter",
            "pipeline_stage_duration_seconds": "histogram",
            "pipeline_stage_queue_time_seconds": "histogram",
            "pipeline_trigger_evaluations_total": "counter",
            "pipeline_trigger_wait_time_seconds": "histogram",
            "pipeline_memory_usage_bytes": "gauge",
            "pipeline_cpu_usage_percent": "gauge",
            "pipeline_labels_folded_total": "counter",
        }
        == {
            name.removesuffix("_total") + ("_total" if name.endswith("_total") else ""): kind
            for name, kind in types.items()
        }
        == _documented_series()
    )
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    scope = (
        ("otel_scope_name", "taskdaemon.pipeline"),
        ("otel_scope_schema_url", "https://opentelemetry.io/schemas/1.43.0"),
        ("otel_scope_version", "0.1.0"),
    )
    pipeline = ("pipeline", "feature-delivery")
    release = ("stage", "release")
    assert {
        ("pipeline_executions_total", (*scope, pipeline, ("status", "success"))): 1.0,
        ("pipeline_active_executions", (*scope, pipeline)): 1.0,
        (
            "pipeline_stage_executions_total",
            (*scope, pipeline, ("stage", "implementation"), ("status", "success")),
        ): 2.0,
        (
            "pipeline_trigger_evaluations_total",
            (*scope, pipeline, release, ("trigger_type", "on_condition")),
        ): 1.0,
        (
            "pipeline_execution_duration_seconds_bucket",
            (("le", "14400.0"), *scope, pipeline, ("status", "success")),
        ): 1.0,
        ("pipeline_stage_queue_time_seconds_count", (*scope, pipeline, release)): 1.0,
        ("pipeline_labels_folded_total", (("label", "stage"), *scope)): 0.0,
        ("pipeline_labels_folded_total", (("label", "pipeline,stage,status"), *scope)): 0.0,
    }.items() <= samples.items()
    assert ("pipeline_memory_usage_bytes", (*scope, pipeline, ("stage", "planning"))) in samples
    assert "cicd_pipeline_run_duration_seconds_bucket" in text


def test_label_guard_folds_beyond_the_cap(caplog: pytest.LogCaptureFixture) -> None:
    """Values past a label's cap become #other#, logged once and each handed to ``on_fold``;
    admitted values stay, and ``#other#`` itself is no fold."""
    guard = LabelGuard({"stage": 2})
    folds: list[str] = []
    guard.on_fold = folds.append
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.metrics"):
        folded = [guard.fold("stage", v) for v in ("a", "b", "c", "d", "a", "#other#")]
    assert (["a", "b", "#other#", "#other#", "a", "#other#"], ["stage", "stage"], 1) == (
        folded,
        folds,
        len(caplog.records),
    )


def test_the_sdk_never_folds_a_stage_series_silently(caplog: pytest.LogCaptureFixture) -> None:
    """More (pipeline, stage, status) combinations than the SDK's cardinality limit, recorded
    into a real provider with a Prometheus and an in-memory reader: no series goes to the
    SDK's overflow point; the stage instruments keep 1,999 series and the all-``#other#`` one,
    which holds every later record, each fold counted and the budget logged once. Every
    record is still counted somewhere."""
    assert SDK_CARDINALITY_LIMIT == _DEFAULT_CARDINALITY_LIMIT  # the SDK's, as documented
    registry = CollectorRegistry()
    readers = (InMemoryMetricReader(), PrometheusMetricReader(registry=registry))
    tel = Telemetry(reader=readers[0], meter_provider=MeterProvider(metric_readers=readers))
    metrics = PipelineMetrics(meter_provider=tel.meter_provider, resource_sampling=False)
    statuses = ("success", "failure", "timeout", "cancelled")
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.metrics"):
        for pipeline in ("p0", "p1", "p2"):
            for stage in range(300):  # 3,600 combinations, the stage names under the cap
                metrics.stage_started(pipeline, f"s{stage}", 0.5, None)
                for status in statuses:
                    metrics.stage_finished(pipeline, f"s{stage}", status, 1.0)
        text = generate_latest(registry).decode()
        executions = tel.values(t.METRIC_STAGE_EXECUTIONS)
        durations = {k: h.count for k, h in tel.histograms(t.METRIC_STAGE_DURATION).items()}
        queue = {k: h.count for k, h in tel.histograms(t.METRIC_STAGE_QUEUE_TIME).items()}
        folds = {dict(k)["label"]: v for k, v in tel.values(t.METRIC_LABELS_FOLDED).items()}
    tel.shutdown()
    other = (("pipeline", "#other#"), ("stage", "#other#"), ("status", "#other#"))
    assert (
        "overflow" in text,
        len(executions),
        executions[other],
        sum(executions.values()),
        durations == executions,
        len(queue),
        sum(queue.values()),
        folds,
        [r.getMessage() for r in caplog.records],
    ) == (
        False,
        2000,
        3600 - 1999,
        3600,
        True,
        900,
        900,
        {
            "pipeline": 0,
            "stage": 0,
            "status": 0,
            "trigger_type": 0,
            "pipeline,stage": 0,
            "pipeline,stage,status": 3600 - 1999,
            "pipeline,stage,trigger_type": 0,
            **RUN_FOLD_LABELS,
        },
        [
            "metric series of pipeline,stage,status exceeded 1999; recording the rest under"
            " '#other#' (counted in pipeline_labels_folded_total)"
        ],
    )


#: The fold counter's series of the run-level instruments, at 0 until a fold.
RUN_FOLD_LABELS = {
    "cicd.pipeline.name": 0,
    "cicd.pipeline.result": 0,
    "error.type": 0,
    "pipeline,status": 0,
    "cicd.pipeline.name,cicd.pipeline.result": 0,
    "cicd.pipeline.name,error.type": 0,
}


def test_the_sdk_never_folds_a_run_series_silently(caplog: pytest.LogCaptureFixture) -> None:
    """50 pipelines' runs, each ending with one of 50 statuses, results and error types
    (2,500 label sets an instrument, the guard's caps raised so that only the budgets fold),
    recorded into a real provider with a Prometheus and an in-memory reader: no series goes to
    the SDK's overflow point; every run-level instrument with two free labels keeps 1,999
    series and the all-``#other#`` one, each fold counted under its label set and each budget
    logged once. Every run is still counted somewhere."""
    registry = CollectorRegistry()
    readers = (InMemoryMetricReader(), PrometheusMetricReader(registry=registry))
    tel = Telemetry(reader=readers[0], meter_provider=MeterProvider(metric_readers=readers))
    labels = ("pipeline", "status", "cicd.pipeline.name", "cicd.pipeline.result", "error.type")
    metrics = PipelineMetrics(
        meter_provider=tel.meter_provider,
        label_guard=LabelGuard(dict.fromkeys(labels, 1000)),
        resource_sampling=False,
    )
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.metrics"):
        for pipeline in range(50):
            for end in range(50):
                metrics.run_finished(f"p{pipeline}", f"s{end}", f"r{end}", 1.0, f"E{end}")
        text = generate_latest(registry).decode()
        counted = {
            name: tel.values(name) for name in (t.METRIC_EXECUTIONS, t.METRIC_CICD_RUN_ERRORS)
        } | {
            name: {k: h.count for k, h in tel.histograms(name).items()}
            for name in (t.METRIC_EXECUTION_DURATION, t.METRIC_CICD_RUN_DURATION)
        }
        folds = {dict(k)["label"]: v for k, v in tel.values(t.METRIC_LABELS_FOLDED).items()}
    tel.shutdown()
    budgets = ("pipeline,status", "cicd.pipeline.name,cicd.pipeline.result")
    budgets += ("cicd.pipeline.name,error.type",)
    assert (
        "overflow" in text,
        {name: (len(series), sum(series.values())) for name, series in counted.items()},
        {label: count for label, count in folds.items() if count},
        set(folds) >= set(RUN_FOLD_LABELS),
        [r.getMessage() for r in caplog.records],
    ) == (
        False,
        dict.fromkeys(counted, (2000, 2500)),
        dict.fromkeys(budgets, 2500 - 1999),
        True,
        [
            f"metric series of {label} exceeded 1999; recording the rest under '#other#'"
            " (counted in pipeline_labels_folded_total)"
            for label in budgets
        ],
    )


def test_monitor_folds_pipeline_names(tel: Telemetry) -> None:
    """Pipelines beyond the limit are counted under #other#."""
    monitor = PipelineMonitor(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        label_limits={"pipeline": 2, "stage": 10},
    )
    for name in ("p1", "p2", "p3", "p4"):
        pipeline = Pipeline(name, (Stage("a", "python", (Manual(),)),))
        run_id = monitor.start_run(pipeline)
        monitor.finish_run(run_id, "cancelled")
    assert {
        **{
            ((("pipeline", p), ("status", s))): 0
            for p in ("p1", "p2", "#other#")
            for s in ("success", "failure")
        },
        (("pipeline", "p1"), ("status", "cancelled")): 1,
        (("pipeline", "p2"), ("status", "cancelled")): 1,
        (("pipeline", "#other#"), ("status", "cancelled")): 2,
    } == tel.values(t.METRIC_EXECUTIONS)


def test_get_metrics_snapshot(tel: Telemetry) -> None:
    """get_metrics() summarises runs and stages with exact averages and percentiles."""
    feed = Feed(tel, chain_pipeline(("a",)))
    for seconds in (1.0, 2.0, 3.0, 4.0):
        _run_chain(feed, seconds=seconds)
    _run_chain(feed, fail=True, seconds=10.0)
    # run durations: 0.5 queue + stage seconds -> 1.5, 2.5, 3.5, 4.5, 10.5
    assert (
        MonitorMetrics(
            total_runs=5,
            successful_runs=4,
            failed_runs=1,
            cancelled_runs=0,
            active_runs=0,
            success_rate=0.8,
            avg_execution_time=4.5,
            p50_execution_time=3.5,
            p90_execution_time=pytest.approx(8.1),  # type: ignore[arg-type]
            p99_execution_time=pytest.approx(10.26),  # type: ignore[arg-type]
            stages={"a": StageMetrics("a", 5, 4, 1, 4.0, 0.5)},
        )
        == feed.monitor.get_metrics()
    )


def test_get_metrics_per_pipeline(tel: Telemetry) -> None:
    """get_metrics(pipeline) only counts that pipeline; unknown pipelines give zeros."""
    monitor = PipelineMonitor(
        tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider
    )
    for name, status in (("p1", "success"), ("p2", "failure")):
        monitor.finish_run(monitor.start_run(name), status)
    assert (1, 1.0, 0.0, 0) == (
        monitor.get_metrics("p1").total_runs,
        monitor.get_metrics("p1").success_rate,
        monitor.get_metrics("p2").success_rate,
        monitor.get_metrics("nope").total_runs,
    )


@pytest.mark.slow
def test_resource_gauges_follow_a_command_stage(tel: Telemetry) -> None:
    """While a command stage burns CPU, its process tree's memory and CPU percent are reported."""
    pipeline = Pipeline("burn", (Stage("spin", "command", (Manual(),), command="spin"),))
    feed = Feed(tel, pipeline, resource_sampling=True)
    feed.start_run()
    feed.start("spin")
    # The busy loop runs in a grandchild, so only a tree-wide sample sees it.
    child = subprocess.Popen(["sh", "-c", "sh -c 'while :; do :; done' & wait"])
    try:
        feed.process("spin", child.pid)
        deadline = time.monotonic() + 30
        tree = psutil.Process(child.pid)
        while time.monotonic() < deadline:  # wait until the tree has used measurable CPU
            used = sum(p.cpu_times().user for p in tree.children(recursive=True))
            if used >= 0.2:
                break
            time.sleep(0.05)
        data = tel.reader.get_metrics_data()  # one collection: CPU % is per collection interval
        memory = tel.values(t.METRIC_MEMORY_USAGE, data)
        cpu = tel.values(t.METRIC_CPU_USAGE, data)
    finally:
        for process in psutil.Process(child.pid).children(recursive=True):
            process.kill()
        child.kill()
        child.wait()
    key = (("pipeline", "burn"), ("stage", "spin"))
    assert [key] == list(memory) == list(cpu)
    assert memory[key] > 1_000_000
    assert cpu[key] > 5.0
    feed.finish("spin")
    feed.finish_run()
    assert ({}, {}) == (tel.values(t.METRIC_MEMORY_USAGE), tel.values(t.METRIC_CPU_USAGE))


def test_python_stage_reports_this_process(tel: Telemetry) -> None:
    """A running Python stage reports this process's resident memory."""
    feed = Feed(tel, chain_pipeline(("a",)), resource_sampling=True)
    feed.start_run()
    feed.start("a")
    memory = tel.values(t.METRIC_MEMORY_USAGE)
    feed.finish("a")
    feed.finish_run()
    rss = psutil.Process().memory_info().rss
    value = memory[(("pipeline", "chain"), ("stage", "a"))]
    assert 0.5 < value / rss < 2.0


def test_resource_sampling_off_observes_nothing(tel: Telemetry) -> None:
    """resource_sampling=False keeps the gauges empty."""
    feed = Feed(tel, chain_pipeline(("a",)), resource_sampling=False)
    feed.start_run()
    feed.start("a")
    assert {} == tel.values(t.METRIC_MEMORY_USAGE)
    feed.finish("a")
    feed.finish_run()


def test_stage_records_fold_and_repeat_their_labels(tel: Telemetry) -> None:
    """Each per-stage record (queue and trigger wait, trigger evaluation, execution and
    duration) counts a repeated label set under the same series, and a stage name past the
    cap under ``#other#``, on its first record and on every later one alike."""
    metrics = PipelineMetrics(
        meter_provider=tel.meter_provider, label_guard=LabelGuard({"stage": 2})
    )
    for stage in ("a", "b", "c", "a", "c", "d", "b"):
        metrics.stage_started("p", stage, 0.5, 0.25)
        metrics.trigger_evaluated("p", stage, "manual")
        metrics.trigger_evaluated("p", stage, "on_completion")
        metrics.stage_finished("p", stage, "success", 1.0)
    metrics.stage_finished("p", "a", "failure", 2.0)
    p = ("pipeline", "p")
    stages = {(p, ("stage", "a")): 2, (p, ("stage", "b")): 2, (p, ("stage", "#other#")): 3}
    assert (
        tel.values(t.METRIC_STAGE_EXECUTIONS),
        tel.values(t.METRIC_TRIGGER_EVALUATIONS),
        {k: h.count for k, h in tel.histograms(t.METRIC_STAGE_QUEUE_TIME).items()},
        {k: h.count for k, h in tel.histograms(t.METRIC_TRIGGER_WAIT_TIME).items()},
        {k: h.sum for k, h in tel.histograms(t.METRIC_STAGE_DURATION).items()},
    ) == (
        {
            (p, ("stage", "a"), ("status", "success")): 2,
            (p, ("stage", "b"), ("status", "success")): 2,
            (p, ("stage", "#other#"), ("status", "success")): 3,
            (p, ("stage", "a"), ("status", "failure")): 1,
        },
        {
            (p, key[1], ("trigger_type", kind)): count
            for key, count in stages.items()
            for kind in ("manual", "on_completion")
        },
        stages,
        stages,
        {
            (p, ("stage", "a"), ("status", "success")): 2.0,
            (p, ("stage", "b"), ("status", "success")): 2.0,
            (p, ("stage", "#other#"), ("status", "success")): 3.0,
            (p, ("stage", "a"), ("status", "failure")): 2.0,
        },
    )
