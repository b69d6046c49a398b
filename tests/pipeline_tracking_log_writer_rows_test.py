"""What the run log writer stores of each thing it is given (a stdlib record, the marker of
dropped output) and what it drops: rows past its bound, rows after it closed, records of the
loggers it never keeps."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.stage_output import CaptureLimits, OutputBatch
from taskdaemon.pipeline.tracking import log_writer
from taskdaemon.pipeline.tracking.log_read import OUTPUT_SCOPE, StoredLog, run_log_records
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

RUN = "e" * 32
SPAN = "5" * 16


def _record(message: str = "stage %s ended", **fields: object) -> logging.LogRecord:
    """A record of run ``RUN`` as ``logging`` makes one (``fields`` override or add)."""
    record = logging.LogRecord(
        "taskdaemon.test", logging.WARNING, __file__, 1, message, ("a",), None
    )
    record.run_id = RUN
    vars(record).update(fields)
    return record


def _batch(*texts: str) -> OutputBatch:
    """A batch of stage ``a``'s stdout in run ``RUN``."""
    return OutputBatch(RUN, "chain", "a", 2, 3, RUN, SPAN, "stdout", texts, 7)


def _stored(db: Path, write: Callable[[SqliteLogWriter], object]) -> list[StoredLog]:
    """The rows of ``RUN`` after ``write(writer)`` and the writer's close."""
    writer = SqliteLogWriter(db)
    try:
        write(writer)
    finally:
        writer.close()
    return run_log_records(db, RUN)


def test_a_record_of_a_run_is_stored_with_its_ids_level_message_and_extras(tmp_path: Path) -> None:
    """Every column comes from the record: its time in nanoseconds, OTel's severity for its
    level, the stage's ids given in ``extra``, the logger's name as scope, the message with
    its arguments; the attributes are its other ``extra`` fields, not the standard ones, not
    the ids, not the private ``_`` ones."""
    record = _record(
        created=1_234.5,
        pipeline="chain",
        stage="a",
        instance=2,
        attempt=3,
        span_id=SPAN,
        trace_id=RUN,
        colour="blue",
        retries=2,
        _private="kept out",
    )
    (row,) = _stored(tmp_path / "spans.db", lambda writer: writer.write_record(record))
    expected = StoredLog(
        1,
        RUN,
        1_234_500_000_000,
        13,
        "WARNING",
        "chain",
        "a",
        2,
        3,
        SPAN,
        "taskdaemon.test",
        "stage a ended",
        {"colour": "blue", "retries": 2},
    )
    assert expected == row


def test_a_record_without_stage_ids_is_stored_without_them(tmp_path: Path) -> None:
    """A run's record that names no stage (a handler's own ``logging`` call outside a stage)
    is stored with empty stage columns and no attributes."""
    (row,) = _stored(
        tmp_path / "spans.db",
        lambda writer: writer.write_record(_record(levelno=20, levelname="INFO")),
    )
    assert (None, None, None, None, None, 9, {}) == (
        row.pipeline,
        row.stage,
        row.instance,
        row.attempt,
        row.span_id,
        row.severity,
        dict(row.attributes),
    )


def test_an_exception_s_type_and_message_are_attributes(tmp_path: Path) -> None:
    """A record logged with an exception keeps its type and message as attributes, whether
    it was raised or only made (``exc_info=error``: no traceback); one logged with
    ``exc_info`` but no exception being handled has none."""
    try:
        raise KeyError("missing")
    except KeyError as error:
        failed = _record(exc_info=(KeyError, error, error.__traceback__))
    made = ValueError("never raised")
    records = [failed, _record(exc_info=(ValueError, made, None)), _record(exc_info=(None,) * 3)]
    rows = _stored(tmp_path / "spans.db", lambda writer: [*map(writer.write_record, records)])
    assert [
        {"exception.type": "KeyError", "exception.message": "'missing'"},
        {"exception.type": "ValueError", "exception.message": "never raised"},
        {},
    ] == [dict(row.attributes) for row in rows]


def test_a_record_of_no_run_is_not_stored(tmp_path: Path) -> None:
    """The store is per run: a record without a run id (none given, None, or empty) is left
    out."""
    unset = _record()
    del unset.run_id
    records = [unset, _record(run_id=None), _record(run_id="")]
    rows = _stored(
        tmp_path / "spans.db",
        lambda writer: [*map(writer.write_record, records), writer.write_row(_row())],
    )
    assert ["kept"] == [row.body for row in rows]


def _row() -> LogRow:
    """A row built by its producer, as ``run_log`` builds them."""
    return LogRow(RUN, 1, 9, "INFO", None, None, None, None, None, "test", "kept", {})


def test_the_marker_of_dropped_output_is_one_warning_row_saying_how_much(tmp_path: Path) -> None:
    """A batch marking output dropped past the capture bound is one WARNING row of the output
    scope, stamped now, its body the marker's words, the counts and stream as attributes."""
    limits = CaptureLimits(max_lines=10, max_bytes=99)
    marker = dataclasses.replace(_batch(), dropped_lines=40, dropped_bytes=900, limits=limits)
    before = time.time_ns()
    written = []
    (row,) = _stored(
        tmp_path / "spans.db",
        lambda writer: (
            writer.write_output(marker),
            writer.flush(),
            written.append(writer.written),
        ),
    )
    expected = StoredLog(
        1,
        RUN,
        row.time_ns,
        13,
        "WARNING",
        "chain",
        "a",
        2,
        3,
        SPAN,
        OUTPUT_SCOPE,
        "[taskdaemon] 40 output lines (900 bytes) dropped past the capture bound of 10 lines "
        "/ 99 bytes per stage",
        {
            "taskdaemon.log.dropped_lines": 40,
            "taskdaemon.log.dropped_bytes": 900,
            "log.iostream": "stdout",
        },
    )
    assert (expected, True, [1]) == (row, before <= row.time_ns <= time.time_ns(), written)


