"""Monitoring overhead: what PipelineMonitor costs per stage, side by side in one process.

Variants, measured in interleaved rounds (the median of the rounds is reported):

* ``monitor``: the monitor fed, on a thread without an event loop (so it handles each record
  inline), a pre-built stream of engine records for one run of an N-stage chain (RunStarted,
  per stage StageWaiting / TriggerEvaluated / StageQueued / StageStarted / StageFinished,
  RunFinished): spans, links, span events with payload capture, every metric
  record, the in-process aggregates and the resource-sampler bookkeeping;
* ``raw``: a hand-written minimal loop making the same OTel SDK calls (same spans, attributes,
  links, events, payload JSON + sha256, metric records): the floor any monitoring layer pays;
* ``engine``: the real engine running the chain with no-op stages and no observer;
* ``engine+monitor``: the same with the monitor attached (records are only built when an
  observer is registered, so building them is part of this cost; the monitor's worker thread
  handles them, and with instant stages the loop never waits, so that work shares the GIL);
* ``sleep`` and ``sleep+monitor``: the chain with stages that sleep 10 ms, bare and monitored;
* ``sleep+raw``: the same sleeping chain with ``RawObserver``, the raw SDK calls of ``raw`` made
  at the engine's events: the floor that in-line telemetry of this volume costs a sleeping stage
  (after each 10 ms sleep the caches are cold, so every variant pays more per stage than when
  stages are instant).

All variants share one TracerProvider (a span processor over an exporter that drops spans, or
with ``--processor store`` the embedded SQLite span store that ``taskdaemon run`` writes by
default) and one MeterProvider (an in-memory reader that is never collected during the
measurement).

Run: ``.venv/bin/python benchmarks/pipeline_with_monitoring.py [--rounds 15] [--stages 20]
[--processor batch|simple|store] [--switch-interval S] [--sleep-runs N]``.

The 10 ms figures are small differences of large numbers (1% of a stage is 100 µs, and a busy
machine moves a whole run by more): ``--sleep-runs`` runs each sleeping variant N times a
round, and the 10 ms lines also give the median of the per-round ratios (``paired``), each
taken between runs a few hundred milliseconds apart, which a change of load between rounds
does not move.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import hashlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind, format_trace_id, set_span_in_context

from taskdaemon import __version__
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import (
    EngineEvent,
    RunFinished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageStarted,
    StageWaiting,
    TaskRunRef,
    TriggerEvaluated,
)
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.telemetry_codec import encode_edge, encode_trigger
from taskdaemon.pipeline.tracking import RetentionPolicy, SqliteSpanProcessor

RUN_ID = "0123456789abcdef0123456789abcdef"
INPUTS = {"goal": "ship it", "n": 3}
OUTPUTS = {"result": "done", "items": [1, 2, 3]}


class DropExporter(SpanExporter):
    """Accepts every span and keeps none."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def chain(stages: int) -> Pipeline:
    names = [f"s{i:02d}" for i in range(stages)]
    return Pipeline(
        "bench",
        (
            Stage(names[0], "python", (Manual(),)),
            *(Stage(n, "python", (OnCompletion(p),)) for p, n in pairwise(names)),
        ),
    )


def record_stream(pipeline: Pipeline) -> list[EngineEvent]:
    """One run's records, the way the engine emits them for a chain of instant stages."""
    events: list[EngineEvent] = [
        RunStarted(run_id=RUN_ID, pipeline=pipeline, request={"goal": "ship it"}, at=1000.0)
    ]
    now = 1000.0
    previous: TaskRunRef | None = None
    for stage in pipeline.stages:
        name = stage.name
        trid = f"{name}.0.1"
        kind = stage.triggers[0].kind
        described = stage.triggers[0].describe()
        events += [
            StageWaiting(run_id=RUN_ID, pipeline="bench", stage=name, at=now, considered_at=now),
            TriggerEvaluated(run_id=RUN_ID, pipeline="bench", stage=name, trigger_index=0,
                             trigger_type=kind, description=described, satisfied=True,
                             stage_ready=True, at=now),
            StageQueued(run_id=RUN_ID, pipeline="bench", stage=name, instance=0, attempt=1,
                        at=now, task_run_id=trid),
            StageStarted(run_id=RUN_ID, pipeline="bench", stage=name, instance=0, attempt=1,
                         task_run_id=trid, loop="python", at=now + 0.001, queued_at=now,
                         considered_at=now, inputs=INPUTS,
                         fired_by=(previous,) if previous else (), triggers=(described,)),
            StageFinished(run_id=RUN_ID, pipeline="bench", stage=name, instance=0, attempt=1,
                          task_run_id=trid, status=StageStatus.SUCCESS, at=now + 0.01,
                          outputs=OUTPUTS),
        ]  # fmt: skip
        previous = TaskRunRef(name, 0, 1)
        now += 0.01
    events.append(RunFinished(run_id=RUN_ID, pipeline="bench", status=RunStatus.SUCCESS, at=now))
    return events


