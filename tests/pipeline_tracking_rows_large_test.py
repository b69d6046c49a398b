"""A stored span body too large to decode whole (``tracking._rows``, ``LARGE_BODY``) is read a
piece at a time, and gives what decoding it whole and keeping what ``spans.bounded`` keeps
gives: the same record, the same counts of what was left, the same refusal of a damaged row.

The bodies are built as a writer (or another tool) would write them, with what makes a piece's
cut a wrong guess: ``],[`` inside strings and inside an event's attributes, spaces and line
breaks between values, events taskdaemon reads past the first thousand, trigger links.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.tracking import _rows
from taskdaemon.pipeline.tracking._rows import LARGE_BODY, decode_span
from taskdaemon.pipeline.tracking.spans import MAX_SPAN_ITEMS, SpanRecord

TRACE = "0123456789abcdef0123456789abcdef"


def _event(i: int) -> list[Any]:
    """Event ``i``: mostly someone else's, every 997th a stage output, with awkward text."""
    if i % 997 == 0:
        return [t.EVENT_STAGE_OUTPUT, i, {t.PAYLOAD_JSON: '{"a": [1],[2]}', "i": i}]
    return ["e],[x", i, {"n": [[i], [i + 1]], "s": "],[", "f": 0.5}]


def _link(i: int) -> list[Any]:
    relation = t.LINK_TRIGGERED_BY if i % 3 == 0 else "other"
    return ["ab" * 16, f"{i:016x}", {t.LINK_RELATION: relation}]


def _attribute(i: int) -> tuple[str, Any]:
    """Attribute ``i``: mostly someone else's, every 499th one taskdaemon reads, with keys and
    values that hold ``,"`` (where a piece of an object is guessed to end)."""
    if i % 499 == 0:
        return f"taskdaemon.x{i}", i
    return f'k,"{i}', ["a", "b,", {"c": i}] if i % 2 else 'v,"'


def _body(events: int, links: int, *, indent: int | None = None, attributes: int = 0) -> str:
    body = [
        None,
        "a],[",
        "INTERNAL",
        "OK",
        "",
        {
            **dict(_attribute(i) for i in range(attributes)),
            t.CICD_TASK_NAME: "a",
            "big": list(range(50)),
        },
        [_event(i) for i in range(events)],
        [_link(i) for i in range(links)],
    ]
    separators = (",", ":") if indent is None else (", ", ": ")
    return json.dumps(body, indent=indent, separators=separators)


def _compact_body(attributes: dict[str, Any], events: list[Any], links: list[Any]) -> str:
    """The stored body of a stage span ``a`` with these attributes, events and links, as the
    writer writes it (compact JSON)."""
    body = [None, "a", "INTERNAL", "OK", "", attributes, events, links]
    return json.dumps(body, separators=(",", ":"))


def _decoded(
    body: str, monkeypatch: pytest.MonkeyPatch, *, whole: bool, pieces: bool = False
) -> SpanRecord | str:
    """The record of ``body``, decoded whole (``whole``) or a piece at a time; the
    ``ValueError``'s kind for a row refused. ``pieces``: it must be read a piece at a time to
    the end, never handed whole to the JSON decoder (which a damaged body is, to be refused as
    any other; and a body the pieces misread would be too, giving the same record at the cost
    the pieces are there to spare)."""
    decode = _rows.loads

    def loads(text: Any) -> Any:
        assert not (pieces and text is body), "the body was decoded whole"
        return decode(text)

    with monkeypatch.context() as patch:
        patch.setattr(_rows, "LARGE_BODY", len(body) + 1 if whole else 0)
        patch.setattr(_rows, "loads", loads)
        try:
            return decode_span(TRACE, ("00" * 8, 1, 2, body), {})
        except ValueError:
            return "refused"


