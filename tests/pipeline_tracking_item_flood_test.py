"""A remote answer whose span holds a flood of events or links: those past the span's bound
left out while the answer is decoded, counted and said (``tracking/_item_flood.py``).
Each answer is a recorded payload of ``tests/fixtures/`` (Jaeger's API v3 answer, its 1.x
grpc-gateway stream, Tempo's v2 answer) with one span grown, served by a local HTTP server."""

from __future__ import annotations

import json
import logging
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.bounded import loads_bounded
from taskdaemon.pipeline.tracking import JaegerSource, TempoSource, _item_flood
from taskdaemon.pipeline.tracking._remote import RemoteLimits
from taskdaemon.pipeline.tracking.otlp_json import normalize_id
from taskdaemon.pipeline.tracking.spans import MAX_SPAN_ITEMS, SpanRecord

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RUN_128 = "4bf92f3577b34da6a3ce929d0e0e4736"  # the Jaeger fixtures' first run
FLOOD = 150_000  # events or links added to one span
READ = 10  # events or links taskdaemon reads, after the flood

_TIME = "1700000000500000000"
_TRIGGER = [{"key": t.LINK_RELATION, "value": {"stringValue": t.LINK_TRIGGERED_BY}}]


def _events(count: int, name: str = "flood") -> list[dict[str, Any]]:
    return [{"timeUnixNano": _TIME, "name": name} for _ in range(count)]


def _links(span: dict[str, Any], count: int, *, trigger: bool = False) -> list[dict[str, Any]]:
    link = {"traceId": span["traceId"], "spanId": span["spanId"]}
    return [{**link, "attributes": _TRIGGER} if trigger else dict(link) for _ in range(count)]


