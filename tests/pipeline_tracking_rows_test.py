"""Decoding a stored span row (``tracking._rows``) gives what it gave before its fast path.

``_reference_span`` below is ``decode_span`` as it was before attribute values were normalized
by their exact JSON type: every value through ``spans.normalize_value`` (``isinstance`` all the
way down) and every check through ``isinstance``. The properties hold the two equal, types
included (``repr`` tells a tuple from a list, ``1`` from ``1.0`` and ``True``), over rows as
the writer writes them and over damaged ones, where both must refuse the row with the same
message: the message is the ``first:`` of the warning a reader prints when it skips rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline_tracking_support import make_provider, write_example_run
from taskdaemon.pipeline.stored_json import loads
from taskdaemon.pipeline.tracking import SqliteSpanProcessor
from taskdaemon.pipeline.tracking._rows import decode_resource, decode_span
from taskdaemon.pipeline.tracking.spans import (
    SpanEventRecord,
    SpanLinkRecord,
    SpanRecord,
    normalize_value,
)
from taskdaemon.pipeline.tracking.store import select_trace

TRACE = "0123456789abcdef0123456789abcdef"


# --- the decoding as it was --------------------------------------------------------------------


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(what)


def _reference_attributes(value: Any, where: str) -> dict[str, Any]:
    _check(isinstance(value, Mapping), f"{where}: attributes are not an object")
    normalized: dict[str, Any] = normalize_value(value)
    return normalized


def _reference_resource(text: Any) -> dict[str, Any]:
    try:
        value = loads(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"resource: not JSON: {exc}") from None
    return _reference_attributes(value, "resource")


def _reference_span(
    row: Sequence[Any], resource: Mapping[str, Any], trace_id: str = TRACE
) -> SpanRecord:
    span_id, start_ns, end_ns, body = row
    _check(isinstance(span_id, str) and bool(span_id), "span id is not text")
    _check(type(start_ns) is int, "start_ns is not an integer")
    _check(end_ns is None or type(end_ns) is int, "end_ns is not an integer")
    try:
        fields = loads(body)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    _check(isinstance(fields, list) and len(fields) in (8, 9), "body is not an 8- or 9-item array")
    parent, name, kind, status_code, status_message, attributes, events, links = fields[:8]
    lost = fields[8] if len(fields) == 9 else [0, 0, 0]  # dropped when written
    _check(
        isinstance(lost, list)
        and len(lost) == 3
        and all(type(count) is int and count >= 0 for count in lost),
        "the counts dropped when written are not 3 counts",
    )
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
        where = f"event {event[0]}"
        event_records.append(
            SpanEventRecord(event[0], event[1], _reference_attributes(event[2], where))
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
        link_records.append(
            SpanLinkRecord(link[0], link[1], _reference_attributes(link[2], "link"))
        )
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
        attributes=_reference_attributes(attributes, "span"),
        events=tuple(event_records),
        links=tuple(link_records),
        resource=resource,
        attributes_dropped_when_written=lost[0],
        events_dropped_when_written=lost[1],
        links_dropped_when_written=lost[2],
    )


def _outcome(function: Any, *args: Any) -> str:
    """The repr of what ``function`` returns, or of the error it raises (type and message)."""
    try:
        return repr(function(*args))
    except (ValueError, RecursionError) as error:  # what select_trace catches
        return f"{type(error).__name__}: {error}"


# --- rows --------------------------------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.integers(min_value=2**64, max_value=2**80)  # orjson reads these as floats
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
_ATTRIBUTES = st.dictionaries(st.text(max_size=8), _VALUES, max_size=6)
_TIMES = st.integers(min_value=0, max_value=2**63 - 1)
_EVENTS = st.lists(st.tuples(st.text(max_size=6), _TIMES, _ATTRIBUTES).map(list), max_size=3)
_LINKS = st.lists(
    st.tuples(st.text(min_size=1, max_size=32), st.text(min_size=1, max_size=16), _ATTRIBUTES).map(
        list
    ),
    max_size=2,
)
_BODIES = st.tuples(
    st.none() | st.text(min_size=1, max_size=16),
    st.text(max_size=10),
    st.sampled_from(["INTERNAL", "SERVER", "CLIENT"]),
    st.sampled_from(["UNSET", "OK", "ERROR"]),
    st.text(max_size=10),
    _ATTRIBUTES,
    _EVENTS,
    _LINKS,
).map(list) | st.tuples(  # with the counts the SDK dropped (``_bodies.body``)
    st.none(),
    st.text(max_size=10),
    st.just("SERVER"),
    st.just("UNSET"),
    st.just(""),
    _ATTRIBUTES,
    _EVENTS,
    _LINKS,
    st.lists(st.integers(min_value=0, max_value=2**31), min_size=3, max_size=3),
).map(list)


@st.composite
def _damaged(draw: st.DrawFn, body: list[Any]) -> list[Any]:
    """``body`` with one part replaced by any JSON value, or with an item dropped or added:
    at the top, in an event or in a link."""
    where = draw(st.sampled_from(["top", "event", "link"]))
    target = body
    if where == "event" and body[6]:
        target = draw(st.sampled_from(body[6]))
    elif where == "link" and body[7]:
        target = draw(st.sampled_from(body[7]))
    how = draw(st.sampled_from(["replace", "drop", "add"]))
    if how == "replace":
        target[draw(st.integers(0, len(target) - 1))] = draw(_VALUES)
    elif how == "drop":
        del target[draw(st.integers(0, len(target) - 1))]
    else:
        target.append(draw(_VALUES))
    return body


@st.composite
def _rows(draw: st.DrawFn) -> tuple[Any, ...]:
    """A ``spans`` row (span_id, start_ns, end_ns, body), as written or damaged anywhere."""
    body: Any = draw(_BODIES)
    if draw(st.booleans()):
        body = draw(_damaged(body))
    text: Any = json.dumps(body, ensure_ascii=draw(st.booleans()))
    text = draw(
        st.sampled_from([text, text.encode(), text[: len(text) // 2], 7, None])
        if draw(st.integers(0, 4)) == 0
        else st.just(text)
    )
    span_id = draw(st.just("00f067aa0ba902b7") | st.sampled_from(["", 7, None, b"id"]))
    start = draw(_TIMES | st.sampled_from([1.5, "12", None, True]))
    end = draw(st.none() | _TIMES | st.sampled_from([2.5, "34", False]))
    return (span_id, start, end, text)


@pytest.mark.slow  # drawing 400 nested rows: 100 s on a loaded machine, near the 120 s timeout
@settings(max_examples=400, deadline=None)
@given(_rows())
@example(("00f067aa0ba902b7", 1, 2, '[null,"n","SERVER","OK","",{"a":[1,[2,{"b":[]}]]},[],[]]'))
@example(("00f067aa0ba902b7", 1, None, '[null,"é","SERVER","OK","",{"é":[null,"☃"]},[],[]]'))
@example(("00f067aa0ba902b7", 1, None, '[null,"n","SERVER","OK","",{"i":[1e999]},[],[]]'))
@example(("00f067aa0ba902b7", 1, None, '[null,"n","SERVER","OK","",[],[["e",1,7]],[[]]]'))
@example(("00f067aa0ba902b7", 1, None, '[null,"n","SERVER","OK","",{},[["e",1,{"x":{"y":1}}]],[]]'))
@example(("00f067aa0ba902b7", 1, None, '[null,"n","SERVER","OK","",{},[],[["t","s",7]]]'))
@example(("00f067aa0ba902b7", 1, None, '[null,7,"SERVER","OK","",{},[],[]]'))
@example(("00f067aa0ba902b7", 1, None, '[null,"n","SERVER",0,"",{},[],[]]'))
@example(("00f067aa0ba902b7", 1, None, '[null,"n","SERVER","OK","",[],[],[]]'))
def test_a_row_decodes_as_it_did(row: tuple[Any, ...]) -> None:
    """Every row gives the record it gave (the same types at every depth), or the same error."""
    resource = {"service.name": "taskdaemon"}
    expected = _outcome(_reference_span, row, resource)
    assert expected == _outcome(decode_span, TRACE, row, resource)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        _ATTRIBUTES.map(json.dumps),
        _VALUES.map(json.dumps),
        st.sampled_from(["{", "", "[]", 3, b'{"a": [1]}']),
    )
)
def test_a_resource_decodes_as_it_did(text: Any) -> None:
    """A ``resources.attributes`` value gives the dict it gave, or the same error."""
    assert _outcome(_reference_resource, text) == _outcome(decode_resource, text)


def test_arrays_are_tuples_at_every_depth_and_objects_dicts() -> None:
    """The spelling ``spans`` promises, spelled out: a test of the reference on its own too."""
    body = '[null,"n","SERVER","OK","",{"a":[1,[2,{"b":[null]}]],"s":"x"},[["e",5,{"l":[]}]],[]]'
    record = decode_span(TRACE, ("00f067aa0ba902b7", 1, 2, body), {})
    assert (
        {"a": (1, (2, {"b": (None,)})), "s": "x"},
        {"l": ()},
    ) == (dict(record.attributes), dict(record.events[0].attributes))
    assert (tuple, tuple, dict) == (
        type(record.attributes["a"]),
        type(record.attributes["a"][1]),
        type(record.attributes["a"][1][1]),
    )


@pytest.mark.parametrize("damage", ["not json", '[null,"n","SERVER","OK","",{},[["e",1,[]]],[]]'])
def test_a_stored_run_skips_a_damaged_row_with_one_warning(
    tmp_path: Any, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``select_trace`` over a run the writer stored, with one row damaged: every other span as
    the reference decodes it, and one warning naming the row's fault."""
    db = tmp_path / "spans.db"
    provider, _ = make_provider(SqliteSpanProcessor(db))
    write_example_run(provider)
    provider.shutdown()
    conn = sqlite3.connect(db)
    trace_id, damaged = conn.execute(
        "SELECT t.trace_id, s.span_id FROM spans s JOIN traces t USING (trace_no) "
        "WHERE json_extract(s.body, '$[0]') IS NOT NULL LIMIT 1"
    ).fetchone()
    rows = conn.execute(
        "SELECT s.span_id, s.start_ns, s.end_ns, s.body, r.attributes FROM spans s "
        "JOIN resources r USING (resource_no) JOIN traces t USING (trace_no) "
        "WHERE t.trace_id = ? AND s.span_id != ?",
        (trace_id, damaged),
    ).fetchall()
    with conn:
        conn.execute("UPDATE spans SET body = ? WHERE span_id = ?", (damage, damaged))
    caplog.set_level("WARNING")
    spans = select_trace(conn, trace_id, where=db)
    conn.close()
    expected = sorted(
        (_reference_span(row[:4], _reference_resource(row[4]), trace_id) for row in rows),
        key=lambda s: (s.start_ns, s.span_id),
    )
    reason = "body is not JSON" if damage == "not json" else "event e: attributes are not"
    warnings = [r.getMessage() for r in caplog.records]
    assert (1, True, True, [repr(s) for s in expected]) == (
        len(warnings),
        f"skipped 1 corrupt span row of run {trace_id}" in warnings[0],
        reason in warnings[0],
        [repr(s) for s in spans],
    )
