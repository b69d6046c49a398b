"""watch_stored_run: live DAG snapshots of a run read from the embedded store, as a server or
terminal in another process would follow it."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from pipeline_engine_support import Resolver, after, pipeline, stage
from pipeline_tracking_support import GATED, approved_during_a_read, monitored_store, slow_build
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.model import Manual, TriggerMode
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.tracking import SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.visualization import DagSnapshot, watch_stored_run
from taskdaemon.pipeline.visualization._terminal import stage_rows


async def test_snapshots_follow_a_run_through_its_approval_to_the_end(tmp_path: Path) -> None:
    """Polling the store, the stream shows build running then done, deploy waiting for its
    approval, and ends with the snapshot of the finished run; each snapshot differs from the
    one before it. The store tells a dead writer (the run would read ``interrupted``): polls
    finding nothing new while build runs are not said as a run that may never end."""
    db = tmp_path / "spans.db"
    tracer_provider, monitor = monitored_store(db)
    snapshots: list[DagSnapshot] = []
    said: list[str] = []
    # Build takes long enough for a poll to see it running, and the next ones alike.
    async with Engine(resolver=slow_build(0.4), observers=[monitor]) as engine:
        handle = await engine.start_run(GATED)
        with SpanStore(db) as store:
            stream = watch_stored_run(
                store, handle.run_id, interval=0.05, quiet_polls=1, on_quiet=said.append
            )
            async for snapshot in stream:
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
        said,
    ) == (True, True, ("success", "success"), "success", True, [])


async def test_a_run_ending_during_a_poll_is_followed_to_the_end_it_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run ends, deploy approved, run and written, between a poll's read of its spans
    (deploy has none yet) and its read of the run's row (ended): the stream ended on a run
    ``interrupted`` with deploy ``skipped``, a picture of a run that succeeded. Its last
    snapshot is now the run's end: build and deploy done, the run a success."""
    db = tmp_path / "spans.db"
    tracer_provider, monitor = monitored_store(db)
    snapshots: list[DagSnapshot] = []
    async with Engine(resolver=slow_build(0.0), observers=[monitor]) as engine:
        handle = await engine.start_run(GATED)
        arm = approved_during_a_read(monkeypatch, handle, tracer_provider)
        with SpanStore(db) as store:
            async for snapshot in watch_stored_run(store, handle.run_id, interval=0.01):
                snapshots.append(snapshot)
                if snapshot.node("deploy").state == "waiting":
                    arm()
    monitor.close()
    tracer_provider.shutdown()
    final = snapshots[-1]
    assert (
        final.run.status if final.run else None,
        final.node("build").state,
        final.node("deploy").state,
    ) == ("success", "success", "success")


async def test_a_run_that_never_appears_raises_after_the_timeout(tmp_path: Path) -> None:
    """A run id the source never gets ends the stream with RunNotFoundError."""
    SqliteSpanProcessor(tmp_path / "spans.db").shutdown()
    with SpanStore(tmp_path / "spans.db") as store:
        stream = watch_stored_run(store, "a" * 32, interval=0.01, appear_timeout=0.1)
        with pytest.raises(RunNotFoundError):
            await anext(stream)


# deploy waits for build and an approval; notify, which cannot start before deploy ends (nor
# be asked its own approval before), has no span while the run is held at deploy's approval.
HELD = pipeline(
    stage("build"),
    stage("deploy", *after("build"), Manual(approval_required=True), trigger_mode=TriggerMode.ALL),
    stage("notify", *after("deploy"), Manual(approval_required=True), trigger_mode=TriggerMode.ALL),
)


async def _waiting_at_the_approval(tmp_path: Path, capture: PayloadCapture) -> dict[str, str]:
    """Run HELD into a store (the monitor recording with ``capture``), read it back from the
    store until deploy waits for its approval, and give each stage's WAITING FOR then; both
    approvals are given after, and the run ends."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SqliteSpanProcessor(tmp_path / "spans.db"))
    monitor = PipelineMonitor(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(), capture=capture
    )
    waiting: dict[str, str] = {}
    async with Engine(resolver=slow_build(0.0), observers=[monitor]) as engine:
        handle = await engine.start_run(HELD)
        with SpanStore(tmp_path / "spans.db") as store:
            async for snapshot in watch_stored_run(store, handle.run_id, interval=0.05):
                if snapshot.node("deploy").state == "waiting" and not waiting:
                    rows = stage_rows(snapshot, 0.0)
                    waiting = {row.stage: row.waiting_for for row in rows}
                    handle.approve("deploy", by="test")
                if snapshot.node("notify").state == "waiting":
                    handle.approve("notify", by="test")
        await handle.wait()
    monitor.close()
    tracer_provider.shutdown()
    return waiting


async def test_a_stage_not_started_waits_for_what_the_recorded_definition_says(
    tmp_path: Path,
) -> None:
    """Read back from the store while deploy waits for its approval, notify (no span yet)
    waits for deploy, then its approval (mode ``all``), as the live view says: its triggers
    come from the definition the run span recorded."""
    waiting = await _waiting_at_the_approval(tmp_path, PayloadCapture())
    assert waiting == {"build": "", "deploy": "approval", "notify": "deploy, then approval"}


async def test_without_a_recorded_definition_a_pending_stage_waits_for_unknown(
    tmp_path: Path,
) -> None:
    """With capture off the run span records no definition: nothing stored says what notify
    waits for, and the view says ``unknown`` rather than a blank."""
    waiting = await _waiting_at_the_approval(tmp_path, PayloadCapture(enabled=False))
    assert waiting == {"build": "", "deploy": "approval", "notify": "unknown"}


async def test_a_run_paused_at_a_breakpoint_is_followed_to_its_end(tmp_path: Path) -> None:
    """A run paused at a breakpoint is still going: the stream shows it paused, and after it
    is resumed, its end. It ended at the pause, and the web page of such a run said it had
    ended, paused, and followed it no more."""
    db = tmp_path / "spans.db"
    tracer_provider, monitor = monitored_store(db)
    statuses: list[str | None] = []
    async with Engine(resolver=Resolver({}), observers=[monitor]) as engine:
        debug = engine.with_debug(True)
        debug.set_breakpoint("b")
        handle = await debug.start(pipeline(stage("a"), stage("b", *after("a"))))
        with SpanStore(db) as store:
            async for snapshot in watch_stored_run(store, handle.run_id, interval=0.05):
                statuses.append(snapshot.run.status if snapshot.run else None)
                if statuses.count("paused") == 1 and statuses[-1] == "paused":
                    debug.continue_(handle.run_id)
        await handle.wait()
    monitor.close()
    tracer_provider.shutdown()
    assert ("paused" in statuses, statuses[-1]) == (True, "success"), statuses
