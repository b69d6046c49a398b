"""A run read from the embedded store while it runs: the real engine and monitor write it, a
separate reader sees what the run waits for."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from pipeline_engine_support import Resolver, after, pipeline, stage
from pipeline_tracking_support import GATED, monitored_store, slow_build
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.tracking import SpanStore, SqliteSpanProcessor


async def _read_until(db: Path, run_id: str, stage: str, status: str) -> RunRecord | None:
    """The run as a separate reader sees it once ``stage`` shows ``status``, or as it last saw
    it after 5 s (None if the run never appeared)."""
    deadline = time.monotonic() + 5
    run = None
    with SpanStore(db) as store:
        while time.monotonic() < deadline:
            try:
                run = store.get_run(run_id)
            except RunNotFoundError:  # not written yet: the first batch is up to 100 ms away
                pass
            else:
                if run.stage(stage).status == status:
                    break
            await asyncio.sleep(0.05)
    return run


async def test_a_stage_waiting_for_approval_reads_as_waiting_from_the_store(
    tmp_path: Path,
) -> None:
    """While the run waits for an approval, a reader of the store sees the run running and the
    stage waiting, with its loop type (the run span's approval request and stage list reach the
    file while the span is open); once approved, the run ends and reads back as a success."""
    db = tmp_path / "spans.db"
    tracer_provider, monitor = monitored_store(db)
    # Build takes longer than the writer's flush interval: the run span's row is on disk before
    # the approval is requested, so only the rewrite of open spans can bring the request there.
    async with Engine(resolver=slow_build(0.3), observers=[monitor]) as engine:
        handle = await engine.start_run(GATED)
        waiting = await _read_until(db, handle.run_id, "deploy", "waiting")
        handle.approve("deploy", by="test")
        await handle.wait()
    monitor.close()
    tracer_provider.force_flush()
    done = await _read_until(db, handle.run_id, "deploy", "success")
    tracer_provider.shutdown()
    assert waiting is not None
    assert done is not None
    assert (
        waiting.status,
        waiting.stage("build").status,
        waiting.stage("deploy").status,
        waiting.stage("deploy").loop,  # from the run span: deploy has no span of its own yet
        done.status,
        done.stage("deploy").status,
    ) == ("running", "success", "waiting", "python", "success", "success")


async def test_a_fast_failed_run_is_listed_with_its_failed_stage(tmp_path: Path) -> None:
    """A run whose stage fails at once, written in one batch (so its run span has ended before
    its start comes up), is listed as failed with one failed stage, as a slow one is."""

    async def fail(ctx: StageContext) -> dict[str, Any]:
        raise RuntimeError("boom")

    db = tmp_path / "spans.db"
    tracer_provider = TracerProvider()
    # A flush interval far longer than the run: the whole run reaches the writer as one batch.
    tracer_provider.add_span_processor(SqliteSpanProcessor(db, flush_interval=60.0))
    monitor = PipelineMonitor(tracer_provider=tracer_provider, meter_provider=MeterProvider())
    async with Engine(resolver=Resolver({"build": fail}), observers=[monitor]) as engine:
        result = await engine.run(pipeline(stage("build"), stage("deploy", *after("build"))))
    monitor.close()
    tracer_provider.shutdown()
    with SpanStore(db) as store:
        (summary,) = store.search()
    expected = (result.run_id, "failure", 2, 1)
    assert expected == (summary.run_id, summary.status, summary.stage_count, summary.failed_stages)
