"""Load for the reliability suite: runs through the real engine and monitor into one span store,
with retries and cancellations, and what the store must hold afterwards.

Every run of :func:`load_pipeline` has a ``flaky`` stage that fails its first attempt (so it is
retried) and a ``hold`` stage that about one run in ``cancel_every`` blocks in until it is
cancelled.
Each worker also exports its spans to memory: the store must then hold exactly those spans,
ended, no more and no fewer.

Run as a script it is one worker process: ``python reliability_load_support.py load DB RUNS``
prints ``{"spans": [[trace_id, span_id], ...], "statuses": {run_id: status}}`` on stdout;
``... memory DB ROUNDS`` prints the process's RSS after each round of 100 runs
(:func:`long_lived`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline_engine_support import ErrorStrategy, Resolver, after, pipeline, retry, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.tracking import SqliteSpanProcessor


@dataclass
class Load:
    """What a worker did: the (trace id, span id) of every span it ended, each run's status."""

    spans: set[tuple[str, str]] = field(default_factory=set)
    statuses: dict[str, str] = field(default_factory=dict)

    def merge(self, other: Load) -> None:
        """Add another worker's load."""
        self.spans |= other.spans
        self.statuses.update(other.statuses)


def load_pipeline() -> Pipeline:
    """``build`` → ``flaky`` (fails its first attempt, retried) → ``hold``."""
    return pipeline(
        stage("build"),
        stage("flaky", *after("build")),
        stage("hold", *after("flaky")),
        name="load",
        error_strategy=ErrorStrategy.RETRY,
        retry=retry(2, initial=0.0),
    )


async def _no_wait(delay: float) -> None:
    """The engine's backoff sleep, without the wait (retries are what is under test)."""
    await asyncio.sleep(0)


def _doomed(run_id: str, cancel_every: int) -> bool:
    """Whether the run is one to cancel: about one in ``cancel_every``, by its (random) id."""
    return bool(cancel_every) and int(run_id, 16) % cancel_every == 0


async def run_load(db: Path, runs: int, *, cancel_every: int = 10) -> Load:
    """Start ``runs`` runs at once in one engine writing to the store at ``db``; cancel about
    one in ``cancel_every`` (chosen by run id) while its ``hold`` stage runs; wait for all and
    flush."""
    holding: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def flaky(ctx: StageContext) -> Mapping[str, Any]:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return {}

    async def hold(ctx: StageContext) -> Mapping[str, Any]:
        if _doomed(ctx.run_id, cancel_every):
            holding[ctx.run_id].set()
            await asyncio.Event().wait()  # until the run is cancelled
        return {}

    processor = SqliteSpanProcessor(db)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(processor)
    monitor = PipelineMonitor(tracer_provider=provider, meter_provider=MeterProvider())
    resolver = Resolver({"flaky": flaky, "hold": hold})
    load = Load()
    try:
        async with Engine(resolver=resolver, observers=[monitor], sleep=_no_wait) as engine:
            definition = load_pipeline()
            handles = [await engine.start_run(definition, {}) for _ in range(runs)]
            for handle in handles:
                if _doomed(handle.run_id, cancel_every):
                    await holding[handle.run_id].wait()
                    handle.cancel()
            for handle in handles:
                result = await handle.wait()
                load.statuses[handle.run_id] = str(result.status)
    finally:
        monitor.close()
        provider.shutdown()
    for span in exporter.get_finished_spans():
        context = span.get_span_context()
        assert context is not None
        load.spans.add((format(context.trace_id, "032x"), format(context.span_id, "016x")))
    return load


def stored(db: Path) -> tuple[set[tuple[str, str]], int, int, dict[str, str], str]:
    """What the store at ``db`` holds: the (trace id, span id) of its ended spans, its span rows,
    its ended rows, each run row's status, and ``PRAGMA integrity_check``."""
    conn = sqlite3.connect(db)
    try:
        ended = {
            (trace_id, span_id)
            for trace_id, span_id in conn.execute(
                "SELECT t.trace_id, s.span_id FROM spans s JOIN traces t USING (trace_no) "
                "WHERE s.end_ns IS NOT NULL"
            )
        }
        rows, ended_rows = conn.execute("SELECT count(*), count(end_ns) FROM spans").fetchone()
        runs = dict(conn.execute("SELECT trace_id, status FROM runs").fetchall())
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    return ended, int(rows), int(ended_rows), runs, str(integrity)


async def long_lived(db: Path, rounds: int, runs: int = 100) -> list[int]:
    """One engine, monitor and store processor kept for ``rounds`` rounds of ``runs`` runs each
    (the engine keeps its last 20 finished runs); the process's RSS in bytes after each round."""
    import psutil

    provider = TracerProvider()
    provider.add_span_processor(SqliteSpanProcessor(db))
    monitor = PipelineMonitor(tracer_provider=provider, meter_provider=MeterProvider())

    async def flaky(ctx: StageContext) -> Mapping[str, Any]:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return {}

    resolver = Resolver({"flaky": flaky})
    sizes = []
    try:
        async with Engine(
            resolver=resolver, observers=[monitor], sleep=_no_wait, keep_finished=20
        ) as engine:
            definition = load_pipeline()
            for _ in range(rounds):
                handles = [await engine.start_run(definition, {}) for _ in range(runs)]
                for handle in handles:
                    await handle.wait()
                provider.force_flush()
                sizes.append(psutil.Process().memory_info().rss)
    finally:
        monitor.close()
        provider.shutdown()
    return sizes


def main(argv: list[str]) -> int:
    """One worker process. ``load DB RUNS``: the load as JSON on stdout; ``memory DB ROUNDS``:
    the RSS after each round as a JSON list."""
    mode, db, count = argv[1], Path(argv[2]), int(argv[3])
    if mode == "memory":
        print(json.dumps(asyncio.run(long_lived(db, count))))
        return 0
    load = asyncio.run(run_load(db, count))
    print(json.dumps({"spans": sorted(load.spans), "statuses": load.statuses}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