class RawSdk:
    """The same telemetry as the monitor, written directly against the OTel SDK."""

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer = tracer_provider.get_tracer("raw", "1")
        meter = meter_provider.get_meter("raw", "1")
        buckets = list(t.DURATION_BUCKETS)
        self.executions = meter.create_counter("raw.executions", unit="{execution}")
        self.run_duration = meter.create_histogram(
            "raw.execution.duration", unit="s", explicit_bucket_boundaries_advisory=buckets
        )
        self.active = meter.create_up_down_counter("raw.active.executions")
        self.stage_executions = meter.create_counter("raw.stage.executions")
        self.stage_duration = meter.create_histogram(
            "raw.stage.duration", unit="s", explicit_bucket_boundaries_advisory=buckets
        )
        self.queue = meter.create_histogram(
            "raw.stage.queue.time", unit="s", explicit_bucket_boundaries_advisory=buckets
        )
        self.wait = meter.create_histogram(
            "raw.trigger.wait.time", unit="s", explicit_bucket_boundaries_advisory=buckets
        )
        self.evaluations = meter.create_counter("raw.trigger.evaluations")
        self.cicd_duration = meter.create_histogram(
            "raw.cicd.duration", unit="s", explicit_bucket_boundaries_advisory=buckets
        )
        self.cicd_active = meter.create_up_down_counter("raw.cicd.active")

    @staticmethod
    def payload(value: Mapping[str, Any]) -> dict[str, Any]:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        data = text.encode()
        return {
            t.PAYLOAD_JSON: text[:4096],
            t.PAYLOAD_SIZE: len(data),
            t.PAYLOAD_SHA256: hashlib.sha256(data).hexdigest(),
            t.PAYLOAD_TRUNCATED: False,
        }

    def run(self, pipeline: Pipeline) -> None:
        ns = 1_000_000_000_000
        run_span = self.tracer.start_span(
            "RUN bench", context=Context(), kind=SpanKind.SERVER, start_time=ns
        )
        run_id = format_trace_id(run_span.get_span_context().trace_id)
        run_span.set_attributes(
            {
                t.CICD_PIPELINE_NAME: "bench",
                t.CICD_PIPELINE_ACTION_NAME: "RUN",
                t.CICD_PIPELINE_RUN_ID: run_id,
                t.PIPELINE_DEFINITION_HASH: "h" * 64,
                t.PIPELINE_STAGES: [s.name for s in pipeline.stages],
                t.PIPELINE_EDGE_SPECS: [encode_edge(e) for e in pipeline.edges],
                t.PIPELINE_STARTED_BY: "api",
                t.PIPELINE_CONCURRENCY: 4,
                t.PIPELINE_ERROR_STRATEGY: "fail",
                t.PIPELINE_REQUEST: json.dumps({"goal": "ship it"}),
            }
        )
        parent = set_span_in_context(run_span, Context())
        pipeline_labels = {"pipeline": "bench"}
        self.active.add(1, pipeline_labels)
        self.cicd_active.add(1, {t.CICD_PIPELINE_NAME: "bench", t.CICD_PIPELINE_RUN_STATE: "x"})
        previous = None
        for stage in pipeline.stages:
            description = stage.triggers[0].describe()
            labels = {"pipeline": "bench", "stage": stage.name}
            self.evaluations.add(1, {**labels, "trigger_type": stage.triggers[0].kind})
            run_span.add_event(
                t.EVENT_TRIGGER_EVALUATED,
                {t.CICD_TASK_NAME: stage.name, t.TRIGGER_INDEX: 0, t.TRIGGER_TYPE: "x",
                 t.TRIGGER_DESCRIPTION: description, t.TRIGGER_SATISFIED: True,
                 t.TRIGGER_STAGE_READY: True, t.TRIGGER_DETAIL: ""},
            )  # fmt: skip
            links = [Link(previous, {t.LINK_RELATION: "triggered_by"})] if previous else []
            span = self.tracer.start_span(
                stage.name,
                context=parent,
                kind=SpanKind.INTERNAL,
                links=links,
                start_time=ns,
                attributes={
                    t.CICD_PIPELINE_NAME: "bench",
                    t.CICD_PIPELINE_RUN_ID: run_id,
                    t.CICD_TASK_NAME: stage.name,
                    t.CICD_TASK_RUN_ID: f"{stage.name}.0.1",
                    t.STAGE_LOOP: "python",
                    t.STAGE_UPSTREAM: [],
                    t.STAGE_TRIGGERS: [description],
                    t.STAGE_TRIGGER_SPECS: [encode_trigger(stage.triggers[0])],
                    t.STAGE_FIRED_TRIGGERS: [description],
                    t.STAGE_TRIGGER_MODE: "any",
                    t.STAGE_ATTEMPT: 1,
                    t.STAGE_INSTANCE: 0,
                    t.STAGE_QUEUE_TIME: 0.001,
                    t.STAGE_TRIGGER_WAIT: 0.0,
                    t.STAGE_QUEUED_AT: ns,
                    t.STAGE_CONSIDERED_AT: ns,
                },
            )
            span.add_event(t.EVENT_STAGE_INPUT, self.payload(INPUTS))
            self.queue.record(0.001, labels)
            self.wait.record(0.0, labels)
            span.add_event(t.EVENT_STAGE_OUTPUT, self.payload(OUTPUTS))
            span.set_attributes(
                {t.CICD_TASK_RUN_RESULT: "success", t.STAGE_STATUS: "success",
                 t.STAGE_CPU_TIME: 0.0}
            )  # fmt: skip
            span.end(end_time=ns + 10_000_000)
            previous = span.get_span_context()
            status_labels = {**labels, "status": "success"}
            self.stage_executions.add(1, status_labels)
            self.stage_duration.record(0.009, status_labels)
        run_span.set_attribute(t.CICD_PIPELINE_RESULT, "success")
        run_span.end(end_time=ns + 10**9)
        run_labels = {"pipeline": "bench", "status": "success"}
        self.active.add(-1, pipeline_labels)
        self.cicd_active.add(-1, {t.CICD_PIPELINE_NAME: "bench", t.CICD_PIPELINE_RUN_STATE: "x"})
        self.executions.add(1, run_labels)
        self.run_duration.record(0.2, run_labels)
        self.cicd_duration.record(0.2, {t.CICD_PIPELINE_NAME: "bench", "result": "success"})


