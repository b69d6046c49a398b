"""A run's start written to the embedded store before telemetry loads (``tracking/run_start.py``):
what its rows hold, against what the monitor's run span records, and the stores it leaves
alone."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from pipeline_monitor_support import chain_pipeline
from taskdaemon.pipeline import redaction
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.monitor._books import pipeline_info
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking._tables import insert_writer
from taskdaemon.pipeline.tracking.run_start import (
    adopted_writer,
    started_early,
    withdraw_run_start,
    write_run_start,
)
from taskdaemon.pipeline.tracking.store import RetentionPolicy, SpanStore

RUN_ID = "0123456789abcdef0123456789abcdef"
#: A stage named like a GitHub token: what the monitor's tracer redacts, the start row does too.
TOKEN = "ghp_" + "A1b2" * 9


def test_the_start_row_holds_the_monitor_s_definition_attributes_redacted(tmp_path: Path) -> None:
    """The run span's start row holds what the monitor's run span starts with of the
    definition (but its edges, hash and text), redacted alike, and the run id; the run reads
    ``running`` while this process lives, as the writer's own start row would."""
    pipeline = chain_pipeline(("build", TOKEN), name="ship")
    store = tmp_path / "spans.db"
    span_id = write_run_start(store, RUN_ID, pipeline, 1_700_000_000.5)
    assert span_id is not None
    try:
        with sqlite3.connect(store) as conn:
            (row_span, start_ns, body) = conn.execute(
                "SELECT span_id, start_ns, body FROM spans"
            ).fetchone()
        name, kind, attributes = json.loads(body)[1], json.loads(body)[2], json.loads(body)[5]
        monitor = dict(pipeline_info(pipeline).redacted_run_attributes)
        monitor.pop(t.PIPELINE_EDGE_SPECS)
        monitor.pop(t.PIPELINE_DEFINITION_HASH)
        assert (span_id, 1_700_000_000_500_000_000) == (row_span, start_ns)
        assert ("RUN ship", "SERVER") == (name, kind)
        assert {**monitor, t.CICD_PIPELINE_RUN_ID: RUN_ID} == attributes
        assert ["build", REDACTED] == attributes[t.PIPELINE_STAGES]
        with SpanStore(store, retention=RetentionPolicy()) as reader:
            [summary] = reader.search()
            assert ("ship", "running", 2) == (
                summary.pipeline,
                summary.status,
                summary.stage_count,
            )
    finally:
        assert started_early(RUN_ID)
        assert adopted_writer(store) is not None


def test_a_start_withdrawn_leaves_no_run(tmp_path: Path) -> None:
    """Taken back (telemetry never loaded), the run, its trace and the process's writer row
    are gone; nothing else the store held."""
    store = tmp_path / "spans.db"
    assert write_run_start(store, RUN_ID, chain_pipeline(), 1.0) is not None
    withdraw_run_start(store, RUN_ID)
    with sqlite3.connect(store) as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("runs", "traces", "spans", "trace_resources", "writers")
        ]
    assert [0, 0, 0, 0, 0] == counts
    assert (False, None) == (started_early(RUN_ID), adopted_writer(store))


def test_a_store_it_cannot_write_at_once_is_left_to_the_loaded_writer(tmp_path: Path) -> None:
    """Another process holding the write lock (past ``BUSY_WAIT``), or a file that is no store:
    nothing written, nothing said, the file as it was."""
    store = tmp_path / "spans.db"
    holder = connect(store)
    try:
        holder.execute("BEGIN IMMEDIATE")
        assert write_run_start(store, RUN_ID, chain_pipeline(), 1.0) is None
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    other = tmp_path / "other.db"
    other.write_text("not a store\n")
    assert write_run_start(other, RUN_ID, chain_pipeline(), 1.0) is None
    assert "not a store\n" == other.read_text()
    assert (False, None) == (started_early(RUN_ID), adopted_writer(store))


def test_no_start_is_written_once_the_span_writer_opened_the_store(tmp_path: Path) -> None:
    """A run named after this process's span writer opened the store (its load began first)
    without a ``writers`` row of its own yet: no early row, which no writer would take over or
    renew; the monitor writes the start."""
    store = tmp_path / "spans.db"
    assert adopted_writer(store) is None  # the writer's open: nothing to take over yet
    assert write_run_start(store, RUN_ID, chain_pipeline(), 1.0) is None
    assert not store.exists()
    assert (False, None) == (started_early(RUN_ID), adopted_writer(store))


def test_stage_names_without_a_secret_s_hint_are_not_redacted_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long definition's start row is written before its first stage: its stage names are
    shown clean by one pre-check of all its texts, as the monitor's run span's are, not by a
    ``redact_text`` of each; the row holds them alike."""
    tested: list[str] = []
    original = redaction.redact_text

    def counted(text: str) -> str:
        tested.append(text)
        return original(text)

    monkeypatch.setattr(redaction, "redact_text", counted)
    names = [f"n{uuid.uuid4().hex}" for _ in range(300)]  # never seen: none in redact's memo
    store = tmp_path / "spans.db"
    assert write_run_start(store, RUN_ID, chain_pipeline(names), 1.0) is not None
    try:
        with sqlite3.connect(store) as conn:
            (body,) = conn.execute("SELECT body FROM spans").fetchone()
        assert names == json.loads(body)[5][t.PIPELINE_STAGES]
        assert [] == [text for text in tested if text in names]
    finally:
        assert adopted_writer(store) is not None


def test_a_start_after_the_take_over_uses_the_span_writer_s_row(tmp_path: Path) -> None:
    """A run named after this process's span writer opened the store and registered its
    ``writers`` row, before the monitor has the run: its start is written at once, with that
    row (which the writer renews), not a new one, and reads ``running``. Before, nothing was
    written until the writer's first batch with the run span."""
    store = tmp_path / "spans.db"
    conn = connect(store)
    try:
        registered = insert_writer(conn)
        assert registered == adopted_writer(store, lambda: registered)
    finally:
        conn.close()
    assert write_run_start(store, RUN_ID, chain_pipeline(), 1.0) is not None
    with sqlite3.connect(store) as db:
        writers = db.execute("SELECT id FROM writers").fetchall()
        runs = db.execute("SELECT trace_id, writer_id FROM runs").fetchall()
    assert ([(registered,)], [(RUN_ID, registered)]) == (writers, runs)
    with SpanStore(store, retention=RetentionPolicy()) as reader:
        assert ["running"] == [summary.status for summary in reader.search()]
    assert (True, None) == (started_early(RUN_ID), adopted_writer(store))
