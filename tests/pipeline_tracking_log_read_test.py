"""Reading log records back with their bodies cut in the query (``tracking/log_read.py``)."""

from __future__ import annotations

import time
from pathlib import Path

from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.stage_output import OutputBatch
from taskdaemon.pipeline.tracking.log_read import read_logs
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

RUN = "a" * 32


def test_max_body_reads_a_long_body_cut_with_its_whole_length(tmp_path: Path) -> None:
    """With ``max_body``, a record longer than it is read as its first ``max_body``
    characters, its whole length in ``body_length``; a shorter one whole, without."""
    writer = SqliteLogWriter(tmp_path / "spans.db")
    try:
        for body in ("x" * 50, "short"):
            writer.write_row(
                LogRow(RUN, time.time_ns(), 9, "INFO", "p", "s", 0, 1, None, "s", body, {})
            )
    finally:
        writer.close()
    found = read_logs(tmp_path / "spans.db", RUN, max_body=10)
    assert [("x" * 10, 50), ("short", None)] == [(r.body, r.body_length) for r in found]


def test_max_body_reads_a_row_of_several_output_lines_whole(tmp_path: Path) -> None:
    """A row holding several captured output lines is read whole and split into its lines,
    each whole, even when the row is longer than ``max_body``."""
    writer = SqliteLogWriter(tmp_path / "spans.db")
    try:
        writer.write_output(
            OutputBatch(
                RUN, "p", "s", 0, 1, RUN, None, "stdout", ("a" * 8, "b" * 8), time.time_ns()
            )
        )
    finally:
        writer.close()
    found = read_logs(tmp_path / "spans.db", RUN, max_body=10)
    assert [("a" * 8, None), ("b" * 8, None)] == [(r.body, r.body_length) for r in found]
