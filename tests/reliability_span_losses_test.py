"""What a process says of the spans a full disk cost it, on a real tmpfs: the writer's
recovery line and the exit line tell one story when the disk fills a second time."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from reliability_support import fill, tmpfs
from taskdaemon.pipeline.cli.span_losses import report_lost_spans
from taskdaemon.pipeline.tracking import SqliteSpanProcessor


def _nearly_full(disk: Path, filler: str) -> Path:
    """Fill ``disk`` but 64 KiB (a heartbeat fits, a 400 KB span does not); the filler."""
    reserve = disk / "reserve"
    reserve.write_bytes(bytes(64 * 1024))
    full = fill(disk, filler)
    reserve.unlink()
    return full


def test_the_exit_line_tells_the_spans_dropped_after_the_recovery_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A span dropped, writes succeed again ("1 span dropped so far"), the disk fills again and
    one more is dropped: the exit line's 2 says 1 before that line and 1 after. Before, it said
    only "2 spans were not stored (...: database or disk is full)", against the recovery
    line's 1 (a week of ``serve`` on a 2 MiB disk said 50 at exit, 46 in that line)."""
    with tmpfs(tmp_path / "disk") as disk:
        db = disk / "spans.db"
        processor = SqliteSpanProcessor(db)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("test")
        with caplog.at_level(logging.WARNING):
            tracer.start_span("before").end()
            processor.force_flush()
            filler = _nearly_full(disk, "first")
            tracer.start_span("big", attributes={"blob": "x" * 400_000}).end()
            processor.force_flush()
            filler.unlink()
            tracer.start_span("after").end()
            processor.force_flush()  # writes succeed again
            _nearly_full(disk, "second")
            tracer.start_span("big", attributes={"blob": "x" * 400_000}).end()
            provider.shutdown()
            lost = report_lost_spans([processor])
    failed = f"span store {db}: write failed, spans are dropped until writes succeed again: "
    assert (
        2,
        [
            f"{failed}database or disk is full",
            f"span store {db}: writes succeed again; 1 span dropped so far",
            f"{failed}database or disk is full",
            f"2 spans were not stored ({db}: database or disk is full; 1 before writes last"
            " succeeded again, 1 after)",
        ],
    ) == (lost, [r.getMessage() for r in caplog.records])