@pytest.mark.parametrize(
    ("events", "links", "indent"),
    [(60_000, 0, None), (5_000, 4_000, 1), (10, 3, None), (0, 0, 2), (1_000, 1_001, None)],
)
def test_a_large_body_reads_as_decoded_whole(
    events: int, links: int, indent: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _body(events, links, indent=indent)
    whole = _decoded(body, monkeypatch, whole=True)
    pieces = _decoded(body, monkeypatch, whole=False, pieces=True)
    assert isinstance(whole, SpanRecord)
    kept_outputs = min(max(events - MAX_SPAN_ITEMS, 0) // 997, MAX_SPAN_ITEMS)
    assert (whole, len(whole.events)) == (pieces, min(events, MAX_SPAN_ITEMS) + kept_outputs)


@pytest.mark.parametrize(("attributes", "indent"), [(200_000, None), (30_000, 1), (998, None)])
def test_a_large_bodys_attributes_read_as_decoded_whole(
    attributes: int, indent: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the first ``MAX_SPAN_ITEMS`` attributes, those whose key is taskdaemon's are kept
    (the span's own two among them), the others counted."""
    body = _body(3, 0, indent=indent, attributes=attributes)
    whole = _decoded(body, monkeypatch, whole=True)
    pieces = _decoded(body, monkeypatch, whole=False)
    assert isinstance(whole, SpanRecord)
    total = attributes + 2
    past = [i for i in range(MAX_SPAN_ITEMS, attributes) if i % 499 == 0]
    kept = min(total, MAX_SPAN_ITEMS + len(past) + 1) if total > MAX_SPAN_ITEMS else total
    assert (whole, len(whole.attributes), whole.dropped_attributes) == (
        pieces,
        kept,
        total - kept,
    )
    assert whole.attributes[t.CICD_TASK_NAME] == "a"


def test_past_the_cap_only_the_events_taskdaemon_reads_are_kept_and_the_rest_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = _body(60_000, 3_000, indent=None)
    assert len(body) > LARGE_BODY
    span = _decoded(body, monkeypatch, whole=False, pieces=True)
    assert isinstance(span, SpanRecord)
    past = span.events[MAX_SPAN_ITEMS:]
    triggers = sum(1 for i in range(MAX_SPAN_ITEMS, 3_000) if i % 3 == 0)
    past_links = span.links[MAX_SPAN_ITEMS:]
    assert (
        {e.name for e in past},
        past[-1].time_ns,
        span.dropped_events,
        {link.attributes[t.LINK_RELATION] for link in past_links},
        len(past_links),
        span.dropped_links,
    ) == (
        {t.EVENT_STAGE_OUTPUT},
        59_820,  # the last multiple of 997 below 60,000
        60_000 - MAX_SPAN_ITEMS - len(past),
        {t.LINK_TRIGGERED_BY},
        triggers,
        3_000 - MAX_SPAN_ITEMS - triggers,
    )


def _damaged(body: str) -> list[str]:
    return [
        body[:-1],  # cut short
        body + "x",  # something after it
        body[:-1] + ',"ninth"]',  # nine items
        body.replace('"f":0.5', '"f":NaN', 1),  # what orjson refuses
        body.replace('"s":"],["', '"s":"],[', 1),  # a string left open
        body[: len(body) // 2] + "]]]]]]]]",  # cut in the middle of the events
        body.replace('["e],[x",', '["e],[x"', 1),  # a comma missing in an event
        body.replace('"k,\\"1":', '"k,\\"1"', 1),  # a colon missing in an attribute
        body.replace('"k,\\"3":', "7:", 1),  # an attribute key that is no text
    ]


@pytest.mark.parametrize("case", range(9))
def test_a_damaged_large_body_is_refused_as_when_decoded_whole(
    case: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _damaged(_body(50_000, 10, indent=None, attributes=3_000))[case]
    assert ("refused", "refused") == (
        _decoded(body, monkeypatch, whole=True),
        _decoded(body, monkeypatch, whole=False),
    )


def test_a_large_body_read_in_pieces_holds_a_piece_and_what_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The point of the pieces: a body of many events and links, half the events and all the
    links of those taskdaemon reads (kept up to twice the cap, the rest counted), is never
    held decoded whole: neither the events nor the links, nor the wanted ones past the cap.
    Its peak of allocated memory (``tracemalloc``: the same on every run of one Python) is a
    fraction of decoding whole's; the record is the same."""
    count = 40_000
    body = _compact_body(
        {t.CICD_TASK_NAME: "a"},
        [[t.EVENT_STAGE_OUTPUT if i % 2 else "e", i, {"i": i, "s": "],["}] for i in range(count)],
        [_link(3 * i) for i in range(count)],
    )

    def peak(whole: bool) -> tuple[int, SpanRecord | str]:
        tracemalloc.start()
        try:
            record = _decoded(body, monkeypatch, whole=whole, pieces=not whole)
            return tracemalloc.get_traced_memory()[1], record
        finally:
            tracemalloc.stop()

    (whole_peak, whole), (pieces_peak, pieces) = peak(whole=True), peak(whole=False)
    assert isinstance(pieces, SpanRecord)
    assert (whole, (2 * MAX_SPAN_ITEMS,) * 2) == (pieces, (len(pieces.events), len(pieces.links)))
    # Decoding the events whole (or the links, or every wanted event) peaks at a fifth of
    # decoding the body whole; the pieces, at a sixteenth.
    assert pieces_peak * 8 < whole_peak, (pieces_peak, whole_peak)


def test_a_huge_attribute_value_is_held_once_while_its_body_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A body holding one huge text value (a crafted 100 MB attribute, here 32 MiB) allocates
    that value once, and pieces of about ``_rows._CHUNK`` around it: never a copy of the
    body's rest where no piece's end was near (before 68c2027, twice the value in all). The
    peak is ``tracemalloc``'s, past what is held before the call (the body)."""
    size = 32 * 2**20
    body = _compact_body(
        {t.CICD_TASK_NAME: "a", "big": "x" * size, "after": 1}, [_event(i) for i in range(3)], []
    )
    tracemalloc.start()
    try:
        held = tracemalloc.get_traced_memory()[0]
        span = _decoded(body, monkeypatch, whole=False, pieces=True)
        peak = tracemalloc.get_traced_memory()[1] - held
    finally:
        tracemalloc.stop()
    assert isinstance(span, SpanRecord)
    assert (len(span.attributes["big"]), span.attributes["after"]) == (size, 1)
    assert size < peak < size + 16 * _rows._CHUNK, (peak, size)
