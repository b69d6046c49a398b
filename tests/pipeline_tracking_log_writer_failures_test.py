"""The run log writer when its store fails it (a file deleted under it, a write lock another
process holds), what it writes together (rows and output, values masked again, spans its
writer still held), the linger that gathers rows (after a flush, up to a full batch, alone),
and what outlives a writer (its listener, its thread)."""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.stage_output import OutputBatch
from taskdaemon.pipeline.tracking import SqliteSpanProcessor, log_writer
from taskdaemon.pipeline.tracking.log_read import run_log_records
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

RUN = "d" * 32


def _row(body: str) -> LogRow:
    """A row of run ``RUN`` as its producer builds it."""
    return LogRow(RUN, 1, 9, "INFO", "chain", "a", 0, 1, None, "test", body, {})


def _bodies(db: Path) -> list[str]:
    return [row.body for row in run_log_records(db, RUN)]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == log_writer.__name__]


def test_batches_that_cannot_be_written_are_dropped_counted_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store file deleted under the writer: each later batch is dropped and counted (SQLite
    would write into the unlinked file, which no reader sees), one warning says why at the
    first, and close says how many rows were lost."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    try:
        writer.write_row(_row("stored"))
        assert writer.flush(timeout=10.0)
        for name in ("spans.db", "spans.db-wal", "spans.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        writer.write_rows([_row("lost 1"), _row("lost 2")])
        assert writer.flush(timeout=10.0)
        writer.write_row(_row("lost 3"))
        assert writer.flush(timeout=10.0)
        counts = (writer.written, writer.batches, writer.dropped)
    finally:
        writer.close()
    assert (
        (1, 1, 3),
        [
            f"run log records are not stored: {db}: {db} was deleted or replaced while this "
            "process wrote to it",
            f"3 run log records were not stored in {db}",
        ],
    ) == (counts, _warnings(caplog))


def test_rows_a_lock_holds_back_past_close_are_counted_and_said_with_the_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection holds the store's write lock: a flush gives up at its timeout
    (False), close gives up at its own and counts the rows not written, saying why; once the
    lock is released the writer writes them and its thread ends."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        writer.write_rows([_row("late 1"), _row("late 2")])
        flushed = writer.flush(timeout=0.3)
        writer.close(timeout=0.3)
        dropped = writer.dropped
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    writer._thread.join(60)  # the writer's own thread: none may outlive the test
    why = "another process holds the store's write lock (database is locked)"
    assert (
        False,
        2,
        [f"2 run log records were not stored in {db} (not written within 0.3 s: {why})"],
        ["late 1", "late 2"],
    ) == (flushed, dropped, _warnings(caplog), _bodies(db))


def test_rows_a_lock_holds_back_past_close_add_to_those_dropped_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A row dropped at the bound, then two rows a lock holds back past close: close counts
    and says the three."""
    monkeypatch.setattr(log_writer, "MAX_PENDING", 2)
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        writer.write_rows([_row("late 1"), _row("late 2"), _row("over")])
        writer.close(timeout=0.3)
        dropped = writer.dropped
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    writer._thread.join(60)  # the writer's own thread: none may outlive the test
    why = "another process holds the store's write lock (database is locked)"
    assert (3, f"3 run log records were not stored in {db} (not written within 0.3 s: {why})") == (
        dropped,
        _warnings(caplog)[-1],
    )


def _output(*texts: str) -> OutputBatch:
    return OutputBatch(RUN, "chain", "a", 0, 1, RUN, None, "stdout", texts, 5)


def test_rows_and_output_queued_together_keep_their_order(tmp_path: Path) -> None:
    """One batch holding rows with output lines between them: every row is stored in the
    order queued, in one transaction."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, linger=60.0)
    try:
        writer.write_row(_row("before"))
        writer.write_output(_output("printed", "lines"))
        writer.write_row(_row("after"))
        writer.write_output(_output("last"))
        assert writer.flush(timeout=10.0)
        counts = (writer.written, writer.batches)
    finally:
        writer.close()
    assert (["before", "printed", "lines", "after", "last"], (5, 1)) == (_bodies(db), counts)


def test_each_value_learnt_later_masks_the_rows_written_before_it(tmp_path: Path) -> None:
    """Rows written, then two secrets of the run learnt one after the other: each is masked in
    the stored rows holding it; ``remasked`` counts every row masked, ``written`` only rows."""
    first, second = "tok-one-s3cr3t-4242", "tok-two-s3cr3t-4242"
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    try:
        writer.write_rows([_row(f"got {first}"), _row(f"got {second}")])
        assert writer.flush(timeout=10.0)
        for value in (first, second):
            remember_secrets({"token": value}, run_id=RUN)
            assert writer.flush(timeout=10.0)
        counts = (writer.written, writer.remasked)
    finally:
        writer.close()
    assert ([f"got {REDACTED}", f"got {REDACTED}"], (2, 2)) == (_bodies(db), counts)


def test_after_a_flush_the_writer_lingers_again(tmp_path: Path) -> None:
    """A flush cuts the writer's wait short only while it waits: a row queued after it is
    held for more again, so the next one shares its transaction."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, linger=60.0)
    try:
        writer.write_row(_row("first"))
        assert writer.flush(timeout=10.0)
        writer.write_row(_row("second"))
        # Long enough for a writer that no longer waits to have written the row alone.
        threading.Event().wait(0.3)
        held = _bodies(db)
        writer.write_row(_row("third"))
        assert writer.flush(timeout=10.0)
        counts = (writer.written, writer.batches)
    finally:
        writer.close()
    assert (["first"], (3, 2)) == (held, counts)


def _stored_within_a_minute(db: Path, count: int) -> list[str]:
    """The run's stored bodies once ``count`` are stored, or after a minute (a bound for a
    loaded machine, not a measure)."""
    deadline = time.monotonic() + 60.0
    while len(bodies := _bodies(db)) < count and time.monotonic() < deadline:
        threading.Event().wait(0.05)
    return bodies


def test_a_row_is_written_after_the_linger_without_a_flush(tmp_path: Path) -> None:
    """A row reaching a writer asleep with nothing to do wakes it, and is written once the
    writer's short wait (``LINGER_SECONDS``) is over: no flush, no close. A new writer has
    nothing to flush."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    try:
        flushed = writer.flush(timeout=10.0)
        writer.write_row(_row("first"))
        assert writer.flush(timeout=10.0)
        threading.Event().wait(0.2)  # the writer is asleep again by now
        writer.write_row(_row("alone"))
        stored = _stored_within_a_minute(db, 2)
    finally:
        writer.close()
    assert (True, ["first", "alone"]) == (flushed, stored)


