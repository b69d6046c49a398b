"""monitor/_shared_events: events recorded with a shared attribute mapping are the events the
SDK span's own ``add_event`` records, under any span limits."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, Span

from taskdaemon.pipeline.monitor._shared_events import (
    SharedEventAttributes,
    SharedMappingEvents,
    bounded,
)

KEYS = ("stage", "index", "satisfied", "detail")
VALUES = [
    ("b0s1", 0, True, "b0s0 succeeded"),
    ("b0s1", 1, True, "b0s0 succeeded"),
    ("b0s1", 0, True, "b0s0 succeeded"),
    ("join", 1, False, "waiting for b1s4"),
    ("join", True, False, "waiting for b1s4"),  # equal to the previous as a key, not as attributes
]


def events_of(limits: SpanLimits | None, shared: SharedEventAttributes | None) -> list[Any]:
    """The events two ended spans hold after ``VALUES`` were recorded on each, by ``shared``
    or by ``add_event``: name, attributes in order with their types, timestamp, dropped."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for span_name in ("run-1", "run-2"):
        span = tracer.start_span(span_name)
        for at, values in enumerate(VALUES, start=1):
            if shared is None:
                attributes = dict(zip(KEYS, values, strict=True))
                span.add_event("trigger.evaluated", attributes, timestamp=at)
            else:
                shared.add(span, values, at)
        span.end()
    return [
        (
            event.name,
            [(key, value, type(value)) for key, value in event.attributes.items()],
            event.timestamp,
            event.dropped_attributes,
        )
        for span in exporter.get_finished_spans()
        for event in span.events
    ]


def test_the_events_add_event_records() -> None:
    """Names, attributes (order and types: ``True`` stays a bool), timestamps and dropped
    counts equal those of ``add_event``'s events."""
    expected = events_of(None, None)
    assert expected == events_of(None, SharedEventAttributes("trigger.evaluated", KEYS))
    assert ("index", True, bool) in expected[-1][1]


def test_the_span_limits_apply_as_add_event_applies_them() -> None:
    """A limit of attributes an event (the oldest dropped, counted) and of a value's length
    (truncated) give the events ``add_event`` gives under the same limits."""
    limits = SpanLimits(max_event_attributes=3, max_attribute_length=4)
    shared = SharedEventAttributes("trigger.evaluated", KEYS)
    expected = events_of(limits, None)
    assert expected == events_of(limits, shared)
    assert 1 == expected[0][3]
    # The same values under the default limits are not the limited mappings.
    assert events_of(None, None) == events_of(None, shared)


def test_equal_values_share_one_mapping() -> None:
    """Events with equal values, on two spans, hold one attribute mapping."""
    tracer = TracerProvider().get_tracer("test")
    shared = SharedEventAttributes("trigger.evaluated", KEYS)
    spans = [tracer.start_span(name) for name in ("a", "b")]
    for span in spans:
        shared.add(span, VALUES[0], 1)
        shared.add(span, VALUES[1], 2)
    first, second = (span.events for span in spans)  # type: ignore[attr-defined]
    assert first[0].attributes is second[0].attributes
    assert first[0].attributes is not first[1].attributes


class _Recording(NonRecordingSpan):
    """A span of another kind, keeping what ``add_event`` was given."""

    def __init__(self) -> None:
        super().__init__(NonRecordingSpan(None).get_span_context())  # type: ignore[arg-type]
        self.added: list[tuple[str, Any, Any]] = []

    def add_event(self, name: str, attributes: Any = None, timestamp: Any = None) -> None:
        self.added.append((name, attributes, timestamp))


def test_another_kind_of_span_gets_add_event() -> None:
    """A span that is not the SDK's gets ``add_event`` with the attributes as a dict."""
    span: Span = _Recording()
    SharedEventAttributes("trigger.evaluated", KEYS).add(span, VALUES[3], 7)
    expected = [("trigger.evaluated", dict(zip(KEYS, VALUES[3], strict=True)), 7)]
    assert expected == span.added  # type: ignore[attr-defined]


