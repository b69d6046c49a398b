"""Decoding stored span rows, refusing the ones that are not what the writer writes.

A row can be damaged outside taskdaemon (a disk error, a hand edit, another tool writing the
file): its ``body`` is not JSON, or JSON of another shape, or a column holds the wrong type
(SQLite columns take any type). Readers skip such a row and say how many they skipped, rather
than crash on it; ``decode_span`` raises ``ValueError`` for them.

Attribute values come out as ``spans.normalize_value`` spells them (arrays as tuples, all the
way down), but without asking it: a decoded JSON value is only ever a ``dict`` (with ``str``
keys), a ``list`` or a scalar, so ``_attributes`` looks at each value's exact type once and
rebuilds only the arrays and objects, in the freshly decoded dict itself. Most values of a
stage span are scalars; ``normalize_value``'s ``isinstance`` against ``Mapping`` on every one
was most of a row's decoding (``benchmarks/stored_row_decoding.py`` counts the readers' share).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from taskdaemon.pipeline.frozen import maker
from taskdaemon.pipeline.stored_json import loads
from taskdaemon.pipeline.tracking.spans import SpanEventRecord, SpanLinkRecord, SpanRecord

__all__ = ["decode_resource", "decode_span"]

_NESTED = frozenset((list, dict))  # the JSON values that are not scalars


@cache
def _makers() -> tuple[
    Callable[..., SpanRecord], Callable[..., SpanEventRecord], Callable[..., SpanLinkRecord]
]:
    """The three records' makers (``frozen.maker``: the record the class call builds, every
    field by position), compiled when the first row is decoded. A row builds a span record
    and one per event and link (four events a stage span of ``taskdaemon run``); a class
    call packs keyword arguments and stores each field through its slot's setter."""
    return maker(SpanRecord, 13), maker(SpanEventRecord, 3), maker(SpanLinkRecord, 3)


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(what)


def _json_value(value: Any) -> Any:
    """``normalize_value`` of a decoded JSON array or object (or scalar, returned as it is)."""
    cls = type(value)
    if cls is list:
        return tuple([_json_value(v) if type(v) in _NESTED else v for v in value])
    if cls is dict:
        return {k: _json_value(v) if type(v) in _NESTED else v for k, v in value.items()}
    return value


def _attributes(value: Any, where: str, name: str = "") -> dict[str, Any]:
    """``value`` (decoded JSON, owned by the caller) normalized in place; ValueError naming
    ``where`` and ``name`` (joined only then) when it is not an object."""
    if type(value) is not dict:
        raise ValueError(f"{where}{name}: attributes are not an object")
    nested = [key for key, item in value.items() if type(item) in _NESTED]
    for key in nested:
        value[key] = _json_value(value[key])
    return value


def decode_resource(text: Any) -> dict[str, Any]:
    """A ``resources.attributes`` value as a dict; ValueError when it is not a JSON object."""
    try:
        value = loads(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"resource: not JSON: {exc}") from None
    return _attributes(value, "resource")


def _event(event: Any, make: Callable[..., SpanEventRecord]) -> SpanEventRecord:
    _check(
        type(event) is list and len(event) == 3 and type(event[0]) is str and type(event[1]) is int,
        "an event is not [name, time_ns, attributes]",
    )
    return make(event[0], event[1], _attributes(event[2], "event ", event[0]))


def _link(link: Any, make: Callable[..., SpanLinkRecord]) -> SpanLinkRecord:
    _check(
        type(link) is list and len(link) == 3 and type(link[0]) is str and type(link[1]) is str,
        "a link is not [trace_id, span_id, attributes]",
    )
    return make(link[0], link[1], _attributes(link[2], "link"))


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
    _check(type(fields) is list and len(fields) == 8, "body is not an 8-item array")
    parent, name, kind, status_code, status_message, attributes, events, links = fields
    _check(parent is None or type(parent) is str, "parent span id is not text")
    _check(type(name) is str, "name is not text")
    _check(type(kind) is str, "kind is not text")
    _check(type(status_code) is str, "status code is not text")
    _check(type(status_message) is str, "status message is not text")
    _check(type(events) is list and type(links) is list, "events or links not arrays")
    make_span, make_event, make_link = _makers()
    # Events, links, then the span's attributes: a row damaged in several places names the
    # first of these that is wrong, as it always has.
    event_records = tuple([_event(event, make_event) for event in events])
    link_records = tuple([_link(link, make_link) for link in links])
    return make_span(
        trace_id,
        span_id,
        parent,
        name,
        kind,
        start_ns,
        end_ns,
        status_code,
        status_message,
        _attributes(attributes, "span"),
        event_records,
        link_records,
        resource,
    )
