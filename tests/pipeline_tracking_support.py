"""Shared helpers of the tracking tests: a run's spans made with the raw OTel SDK following the
telemetry schema, a local HTTP server standing in for Tempo/Jaeger, and subprocess scripts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from http_stub_support import serving_in_thread
from pipeline_engine_support import Resolver, after, pipeline, stage
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.engine import Engine, RunHandle
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Manual, Pipeline, TriggerMode
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.records import AttemptRecord
from taskdaemon.pipeline.tracking import (
    SpanRecord,
    SqliteSpanProcessor,
    reconstruct_run,
    span_record_from_sdk,
)
from taskdaemon.pipeline.tracking import store as store_module
from taskdaemon.pipeline.tracking._trace_read import select_trace
from taskdaemon.pipeline.tracking.aggregates import aggregate_missing

T0 = 1_700_000_000_000_000_000  # ns
S = 1_000_000_000
RESOURCE = Resource.create({"service.name": "taskdaemon", "service.version": "0.1.0"})


#: ``build``, then ``deploy`` once build succeeded *and* someone approved it.
GATED = pipeline(
    stage("build"),
    stage("deploy", *after("build"), Manual(approval_required=True), trigger_mode=TriggerMode.ALL),
)


def monitored_store(db: Path) -> tuple[TracerProvider, PipelineMonitor]:
    """A provider writing to the embedded store at ``db`` and a monitor using it: what
    ``taskdaemon run`` sets up, without an exporter."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SqliteSpanProcessor(db))
    return tracer_provider, PipelineMonitor(
        tracer_provider=tracer_provider, meter_provider=MeterProvider()
    )


async def run_into_store(db: Path, pipeline: Pipeline, resolver: Any) -> str:
    """Run ``pipeline`` to its end through the real engine and monitor into the embedded
    store at ``db`` (``monitored_store``), everything shut down after; the run's id."""
    tracer_provider, monitor = monitored_store(db)
    try:
        async with Engine(resolver=resolver, observers=[monitor]) as engine:
            return (await (await engine.start_run(pipeline)).wait()).run_id
    finally:
        monitor.close()
        tracer_provider.shutdown()


def slow_build(seconds: float) -> Resolver:
    """A resolver whose ``build`` stage takes ``seconds`` (the others do nothing)."""

    async def build(ctx: StageContext) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {}

    return Resolver({"build": build})


def approved_during_a_read(
    monkeypatch: pytest.MonkeyPatch, handle: RunHandle, tracer_provider: TracerProvider
) -> Callable[[], None]:
    """Force the ordering a loaded machine gives now and then, for a run of ``GATED`` waiting
    for deploy's approval: once armed (the function returned), the store's next read of a
    trace reads its spans, then waits while deploy is approved, the run ends and its end is
    written (``tracer_provider`` flushed), then goes on with what it reads after the spans
    (the run's ``runs`` row). Armed again, it does nothing: the run ends once."""
    loop = asyncio.get_running_loop()
    state = {"armed": False, "spent": False}

    async def end() -> None:
        handle.approve("deploy", by="test")
        await handle.wait()
        tracer_provider.force_flush()

    def read_then_end(*args: Any, **kwargs: Any) -> list[SpanRecord]:
        spans = select_trace(*args, **kwargs)
        if state["armed"] and not state["spent"]:
            state["spent"] = True
            asyncio.run_coroutine_threadsafe(end(), loop).result(60)
        return spans

    monkeypatch.setattr(store_module, "select_trace", read_then_end)
    return lambda: state.update(armed=True)


