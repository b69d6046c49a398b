"""Early stage rows (``tracking/run_start.write_stage_start``, ``write_stage_end``): what a
reader rebuilds from them, their bound a process, and none once the span writer took over."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from pipeline_monitor_support import chain_pipeline
from taskdaemon.pipeline.events import StageFinished, StageStarted
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.tracking import run_start
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking.run_start import (
    adopted_writer,
    withdraw_run_start,
    write_run_start,
    write_stage_end,
    write_stage_start,
)
from taskdaemon.pipeline.tracking.store import RetentionPolicy, SpanStore

RUN_ID = "fedcba9876543210fedcba9876543210"


def _started(stage: str, task_run_id: str, at: float) -> StageStarted:
    return StageStarted(
        run_id=RUN_ID,
        pipeline="chain",
        stage=stage,
        instance=0,
        attempt=1,
        task_run_id=task_run_id,
        loop="python",
        at=at,
        queued_at=at,
        considered_at=at,
        inputs={},
    )


def _finished(stage: str, task_run_id: str, at: float, status: StageStatus) -> StageFinished:
    return StageFinished(
        run_id=RUN_ID,
        pipeline="chain",
        stage=stage,
        instance=0,
        attempt=1,
        task_run_id=task_run_id,
        status=status,
        at=at,
    )


def test_early_stage_rows_read_as_what_the_stages_did_and_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``a`` ended with a failure, ``b`` started: read by a process that has no writer
    (the pid is this one's, so the run reads ``running``: its stages then read as they
    stand), ``a`` failed at its end and ``b`` runs since its start. Past the bound, a stage
    gets no row; after the take-over, neither does one."""
    monkeypatch.setattr(run_start, "_stage_rows", 0)
    monkeypatch.setattr(run_start, "MAX_EARLY_STAGES", 3)
    store = tmp_path / "spans.db"
    pipeline = chain_pipeline(("a", "b", "c", "d"))
    try:
        assert write_run_start(store, RUN_ID, pipeline, 100.0) is not None
        assert write_stage_start(store, _started("a", "a-1", 101.0), "00000000000000a1")
        write_stage_end(
            store, _finished("a", "a-1", 102.0, StageStatus.FAILURE), "00000000000000a1"
        )
        assert write_stage_start(store, _started("b", "b-1", 103.0), "00000000000000b1")
        assert write_stage_start(store, _started("c", "c-1", 103.0), "00000000000000c1")
        assert not write_stage_start(store, _started("d", "d-1", 104.0), "00000000000000d1")
        with SpanStore(store, retention=RetentionPolicy()) as reader:
            run = reader.get_run(RUN_ID)
        stages = {stage.name: stage for stage in run.stages}
        assert [("failure", 101.0, 102.0)] == [
            (a.status, a.start, a.end) for a in stages["a"].attempts
        ]
        assert [("running", 103.0, None)] == [
            (a.status, a.start, a.end) for a in stages["b"].attempts
        ]
        assert [] == list(stages["d"].attempts)
        monkeypatch.setattr(run_start, "_stage_rows", 0)
        assert adopted_writer(store) is not None
        assert not write_stage_start(store, _started("d", "d-1", 104.0), "00000000000000d1")
    finally:
        withdraw_run_start(store, RUN_ID)


def _locked_out(store: Path) -> sqlite3.Connection:
    """A connection of another program holding ``store`` in SQLite's exclusive locking mode
    (``PRAGMA locking_mode = EXCLUSIVE``, then a write): in WAL mode too, no other connection
    can even read the file until it lets go."""
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE writers SET heartbeat_ns = heartbeat_ns")
    return holder


def test_a_store_another_program_holds_exclusively_delays_no_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store held in exclusive locking mode by another program, before the run's start or
    between it and a stage's: the start and the stage rows give up within about ``BUSY_WAIT``
    (0.25 s) each, as for a write lock, not SQLite's default 5 s or the writer's 30 s, and
    write nothing; the stage runs on."""
    monkeypatch.setattr(run_start, "_stage_rows", 0)
    store = tmp_path / "spans.db"
    connect(store).close()
    holder = _locked_out(store)
    try:
        began = time.monotonic()
        assert write_run_start(store, RUN_ID, chain_pipeline(("a",)), 100.0) is None
        assert time.monotonic() - began < 2.0
    finally:
        holder.close()
    try:
        assert write_run_start(store, RUN_ID, chain_pipeline(("a",)), 100.0) is not None
        holder = _locked_out(store)
        try:
            began = time.monotonic()
            assert not write_stage_start(store, _started("a", "a-1", 101.0), "00000000000000a1")
            assert time.monotonic() - began < 2.0
        finally:
            holder.close()
    finally:
        withdraw_run_start(store, RUN_ID)