def test_a_batch_filling_up_while_the_writer_lingers_is_written_at_once(tmp_path: Path) -> None:
    """One row wakes the writer, which waits (an hour here) for more; the rows that fill its
    batch end the wait: the batch is written with no flush and no close."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, batch_size=3, linger=3600.0)
    try:
        writer.write_row(_row("a"))
        threading.Event().wait(0.2)  # the writer is lingering by now
        writer.write_rows([_row("b"), _row("c")])
        stored = _stored_within_a_minute(db, 3)
    finally:
        writer.close()
    assert ["a", "b", "c"] == stored


def test_a_batch_whose_insert_fails_is_rolled_back_and_the_next_one_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An insert refused inside the batch's transaction (as a full disk refuses it): the
    batch is rolled back, dropped and counted, the warning gives the store's own words, and
    the next batch is written on the same connection."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON logs BEGIN SELECT RAISE(ABORT, 'no room'); END"
        )
        writer.write_row(_row("refused"))
        assert writer.flush(timeout=10.0)
        other.execute("DROP TRIGGER refuse")
        writer.write_row(_row("written"))
        assert writer.flush(timeout=10.0)
        counts = (writer.written, writer.dropped)
    finally:
        other.close()
        writer.close()
    assert (
        ["written"],
        (1, 1),
        [
            f"run log records are not stored: {db}: no room",
            f"run log records are stored again in {db}; 1 dropped so far",
            f"1 run log records were not stored in {db}",
        ],
    ) == (_bodies(db), counts, _warnings(caplog))


def test_each_streak_of_failed_batches_is_said_and_its_end_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two outages (a disk that fills, is freed and fills again in a week of `serve`): each
    says when it starts and when it ends. Only the first was said; the second was counted
    in silence."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    other = sqlite3.connect(db, isolation_level=None)
    refuse = "CREATE TRIGGER refuse BEFORE INSERT ON logs BEGIN SELECT RAISE(ABORT, 'full'); END"
    try:
        for body in ("lost", "kept", "lost again", "kept again"):
            if body.startswith("lost"):
                other.execute(refuse)
            writer.write_row(_row(body))
            assert writer.flush(timeout=10.0)
            other.execute("DROP TRIGGER IF EXISTS refuse")
    finally:
        other.close()
        writer.close()
    assert (
        ["kept", "kept again"],
        [
            f"run log records are not stored: {db}: full",
            f"run log records are stored again in {db}; 1 dropped so far",
            f"run log records are not stored: {db}: full",
            f"run log records are stored again in {db}; 2 dropped so far",
            f"2 run log records were not stored in {db}",
        ],
    ) == (_bodies(db), _warnings(caplog))


def test_a_closed_writer_is_not_kept_alive_by_the_values_it_listened_for(
    tmp_path: Path,
) -> None:
    """Close stops listening for values to mask again: nothing then holds the writer, which
    is freed with its last reference."""
    writer = SqliteLogWriter(tmp_path / "spans.db")
    writer.close()
    freed = weakref.ref(writer)
    del writer
    gc.collect()
    assert freed() is None


def test_a_writer_never_closed_does_not_keep_its_process_alive(tmp_path: Path) -> None:
    """A process that ends without closing its writer (a crash path) still exits: the
    writer's thread does not hold it."""
    code = (
        "import sys\n"
        "from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter\n"
        "SqliteLogWriter(sys.argv[1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "spans.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (0, "") == (done.returncode, done.stderr)


def test_a_value_learnt_later_masks_a_span_its_writer_still_held(tmp_path: Path) -> None:
    """A span ended before the value was known, still queued in its writer (which writes
    once an hour here): masking the value again first has the span writers write what they
    hold, so the span's stored row is masked too, not written raw after."""
    value = "held-s3cr3t-4242"
    db = tmp_path / "spans.db"
    provider = TracerProvider()
    provider.add_span_processor(SqliteSpanProcessor(db, flush_interval=3600.0))
    writer = SqliteLogWriter(db)
    try:
        root = provider.get_tracer(t.SCOPE_NAME).start_span(t.run_span_name("p"))
        run_id = format(root.get_span_context().trace_id, "032x")
        with trace.use_span(root, end_on_exit=True):
            provider.get_tracer(t.SCOPE_NAME).start_span("fetch", attributes={"note": value}).end()
        remember_secrets({"token": value}, run_id=run_id)
        assert writer.flush(timeout=10.0)
        with sqlite3.connect(db) as conn:
            bodies = [body for (body,) in conn.execute("SELECT body FROM spans")]
        conn.close()
    finally:
        writer.close()
        provider.shutdown()
    assert (2, False) == (len(bodies), any(value in body for body in bodies))