def make_provider(*processors: SpanProcessor) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A fresh provider with an in-memory exporter plus ``processors``."""
    provider = TracerProvider(resource=RESOURCE)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider, exporter


def _stage_attrs(pipeline: str, run_id: str, stage: str, loop: str, **extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        t.CICD_PIPELINE_NAME: pipeline,
        t.CICD_PIPELINE_RUN_ID: run_id,
        t.CICD_TASK_NAME: stage,
        t.STAGE_LOOP: loop,
    }
    attrs.update(extra)
    return attrs


def write_example_run(
    provider: TracerProvider,
    *,
    pipeline: str = "demo",
    t0: int = T0,
    end_run: bool = True,
    result: str = t.RESULT_SUCCESS,
    root_attributes: Mapping[str, Any] | None = None,
) -> str:
    """One run of a four-stage pipeline (plan → build (failed once, retried) → test (two
    instances) → deploy (skipped)), every field of the schema exercised; returns the run id.
    ``root_attributes`` are set on the run span at its start, over its own."""
    tracer = provider.get_tracer(t.SCOPE_NAME)
    root = tracer.start_span(
        t.run_span_name(pipeline),
        kind=SpanKind.SERVER,
        start_time=t0,
        attributes={
            t.CICD_PIPELINE_NAME: pipeline,
            t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
            t.PIPELINE_STAGES: ["plan", "build", "test", "deploy"],
            t.PIPELINE_EDGES: [
                "plan>build>on completion",
                "build>test>on event\nbuild.ready",
                "test>deploy>on completion",
            ],
            t.PIPELINE_DEFINITION_HASH: "abc123",
            t.PIPELINE_STARTED_BY: "cli",
            t.PIPELINE_CONCURRENCY: 2,
            t.PIPELINE_ERROR_STRATEGY: "retry",
            **(root_attributes or {}),
        },
    )
    run_id = format(root.get_span_context().trace_id, "032x")
    root.set_attribute(t.CICD_PIPELINE_RUN_ID, run_id)
    ctx = trace.set_span_in_context(root)

    plan = tracer.start_span(
        "plan",
        context=ctx,
        start_time=t0 + S // 10,
        attributes=_stage_attrs(
            pipeline,
            run_id,
            "plan",
            "plan",
            **{
                t.STAGE_ATTEMPT: 1,
                t.STAGE_INSTANCE: 0,
                t.CICD_TASK_RUN_ID: f"{run_id}/plan/0/1",
                t.STAGE_TRIGGERS: ["manual"],
                t.STAGE_QUEUE_TIME: 0.01,
                t.STAGE_TRIGGER_WAIT: 0.0,
            },
        ),
    )
    plan.add_event(t.EVENT_STAGE_INPUT, {t.PAYLOAD_JSON: '{"goal": "ship"}'}, t0 + S // 10)
    plan.add_event(t.EVENT_STAGE_OUTPUT, {t.PAYLOAD_JSON: '{"plan": ["a", "b"]}'}, t0 + S)
    plan.set_attributes(
        {
            t.CICD_TASK_RUN_RESULT: t.RESULT_SUCCESS,
            t.STAGE_STATUS: "success",
            t.STAGE_CPU_TIME: 0.25,
            t.STAGE_PEAK_MEMORY: 12_345_678,
        }
    )
    plan.set_status(Status(StatusCode.OK))
    plan.end(t0 + S)

    build1 = tracer.start_span(
        "build",
        context=ctx,
        start_time=t0 + S + 1000,
        links=[Link(plan.get_span_context(), {t.LINK_RELATION: t.LINK_TRIGGERED_BY})],
        attributes=_stage_attrs(
            pipeline,
            run_id,
            "build",
            "command",
            **{
                t.STAGE_ATTEMPT: 1,
                t.STAGE_INSTANCE: 0,
                t.STAGE_UPSTREAM: ["plan"],
                t.STAGE_TRIGGERS: ["on completion of plan"],
            },
        ),
    )
    build1.record_exception(RuntimeError("exit 2"), timestamp=t0 + 2 * S)
    build1.set_attributes(
        {
            t.CICD_TASK_RUN_RESULT: t.RESULT_FAILURE,
            t.STAGE_STATUS: "failure",
            t.ERROR_TYPE: "RuntimeError",
            t.STAGE_ERROR_MESSAGE: "exit 2",
        }
    )
    build1.set_status(Status(StatusCode.ERROR, "exit 2"))
    build1.end(t0 + 2 * S)
    build2 = tracer.start_span(
        "build",
        context=ctx,
        start_time=t0 + 3 * S,
        links=[Link(build1.get_span_context(), {t.LINK_RELATION: t.LINK_PREVIOUS_ATTEMPT})],
        attributes=_stage_attrs(
            pipeline,
            run_id,
            "build",
            "command",
            **{t.STAGE_ATTEMPT: 2, t.STAGE_INSTANCE: 0, t.STAGE_UPSTREAM: ["plan"]},
        ),
    )
    build2.set_attributes({t.CICD_TASK_RUN_RESULT: t.RESULT_SUCCESS, t.STAGE_CPU_TIME: 1.5})
    build2.end(t0 + 4 * S)

    for instance in (0, 1):
        test = tracer.start_span(
            "test",
            context=ctx,
            start_time=t0 + 4 * S + instance,
            attributes=_stage_attrs(
                pipeline,
                run_id,
                "test",
                "phase",
                **{
                    t.STAGE_ATTEMPT: 1,
                    t.STAGE_INSTANCE: instance,
                    t.STAGE_UPSTREAM: ["build"],
                    t.STAGE_EVENT_TYPE: "build.ready",
                    t.STAGE_QUEUE_TIME: 0.5 + instance,
                },
            ),
        )
        test.set_attribute(t.CICD_TASK_RUN_RESULT, t.RESULT_SUCCESS)
        test.end(t0 + 5 * S + instance)

    deploy = tracer.start_span(
        "deploy",
        context=ctx,
        start_time=t0 + 6 * S,
        attributes=_stage_attrs(
            pipeline,
            run_id,
            "deploy",
            "command",
            **{
                t.CICD_TASK_RUN_RESULT: t.RESULT_SKIP,
                t.STAGE_SKIP_REASON: "condition false",
                t.STAGE_UPSTREAM: ["test"],
            },
        ),
    )
    deploy.end(t0 + 6 * S)

    if end_run:
        root.set_attribute(t.CICD_PIPELINE_RESULT, result)
        if result != t.RESULT_SUCCESS:
            root.set_attribute(t.ERROR_TYPE, "StageFailedError")
            root.set_status(Status(StatusCode.ERROR, "build failed"))
        root.end(t0 + 7 * S)
    return run_id


def example_spans(**kwargs: Any) -> list[SpanRecord]:
    """The example run's spans as SpanRecords (straight from the SDK, via an in-memory export)."""
    provider, exporter = make_provider()
    write_example_run(provider, **kwargs)
    return [span_record_from_sdk(s) for s in exporter.get_finished_spans()]