class RawObserver:
    """``RawSdk``'s per-stage calls, made at the engine's own events (one stage span per
    StageStarted/StageFinished pair): the telemetry floor measured inside a real run."""

    def __init__(self, raw: RawSdk) -> None:
        self.raw = raw
        self.spans: dict[str, Any] = {}
        self.run_span: Any = None
        self.parent = Context()

    def on_event(self, event: EngineEvent) -> None:
        raw = self.raw
        if isinstance(event, RunStarted):
            self.run_span = raw.tracer.start_span(
                "RUN bench", context=Context(), kind=SpanKind.SERVER
            )
            self.parent = set_span_in_context(self.run_span, Context())
        elif isinstance(event, StageStarted):
            labels = {"pipeline": "bench", "stage": event.stage}
            raw.evaluations.add(1, {**labels, "trigger_type": "on_completion"})
            self.run_span.add_event(
                t.EVENT_TRIGGER_EVALUATED,
                {t.CICD_TASK_NAME: event.stage, t.TRIGGER_INDEX: 0, t.TRIGGER_TYPE: "x",
                 t.TRIGGER_DESCRIPTION: "d", t.TRIGGER_SATISFIED: True,
                 t.TRIGGER_STAGE_READY: True, t.TRIGGER_DETAIL: ""},
            )  # fmt: skip
            span = raw.tracer.start_span(
                event.stage,
                context=self.parent,
                kind=SpanKind.INTERNAL,
                attributes={
                    t.CICD_PIPELINE_NAME: "bench",
                    t.CICD_PIPELINE_RUN_ID: event.run_id,
                    t.CICD_TASK_NAME: event.stage,
                    t.CICD_TASK_RUN_ID: event.task_run_id,
                    t.STAGE_LOOP: "python",
                    t.STAGE_UPSTREAM: [],
                    t.STAGE_TRIGGERS: ["d"],
                    t.STAGE_FIRED_TRIGGERS: ["d"],
                    t.STAGE_TRIGGER_MODE: "any",
                    t.STAGE_ATTEMPT: 1,
                    t.STAGE_INSTANCE: 0,
                    t.STAGE_QUEUE_TIME: 0.001,
                    t.STAGE_TRIGGER_WAIT: 0.0,
                    t.STAGE_QUEUED_AT: 1,
                    t.STAGE_CONSIDERED_AT: 1,
                },
            )
            span.add_event(t.EVENT_STAGE_INPUT, raw.payload(INPUTS))
            raw.queue.record(0.001, labels)
            raw.wait.record(0.0, labels)
            self.spans[event.task_run_id] = span
        elif isinstance(event, StageFinished):
            span = self.spans.pop(event.task_run_id)
            span.add_event(t.EVENT_STAGE_OUTPUT, raw.payload(OUTPUTS))
            span.set_attributes(
                {t.CICD_TASK_RUN_RESULT: "success", t.STAGE_STATUS: "success",
                 t.STAGE_CPU_TIME: 0.0}
            )  # fmt: skip
            span.end()
            status_labels = {"pipeline": "bench", "stage": event.stage, "status": "success"}
            raw.stage_executions.add(1, status_labels)
            raw.stage_duration.record(0.009, status_labels)
        elif isinstance(event, RunFinished):
            self.run_span.end()


