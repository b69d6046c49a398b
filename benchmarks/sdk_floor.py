"""The raw OTel SDK floor of ``taskdaemon run``: the same telemetry, made by hand, no taskdaemon.

``python benchmarks/sdk_floor.py N`` makes, in one process, the spans, span events, links and
metric records that ``taskdaemon run -q`` makes for a chain of ``N`` no-op Python stages with
the default settings, through the same SDK set-up (``cli/telemetry.build_telemetry``): a
``TracerProvider`` feeding the embedded span store's ``SqliteSpanProcessor`` (the default
``TASKDAEMON_SPAN_SOURCE``; no exporter, hence no batch processor, is configured by default),
shut down at exit, and the metric records made through the API's no-op meter provider (``run``
without ``--serve`` has no metric reader, so no metrics SDK). ``--prometheus`` makes them through
a ``MeterProvider`` with a ``PrometheusMetricReader`` and the same histogram views (what
``--serve`` adds); ``--batch`` adds a ``BatchSpanProcessor`` over an exporter that drops spans
(what an OTLP exporter adds); ``--no-store`` leaves the span store's processor out, so what is
left is the SDK's own work for that telemetry (its spans are still recorded: the default
sampler samples them all).

Per stage, as the monitor records it (``benchmarks/per_stage.py`` checks the counts):

* a stage span (INTERNAL, child of the run span) with 16 attributes at its start and 3 more at
  its end, a ``triggered_by`` link to the previous stage's span (every stage but the first);
* 2 ``trigger.evaluated`` events (7 attributes) on the run span (the trigger is evaluated once
  when the upstream stage starts, once when it ends), ``stage.input`` and ``stage.output``
  events (4 attributes: payload JSON, size, sha256, truncated) on the stage span;
* 6 metric records: 2 trigger evaluations, queue time, trigger wait, stage executions, stage
  duration.

``--runs R`` makes ``R`` runs of that chain in one process, interleaved as the engine
interleaves the runs ``concurrent_runs.py`` starts at once: all ``R`` run spans open first, then
the first stage of every run, then the second stage of every run, and so on, then every run
ends. Each run has its own run span (hence its own trace), its own events, links and run-level
metric records; the pipeline and stage names are the same in every run, so the metric records
share their label sets, as the concurrent runs' do (they share the pipeline's 22 stage names).
This matters for the floor: the metrics SDK keeps one aggregation per instrument and label set,
and a record with a label set it has not seen (every stage of a long chain of distinct names)
makes a new one, which a record with a known label set does not. A stage's telemetry is made
whole (its span starts and ends) before the next run's stage; what differs from the concurrent
runs is that fewer stage spans are open at once. The default, one run, is the chain the script
always made.

``--tuned-gc`` runs the calls under ``heap.tuned_collector``, the collector's set-up under which
``taskdaemon run``, ``serve`` and ``concurrent_runs.py`` run: many runs open at once keep many
young containers alive, and the default thresholds make the collector walk them again and
again, a cost those processes do not pay. Off by default, so the script's figures stay
comparable with the ones it printed before.

The only taskdaemon code imported is the span store's processor (what receives the spans), its
version string and the collector's set-up. The payload JSON and hash use the standard library.
The script is the floor any monitoring layer pays: ``per_stage.py`` reports ``taskdaemon run``'s
cost per stage as a multiple of this script's.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, set_span_in_context
from prometheus_client import CollectorRegistry

from taskdaemon import __version__
from taskdaemon.pipeline.heap import tuned_collector
from taskdaemon.pipeline.tracking.writer import SqliteSpanProcessor

BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
)  # fmt: skip  (telemetry.DURATION_BUCKETS)


class DropExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def payload(value: Any) -> dict[str, Any]:
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return {
        "taskdaemon.payload.json": data.decode(),
        "taskdaemon.payload.size": len(data),
        "taskdaemon.payload.sha256": hashlib.sha256(data).hexdigest(),
        "taskdaemon.payload.truncated": False,
    }


def trigger_event(stage: str, kind: str, description: str, ready: bool, detail: str) -> Any:
    return {
        "cicd.pipeline.task.name": stage,
        "taskdaemon.trigger.index": 0,
        "taskdaemon.trigger.type": kind,
        "taskdaemon.trigger.description": description,
        "taskdaemon.trigger.satisfied": ready,
        "taskdaemon.trigger.stage_ready": ready,
        "taskdaemon.trigger.detail": detail,
    }


def run(
    stages: int,
    home: Path,
    batch: bool,
    prometheus: bool = False,
    store: bool = True,
    *,
    runs: int = 1,
) -> None:
    resource = Resource.create({"service.name": "taskdaemon", "service.version": __version__})
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    if store:
        tracer_provider.add_span_processor(SqliteSpanProcessor(home / "spans.db"))
    if batch:
        tracer_provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    aggregation = ExplicitBucketHistogramAggregation(boundaries=BUCKETS)
    meter_provider: Any = NoOpMeterProvider()
    if prometheus:
        meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[PrometheusMetricReader(registry=CollectorRegistry(auto_describe=True))],
            views=[
                View(instrument_type=Histogram, instrument_name=pattern, aggregation=aggregation)
                for pattern in ("pipeline.*", "cicd.pipeline.*")
            ],
            shutdown_on_exit=False,
        )
    tracer = tracer_provider.get_tracer("taskdaemon", __version__)
    meter = meter_provider.get_meter("taskdaemon", __version__)

    def histogram(name: str) -> Any:
        return meter.create_histogram(name, unit="s", explicit_bucket_boundaries_advisory=BUCKETS)

    executions = meter.create_counter("pipeline.executions")
    execution_duration = histogram("pipeline.execution.duration")
    active = meter.create_up_down_counter("pipeline.active.executions")
    stage_executions = meter.create_counter("pipeline.stage.executions")
    stage_duration = histogram("pipeline.stage.duration")
    queue_time = histogram("pipeline.stage.queue.time")
    evaluations = meter.create_counter("pipeline.trigger.evaluations")
    trigger_wait = histogram("pipeline.trigger.wait.time")
    cicd_duration = histogram("cicd.pipeline.run.duration")
    cicd_active = meter.create_up_down_counter("cicd.pipeline.run.active")

    pipeline = f"chain-{stages}"
    names = [f"s{i}" for i in range(stages)]
    descriptions = ["on run start"] + [f"on completion of {n}" for n in names[:-1]]
    kinds = ["manual"] + ["on_completion"] * (stages - 1)

    def spec(value: object) -> str:  # as the monitor encodes structured values
        return orjson.dumps(value).decode()

    completion = [["on_completion", n, True] for n in names[:-1]]
    specs = [spec(x) for x in [["manual", False, None], *completion]]
    run_attributes = {
        "cicd.pipeline.name": pipeline,
        "cicd.pipeline.action.name": "RUN",
        "taskdaemon.pipeline.definition_hash": "0" * 64,
        "taskdaemon.pipeline.stages": names,
        "taskdaemon.pipeline.stage_loops": ["python"] * stages,
        "taskdaemon.pipeline.edge_specs": [
            spec([a, b, c]) for (a, b), c in zip(itertools.pairwise(names), completion, strict=True)
        ],
        "taskdaemon.pipeline.concurrency": 4,
        "taskdaemon.pipeline.error_strategy": "fail",
    }
    pipeline_labels = {"pipeline": pipeline}
    cicd_labels = {"cicd.pipeline.name": pipeline, "cicd.pipeline.run.state": "executing"}

    class Run:
        """One run's span, context and last stage span (what the next stage links to)."""

        def __init__(self) -> None:
            self.start = time.time_ns()
            self.span = tracer.start_span(
                f"RUN {pipeline}",
                context=Context(),
                kind=SpanKind.SERVER,
                start_time=self.start,
                attributes=run_attributes,
            )
            self.id = f"{self.span.get_span_context().trace_id:032x}"
            self.span.set_attributes(
                {"cicd.pipeline.run.id": self.id, "taskdaemon.pipeline.started_by": "cli"}
            )
            self.parent = set_span_in_context(self.span, Context())
            self.previous: Any = None
            active.add(1, pipeline_labels)
            cicd_active.add(1, cicd_labels)

        def stage(self, i: int) -> None:
            name = names[i]
            run_span, run_id, previous = self.span, self.id, self.previous
            at = time.time_ns()
            labels = {"pipeline": pipeline, "stage": name}
            description, trigger_spec = descriptions[i], specs[i]
            evaluations.add(1, {**labels, "trigger_type": kinds[i]})
            run_span.add_event(
                "trigger.evaluated",
                trigger_event(name, kinds[i], description, True, "ready"),
                timestamp=at,
            )
            links = (
                [Link(previous, {"taskdaemon.link.relation": "triggered_by"})] if previous else []
            )
            span = tracer.start_span(
                name,
                context=self.parent,
                kind=SpanKind.INTERNAL,
                links=links,
                start_time=at,
                attributes={
                    "cicd.pipeline.name": pipeline,
                    "cicd.pipeline.task.name": name,
                    "taskdaemon.stage.loop": "python",
                    "taskdaemon.stage.upstream": names[i - 1 : i],
                    "taskdaemon.stage.triggers": [description],
                    "taskdaemon.stage.trigger_specs": [trigger_spec],
                    "taskdaemon.stage.trigger_mode": "any",
                    "cicd.pipeline.run.id": run_id,
                    "cicd.pipeline.task.run.id": f"{name}.0.1",
                    "taskdaemon.stage.attempt": 1,
                    "taskdaemon.stage.instance": 0,
                    "taskdaemon.stage.queue_time_s": 0.0001,
                    "taskdaemon.stage.trigger_wait_s": 0.0002,
                    "taskdaemon.stage.queued_at_ns": at,
                    "taskdaemon.stage.considered_at_ns": at,
                    "taskdaemon.stage.fired_triggers": [description],
                },
            )  # fmt: skip
            cpu_start = time.process_time()
            span.add_event("stage.input", payload({}), timestamp=at)
            queue_time.record(0.0001, labels)
            trigger_wait.record(0.0002, labels)
            if i + 1 < stages:  # the downstream stage is considered when this one starts
                downstream = {"pipeline": pipeline, "stage": names[i + 1]}
                evaluations.add(1, {**downstream, "trigger_type": kinds[i + 1]})
                run_span.add_event(
                    "trigger.evaluated",
                    trigger_event(
                        names[i + 1], kinds[i + 1], descriptions[i + 1], False, "waiting"
                    ),
                    timestamp=at,
                )
            end = time.time_ns()
            span.add_event("stage.output", payload({}), timestamp=end)
            span.set_attributes(
                {
                    "cicd.pipeline.task.run.result": "success",
                    "taskdaemon.stage.status": "success",
                    "taskdaemon.stage.cpu_time_s": max(0.0, time.process_time() - cpu_start),
                }
            )
            span.end(end_time=end)
            self.previous = span.get_span_context()
            status_labels = {**labels, "status": "success"}
            stage_executions.add(1, status_labels)
            stage_duration.record((end - at) / 1e9, status_labels)

        def finish(self) -> None:
            end = time.time_ns()
            self.span.set_attributes({"cicd.pipeline.result": "success"})
            self.span.end(end_time=end)
            duration = (end - self.start) / 1e9
            active.add(-1, pipeline_labels)
            cicd_active.add(-1, cicd_labels)
            executions.add(1, {"pipeline": pipeline, "status": "success"})
            execution_duration.record(duration, {"pipeline": pipeline, "status": "success"})
            cicd_duration.record(
                duration, {"cicd.pipeline.name": pipeline, "cicd.pipeline.result": "success"}
            )

    # As the concurrent benchmark's engine makes them: every run opens, then each stage in
    # turn across all the runs, then the runs end.
    open_runs = [Run() for _ in range(runs)]
    for i in range(stages):
        for one in open_runs:
            one.stage(i)
    for one in open_runs:
        one.finish()
    if prometheus:
        meter_provider.shutdown()
    tracer_provider.shutdown()
    print("\n".join(one.id for one in open_runs), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", type=int)
    parser.add_argument(
        "--runs", type=int, default=1, help="runs of the same stages, interleaved (default 1)"
    )
    parser.add_argument("--batch", action="store_true", help="add a BatchSpanProcessor")
    parser.add_argument(
        "--prometheus", action="store_true", help="the metrics SDK with a Prometheus reader"
    )
    parser.add_argument(
        "--no-store", action="store_true", help="no span store processor: the SDK's work alone"
    )
    parser.add_argument(
        "--tuned-gc", action="store_true", help="the collector as run and serve tune it (heap.py)"
    )
    args = parser.parse_args()
    collector = tuned_collector() if args.tuned_gc else contextlib.nullcontext()
    with contextlib.ExitStack() as stack:
        home = os.environ.get("TASKDAEMON_HOME")
        if home:
            Path(home).mkdir(parents=True, exist_ok=True)
        else:
            home = stack.enter_context(tempfile.TemporaryDirectory())
        stack.enter_context(collector)
        run(args.stages, Path(home), args.batch, args.prometheus, not args.no_store, runs=args.runs)


if __name__ == "__main__":
    sys.exit(main())