def test_rows_past_the_bound_are_dropped_counted_and_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With room for 4 rows while the writer lingers: 3 lines and a row fill it exactly
    (nothing dropped, nothing said); then 2 rows, 2 lines and a row are dropped and counted,
    one warning said as the first are, and close says how many were not stored."""
    monkeypatch.setattr(log_writer, "MAX_PENDING", 4)
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, linger=60.0)
    said = []
    try:
        writer.write_output(_batch("l1", "l2", "l3"))
        writer.write_row(_row())
        said.append((writer.dropped, len(_warnings(caplog))))
        writer.write_rows([_row(), _row()])
        said.append((writer.dropped, len(_warnings(caplog))))
        writer.write_output(_batch("l4", "l5"))
        writer.write_row(_row())
        said.append((writer.dropped, len(_warnings(caplog))))
    finally:
        writer.close()
    bodies = [row.body for row in run_log_records(db, RUN)]
    assert (
        ["l1", "l2", "l3", "kept"],
        [(0, 0), (2, 1), (5, 1)],
        [
            f"log writer of {db} is behind; dropping log records (counted)",
            f"5 run log records were not stored in {db}",
        ],
    ) == (bodies, said, _warnings(caplog))


def test_rows_given_together_past_the_bound_keep_the_first_that_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for 2 more rows, 4 rows given in one call keep the first 2, in order."""
    monkeypatch.setattr(log_writer, "MAX_PENDING", 3)
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, linger=60.0)
    try:
        writer.write_row(_row())
        writer.write_rows([_row()._replace(body=f"r{n}") for n in range(1, 5)])
        dropped = writer.dropped
    finally:
        writer.close()
    stored = [row.body for row in run_log_records(db, RUN)]
    assert (["kept", "r1", "r2"], 2) == (stored, dropped)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the writer's own logger said."""
    return [r.getMessage() for r in caplog.records if r.name == log_writer.__name__]


def test_a_batch_cut_to_the_room_left_keeps_its_first_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of 5 lines with room for 3 keeps its first 3, in order."""
    monkeypatch.setattr(log_writer, "MAX_PENDING", 3)
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, linger=60.0)
    try:
        writer.write_output(_batch("l1", "l2", "l3", "l4", "l5"))
        dropped = writer.dropped
    finally:
        writer.close()
    assert (["l1", "l2", "l3"], 2) == ([row.body for row in run_log_records(db, RUN)], dropped)


def test_nothing_is_queued_after_close(tmp_path: Path) -> None:
    """A record, row or output given to a closed writer is neither stored nor counted."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    writer.write_row(_row())
    writer.close()
    writer.write_record(_record())
    writer.write_row(_row())
    writer.write_output(_batch("late"))
    assert (["kept"], 1, 0) == (
        [row.body for row in run_log_records(db, RUN)],
        writer.written,
        writer.dropped,
    )


def test_the_handler_keeps_no_record_of_the_sdk_nor_of_the_writer_itself(tmp_path: Path) -> None:
    """Through the writer's handler, records of the OTel SDK's loggers and of the writer's own
    (its warnings would feed it) are not stored; any other logger's are, and the handler's
    flush puts them in the store."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, linger=60.0)
    handler = writer.handler()
    try:
        for name in ("opentelemetry.sdk.trace", log_writer.__name__, "taskdaemon.run", "app"):
            handler.handle(_record(name, name=name, args=()))
        handler.flush()
        bodies = [row.body for row in run_log_records(db, RUN)]
    finally:
        handler.close()
        writer.close()
    assert ["taskdaemon.run", "app"] == bodies


def test_a_record_that_cannot_be_formatted_is_reported_as_logging_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record whose arguments do not fit its message is not stored and does not reach its
    caller: the handler reports it as ``logging`` reports a failed handler, naming the
    record's message and arguments."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    handler = writer.handler()
    try:
        handler.handle(_record("stage %d ended"))
        handler.flush()
    finally:
        handler.close()
        writer.close()
    said = capsys.readouterr().err
    assert ([], True) == (
        run_log_records(db, RUN),
        "Message: 'stage %d ended'\nArguments: ('a',)\n" in said,
    )


def test_the_writer_thread_is_named_and_ends_with_the_process(tmp_path: Path) -> None:
    """The writer's thread is named for profiles and thread dumps (``run_thread_cpu`` reports
    it by name) and is a daemon: a writer never closed does not keep its process alive."""
    before = set(threading.enumerate())
    writer = SqliteLogWriter(tmp_path / "spans.db")
    try:
        started = [(t.name, t.daemon) for t in set(threading.enumerate()) - before]
    finally:
        writer.close()
    assert [("taskdaemon-log-writer", True)] == started
