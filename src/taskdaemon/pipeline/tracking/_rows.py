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

Events and links are kept as ``spans.bounded`` says, and only the kept ones are checked and
made records. A body longer than ``LARGE_BODY`` is not decoded whole (``_large_body``): its
events and links arrays are decoded a piece at a time, each piece's items dropped once looked
at, so a crafted row of a million events costs the reader the row's text and one piece, not a
million decoded events (``benchmarks/huge_spans.py``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from functools import cache
from typing import Any, Final

from taskdaemon.pipeline.frozen import maker
from taskdaemon.pipeline.quoting import quote_value
from taskdaemon.pipeline.stored_json import decode_at, loads
from taskdaemon.pipeline.tracking.spans import (
    MAX_SPAN_ITEMS,
    READ_EVENT_NAMES,
    SpanEventRecord,
    SpanLinkRecord,
    SpanRecord,
    bounded,
    bounded_attributes,
    is_read_attribute,
    is_trigger_link,
)

__all__ = ["RowTypes", "decode_resource", "decode_span"]

_NESTED = frozenset((list, dict))  # the JSON values that are not scalars
#: A body's ninth item when it has none: the SDK dropped nothing (``_bodies.body``).
_NONE_DROPPED: Final = [0, 0, 0]

#: A body longer than this (in characters) is read a value at a time (``_large_body``).
LARGE_BODY: Final = 1 << 20

_CHUNK: Final = 1 << 18  # characters of an array a large body's reader decodes at once
_SPACE = re.compile(r"[ \t\n\r]*")


@cache
def _makers() -> tuple[
    Callable[..., SpanRecord], Callable[..., SpanEventRecord], Callable[..., SpanLinkRecord]
]:
    """The three records' makers (``frozen.maker``: the record the class call builds, every
    field by position), compiled when the first row is decoded. A row builds a span record
    and one per event and link (four events a stage span of ``taskdaemon run``); a class
    call packs keyword arguments and stores each field through its slot's setter."""
    return maker(SpanRecord, 19), maker(SpanEventRecord, 3), maker(SpanLinkRecord, 3)


class RowTypes:
    """The type of each column of a row a reader takes, to tell a ``runs`` or ``logs`` row
    edited outside taskdaemon (text where a time goes, a BLOB for a name), which its reader
    skips and counts: SQLite keeps any value in any column.

    ``columns``: each column's name, Python type, and whether it may be NULL. Every row is
    checked, so the answer for a sound row is one lookup of its types among the allowed
    combinations (a few nullable columns make a few dozen), not a test a column; a row with
    more columns than named is tested a column."""

    __slots__ = ("_allowed", "_columns")

    def __init__(self, columns: tuple[tuple[str, type, bool], ...]) -> None:
        self._columns = columns
        each = [(kind, type(None)) if nullable else (kind,) for _, kind, nullable in columns]
        self._allowed = frozenset(itertools.product(*each))

    def problem(self, row: Sequence[Any]) -> str | None:
        """Which column of ``row`` (its first the row's name) holds a value of another type,
        None when none does."""
        if tuple(map(type, row)) in self._allowed:
            return None
        for (name, kind, nullable), value in zip(self._columns, row, strict=False):
            if type(value) is not kind and not (nullable and value is None):
                return (
                    f"{quote_value(row[0])}: {name} is {type(value).__name__}, not {kind.__name__}"
                )
        return None  # columns past those named (``log_read.columns``' length) are not checked


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


def _read_event(event: Any) -> bool:
    """Whether a stored event (``[name, time_ns, attributes]``) is one taskdaemon reads."""
    return (
        type(event) is list
        and len(event) == 3
        and type(event[0]) is str
        and event[0] in READ_EVENT_NAMES
    )


def _read_pair(item: tuple[str, Any]) -> bool:
    """Whether a stored attribute (a ``(key, value)`` pair) has a key taskdaemon reads."""
    return is_read_attribute(item[0])


def _trigger_link(link: Any) -> bool:
    """Whether a stored link (``[trace_id, span_id, attributes]``) names a trigger."""
    return type(link) is list and len(link) == 3 and is_trigger_link(link[2])


def _space(text: str, at: int) -> int:
    return _SPACE.match(text, at).end()  # type: ignore[union-attr]  # it matches ""


def _after(text: str, at: int, mark: str) -> int:
    """Where the value after ``mark`` (past any space) starts; ValueError without the mark."""
    at = _space(text, at)
    if not text.startswith(mark, at):
        raise ValueError(f"expected {mark!r} at character {at}")
    return _space(text, at + 1)


def _bounded_array(
    text: str, at: int, wanted: Callable[[Any], bool], *, pairs: bool = False
) -> tuple[list[Any], int, int]:
    """The items ``spans.bounded`` keeps of the array that starts at ``at``, how many it
    leaves, and where the array ends; with ``pairs``, of the object that starts there, its
    items as ``(key, value)`` pairs (a key repeated in two pieces counts twice). The array is
    decoded about ``_CHUNK`` characters at a time, each piece's items dropped once looked at.
    Where a piece ends is a guess, the first ``],[`` past ``_CHUNK`` (``,"`` in an object),
    which holds when the piece decodes: a guess inside a string or an item, or past the
    array's end, leaves the piece unterminated. Items are then decoded one at a time up to the
    guess, so each character is looked at a bounded number of times. A guess is looked for
    within two pieces only: with none there (a 100 MB string, the array's last piece), items
    are decoded one at a time in place, never the rest of the body copied into one piece that
    cannot decode (that copy, twice, tripled the peak memory of reading a 100 MB attribute)."""
    at = _after(text, at, "{" if pairs else "[")
    kept: list[Any] = []
    count = more = 0
    guess = at  # items before it are decoded one at a time
    while not text.startswith("}" if pairs else "]", at):
        if count:
            at = _after(text, at, ",")
        items: Any = None
        if guess <= at:
            # The comma before a key, or between two items, within two pieces of ``at``.
            end = min(at + 2 * _CHUNK, len(text))
            if pairs:
                guess = text.find(',"', at + _CHUNK, end)
            else:
                guess = text.find("],[", at + _CHUNK, end)
                guess += guess >= 0
            if guess < 0:  # none near (a huge item, or the array's end): one at a time to there
                guess = end
            else:
                with suppress(ValueError):
                    items = loads(f"{{{text[at:guess]}}}" if pairs else f"[{text[at:guess]}]")
                    items = list(items.items()) if pairs else items
                    at = guess
        if items is None:
            item, at = decode_at(text, at)
            if pairs:
                _check(type(item) is str, "an attribute key is not text")
                value, at = decode_at(text, _after(text, at, ":"))
                item = (item, value)
            items = [item]
        first = max(MAX_SPAN_ITEMS - count, 0)
        kept += items[:first]
        if more < MAX_SPAN_ITEMS:
            found = [item for item in items[first:] if wanted(item)][: MAX_SPAN_ITEMS - more]
            kept += found
            more += len(found)
        count += len(items)
        at = _space(text, at)
    return kept, count - len(kept), at + 1


def _large_body(body: str) -> tuple[list[Any], list[int]]:
    """A body's fields, its attributes, events and links as ``spans.bounded`` keeps them, and
    how many of each it leaves, read a piece at a time: decoding a crafted body of a million
    events (or attributes) whole built every one of them at once, hundreds of MiB for the
    thousand kept. ValueError for a
    body it cannot read so, damaged, or holding a value orjson reads otherwise than the
    standard library (``stored_json.decode_at``): the caller decodes that one whole, as any
    other, and so refuses or reads it as orjson does."""
    at = _after(body, 0, "[")
    fields: list[Any] = []
    dropped = [0, 0, 0]  # attributes, events, links
    value: Any
    while len(fields) < 9 and not body.startswith("]", at):
        if fields:
            at = _after(body, at, ",")
        if len(fields) == 5 and body.startswith("{", at):
            pairs, dropped[0], at = _bounded_array(body, at, _read_pair, pairs=True)
            value = dict(pairs)
        elif len(fields) in (6, 7):
            wanted = _read_event if len(fields) == 6 else _trigger_link
            value, dropped[len(fields) - 5], at = _bounded_array(body, at, wanted)
        else:
            value, at = decode_at(body, at)
        fields.append(value)
        at = _space(body, at)
    if not body.startswith("]", at) or _space(body, at + 1) != len(body):
        raise ValueError("not an array of 8 or 9 items")
    return fields, dropped


def decode_span(trace_id: str, row: Sequence[Any], resource: Mapping[str, Any]) -> SpanRecord:
    """The ``SpanRecord`` of one ``spans`` row, ``(span_id, start_ns, end_ns, body)`` (see
    ``tracking._tables`` for the body's layout); ValueError naming what is wrong when the row
    is not of that shape."""
    span_id, start_ns, end_ns, body = row
    _check(isinstance(span_id, str) and bool(span_id), "span id is not text")
    _check(type(start_ns) is int, "start_ns is not an integer")
    _check(end_ns is None or type(end_ns) is int, "end_ns is not an integer")
    fields: Any = None
    dropped_attributes = dropped_events = dropped_links = 0
    if type(body) is str and len(body) > LARGE_BODY:
        with suppress(ValueError):  # then decoded whole, as any other
            fields, (dropped_attributes, dropped_events, dropped_links) = _large_body(body)
    try:
        if fields is None:  # orjson's result; a few rows need no orjson import (stored_json)
            fields = loads(body)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    _check(type(fields) is list and len(fields) in (8, 9), "body is not an 8- or 9-item array")
    parent, name, kind, status_code, status_message, attributes, events, links = fields[:8]
    lost = _NONE_DROPPED
    if len(fields) == 9:
        lost = fields[8]
        _check(
            type(lost) is list and len(lost) == 3 and all(type(n) is int and n >= 0 for n in lost),
            "the counts dropped when written are not 3 counts",
        )
    _check(parent is None or type(parent) is str, "parent span id is not text")
    _check(type(name) is str, "name is not text")
    _check(type(kind) is str, "kind is not text")
    _check(type(status_code) is str, "status code is not text")
    _check(type(status_message) is str, "status message is not text")
    _check(type(events) is list and type(links) is list, "events or links not arrays")
    make_span, make_event, make_link = _makers()
    # Only the events and links a span keeps (``spans.bounded``) become records, and only they
    # are checked: one left unread is counted, whatever its shape. Events, links, then the
    # span's attributes: a row damaged in several places names the first of these that is
    # wrong, as it always has.
    events, more_events = bounded(events, _read_event)
    links, more_links = bounded(links, _trigger_link)
    dropped_events += more_events
    dropped_links += more_links
    event_records = tuple([_event(event, make_event) for event in events])
    link_records = tuple([_link(link, make_link) for link in links])
    attributes, more_attributes = bounded_attributes(attributes)  # kept whole past ``_large_body``
    dropped_attributes += more_attributes
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
        dropped_events,
        dropped_links,
        lost[1],
        lost[2],
        lost[0],
        dropped_attributes,
    )
