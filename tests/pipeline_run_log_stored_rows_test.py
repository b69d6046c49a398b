"""The run log's rows in the span store, every column, for a real monitored run.

Logging is set up as ``taskdaemon run`` sets it up (console, store writer on the root logger):
the lifecycle records take the direct row path (``log_rows``). The expected rows are written
out here from the engine's own records (times, ids) and the spans (span ids), so that a change
to any column of any row (value, type, order, redaction) fails this test.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskdaemon.pipeline.cli.run_logging import install_run_logging
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineEvent, RunStarted
from taskdaemon.pipeline.logs import configure_logging
from taskdaemon.pipeline.loops import LoopRegistry, StageContext
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.settings import load_settings

PIPELINE = """
name: rows
concurrency: 1
stages:
  - name: first
    loop: python
    handler: "pipeline_run_log_stored_rows_test:flaky"
    retry: {max_attempts: 2, backoff: {initial: 10ms, factor: 1.0, max: 10ms}}
    triggers: [{manual: {approval_required: false}}]
  - name: second
    loop: python
    handler: "pipeline_run_log_stored_rows_test:noop"
    triggers:
      - on_condition: {expression: "stages.first.status == 'success'"}
"""

LIFECYCLE = "taskdaemon.run.lifecycle"


def flaky(ctx: StageContext) -> dict[str, Any]:
    """Fails its first attempt, with a secret in the message (the row must not keep it)."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails password=hunter2")
    return {"done": True}


def noop(ctx: StageContext) -> dict[str, Any]:
    """Does nothing."""
    return {}


class _Keep:
    """An observer keeping every engine record."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def on_event(self, event: EngineEvent) -> None:
        self.events.append(event)


@contextlib.contextmanager
def _only_taskdaemon_handlers() -> Iterator[None]:
    """The root logger's handlers set aside (the test runner's among them) and restored."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


class _Wanting(logging.Handler):
    """A handler that wants every record (as the OTLP handler or ``caplog`` do)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.names.append(record.name)


def _run(db: Path, *, wanting: bool) -> tuple[list[EngineEvent], dict[tuple[str, int], str], str]:
    """Run PIPELINE monitored, with ``taskdaemon run``'s logging into ``db`` (and a root
    handler wanting every record if ``wanting``): the engine's records, the span id of each
    (stage, attempt) and the run span's id."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monitor = PipelineMonitor(
        tracer_provider=provider, meter_provider=MeterProvider(), resource_sampling=False
    )
    keep = _Keep()
    settings = load_settings(span_source_url=f"sqlite:///{db}")
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        with _only_taskdaemon_handlers(), contextlib.ExitStack() as stack:
            configure_logging(settings, stream=io.StringIO())
            telemetry = SimpleNamespace(
                logger_provider=None, span_processors=(), meter_provider=NoOpMeterProvider()
            )
            writer = install_run_logging(settings, monitor, telemetry, stack)  # type: ignore[arg-type]
            assert writer is not None
            other = _Wanting()
            if wanting:
                logging.getLogger().addHandler(other)

            async def play() -> None:
                engine = Engine(resolver=LoopRegistry.default(), observers=[monitor, keep])
                async with engine:
                    await engine.run(parse_pipeline(PIPELINE), {})

            asyncio.run(play())
            monitor.close()
            assert (LIFECYCLE in other.names) is wanting
    finally:
        sys.path.remove(str(Path(__file__).parent))
        provider.shutdown()
    spans: dict[tuple[str, int], str] = {}
    run_span = ""
    for span in exporter.get_finished_spans():
        attributes = span.attributes or {}
        hex_id = format(span.context.span_id, "016x")
        if span.parent is None:
            run_span = hex_id
        elif "taskdaemon.stage.attempt" in attributes:
            key = (
                str(attributes["cicd.pipeline.task.name"]),
                int(attributes["taskdaemon.stage.attempt"]),
            )  # type: ignore[arg-type]
            spans[key] = hex_id
    return keep.events, spans, run_span


def _stored(db: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT trace_id, time_ns, severity, level, pipeline, stage, instance, attempt,"
            " span_id, scope, body, attributes FROM logs ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize("path", ["direct", "logging"])
def test_a_monitored_run_stores_exactly_these_rows(tmp_path: Path, path: str) -> None:
    """Run started, first started / failed (WARNING, redacted) / retried / started / finished,
    second started / finished, run finished: every column of every row, the same whether the
    rows go straight to the writer or through ``logging`` (another handler wants them)."""
    db = tmp_path / "spans.db"
    events, spans, run_span = _run(db, wanting=path == "logging")
    started = next(e for e in events if isinstance(e, RunStarted))
    run_id = started.run_id

    def at(kind: str, stage: str | None = None, attempt: int | None = None) -> int:
        event = next(
            e
            for e in events
            if type(e).__name__ == kind
            and getattr(e, "stage", None) == stage
            and getattr(e, "attempt", None) == attempt
        )
        return int(event.at * 1e9)

    first1, first2, second = spans["first", 1], spans["first", 2], spans["second", 1]
    python = '{"event": "stage.started", "loop": "python"}'
    expected = [
        (run_id, at("RunStarted"), 9, "INFO", "rows", None, None, None, run_span, LIFECYCLE,
         f"run {run_id} of rows started", '{"event": "run.started", "started_by": "api"}'),
        (run_id, at("StageStarted", "first", 1), 9, "INFO", "rows", "first", 0, 1, first1,
         LIFECYCLE, "stage first.0.1 started (attempt 1)", python),
        (run_id, at("StageFinished", "first", 1), 13, "WARNING", "rows", "first", 0, 1, first1,
         LIFECYCLE, "stage first.0.1 finished: failure: first attempt fails password=[REDACTED]",
         '{"event": "stage.finished", "status": "failure", "error_type": "RuntimeError"}'),
        (run_id, at("StageRetrying", "first", 1), 13, "WARNING", "rows", "first", 0, 1, first1,
         LIFECYCLE, "stage first.0.1 retried: attempt 2 in 0.010s",
         '{"event": "stage.retrying", "delay_s": 0.01, "error_type": "RuntimeError"}'),
        (run_id, at("StageStarted", "first", 2), 9, "INFO", "rows", "first", 0, 2, first2,
         LIFECYCLE, "stage first.0.2 started (attempt 2)", python),
        (run_id, at("StageFinished", "first", 2), 9, "INFO", "rows", "first", 0, 2, first2,
         LIFECYCLE, "stage first.0.2 finished: success",
         '{"event": "stage.finished", "status": "success", "error_type": null}'),
        (run_id, at("StageStarted", "second", 1), 9, "INFO", "rows", "second", 0, 1, second,
         LIFECYCLE, "stage second.0.1 started (attempt 1)", python),
        (run_id, at("StageFinished", "second", 1), 9, "INFO", "rows", "second", 0, 1, second,
         LIFECYCLE, "stage second.0.1 finished: success",
         '{"event": "stage.finished", "status": "success", "error_type": null}'),
        (run_id, at("RunFinished"), 9, "INFO", "rows", None, None, None, run_span, LIFECYCLE,
         f"run {run_id} finished: success", '{"event": "run.finished", "status": "success"}'),
    ]  # fmt: skip
    assert _stored(db) == expected
