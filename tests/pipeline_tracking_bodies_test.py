"""The span store's ``body`` column and the writer's reads of a span (``tracking._bodies``).

The writer reads an SDK span's fields and its events' through the private attributes the SDK's
properties return; these tests hold every read equal to the public property it stands for, on
ended spans and on open ones, and show that a class overriding a property is read through it.
"""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, Status, StatusCode

from pipeline_tracking_support import T0, make_provider, write_example_run
from taskdaemon.pipeline.tracking._bodies import body, fields, parts


def _public_body(span: Any, *, ended: bool) -> list[Any]:
    """The body as the public properties give it, built independently of ``_bodies`` (through
    JSON, which writes the SDK's tuples as lists)."""
    parent = span.parent
    status = span.status
    public = [
        None if parent is None else format(parent.span_id, "016x"),
        span.name,
        span.kind.name,
        status.status_code.name if ended else "UNSET",
        (status.description or "") if ended else "",
        dict(span.attributes or {}),
        [[e.name, e.timestamp, dict(e.attributes or {})] for e in span.events],
        [
            [
                format(link.context.trace_id, "032x"),
                format(link.context.span_id, "016x"),
                dict(link.attributes or {}),
            ]
            for link in span.links
        ],
    ]
    decoded: list[Any] = orjson.loads(orjson.dumps(public))
    return decoded


def _body_of(span: Any, *, ended: bool) -> list[Any]:
    parent = fields(span)[1]
    decoded: list[Any] = orjson.loads(body(span, parent, *parts(span), ended=ended))
    return decoded


def test_ended_sdk_spans_read_in_place_as_their_properties_say() -> None:
    """Every span of the example run (events, links, an error status, a parent or none):
    ``fields`` and ``body`` give what the public properties give."""
    provider, exporter = make_provider()
    write_example_run(provider)
    spans = exporter.get_finished_spans()
    assert (
        any(s.events for s in spans),
        any(s.links for s in spans),
        any(s.status.status_code is StatusCode.ERROR for s in spans),
    ) == (True, True, True)
    assert [fields(s) for s in spans] == [
        (s.end_time, s.parent, s.context, s.start_time, s.resource) for s in spans
    ]
    assert [_body_of(s, ended=True) for s in spans] == [_public_body(s, ended=True) for s in spans]


def test_open_sdk_span_reads_in_place_as_its_properties_say() -> None:
    """An open span (the SDK's ``Span``, as ``on_start`` hands it over) with an event."""
    provider, _ = make_provider()
    tracer = provider.get_tracer("t")
    root = tracer.start_span("root", start_time=T0)
    root.add_event("first", {"k": "v", "n": 1}, timestamp=T0 + 1)
    root.add_event("bare", timestamp=T0 + 2)
    assert fields(root) == (None, None, root.get_span_context(), T0, root.resource)  # type: ignore[attr-defined]
    assert _body_of(root, ended=False) == _public_body(root, ended=False)
    assert _body_of(root, ended=False)[6] == [
        ["first", T0 + 1, {"k": "v", "n": 1}],
        ["bare", T0 + 2, {}],
    ]
    root.end(end_time=T0 + 3)


class _Renamed(ReadableSpan):
    """A span class whose properties say other than its private fields."""

    @property
    def name(self) -> str:
        return "renamed"

    @property
    def start_time(self) -> int | None:
        return T0 + 7


class _Annotated(Event):
    """An event class whose properties say other than its private fields."""

    @property
    def attributes(self) -> Any:
        return {"from": "property"}


class _Relinked(Link):
    """A link class whose properties say other than its private fields."""

    @property
    def attributes(self) -> Any:
        return {"from": "property"}


def test_classes_that_override_a_property_are_read_through_it() -> None:
    other = SpanContext(0x1234, 0x5678, is_remote=False)
    span = _Renamed(
        name="original",
        start_time=T0,
        end_time=T0 + 9,
        events=(_Annotated("event", {"from": "field"}, timestamp=T0 + 1),),
        links=(_Relinked(other, {"from": "field"}),),
        status=Status(StatusCode.OK),
    )
    assert fields(span)[3] == T0 + 7
    decoded = _body_of(span, ended=True)
    assert (decoded[1], decoded[3], decoded[6], decoded[7]) == (
        "renamed",
        "OK",
        [["event", T0 + 1, {"from": "property"}]],
        [[format(0x1234, "032x"), format(0x5678, "016x"), {"from": "property"}]],
    )
