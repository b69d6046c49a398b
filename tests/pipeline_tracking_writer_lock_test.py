"""The span store writer while another connection holds the store's write lock: its flushes
answer False within their bound, ``unwritten`` counts the ended spans waiting and says why, and
everything is written once the lock is released."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from taskdaemon.pipeline.tracking import SqliteSpanProcessor


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