def mapping_events_of(limits: SpanLimits | None, shared: SharedMappingEvents | None) -> list[Any]:
    """As ``events_of``, for mappings recorded again and again (a memo's)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    mappings = [dict(zip(KEYS, values, strict=True)) for values in VALUES]
    for span_name in ("stage-1", "stage-2"):
        span = tracer.start_span(span_name)
        for at, attributes in enumerate(mappings * 2, start=1):
            if shared is None:
                span.add_event("stage.input", attributes, timestamp=at)
            else:
                shared.add(span, "stage.input", attributes, at)
        span.end()
    return [
        (event.name, list(event.attributes.items()), event.timestamp, event.dropped_attributes)
        for span in exporter.get_finished_spans()
        for event in span.events
    ]


def test_mapping_events_are_the_events_add_event_records() -> None:
    """Events of kept mappings equal ``add_event``'s, under default and tight limits, with
    one ``SharedMappingEvents`` for both."""
    shared = SharedMappingEvents()
    limits = SpanLimits(max_event_attributes=3, max_attribute_length=4)
    assert mapping_events_of(None, None) == mapping_events_of(None, shared)
    assert mapping_events_of(limits, None) == mapping_events_of(limits, shared)
    assert mapping_events_of(None, None) == mapping_events_of(None, shared)


def test_one_mapping_is_one_sdk_mapping_until_forgotten() -> None:
    """The same mapping on two spans gives one SDK mapping; after ``forget`` a new one."""
    tracer = TracerProvider().get_tracer("test")
    shared = SharedMappingEvents()
    attributes = dict(zip(KEYS, VALUES[0], strict=True))
    spans = [tracer.start_span(name) for name in ("a", "b", "c")]
    shared.add(spans[0], "stage.input", attributes, 1)
    shared.add(spans[1], "stage.input", attributes, 1)
    shared.forget()
    shared.add(spans[2], "stage.input", attributes, 1)
    first, second, third = (span.events[0].attributes for span in spans)  # type: ignore[attr-defined]
    assert first is second
    assert third is not first
    assert dict(third) == attributes


def test_another_kind_of_span_gets_add_event_of_the_mapping() -> None:
    """A span that is not the SDK's gets ``add_event`` with the mapping itself."""
    span: Span = _Recording()
    attributes = dict(zip(KEYS, VALUES[0], strict=True))
    SharedMappingEvents().add(span, "stage.input", attributes, 3)
    assert [("stage.input", attributes, 3)] == span.added  # type: ignore[attr-defined]


def test_an_sdk_version_not_compared_against_shares_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sharing reads the SDK span's private parts: on an SDK minor version its tests have
    not compared it against, each event is ``add_event``'s own, equal values or not."""
    from opentelemetry.sdk import version

    monkeypatch.setattr(version, "__version__", "1.99.0")
    tracer = TracerProvider().get_tracer("test")
    shared = SharedEventAttributes("trigger.evaluated", KEYS)
    span = tracer.start_span("a")
    shared.add(span, VALUES[0], 1)
    shared.add(span, VALUES[0], 2)
    first, second = span.events  # type: ignore[attr-defined]
    assert (first.attributes is second.attributes, dict(first.attributes)) == (
        False,
        dict(zip(KEYS, VALUES[0], strict=True)),
    )


class _Text(str):
    """A text subclass: the SDK keeps it as it is, but it is not a plain ``str``."""


@pytest.mark.parametrize(
    ("count", "length", "attributes"),
    [
        (128, None, {"stage": "b0s1", "index": 0, "satisfied": True, "detail": None}),
        (128, None, {"ratio": 0.5, "raw": b"\x00", "empty": ""}),
        (4, 4, {"a": "abcd", "b": 1}),  # at the limits: kept as they are
        (4, 3, {"a": "abcd", "b": 1}),  # a text past the length: truncated
        (1, None, {"a": "x", "b": "y"}),  # past the count: the oldest dropped, counted
        (0, None, {"a": "x"}),
        (0, None, {}),
        (None, None, {"a": "x", "b": 2}),
        (128, None, {"triggers": ["a", "b"]}),  # a list: made a tuple
        (128, None, {"": "x", "b": 2}),  # an empty key: dropped
        (128, None, {1: "x", "b": 2}),  # a key that is no text
        (128, None, {"a": _Text("x"), "b": {"c": 1}}),
        (128, None, {"a": object()}),
    ],
)
def test_bounded_is_the_sdks_mapping(
    count: int | None, length: int | None, attributes: dict[Any, Any]
) -> None:
    """``bounded`` makes the mapping ``BoundedAttributes`` makes of the same attributes and
    limits: contents in order with their types, limits, dropped count, and immutable."""

    def seen(mapping: Any) -> Any:
        items = [(key, value, type(value)) for key, value in mapping.items()]
        return items, mapping.maxlen, mapping.max_value_len, mapping.dropped

    expected = BoundedAttributes(count, attributes, max_value_len=length, immutable=True)
    made = bounded(BoundedAttributes, count, length, attributes)
    assert type(made) is BoundedAttributes
    assert seen(expected) == seen(made)
    with pytest.raises(TypeError):
        made["more"] = 1
    # A copy: changing the attributes afterwards does not change the mapping.
    attributes["late"] = "x"
    assert "late" not in made
