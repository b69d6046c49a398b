"""A run read from the embedded store while it runs: the real engine and monitor write it, a
separate reader sees what the run waits for."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pipeline_tracking_support import GATED, monitored_store, slow_build
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.tracking import SpanStore


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
