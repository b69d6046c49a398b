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
