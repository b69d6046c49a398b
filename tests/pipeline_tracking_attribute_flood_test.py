"""A remote answer holding far more attributes than its spans can keep: decoded without them,
counted in one warning, its memory bounded (``tracking/_item_flood.py``; a local HTTP
server stands in for Tempo)."""

from __future__ import annotations

import json
import logging
import tracemalloc
from typing import Any

import pytest

from pipeline_tracking_support import Backend, example_spans, serve
from taskdaemon.pipeline.tracking import TempoSource, encode_traces
from taskdaemon.pipeline.tracking._item_flood import FREE_ITEMS, flooded
from taskdaemon.pipeline.tracking.spans import MAX_SPAN_ITEMS

FLOOD = 150_000  # attributes added to one span: past FREE_ITEMS


def _attributes(count: int, prefix: str = "k") -> list[dict[str, Any]]:
    return [{"key": f"{prefix}{i}", "value": {"stringValue": "v"}} for i in range(count)]


def _answer(extra: list[dict[str, Any]], *, in_event: bool = False) -> tuple[str, bytes, int]:
    """The example run as Tempo's v2 answer, ``extra`` added to its first stage span's
    attributes (or to a new event of it): its trace id, the body and the span's own count."""
    spans = example_spans()
    trace = encode_traces(spans)
    raw = next(s for s in trace["resourceSpans"][0]["scopeSpans"][0]["spans"] if s["parentSpanId"])
    own = len(raw["attributes"])
    if in_event:
        raw["events"] = [*raw.get("events", []), {"name": "flood", "attributes": extra}]
    else:
        raw["attributes"] += extra
    return spans[0].trace_id, json.dumps({"trace": trace}).encode(), own


def _read(run_id: str, body: bytes) -> list[Any]:
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route(f"/api/v2/traces/{run_id}", body)
        return source.get_trace(run_id)


@pytest.mark.slow
def test_a_span_of_a_flood_of_attributes_is_read_without_them_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """150,000 attributes on one span, and 10 of taskdaemon's after them: the span keeps its
    first 1,000 and the 10, the rest counted as not read and in one warning."""
    mine = _attributes(10, "taskdaemon.flood.")
    run_id, body, own = _answer([*_attributes(FLOOD), *mine])
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"):
        spans = _read(run_id, body)
    (flooded_span,) = [s for s in spans if len(s.attributes) > 100]
    assert len(flooded_span.attributes) == MAX_SPAN_ITEMS + 10
    assert all(key in flooded_span.attributes for key in (m["key"] for m in mine))
    assert flooded_span.dropped_attributes == own + FLOOD - MAX_SPAN_ITEMS
    assert len(spans) == len(example_spans())
    (warning,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    left = own + FLOOD - MAX_SPAN_ITEMS
    assert f"left out {left} attributes, 0 events and 0 links while decoding" in warning
    assert f"/api/v2/traces/{run_id}" in warning


@pytest.mark.slow
def test_a_flood_of_attributes_in_an_event_is_left_out_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_id, body, _ = _answer(_attributes(FLOOD), in_event=True)
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"):
        spans = _read(run_id, body)
    (event,) = [e for s in spans for e in s.events if e.name == "flood"]
    assert len(event.attributes) == MAX_SPAN_ITEMS
    assert any(
        f"left out {FLOOD - MAX_SPAN_ITEMS} attributes" in r.getMessage() for r in caplog.records
    )


@pytest.mark.slow
def test_the_decoding_of_a_flood_takes_a_few_times_its_size() -> None:
    """The peak of Python's allocations while the answer is fetched and read: the body's
    copies (bytes, text) and the kept spans; the flood's objects were many times
    the answer's size (``benchmarks/README.md``, "Dense JSON answers")."""
    run_id, body, _ = _answer(_attributes(FLOOD))
    tracemalloc.start()
    try:
        _read(run_id, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * len(body), f"{peak / len(body):.1f} times the answer's size"


def test_an_answer_is_a_flood_only_past_twice_the_bound_a_span_and_the_free_count() -> None:
    """Key-values, events and links count alike as items; only a span has a start time."""
    spans = 60
    items = 2 * MAX_SPAN_ITEMS * (spans + 1)
    span = '{"startTimeUnixNano":"1"},'

    def text(key_values: int, events: int = 0, links: int = 0) -> str:
        parts = (
            '{"key":"k","value":{}},' * key_values,
            '{"name":"e"},' * events,
            '{"spanId":"s"},' * links,
        )
        return f'{{"spans":[{span * spans}],"items":[{"".join(parts)}]}}'

    assert flooded(text(items)) is None
    assert flooded(text(items + 1)) == (items + 1, spans)
    assert flooded(text(items - 2, 1, 1)) is None
    assert flooded(text(0, items, 1)) == (items + 1, spans)
    assert flooded(text(0, 0, items + 1)) == (items + 1, spans)
    assert items > FREE_ITEMS  # so the free count does not decide any of them
    no_spans = text(FREE_ITEMS).replace('"startTimeUnixNano"', '"other"')
    assert flooded(no_spans) is None
    assert flooded(no_spans.replace('"other":"1"', '"name":"e"', 1)) == (FREE_ITEMS + 1, 0)