# --- a fake tracing backend ------------------------------------------------------------------


@dataclass
class Backend:
    """Routes of a local HTTP server: path → (status, body); records every request line and
    its headers (names in lower case)."""

    routes: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    location: str | None = None  # the Location header of every answer, when set
    delay: float = 0.0  # seconds each answer waits, cut short when the server stops

    def route(
        self, path: str, body: Any, status: int = 200, content_type: str = "application/json"
    ) -> None:
        """Answer ``path`` (query ignored) with ``body`` (JSON-encoded unless bytes)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[path] = (status, data, content_type)


@contextmanager
def serve(backend: Backend) -> Iterator[Backend]:
    """Serve ``backend`` on 127.0.0.1 (a free port) for the duration of the block."""
    stopping = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            backend.requests.append(self.path)
            backend.headers.append({name.lower(): value for name, value in self.headers.items()})
            stopping.wait(backend.delay)
            status, body, content_type = backend.routes.get(
                self.path.split("?", 1)[0], (404, b"not found", "application/json")
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if backend.location is not None:
                self.send_header("Location", backend.location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    backend.url = f"http://127.0.0.1:{server.server_address[1]}"
    with serving_in_thread(server):
        try:
            yield backend
        finally:
            stopping.set()  # a delayed answer ends now, so the server can stop


# -- runs of a fixed shape, for the report and its aggregates ---------------------------------

MS = S // 1000

# work → (fast, slow) → done
EDGES = ["work>fast>on completion", "work>slow>on completion", "fast>done>", "slow>done>"]


def write_run(
    provider: TracerProvider,
    t0: int,
    work_ms: int,
    *,
    pipeline: str = "etl",
    failed: bool = False,
    queue_ms: int = 5,
    result: str = t.RESULT_SUCCESS,
) -> str:
    """One run: ``work`` (``work_ms`` long, retried once when ``failed``), then ``fast`` (10
    ms) and ``slow`` (40 ms) from its end, then ``done`` (5 ms) after both; the run ends
    ``result``. Returns the run id."""
    tracer = provider.get_tracer(t.SCOPE_NAME)
    root = tracer.start_span(
        t.run_span_name(pipeline),
        kind=SpanKind.SERVER,
        start_time=t0,
        attributes={
            t.CICD_PIPELINE_NAME: pipeline,
            t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
            t.PIPELINE_STAGES: ["work", "fast", "slow", "done"],
            t.PIPELINE_EDGES: EDGES,
        },
    )
    ctx = trace.set_span_in_context(root)

    def stage(name: str, start: int, end: int, attempt: int = 1, result: str = "success") -> None:
        span = tracer.start_span(
            name,
            context=ctx,
            start_time=start,
            attributes={
                t.CICD_PIPELINE_NAME: pipeline,
                t.CICD_TASK_NAME: name,
                t.STAGE_ATTEMPT: attempt,
                t.STAGE_INSTANCE: 0,
                t.STAGE_QUEUE_TIME: queue_ms / 1000,
                t.STAGE_CPU_TIME: 0.002,
                t.STAGE_PEAK_MEMORY: 1000 + attempt,
            },
        )
        span.set_attribute(t.CICD_TASK_RUN_RESULT, result)
        span.end(end)

    now = t0 + MS
    if failed:
        stage("work", now, now + MS, result=t.RESULT_FAILURE)
        now += 2 * MS
    stage("work", now, now + work_ms * MS, attempt=2 if failed else 1)
    now += work_ms * MS
    stage("fast", now + MS, now + 11 * MS)
    stage("slow", now + 2 * MS, now + 42 * MS)
    stage("done", now + 43 * MS, now + 48 * MS)
    root.set_attribute(t.CICD_PIPELINE_RESULT, result)
    root.end(now + 50 * MS)
    return format(root.get_span_context().trace_id, "032x")


def store_stages(
    db: Path,
    pipeline_name: str,
    names: Sequence[str],
    error: str,
    *,
    step: int = 1000,
    edges: Sequence[tuple[str, str]] = (),
) -> str:
    """A stored run of ``pipeline_name`` whose stages ``names`` ran one after another,
    ``step`` ns each from ``T0 + step``; the last failed with ``error`` (the run too), the
    others succeeded. ``edges``: the DAG's, ``(upstream, downstream)`` (none: no edge).
    Returns the run id."""
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SqliteSpanProcessor(db))
    tracer = provider.get_tracer(t.SCOPE_NAME)
    root = tracer.start_span(
        t.run_span_name(pipeline_name),
        kind=SpanKind.SERVER,
        start_time=T0,
        attributes={
            t.CICD_PIPELINE_NAME: pipeline_name,
            t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
            t.PIPELINE_STAGES: list(names),
            **({t.PIPELINE_EDGES: [f"{a}>{b}>" for a, b in edges]} if edges else {}),
        },
    )
    for i, name in enumerate(names, 1):
        last = i == len(names)
        span = tracer.start_span(
            name,
            context=trace.set_span_in_context(root),
            start_time=T0 + i * step,
            attributes={
                t.CICD_PIPELINE_NAME: pipeline_name,
                t.CICD_TASK_NAME: name,
                t.STAGE_ATTEMPT: 1,
                t.STAGE_INSTANCE: 0,
                t.CICD_TASK_RUN_RESULT: t.RESULT_FAILURE if last else t.RESULT_SUCCESS,
                **({t.STAGE_ERROR_MESSAGE: error} if last else {}),
            },
        )
        if last:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(T0 + (i + 1) * step)
    root.set_attribute(t.CICD_PIPELINE_RESULT, t.RESULT_FAILURE)
    root.set_status(Status(StatusCode.ERROR, f"stage '{names[-1]}' failure: {error}"))
    root.end(T0 + (len(names) + 2) * step)
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def store_example_run(db: Path) -> str:
    """``write_example_run``'s run in the store ``db``: ``plan`` has inputs and outputs,
    ``build`` failed once and retried (``success · 2 attempts · ...``), ``deploy`` skipped
    with a reason."""
    provider, _exporter = make_provider(SqliteSpanProcessor(db))
    try:
        return write_example_run(provider)
    finally:
        provider.shutdown()


def store_with(db: Path, works: Sequence[int], *, t0: int = T0, step: int = 100 * S) -> list[str]:
    """Write one run per ``works`` item (its ``work`` duration in ms), ``step`` apart."""
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SqliteSpanProcessor(db))
    ids = [write_run(provider, t0 + i * step, w, failed=i % 10 == 3) for i, w in enumerate(works)]
    provider.shutdown()
    return ids


#: The report aggregates' tables (``tracking._aggregates_schema``) that hold a run's rows.
AGGREGATE_TABLES = (
    "run_aggregates",
    "stage_attempts",
    "critical_steps",
    "stage_days",
    "run_days",
    "histogram_days",
)


def aggregate_rows(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every aggregate table's rows, sorted. A day's CPU time is a float sum, whose last bits
    depend on the order and grouping of its terms (by batch, by a rebuilt run's attempt
    order): compared to 12 significant digits."""
    tables = {
        table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4").fetchall()
        for table in AGGREGATE_TABLES
    }
    tables["stage_days"] = [
        (*row[:5], None if row[5] is None else float(f"{row[5]:.12g}"), *row[6:])
        for row in tables["stage_days"]
    ]
    return tables