def _spans(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The spans of a recorded answer's one resource and scope."""
    inner = document.get("result") or document["trace"]
    spans: list[dict[str, Any]] = inner["resourceSpans"][0]["scopeSpans"][0]["spans"]
    return spans


def _grown(span: dict[str, Any], *, events: bool = False, links: bool = False) -> tuple[int, int]:
    """``span`` with :data:`FLOOD` events (or links) added, then :data:`READ` that taskdaemon
    reads; its own counts of events and links before."""
    own = len(span.get("events", [])), len(span.get("links", []))
    if events:
        span["events"] = [*span.get("events", []), *_events(FLOOD), *_events(READ, "exception")]
    if links:
        flood = [*_links(span, FLOOD), *_links(span, READ, trigger=True)]
        span["links"] = [*span.get("links", []), *flood]
    return own


def _read(
    source_type: type[JaegerSource | TempoSource],
    path: str,
    body: bytes,
    limits: RemoteLimits | None = None,
) -> Any:
    with serve(Backend()) as backend, source_type(backend.url, limits=limits) as source:
        backend.route(path, body)
        return source.get_trace(path.rsplit("/", 1)[1])


def _flooded(spans: list[SpanRecord]) -> SpanRecord:
    (span,) = [s for s in spans if s.dropped_events or s.dropped_links]
    return span


def _warning(caplog: pytest.LogCaptureFixture) -> str:
    (warning,) = [r.getMessage() for r in caplog.records if "while decoding" in r.getMessage()]
    return warning


@pytest.mark.slow
def test_a_flood_of_events_in_a_jaeger_answer_is_left_out_while_decoding_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The span keeps its first 1,000 events and the 10 that taskdaemon reads; the rest are
    counted as not read and in one warning naming the answer."""
    recorded = (FIXTURES / "jaeger" / "api_v3_trace_128bit.json").read_text()
    document = json.loads(recorded)
    own, _ = _grown(_spans(document)[-1], events=True)
    path = f"/api/v3/traces/{RUN_128}"
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"):
        spans = _read(JaegerSource, path, json.dumps(document).encode())
    span = _flooded(spans)
    assert len(span.events) == MAX_SPAN_ITEMS + READ
    assert [e.name for e in span.events[-READ - 1 :]] == ["flood", *["exception"] * READ]
    left = own + FLOOD - MAX_SPAN_ITEMS
    assert (span.dropped_events, span.dropped_links) == (left, 0)
    assert len(spans) == recorded.count('"startTimeUnixNano"')  # none of them lost
    warning = _warning(caplog)
    assert f"left out 0 attributes, {left} events and 0 links while decoding" in warning
    assert path in warning


@pytest.mark.slow
def test_a_flood_of_links_in_a_jaeger_stream_is_left_out_while_decoding_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Jaeger 1.x's grpc-gateway stream, a JSON object a line: the line holding the flood is
    decoded without it, and the trigger links after the flood are kept."""
    lines = (FIXTURES / "jaeger" / "grpc_gateway_trace_stream.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    span = _spans(first)[-1]
    _, own = _grown(span, links=True)
    body = "\n".join([json.dumps(first), *lines[1:]]).encode()
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"):
        spans = _read(JaegerSource, f"/api/v3/traces/{RUN_128}", body)
    flooded = _flooded(spans)
    assert flooded.span_id == normalize_id(span["spanId"], 16)
    assert len(flooded.links) == MAX_SPAN_ITEMS + READ
    assert all(
        link.attributes == {t.LINK_RELATION: t.LINK_TRIGGERED_BY} for link in flooded.links[-READ:]
    )
    left = own + FLOOD - MAX_SPAN_ITEMS
    assert (flooded.dropped_events, flooded.dropped_links) == (0, left)
    assert f"left out 0 attributes, 0 events and {left} links while decoding" in _warning(caplog)


def _tempo_answer() -> tuple[str, bytes]:
    """Tempo's recorded v2 answer, its one span holding a flood of events and one of links:
    the trace id and the body."""
    document = json.loads((FIXTURES / "tempo" / "api_v2_traces_response.json").read_text())
    (span,) = _spans(document)
    _grown(span, events=True, links=True)
    return normalize_id(span["traceId"], 32), json.dumps(document).encode()


@pytest.mark.slow
def test_floods_of_events_and_links_in_a_tempo_answer_are_left_out_while_decoding(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_id, body = _tempo_answer()
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"):
        (span,) = _read(TempoSource, f"/api/v2/traces/{run_id}", body)
    assert (len(span.events), len(span.links)) == (MAX_SPAN_ITEMS + READ,) * 2
    left = FLOOD - MAX_SPAN_ITEMS
    assert (span.dropped_events, span.dropped_links) == (left, left)
    assert f"left out 0 attributes, {left} events and {left} links" in _warning(caplog)


@pytest.mark.slow
def test_the_decoding_of_a_flood_of_events_and_links_takes_a_few_times_its_size() -> None:
    """The peak of Python's allocations while the answer is fetched and read: the body's
    copies (bytes, text) and the kept spans, where a dict of each event and link was many
    times the answer's size. The deadline is lengthened: ``tracemalloc`` slows the decoding
    several times, and this test measures memory, not the machine's speed under load."""
    run_id, body = _tempo_answer()
    tracemalloc.start()
    try:
        _read(TempoSource, f"/api/v2/traces/{run_id}", body, RemoteLimits(deadline=600.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * len(body), f"{peak / len(body):.1f} times the answer's size"


def _key_values(value: Any) -> int:
    """The key-values (``{"key": ...}``) anywhere in a decoded document."""
    if isinstance(value, list):
        return sum(_key_values(item) for item in value)
    if isinstance(value, dict):
        own = 1 if next(iter(value), None) == "key" else 0
        return own + sum(_key_values(item) for item in value.values())
    return 0


def _owned(document: Any) -> tuple[int, int]:
    """The events and links of an OTLP document, found by where they sit; a scope with a
    name and no version counts as an event (``tracking._item_flood``'s docstring)."""
    inner = document.get("result") or document.get("trace") or document
    events = links = 0
    for resource in inner.get("resourceSpans") or inner.get("batches"):
        for scope in resource.get("scopeSpans") or resource["instrumentationLibrarySpans"]:
            named = scope.get("scope") or scope.get("instrumentationLibrary") or {}
            events += "version" not in named and "name" in named
            for span in scope["spans"]:
                events += len(span.get("events", []))
                links += len(span.get("links", []))
    return events, links


@pytest.mark.parametrize(
    "name",
    [
        "jaeger/api_v3_trace_128bit.json",
        "jaeger/api_v3_find_traces.json",
        "tempo/api_v1_traces_batches_fixture.json",
        "tempo/jsonpb_resourceSpans_trace-with-virtual-nodes.json",
        "spans/schema2_run.json",
    ],
)
def test_the_hook_tells_the_events_links_and_key_values_of_recorded_answers_apart(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a bound of none, the hook leaves out every key-value, event and link of each
    recorded answer, and nothing else: it tells them apart by their keys, as they sit."""
    monkeypatch.setattr(_item_flood, "MAX_SPAN_ITEMS", 0)
    document = json.loads((FIXTURES / name).read_text())
    thinner = _item_flood.Thinner()
    loads_bounded((FIXTURES / name).read_text(), object_pairs_hook=thinner)
    counted = (thinner.attributes.left_out, thinner.events.left_out, thinner.links.left_out)
    assert counted == (_key_values(document), *_owned(document))
    assert counted[0]  # a document of spans holds key-values, whatever else