class Resolver:
    def __init__(self, handler: Callable[[StageContext], Any]) -> None:
        self.handler = handler

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return self.handler


async def _noop(ctx: StageContext) -> Mapping[str, Any]:
    return OUTPUTS


async def _sleep10(ctx: StageContext) -> Mapping[str, Any]:
    await asyncio.sleep(0.01)
    return OUTPUTS


def measure_sync(fn: Callable[[], None], runs: int) -> float:
    """Seconds per call, over ``runs`` calls."""
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start) / runs


#: CPU time of the loop's thread per run, by variant (``measure_engine``'s ``cpu`` argument).
loop_cpu: dict[str, list[float]] = {}


async def measure_engine(
    engine: Engine, pipeline: Pipeline, runs: int, cpu: str | None = None
) -> float:
    """Wall seconds per run; with ``cpu``, the loop thread's CPU seconds per run are noted in
    ``loop_cpu[cpu]``: what the run's critical path itself executed, without the waits for
    other threads or for a CPU, which a busy machine stretches."""
    start = time.perf_counter()
    thread_start = time.thread_time()
    for _ in range(runs):
        await engine.run(pipeline, {"goal": "ship it"})
    if cpu is not None:
        loop_cpu.setdefault(cpu, []).append((time.thread_time() - thread_start) / runs)
    return (time.perf_counter() - start) / runs


