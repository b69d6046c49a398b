"""Decoding stored span rows, refusing the ones that are not what the writer writes.

A row can be damaged outside taskdaemon (a disk error, a hand edit, another tool writing the
file): its ``body`` is not JSON, or JSON of another shape, or a column holds the wrong type
(SQLite columns take any type). Readers skip such a row and say how many they skipped, rather
than crash on it; ``decode_span`` raises ``ValueError`` for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taskdaemon.pipeline.stored_json import loads
from taskdaemon.pipeline.tracking.spans import (
    SpanEventRecord,
    SpanLinkRecord,
    SpanRecord,
    normalize_value,
)

__all__ = ["decode_resource", "decode_span"]


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(what)


def _attributes(value: Any, where: str) -> dict[str, Any]:
    _check(isinstance(value, Mapping), f"{where}: attributes are not an object")
    normalized: dict[str, Any] = normalize_value(value)
    return normalized


def decode_resource(text: Any) -> dict[str, Any]:
    """A ``resources.attributes`` value as a dict; ValueError when it is not a JSON object."""
    try:
        value = loads(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"resource: not JSON: {exc}") from None
    return _attributes(value, "resource")


def decode_span(trace_id: str, row: Sequence[Any], resource: Mapping[str, Any]) -> SpanRecord:
    """The ``SpanRecord`` of one ``spans`` row, ``(span_id, start_ns, end_ns, body)`` (see
    ``tracking._schema`` for the body's layout); ValueError naming what is wrong when the row
    is not of that shape."""
    span_id, start_ns, end_ns, body = row
    _check(isinstance(span_id, str) and bool(span_id), "span id is not text")
    _check(type(start_ns) is int, "start_ns is not an integer")
    _check(end_ns is None or type(end_ns) is int, "end_ns is not an integer")
    try:
        fields = loads(body)  # orjson's result; a few rows need no orjson import (stored_json)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    _check(isinstance(fields, list) and len(fields) == 8, "body is not an 8-item array")
    parent, name, kind, status_code, status_message, attributes, events, links = fields
    _check(parent is None or isinstance(parent, str), "parent span id is not text")
    for value, what in ((name, "name"), (kind, "kind"), (status_code, "status code")):
        _check(isinstance(value, str), f"{what} is not text")
    _check(isinstance(status_message, str), "status message is not text")
    _check(isinstance(events, list) and isinstance(links, list), "events or links not arrays")
    event_records = []
    for event in events:
        _check(
            isinstance(event, list)
            and len(event) == 3
            and isinstance(event[0], str)
            and type(event[1]) is int,
            "an event is not [name, time_ns, attributes]",
        )
        event_records.append(
            SpanEventRecord(event[0], event[1], _attributes(event[2], f"event {event[0]}"))
        )
    link_records = []
    for link in links:
        _check(
            isinstance(link, list)
            and len(link) == 3
            and isinstance(link[0], str)
            and isinstance(link[1], str),
            "a link is not [trace_id, span_id, attributes]",
        )
        link_records.append(SpanLinkRecord(link[0], link[1], _attributes(link[2], "link")))
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_ns=start_ns,
        end_ns=end_ns,
        status_code=status_code,
        status_message=status_message,
        attributes=_attributes(attributes, "span"),
        events=tuple(event_records),
        links=tuple(link_records),
        resource=resource,
    )