def kept_and_rebuilt(
    conn: sqlite3.Connection,
) -> tuple[dict[str, list[tuple[Any, ...]]], int, dict[str, list[tuple[Any, ...]]]]:
    """The aggregate rows the writer wrote (``aggregate_rows``), how many runs a rebuild from
    the stored spans aggregated once they were deleted (``aggregate_missing``), and its rows."""
    kept = aggregate_rows(conn)
    conn.execute("BEGIN IMMEDIATE")
    for table in AGGREGATE_TABLES:
        conn.execute(f"DELETE FROM {table}")
    conn.execute("COMMIT")
    rebuilt_runs = aggregate_missing(conn)
    return kept, rebuilt_runs, aggregate_rows(conn)


def within_a_microsecond(a: Any, b: Any) -> Any:
    """``a`` with each number that is within 1 µs of ``b``'s at the same place made ``b``'s,
    so that ``==`` with ``b`` shows only what differs more (or in kind)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {key: within_a_microsecond(value, b.get(key)) for key, value in a.items()}
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [within_a_microsecond(x, y) for x, y in zip(a, b, strict=True)]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and abs(a - b) <= 1.000001e-6:
        return b
    return a


def orphans_and_integrity(path: Path) -> tuple[int, str]:
    """Rows nothing refers to any more (spans of no trace, traces without spans, trace-resource
    pairs of no trace, resources of no span), and SQLite's own integrity verdict."""
    with sqlite3.connect(path) as conn:
        orphans = conn.execute(
            "SELECT (SELECT COUNT(*) FROM spans "
            "    WHERE trace_no NOT IN (SELECT trace_no FROM traces))"
            " + (SELECT COUNT(*) FROM traces WHERE trace_no NOT IN (SELECT trace_no FROM spans))"
            " + (SELECT COUNT(*) FROM trace_resources "
            "    WHERE trace_no NOT IN (SELECT trace_no FROM traces))"
            " + (SELECT COUNT(*) FROM resources "
            "    WHERE resource_no NOT IN (SELECT resource_no FROM spans))"
        ).fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    return orphans, integrity


def root_span(spans: list[SpanRecord]) -> SpanRecord:
    """The span of ``spans`` without a parent: the run span."""
    return next(s for s in spans if s.parent_span_id is None)


def replaced(spans: list[SpanRecord], old: SpanRecord, new: SpanRecord) -> list[SpanRecord]:
    """``spans`` with ``old`` replaced by ``new``."""
    return [new if s is old else s for s in spans]


def plan_attempt(spans: list[SpanRecord], **changes: Any) -> AttemptRecord:
    """The plan stage's attempt rebuilt after ``changes`` to its span (``attributes`` are
    merged into the span's, a None value removing the key)."""
    plan = next(s for s in spans if s.name == "plan")
    attributes = {**plan.attributes, **changes.pop("attributes", {})}
    attributes = {k: v for k, v in attributes.items() if v is not None}
    changed = replace(plan, attributes=attributes, **changes)
    return reconstruct_run(replaced(spans, plan, changed)).stage("plan").attempts[0]
