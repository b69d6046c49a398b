"""The span store writer's rewrite of open spans: deferred when it is costly, never lost."""

from __future__ import annotations

import json
import sqlite3
import weakref
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import Span, SpanLimits, TracerProvider

from taskdaemon.pipeline.tracking import SqliteSpanProcessor, _span_batches, writer


def _open_body(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("SELECT body FROM spans WHERE end_ns IS NULL").fetchone()
    return str(body)


def _deferred(db: Path) -> tuple[SqliteSpanProcessor, TracerProvider, Span]:
    """A writer on ``db`` whose next rewrite of open spans is not due (``REFRESH_SPACING``
    patched by the caller), and an open span whose row has its first event but not its second:
    written with a batch of its own while the rewrite was not due."""
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    span = tracer.start_span("open")
    span.add_event("first-event")
    processor.force_flush()  # the start row, with the first event; the rewrite ran (due at 0)
    span.add_event("second-event")
    tracer.start_span("other").end()  # a batch of its own, while the rewrite is not due
    processor.force_flush()
    return processor, provider, span


def test_deferred_refresh_keeps_an_open_spans_events_for_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a rewrite of open spans the writer waits REFRESH_SPACING times its duration before
    the next one (batches in between write only their own rows); events an open span gained
    meanwhile still reach the file, at the latest when the writer shuts down."""
    monkeypatch.setattr(_span_batches, "REFRESH_SPACING", 1e12)  # the next rewrite is never due
    db = tmp_path / "spans.db"
    processor, _, _ = _deferred(db)
    deferred = _open_body(db)
    processor.shutdown()  # closing: open spans are rewritten whatever the spacing
    final = _open_body(db)
    assert ("first-event" in deferred, "second-event" in deferred) == (True, False)
    assert ("first-event" in final, "second-event" in final) == (True, True)


def test_a_closed_writer_does_not_fail_flush_open_spans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``writer.flush_open_spans`` asks this process's writers; one already shut down (still
    referenced, as a finished run's telemetry is) is not among them, so the live writer's
    flush is what it answers. (The list is the test's own: other tests' writers, some of them
    dead by design, are not this test's business.)"""
    monkeypatch.setattr(writer, "_LIVE", weakref.WeakSet())
    closed = SqliteSpanProcessor(tmp_path / "closed.db")
    closed.shutdown()
    live = SqliteSpanProcessor(tmp_path / "live.db")
    try:
        answered = writer.flush_open_spans()
    finally:
        live.shutdown()
    assert (answered, closed.flush_open_spans()) == (True, False)


def test_flush_open_spans_rewrites_open_spans_before_their_spacing_is_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A debug dump's flush rewrites what an open span gained even when the writer's spacing
    of such rewrites says not yet, which a plain ``force_flush`` left for later; the
    module-level ``flush_open_spans`` asks every live writer of the process (here the test's
    own list, as above)."""
    monkeypatch.setattr(_span_batches, "REFRESH_SPACING", 1e12)  # no rewrite is due after the first
    monkeypatch.setattr(writer, "_LIVE", weakref.WeakSet())
    db = tmp_path / "spans.db"
    _, provider, span = _deferred(db)
    deferred = _open_body(db)
    span.add_event("third-event")
    answered = writer.flush_open_spans()
    rewritten = _open_body(db)
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


def test_an_open_span_at_its_event_limit_is_still_rewritten(tmp_path: Path) -> None:
    """A span at the SDK's event limit gains an event and loses its oldest: as many events as
    before, so only the count of those dropped tells the writer that the row is stale (the
    run span of a long run waiting for an approval is such a span)."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider(span_limits=SpanLimits(max_events=2))
    provider.add_span_processor(processor)
    span = provider.get_tracer("test").start_span("open")
    try:
        for name in ("e0", "e1"):
            span.add_event(name)
        assert processor.flush_open_spans()
        before = json.loads(_open_body(db))
        span.add_event("e2")
        assert processor.flush_open_spans()
        after = json.loads(_open_body(db))
    finally:
        span.end()
        processor.shutdown()
    assert ([e[0] for e in before[6]], before[8:]) == (["e0", "e1"], [])
    assert ([e[0] for e in after[6]], after[8:]) == (["e1", "e2"], [[0, 1, 0]])


def test_rows_are_text_as_written_when_opened_rewritten_and_ended(tmp_path: Path) -> None:
    """Each of a span's rows (its start, its rewrite while open, its end) is stored as text,
    non-ASCII characters as they are, so SQL's JSON functions (``spans_readable``) and every
    reader read it."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    span = provider.get_tracer("test").start_span("ouvert €", attributes={"k": "ü 😀"})

    def stored() -> tuple[str, str, str, list[str]]:
        with sqlite3.connect(db) as conn:
            (kind, name, body) = conn.execute(
                "SELECT typeof(s.body), r.name, s.body FROM spans s "
                "JOIN spans_readable r USING (span_id)"
            ).fetchone()
        fields = json.loads(body)
        return kind, name, fields[5]["k"], [event[0] for event in fields[6]]

    try:
        assert processor.flush_open_spans()
        opened = stored()
        span.add_event("étape 🚦")
        assert processor.flush_open_spans()
        rewritten = stored()
    finally:
        span.end()
        processor.shutdown()
    assert (opened, rewritten, stored()) == (
        ("text", "ouvert €", "ü 😀", []),
        ("text", "ouvert €", "ü 😀", ["étape 🚦"]),
        ("text", "ouvert €", "ü 😀", ["étape 🚦"]),
    )


@pytest.mark.parametrize(("bytes_a_second", "rewritten"), [(1e-9, False), (1e18, True)])
def test_an_open_rows_rewrite_waits_on_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bytes_a_second: float, rewritten: bool
) -> None:
    """With every rewrite of open spans due (``REFRESH_SPACING`` 0), a row still waits a second
    per ``OPEN_ROW_BYTES_A_SECOND`` of it after it was written: a batch rewrites it only once
    that is over, and ``flush_open_spans`` whatever it says."""
    monkeypatch.setattr(_span_batches, "REFRESH_SPACING", 0.0)
    monkeypatch.setattr(_span_batches, "OPEN_ROW_BYTES_A_SECOND", bytes_a_second)
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    span = tracer.start_span("open")
    try:
        processor.force_flush()  # the start row
        span.add_event("gained")
        tracer.start_span("other").end()  # a batch, in which every rewrite is due
        processor.force_flush()
        batch = "gained" in _open_body(db)
        assert processor.flush_open_spans()
        flushed = "gained" in _open_body(db)
    finally:
        span.end()
        processor.shutdown()
    assert (batch, flushed) == (rewritten, True)
