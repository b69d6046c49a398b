"""The monitor's redacting tracer: links' attributes are redacted, and clean links pass as is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext

from taskdaemon.pipeline.payloads import REDACTED
from taskdaemon.pipeline.span_redaction import RedactingTracer, _redacted_link

TOKEN = "ghp_" + "T3st" * 9  # a GitHub token's shape, not a real one
LINKED = SpanContext(trace_id=0x1F, span_id=0x2F, is_remote=False)


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider exporting to memory, shut down after the test."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_link_attributes_are_recorded_redacted(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """A link whose attributes hold a secret is recorded with it redacted; a clean one as is."""
    provider, exporter = spans
    tracer = RedactingTracer(provider.get_tracer("test"))
    links = [
        Link(LINKED, {"relation": "triggered_by"}),
        Link(LINKED, {"api_token": "plain", "note": f"see {TOKEN}"}),
    ]
    tracer.start_span("s", links=links).end()
    (span,) = exporter.get_finished_spans()
    recorded = [dict(link.attributes or {}) for link in span.links]
    assert recorded == [
        {"relation": "triggered_by"},
        {"api_token": REDACTED, "note": f"see {REDACTED}"},
    ]


def test_a_clean_link_is_not_copied() -> None:
    """A link with nothing to redact is handed on itself; one with a secret is a new link."""
    clean = Link(LINKED, {"relation": "triggered_by"})
    secret = Link(LINKED, {"password": "x"})
    assert _redacted_link(clean) is clean
    redacted = _redacted_link(secret)
    assert redacted is not secret
    assert (redacted.context, dict(redacted.attributes or {})) == (LINKED, {"password": REDACTED})


def test_each_call_redacts_or_passes_on_as_it_says(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The redacting calls redact; the pass-through ones (``add_redacted_event`` and
    ``is_recording``, the wrapped span's own bound methods, ``set_redacted_attributes``,
    ``end``, ``get_span_context``) record what they are given, at the times given, on the
    wrapped span."""
    provider, exporter = spans
    tracer = RedactingTracer(provider.get_tracer("test"))
    span = tracer.start_span("s", start_time=1_000)
    assert span.is_recording() is True
    assert span.get_span_context() == span.wrapped.get_span_context()
    span.add_event("walked", {"note": TOKEN}, timestamp=2_000)
    span.add_redacted_event("as-is", {"note": TOKEN}, timestamp=3_000)
    span.set_attributes({"walked": TOKEN})
    span.set_attribute("one", TOKEN)
    span.set_redacted_attributes({"as_is": TOKEN})
    span.end(end_time=4_000)
    assert span.is_recording() is False
    (ended,) = exporter.get_finished_spans()
    assert [(e.name, e.timestamp, dict(e.attributes or {})) for e in ended.events] == [
        ("walked", 2_000, {"note": REDACTED}),
        ("as-is", 3_000, {"note": TOKEN}),
    ]
    assert dict(ended.attributes or {}) == {"walked": REDACTED, "one": REDACTED, "as_is": TOKEN}
    assert (ended.start_time, ended.end_time) == (1_000, 4_000)
