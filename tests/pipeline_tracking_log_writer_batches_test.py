"""The run log writer gathers rows into batches: one transaction for what arrives together."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from taskdaemon.pipeline.cli.deferred import PendingLogHandler
from taskdaemon.pipeline.tracking.log_read import run_log_records
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

RUN = "f" * 32


def _record(message: str) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": "test",
            "msg": message,
            "run_id": RUN,
            "levelno": logging.INFO,
            "levelname": "INFO",
        }
    )


def test_rows_arriving_while_the_writer_lingers_share_one_transaction(tmp_path: Path) -> None:
    """A row wakes the writer, which waits for more before it writes: a row queued during that
    wait goes into the same transaction, and flush() cuts the wait short."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, linger=60.0)
    try:
        writer.write_record(_record("first"))
        # Long enough for a writer without the wait to have written the first row alone.
        threading.Event().wait(0.3)
        assert [] == run_log_records(db, RUN)
        writer.write_record(_record("second"))
        assert writer.flush(timeout=10.0)
        assert (2, 1) == (writer.written, writer.batches)
    finally:
        writer.close()
    assert ["first", "second"] == [row.body for row in run_log_records(db, RUN)]


def test_close_writes_a_lingering_batch_at_once(tmp_path: Path) -> None:
    """close() does not wait out the writer's linger: the queued row is written and the thread
    ends within close's own timeout."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, linger=60.0)
    writer.write_record(_record("only"))
    writer.close(timeout=10.0)
    assert writer.written == 1
    assert ["only"] == [row.body for row in run_log_records(db, RUN)]


def test_a_flush_of_the_pending_root_handler_reaches_the_store(tmp_path: Path) -> None:
    """The root handler standing in while the store opens passes flush() on to the store's
    handler once attached, so the debugger's ``logs`` and dumps read every record so far."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, linger=60.0)
    pending = PendingLogHandler()
    try:
        pending.attach(writer.handler())
        pending.handle(_record("through the stand-in"))
        pending.flush()
        assert ["through the stand-in"] == [row.body for row in run_log_records(db, RUN)]
    finally:
        pending.close()
        writer.close()
