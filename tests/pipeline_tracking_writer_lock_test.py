"""The span store writer while another connection holds the store's write lock: its flushes
answer False within their bound, ``unwritten`` counts the ended spans waiting and says why, a
run end not written within ``flush_run_end``'s bound is said and counted, and everything is
written once the lock is released."""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from taskdaemon.pipeline.tracking import SqliteSpanProcessor, writer


def _wait_for_unwritten(processor: SqliteSpanProcessor, count: int) -> tuple[int, str]:
    """``processor.unwritten()`` once it counts ``count`` spans, or after 10 s: an ended span
    is between the queue and the batch being written for a moment, counted in neither."""
    pause = threading.Event()
    for _ in range(200):
        found = processor.unwritten()
        if found[0] == count:
            break
        pause.wait(0.05)
    return found


def test_spans_held_up_by_another_connections_lock_are_unwritten_until_it_ends(
    tmp_path: Path,
) -> None:
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    tracer.start_span("before").end()
    processor.force_flush()
    open_span = tracer.start_span("open")  # started, not ended: never counted as unwritten
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for name in ("a", "b", "c"):
            tracer.start_span(name).end()
        flushed = processor.force_flush(200)
        refreshed = processor.flush_open_spans(200)
        waiting = _wait_for_unwritten(processor, 3)
    finally:
        holder.execute("COMMIT")
        holder.close()
    written = processor.force_flush()
    after = processor.unwritten()
    open_span.end()
    provider.shutdown()
    closed = processor.unwritten()
    with sqlite3.connect(db) as conn:
        names = {name for (name,) in conn.execute("SELECT name FROM spans_readable")}
    expected = (False, False, 3, True, True, (0, ""), (0, ""), {"before", "open", "a", "b", "c"})
    actual = (
        flushed,
        refreshed,
        waiting[0],
        waiting[1].startswith("another process holds the store's write lock"),
        written,
        after,
        closed,
        names,
    )
    assert expected == actual, waiting


def test_a_run_end_held_up_past_its_bound_is_said_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``flush_run_end`` while another connection holds the lock answers False within its
    bound, says in one line that the run's end is not in the store yet, and counts it
    (``late_run_ends``); one that finds the lock free answers True and counts nothing."""
    monkeypatch.setattr(writer, "_LIVE", weakref.WeakSet())  # this test's writer alone
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        tracer.start_span("run").end()
        with caplog.at_level(logging.WARNING, logger=writer.__name__):
            late = writer.flush_run_end("ab" * 16, timeout=0.2)
    finally:
        holder.execute("COMMIT")
        holder.close()
    in_time = writer.flush_run_end("cd" * 16)
    provider.shutdown()
    said = [record.getMessage() for record in caplog.records]
    assert (False, True, 1) == (late, in_time, processor.late_run_ends)
    assert [
        f"span store {db}: the end of run {'ab' * 16} was not written within 0.2s; it shows "
        "running there until it is (1 late run end so far)"
    ] == said
