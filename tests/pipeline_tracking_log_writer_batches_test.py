"""The run log writer gathers rows into batches: one transaction for what arrives together."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from taskdaemon.pipeline.cli.pending_logs import PendingLogHandler
from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.tracking import log_writer
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
    pending = PendingLogHandler(keep=lambda item: False, settle=lambda: None)  # all handed over
    try:
        pending.attach(writer.handler(), writer)
        pending.handle(_record("through the stand-in"))
        pending.flush()
        assert ["through the stand-in"] == [row.body for row in run_log_records(db, RUN)]
    finally:
        pending.close()
        writer.close()


def _row(body: str, attributes: dict[str, Any]) -> LogRow:
    return LogRow(RUN, 1, 9, "INFO", "chain", "a", 0, 1, None, "test", body, attributes)


def test_repeated_attributes_are_redacted_and_equal_values_of_other_types_kept(
    tmp_path: Path,
) -> None:
    """Rows whose attributes repeat (the run log's lifecycle rows; their JSON is remembered)
    are redacted every time, and attributes equal under ``==`` but of other types (``True``
    and ``1``, ``0.0`` and ``-0.0``) are each stored as they are."""
    db = tmp_path / "spans.db"
    secret = {"event": "x", "api_token": "abc123", "note": "password=hunter2"}
    writer = SqliteLogWriter(db)
    try:
        for index, attributes in enumerate(
            [secret, dict(secret), {"flag": True}, {"flag": 1}, {"v": 0.0}, {"v": -0.0}]
        ):
            writer.write_row(_row(str(index), attributes))
        assert writer.flush(timeout=10.0)
    finally:
        writer.close()
    stored = [row.attributes for row in run_log_records(db, RUN)]
    redacted = {"event": "x", "api_token": "[REDACTED]", "note": "password=[REDACTED]"}
    assert [redacted, redacted, {"flag": True}, {"flag": 1}, {"v": 0.0}, {"v": -0.0}] == stored
    assert [bool, int] == [type(row["flag"]) for row in stored[2:4]]
    assert ["0.0", "-0.0"] == [repr(row["v"]) for row in stored[4:]]


def _stored(db: Path) -> list[tuple[Any, ...]]:
    """Every column of every ``logs`` row with its SQLite type, in ``id`` order."""
    conn = sqlite3.connect(db)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(logs)")]
        typed = ", ".join(f"{name}, typeof({name})" for name in columns)
        return conn.execute(f"SELECT {typed} FROM logs ORDER BY id").fetchall()
    finally:
        conn.close()


def test_a_large_batch_stores_the_rows_one_insert_a_row_would(tmp_path: Path) -> None:
    """A batch of more rows than one multi-row statement takes (two whole statements and a
    rest) stores every column as writing the rows one by one does: same values, same types,
    same ids in the same order, the same redaction."""
    count = 2 * log_writer.ROWS_A_STATEMENT + 7
    rows = [
        LogRow(
            RUN,
            1_000 + index,
            9 if index % 3 else 13,
            "INFO" if index % 3 else "WARNING",
            None if index % 5 == 0 else "chain",
            None if index % 7 == 0 else f"s{index}",
            None if index % 4 == 0 else index,
            index % 3,
            None if index % 2 else f"{index:016x}",
            "taskdaemon.run.lifecycle",
            f"row {index} password=hunter2" if index % 11 == 0 else f"row {index}",
            {"event": "stage.started", "n": index, "flag": index % 2 == 0, "x": index / 4},
        )
        for index in range(count)
    ]
    together, one_by_one = tmp_path / "together.db", tmp_path / "one_by_one.db"
    writer = SqliteLogWriter(together, linger=60.0)
    try:
        writer.write_rows(list(rows))
        assert writer.flush(timeout=10.0)
        assert (count, 1) == (writer.written, writer.batches)
    finally:
        writer.close()
    writer = SqliteLogWriter(one_by_one)
    try:
        for row in rows:
            writer.write_row(row)
            assert writer.flush(timeout=10.0)
        assert (count, count) == (writer.written, writer.batches)
    finally:
        writer.close()
    stored = _stored(together)
    assert count == len(stored)
    assert _stored(one_by_one) == stored
    body = 2 * 11  # the body's value in a stored row (each column is followed by its type)
    assert ["row 0 password=[REDACTED]", "row 1"] == [row[body] for row in stored[:2]]
    assert [f"row {index}" for index in range(count)] == [
        row[body].split(" password")[0] for row in stored
    ]


def test_a_batch_holds_at_most_batch_size_rows_and_the_rest_follows_in_order(
    tmp_path: Path,
) -> None:
    """Rows queued together beyond ``batch_size`` are written in batches of that many, the
    last one with what is left, in the order queued."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, batch_size=3, linger=60.0)
    try:
        writer.write_rows([_row(f"r{index}", {"event": "x"}) for index in range(7)])
        assert writer.flush(timeout=10.0)
        assert (7, 3) == (writer.written, writer.batches)
    finally:
        writer.close()
    assert [f"r{index}" for index in range(7)] == [row.body for row in run_log_records(db, RUN)]