async def main_async(args: argparse.Namespace) -> dict[str, float]:
    logging.getLogger("taskdaemon").setLevel(logging.ERROR)  # the foreign run id warning
    tracer_provider = TracerProvider()
    exporter = DropExporter()
    store_dir = tempfile.TemporaryDirectory()
    processor: SpanProcessor
    if args.processor == "store":  # what ``taskdaemon run`` uses by default
        processor = SqliteSpanProcessor(
            Path(store_dir.name) / "spans.db", retention=RetentionPolicy()
        )
    elif args.processor == "batch":
        processor = BatchSpanProcessor(exporter)
    else:
        processor = SimpleSpanProcessor(exporter)
    tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    pipeline = chain(args.stages)
    stream = record_stream(pipeline)
    monitor = PipelineMonitor(tracer_provider=tracer_provider, meter_provider=meter_provider)
    raw = RawSdk(tracer_provider, meter_provider)

    def feed() -> None:
        on_event = monitor.on_event
        for event in stream:
            on_event(event)

    samples: dict[str, list[float]] = {
        k: []
        for k in (
            "monitor", "raw", "engine", "engine+monitor", "sleep", "sleep+raw", "sleep+monitor"
        )
    }  # fmt: skip
    bare = Engine(resolver=Resolver(_noop))
    monitored = Engine(resolver=Resolver(_noop), observers=[monitor])
    bare_sleep = Engine(resolver=Resolver(_sleep10))
    monitored_sleep = Engine(resolver=Resolver(_sleep10), observers=[monitor])
    raw_sleep = Engine(resolver=Resolver(_sleep10), observers=[RawObserver(raw)])
    # warm-up: caches, first-use imports, instrument creation paths
    feed()
    raw.run(pipeline)
    await measure_engine(bare, pipeline, 2)
    await measure_engine(monitored, pipeline, 2)
    per_stage = args.stages

    async def settled(seconds: float) -> float:
        # Spans a variant left in the processor are written before the next variant starts, so
        # no variant pays for another's (the store's writer thread would otherwise run into it).
        await asyncio.to_thread(tracer_provider.force_flush)
        return seconds

    for _ in range(args.rounds):
        gc.collect()
        # Both on a thread without an event loop: the monitor then handles every record inline
        # (from a running loop it would hand them to its worker thread), like the raw loop.
        samples["monitor"].append(
            await settled(await asyncio.to_thread(measure_sync, feed, args.runs)) / per_stage
        )
        raw_run = functools.partial(raw.run, pipeline)
        samples["raw"].append(
            await settled(await asyncio.to_thread(measure_sync, raw_run, args.runs)) / per_stage
        )
        for name, engine, runs in (
            ("engine", bare, args.runs),
            ("engine+monitor", monitored, args.runs),
            ("sleep", bare_sleep, args.sleep_runs),
            ("sleep+raw", raw_sleep, args.sleep_runs),
            ("sleep+monitor", monitored_sleep, args.sleep_runs),
        ):
            samples[name].append(
                await settled(await measure_engine(engine, pipeline, runs, cpu=name)) / per_stage
            )
    for engine in (bare, monitored, bare_sleep, raw_sleep, monitored_sleep):
        await engine.aclose()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    store_dir.cleanup()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name in ("sleep+raw", "sleep+monitor"):
        ratios = [a / b for a, b in zip(samples[name], samples["sleep"], strict=True)]
        medians[f"{name} paired"] = statistics.median(ratios) - 1
    for name, values in loop_cpu.items():
        medians[f"{name} loop cpu"] = statistics.median(values) / per_stage
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=20, help="runs per round (instant stages)")
    parser.add_argument("--stages", type=int, default=20)
    parser.add_argument(
        "--sleep-runs", type=int, default=1, help="runs per round of each 10 ms-stage variant"
    )
    parser.add_argument(
        "--processor",
        choices=("batch", "simple", "store"),
        default="batch",
        help="batch/simple: an OTel processor over an exporter that drops spans; "
        "store: the embedded SQLite span store, as taskdaemon run has it",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="S",
        help="sys.setswitchinterval(S) first (CPython's default is 0.005): how long a thread "
        "holding the GIL keeps a waiting one, e.g. the loop after a stage's sleep, waiting",
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    # The event loop ``taskdaemon run`` runs its stages on (event_loop.py; older checkouts:
    # asyncio's), so the engine variants see its polls as a run does.
    try:
        from taskdaemon.pipeline.event_loop import run as run_loop
    except ImportError:
        run_loop = asyncio.run
    medians = run_loop(main_async(args))
    paired = {name: medians.pop(f"{name} paired") for name in ("sleep+raw", "sleep+monitor")}
    cpu_us = {name[: -len(" loop cpu")]: medians.pop(name) * 1e6 for name in list(medians)
              if name.endswith(" loop cpu")}  # fmt: skip
    us = {name: value * 1e6 for name, value in medians.items()}
    print(f"taskdaemon {__version__}: {args.stages}-stage chain, {args.rounds} interleaved rounds, "
          f"{args.processor} span processor, switch interval {sys.getswitchinterval() * 1e3:g} ms,"
          f" load average {os.getloadavg()[0]:.1f}, median per stage")  # fmt: skip
    for name, value in us.items():
        print(f"  {name:<16} {value:10.1f} µs")
    layer = us["monitor"] / us["raw"] - 1
    engine_delta = us["engine+monitor"] - us["engine"]
    slowdown = us["sleep+monitor"] / us["sleep"] - 1
    floor = us["sleep+raw"] / us["sleep"] - 1
    # What the monitor adds to a sleeping stage, as a share of what the same SDK calls add in-line.
    cold_share = (us["sleep+monitor"] - us["sleep"]) / (us["sleep+raw"] - us["sleep"])
    print(f"  monitor vs raw SDK floor:           {layer:+.1%}  (target <= +30%)")
    print(f"  monitoring added to the engine:     {engine_delta:.1f} µs per stage")
    print(
        f"  10 ms stages, monitored vs bare:    {slowdown:+.2%}  "
        f"(paired {paired['sleep+monitor']:+.2%}; target < 1%)"
    )
    raw_paired = paired["sleep+raw"]
    print(f"  10 ms stages, raw SDK floor:        {floor:+.2%}  (paired {raw_paired:+.2%})")
    print(f"  10 ms stages, monitor's cost / in-line SDK calls' cost: {cold_share:.2f}x")
    sleep_cpu = cpu_us["sleep"]
    print(
        f"  loop thread CPU a stage (critical path, load-proof): engine {cpu_us['engine']:.1f}, "
        f"engine+monitor {cpu_us['engine+monitor']:.1f}; 10 ms stages: bare {sleep_cpu:.1f}, "
        f"+raw {cpu_us['sleep+raw'] - sleep_cpu:+.1f}, "
        f"+monitor {cpu_us['sleep+monitor'] - sleep_cpu:+.1f} µs "
        f"({(cpu_us['sleep+monitor'] - sleep_cpu) / us['sleep']:+.2%} of a stage)"
    )


if __name__ == "__main__":
    main()
