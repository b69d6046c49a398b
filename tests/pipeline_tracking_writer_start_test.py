"""The span store's writer as it starts (``tracking/writer.py``): the retention it is given,
or the environment's, applied to the store before its first batch; its ``writers`` row
registered at once, or left for the first write while another connection holds the lock."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from pipeline_tracking_support import RESOURCE, T0, S, write_example_run
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import RetentionPolicy, SpanStore, SqliteSpanProcessor, writer
from taskdaemon.pipeline.tracking._schema import SCHEMA_VERSION
from taskdaemon.pipeline.tracking._span_batches import register_writer

#: What ``retention_from_env`` says of ``TASKDAEMON_RETENTION_KEEP=lots``.
PROBLEM = "TASKDAEMON_RETENTION_KEEP: not a count: 'lots'"
#: The writer thread's name.
THREAD = "taskdaemon-span-store"


def _three_runs(db: Path) -> None:
    """Three runs of ``demo``, a minute apart, written with retention off."""
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SqliteSpanProcessor(db, retention=RetentionPolicy()))
    try:
        for minute in range(3):
            write_example_run(provider, t0=T0 + 60 * S * minute)
    finally:
        provider.shutdown()


def _runs_kept(db: Path, retention: RetentionPolicy | None) -> dict[str, int]:
    """The runs each pipeline has once a writer given ``retention`` has started (its first
    flush comes after the retention pass) and shut down."""
    processor = SqliteSpanProcessor(db, retention=retention)
    try:
        assert processor.force_flush()
    finally:
        processor.shutdown()
    with SpanStore(db, retention=RetentionPolicy()) as store:
        return store.pipeline_counts()


def test_the_retention_a_writer_is_given_applies_as_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given keep 1, with the environment setting none: two of the three runs go."""
    monkeypatch.delenv("TASKDAEMON_RETENTION_KEEP", raising=False)
    monkeypatch.delenv("TASKDAEMON_RETENTION_MAX_AGE", raising=False)
    db = tmp_path / "spans.db"
    _three_runs(db)
    assert {"demo": 1} == _runs_kept(db, RetentionPolicy(keep=1))


def test_a_writer_given_no_retention_applies_the_environment_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``TASKDAEMON_RETENTION_KEEP=2``: the oldest of the three runs goes."""
    monkeypatch.delenv("TASKDAEMON_RETENTION_MAX_AGE", raising=False)
    db = tmp_path / "spans.db"
    _three_runs(db)
    monkeypatch.setenv("TASKDAEMON_RETENTION_KEEP", "2")
    assert {"demo": 2} == _runs_kept(db, None)


def test_a_registration_waits_for_the_lock_only_when_asked_and_raises_other_errors(
    tmp_path: Path,
) -> None:
    """While another connection holds the write lock: without ``wait``, no row and the
    connection's busy timeout as it was; with it, SQLite's "locked" once that timeout ran
    out. A store without the ``writers`` table is an error either way."""
    db = tmp_path / "spans.db"
    _three_runs(db)
    holder = sqlite3.connect(db, isolation_level=None)
    conn = sqlite3.connect(db, timeout=0.1, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        unregistered = register_writer(conn, wait=False)
        (busy_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            register_writer(conn, wait=True)
        holder.execute("ROLLBACK")
        registered = register_writer(conn, wait=False)
    finally:
        holder.close()
        conn.close()
    bare = sqlite3.connect(":memory:")
    try:
        for wait in (False, True):
            with pytest.raises(sqlite3.OperationalError, match="no such table: writers"):
                register_writer(bare, wait=wait)
    finally:
        bare.close()
    assert (None, 100, True) == (unregistered, busy_ms, isinstance(registered, int))


def test_a_retention_that_fails_is_said_in_one_line_and_the_writer_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An invalid ``TASKDAEMON_RETENTION_KEEP`` read by a writer given no retention: one
    warning naming the store and the setting's problem; the spans are written all the same."""
    monkeypatch.delenv("TASKDAEMON_RETENTION_MAX_AGE", raising=False)
    monkeypatch.setenv("TASKDAEMON_RETENTION_KEEP", "lots")
    db = tmp_path / "spans.db"
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SqliteSpanProcessor(db))
    try:
        write_example_run(provider)
    finally:
        provider.shutdown()
    with SpanStore(db, retention=RetentionPolicy()) as store:
        runs = store.pipeline_counts()
    warned = [r.getMessage() for r in caplog.records if "retention" in r.getMessage()]
    assert {"demo": 1} == runs
    assert [f"span store {db}: retention failed, continuing without it: {PROBLEM}"] == warned


def test_a_flush_with_nothing_to_write_waits_for_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing queued and no heartbeat due (heartbeats an hour apart here), a flush takes
    no write lock: it answers True at once while another connection holds the lock."""
    monkeypatch.setattr(writer, "HEARTBEAT_EVERY", 3600.0)
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        assert processor.force_flush()
        holder.execute("BEGIN EXCLUSIVE")
        flushed = [processor.force_flush(2000) for _ in range(3)]
    finally:
        holder.close()
        processor.shutdown()
    assert [True] * 3 == flushed


def test_a_started_writer_is_registered_and_runs_on_one_named_daemon_thread(
    tmp_path: Path,
) -> None:
    """Once constructed, before any span: the ``writers`` row of this process is in the store,
    nothing is unwritten, and one daemon thread named ``taskdaemon-span-store`` (a process
    that never shuts the writer down is not kept alive by it) runs until shutdown."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    try:
        with sqlite3.connect(db) as conn:
            pids = [pid for (pid,) in conn.execute("SELECT pid FROM writers")]
        conn.close()
        unwritten = processor.unwritten()
        threads = [(th.name, th.daemon) for th in threading.enumerate() if th.name == THREAD]
    finally:
        processor.shutdown()
    after = [th for th in threading.enumerate() if th.name == THREAD]
    assert ([os.getpid()], (0, ""), [(THREAD, True)], []) == (pids, unwritten, threads, after)


@pytest.mark.parametrize("table_missing", [False, True])
def test_a_store_that_cannot_be_opened_is_one_line_naming_it(
    tmp_path: Path, table_missing: bool
) -> None:
    """A directory where the store's file should be (SQLite cannot open it), or a file of the
    current schema version without the store's tables (the writer cannot register): the
    constructor's error names the path and the reason, SQLite's or the missing columns."""
    path = tmp_path
    if table_missing:
        path = tmp_path / "spans.db"
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.close()
    with pytest.raises(SpanSourceError) as refused:
        SqliteSpanProcessor(path, retention=RetentionPolicy())
    said = str(refused.value)
    if table_missing:
        head, tail = f"{path}: not a taskdaemon span store (no column ", "); name another file"
        assert (True, True) == (said.startswith(head), said.endswith(tail)), said
    else:
        assert f"{path}: cannot open span store: unable to open database file" == said
