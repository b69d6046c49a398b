"""watch_stored_run: live DAG snapshots of a run read from the embedded store, as a server or
terminal in another process would follow it."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from pipeline_tracking_support import GATED, monitored_store, slow_build
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.tracking import SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.visualization import DagSnapshot, watch_stored_run


async def test_snapshots_follow_a_run_through_its_approval_to_the_end(tmp_path: Path) -> None:
    """Polling the store, the stream shows build running then done, deploy waiting for its
    approval, and ends with the snapshot of the finished run; each snapshot differs from the
    one before it."""
    db = tmp_path / "spans.db"
    tracer_provider, monitor = monitored_store(db)
    snapshots: list[DagSnapshot] = []
    # Build takes long enough for a poll to see it running.
    async with Engine(resolver=slow_build(0.4), observers=[monitor]) as engine:
        handle = await engine.start_run(GATED)
        with SpanStore(db) as store:
            async for snapshot in watch_stored_run(store, handle.run_id, interval=0.05):
                snapshots.append(snapshot)
                if snapshot.node("deploy").state == "waiting":
                    handle.approve("deploy", by="test")
        await handle.wait()
    monitor.close()
    tracer_provider.shutdown()
    states = [(s.node("build").state, s.node("deploy").state) for s in snapshots]
    final = snapshots[-1]
    assert (
        ("running", "pending") in states,
        ("success", "waiting") in states,
        states[-1],
        final.run.status if final.run else None,
        all(a != b for a, b in pairwise(snapshots)),
    ) == (True, True, ("success", "success"), "success", True)


async def test_a_run_that_never_appears_raises_after_the_timeout(tmp_path: Path) -> None:
    """A run id the source never gets ends the stream with RunNotFoundError."""
    SqliteSpanProcessor(tmp_path / "spans.db").shutdown()
    with SpanStore(tmp_path / "spans.db") as store:
        stream = watch_stored_run(store, "a" * 32, interval=0.01, appear_timeout=0.1)
        with pytest.raises(RunNotFoundError):
            await anext(stream)
