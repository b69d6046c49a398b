"""The span store writer is woken by the first span of a batch, not by every span."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from taskdaemon.pipeline.tracking import SqliteSpanProcessor


def _voluntary_switches(thread: threading.Thread) -> int:
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT count(*) FROM spans").fetchone()
    return int(count)


def test_spans_ended_while_the_writer_waits_out_its_interval_do_not_wake_it(
    tmp_path: Path,
) -> None:
    """Spans put one at a time while the producer blocks in between (as a loop waiting for a
    stage does) leave the writer asleep until the interval ends or a flush asks: it blocks a
    handful of times, not once per span; the flush still writes every one."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, flush_interval=60.0)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    gap = threading.Event()
    try:
        tracer.start_span("first").end()  # wakes the idle writer: it now waits the interval out
        before = _voluntary_switches(processor._thread)
        for i in range(60):
            tracer.start_span(f"s{i}").end()
            gap.wait(0.001)  # the producer blocks, so a writer woken per span would get the GIL
        woken = _voluntary_switches(processor._thread) - before
        assert processor.force_flush(10_000)
    finally:
        provider.shutdown()
    assert woken < 10  # per span: 120 puts would wake it >= 60 times
    assert _rows(db) == 61


def test_a_full_batch_wakes_a_lingering_writer_at_once(tmp_path: Path) -> None:
    """The memory bound: a queue that reaches ``max_batch`` is written without waiting for the
    interval (60 s here) or a flush."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, flush_interval=60.0, max_batch=20)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    try:
        tracer.start_span("s0").end()
        threading.Event().wait(0.05)  # the writer, woken by the first span, now lingers
        for i in range(1, 10):  # 20 puts in all: a start and an end each
            tracer.start_span(f"s{i}").end()
        deadline = time.monotonic() + 10
        while _rows(db) < 10 and time.monotonic() < deadline:
            threading.Event().wait(0.01)  # polling the file: the writer is another thread
        written = _rows(db)
    finally:
        provider.shutdown()
    assert written == 10
