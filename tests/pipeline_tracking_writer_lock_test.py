"""The span store writer while another connection holds the store's write lock: its flushes
answer False within their bound, ``unwritten`` counts the ended spans waiting and says why, and
everything is written once the lock is released."""

from __future__ import annotations

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


def test_flush_open_spans_rewrites_open_spans_before_their_spacing_is_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A debug dump's flush rewrites what an open span gained even when the writer's spacing
    of such rewrites says not yet, which a plain ``force_flush`` leaves for later; the
    module-level ``flush_open_spans`` asks every live writer of the process (here the test's
    own list: other tests' writers are not this test's business)."""
    monkeypatch.setattr(writer, "REFRESH_SPACING", 1e12)  # no rewrite is due after the first
    monkeypatch.setattr(writer, "_LIVE", weakref.WeakSet())
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    span = tracer.start_span("open")
    span.add_event("first-event")
    processor.force_flush()  # the start row; the one rewrite that was due ran
    span.add_event("second-event")
    tracer.start_span("other").end()
    processor.force_flush()
    with sqlite3.connect(db) as conn:
        (deferred,) = conn.execute("SELECT body FROM spans WHERE end_ns IS NULL").fetchone()
    span.add_event("third-event")
    answered = writer.flush_open_spans()
    with sqlite3.connect(db) as conn:
        (rewritten,) = conn.execute("SELECT body FROM spans WHERE end_ns IS NULL").fetchone()
    span.end()
    provider.shutdown()
    expected = (False, True, True, True)
    actual = (
        "second-event" in deferred,
        answered,
        "second-event" in rewritten,
        "third-event" in rewritten,
    )
    assert expected == actual
