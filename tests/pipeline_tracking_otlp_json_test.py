"""OTLP JSON trace bodies (``tracking/otlp_json.py``) of shapes no exporter writes."""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import parse_traces
from taskdaemon.pipeline.tracking.otlp_json import decode_any_value, iter_json_lines, may_hold_trace
from taskdaemon.pipeline.tracking.spans import SpanEventRecord

SOUGHT = "000000000000000089abcdef01234567"


@pytest.mark.parametrize(
    "body",
    [
        {"resourceSpans": [{"scopeSpans": 7}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": 5}]}]},
    ],
    ids=["scopeSpans", "spans"],
)
def test_a_list_that_is_a_number_is_not_an_otlp_body(body: dict[str, Any]) -> None:
    """``scopeSpans`` or ``spans`` holding a number is SpanSourceError naming the key, as a
    ``resourceSpans`` that is not a list is."""
    with pytest.raises(SpanSourceError, match="is not a list"):
        parse_traces(body)


def test_a_thousand_malformed_spans_are_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A body of 1,000 spans with unreadable ids beside a good one yields the good span and
    one warning that counts the skipped ones."""
    good = {
        "traceId": "0123456789abcdef0123456789abcdef",
        "spanId": "00000000000000aa",
        "name": "s",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
    }
    bad = [{**good, "spanId": "not-an-id!"}] * 1000
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [*bad, good]}]}]}
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking.otlp_json"):
        spans = parse_traces(body, where="here")
    messages = [record.getMessage() for record in caplog.records]
    expected = (1, 1, True)
    actual = (len(spans), len(messages), messages[0].startswith("here: skipped 1000 malformed"))
    assert expected == actual, messages[:3]


def _base64(trace_id: str) -> str:
    return base64.b64encode(bytes.fromhex(trace_id)).decode()


@pytest.mark.parametrize(
    "spelling",
    [
        SOUGHT,
        SOUGHT.upper(),
        "000000000000000089ABcdef01234567",
        SOUGHT[16:],
        _base64(SOUGHT),
        _base64(SOUGHT)[:21] + "B==",  # the last character's padding bits set
        "\\u0030" + SOUGHT[1:],  # "0" escaped
        SOUGHT[:20] + "\\/" + SOUGHT[20:],  # no id, but an escaped "/" may hide one
    ],
    ids=["hex", "upper", "mixed", "jaeger", "base64", "base64-padding-bits", "u-escape", "slash"],
)
def test_a_line_spelling_the_trace_id_any_way_may_hold_it(spelling: str) -> None:
    """Every spelling ``normalize_id`` reads, or an escape that may hide one, keeps the line."""
    line = '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ID"}]}]}]}'
    assert may_hold_trace(SOUGHT)(line.replace("ID", spelling)) is True


def test_a_line_of_another_trace_cannot_hold_it() -> None:
    """A line whose ids are another trace's, with escapes that spell no id, is passed over."""
    other = "1" * 32
    template = (
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "TRACE", "spanId": "SPAN",'
        ' "name": "a \\u003c b \\u0026 \\"c\\""}]}]}]}'
    )
    line = template.replace("TRACE", other).replace("SPAN", _base64(other)[:16])
    assert may_hold_trace(SOUGHT)(line) is False


def test_blank_lines_are_passed_over_and_lines_keep_their_numbers() -> None:
    """A JSON-lines text with blank lines gives each document with its own line number."""
    text = '{"a": 1}\n\n   \n{"b": 2}\n'
    assert [(1, {"a": 1}), (4, {"b": 2})] == list(iter_json_lines(io.StringIO(text), where="f"))


def test_one_undecodable_line_is_one_warning_in_the_singular(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A single undecodable line is skipped with a warning that names it in the singular."""
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking.otlp_json"):
        documents = list(iter_json_lines(io.StringIO('{"a": 1}\nnot json\n'), where="f"))
    messages = [record.getMessage() for record in caplog.records]
    expected = ([(1, {"a": 1})], 1, True)
    actual = (
        documents,
        len(messages),
        messages[0].startswith("f: skipped 1 undecodable line (the first, line 2: "),
    )
    assert expected == actual, messages


# --- one span's fields ------------------------------------------------------------------------

TRACE = "0123456789abcdef0123456789abcdef"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "spans"
GOOD: dict[str, Any] = {
    "traceId": TRACE,
    "spanId": "00000000000000aa",
    "name": "s",
    "startTimeUnixNano": "1",
    "endTimeUnixNano": "2",
}
DROP = object()


def _body(*spans: dict[str, Any], resource: Any = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"scopeSpans": [{"spans": list(spans)}]}
    if resource is not None:
        entry["resource"] = resource
    return {"resourceSpans": [entry]}


def _span(**changes: Any) -> dict[str, Any]:
    """:data:`GOOD` with ``changes`` (:data:`DROP` removes a field)."""
    span = {**GOOD, **changes}
    return {key: value for key, value in span.items() if value is not DROP}


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"name": DROP}, "name", ""),
        ({"kind": DROP}, "kind", "UNSPECIFIED"),
        ({"kind": ""}, "kind", "UNSPECIFIED"),
        ({"kind": 0}, "kind", "UNSPECIFIED"),
        ({"kind": "2"}, "kind", "SERVER"),
        ({"kind": "span_kind_client"}, "kind", "CLIENT"),
        ({"endTimeUnixNano": DROP}, "end_ns", None),
        ({"endTimeUnixNano": ""}, "end_ns", None),
        ({"endTimeUnixNano": "0"}, "end_ns", None),
        ({"endTimeUnixNano": 0}, "end_ns", None),
        ({"startTimeUnixNano": 10.0}, "start_ns", 10),
        ({"status": {"code": "2"}}, "status_code", "ERROR"),
        ({"events": [{}]}, "events", (SpanEventRecord("", 0, {}),)),
        ({"droppedEventsCount": 7}, "events_dropped_when_written", 7),
        ({"droppedLinksCount": "4"}, "links_dropped_when_written", 4),
        ({"droppedAttributesCount": 0}, "attributes_dropped_when_written", 0),
        (  # as Jaeger's model keeps it: an attribute, by the spec's mapping to other formats
            {"attributes": [{"key": "otel.dropped_links_count", "value": {"intValue": "9"}}]},
            "links_dropped_when_written",
            9,
        ),
        (
            {"attributes": [{"key": "otel.dropped_links_count", "value": {"intValue": "9"}}]},
            "attributes",
            {},
        ),
        ({"traceId": "00000000000000AB"}, "trace_id", "0" * 30 + "ab"),
    ],
    ids=str,
)
def test_a_field_is_read_as_otlp_json_writes_it(
    changes: dict[str, Any], field: str, expected: Any
) -> None:
    """A missing or empty field takes its default, enums are read from numbers and names of
    any case, times from whole floats, and a 64-bit trace id is padded."""
    [span] = parse_traces(_body(_span(**changes)))
    assert expected == getattr(span, field)


def test_past_a_thousand_attributes_only_taskdaemons_are_kept_and_the_rest_counted() -> None:
    """A span's attributes are read as its events are (``spans.bounded``): the first
    thousand, then those taskdaemon reads, the others counted as not read."""
    foreign = [{"key": f"other.{i}", "value": {"intValue": i}} for i in range(1_500)]
    ours = [{"key": "cicd.pipeline.task.name", "value": {"stringValue": "a"}}]
    [span] = parse_traces(_body(_span(attributes=foreign + ours)))
    assert (len(span.attributes), span.dropped_attributes) == (1_001, 500)
    assert (span.attributes["other.999"], span.attributes["cicd.pipeline.task.name"]) == (999, "a")


def test_an_events_and_a_links_attributes_are_bounded_as_a_spans_and_counted() -> None:
    """An event's and a link's attributes are kept as a span's are: the first thousand, then
    those taskdaemon reads; the rest, of both, counted among the span's attributes not read.
    Before, all 1,501 of each were kept, and nothing said so."""
    foreign = [{"key": f"other.{i}", "value": {"intValue": i}} for i in range(1_500)]
    ours = [{"key": "taskdaemon.link.relation", "value": {"stringValue": "triggered_by"}}]
    event = {"name": "e", "timeUnixNano": "1", "attributes": foreign + ours}
    link = {"traceId": GOOD["traceId"], "spanId": GOOD["spanId"], "attributes": foreign + ours}
    [span] = parse_traces(_body(_span(events=[event], links=[link])))
    (kept_event,), (kept_link,) = span.events, span.links
    assert (len(kept_event.attributes), len(kept_link.attributes), span.dropped_attributes) == (
        1_001,
        1_001,
        1_000,
    )
    assert "triggered_by" == kept_link.attributes["taskdaemon.link.relation"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"kind": True}, "bad enum value True"),
        ({"kind": 6}, "enum value 6 out of range"),
        ({"kind": "SPAN_KIND_BOGUS"}, "unknown enum value 'SPAN_KIND_BOGUS'"),
        ({"kind": "\u00b2"}, "unknown enum value '\u00b2'"),
        ({"startTimeUnixNano": DROP}, "missing time"),
        ({"startTimeUnixNano": True}, "bad time True"),
        ({"startTimeUnixNano": "1.5"}, "bad time '1.5'"),
        ({"startTimeUnixNano": -5}, "bad time -5"),
        ({"startTimeUnixNano": "1" + "0" * 30}, f"bad time '1{'0' * 30}'"),
        ({"startTimeUnixNano": 2**63}, f"bad time {2**63}"),
        ({"endTimeUnixNano": 1e30}, "bad time 1e+30"),
        ({"startTimeUnixNano": "²"}, "bad time '²'"),
        ({"attributes": {"a": 1}}, "attributes must be a list"),
        ({"attributes": [{"key": "a", "value": 5}]}, "AnyValue must be an object, got 5"),
        (
            {"attributes": [{"key": "a", "value": {"fooValue": 1}}]},
            "unknown AnyValue key 'fooValue'",
        ),
        ({"droppedEventsCount": -1}, "bad dropped count '-1'"),
        ({"droppedLinksCount": 1.5}, "bad dropped count '1.5'"),
        ({"traceId": 5}, "id must be a non-empty string, got 5"),
        ({"traceId": ""}, "id must be a non-empty string, got ''"),
        ({"traceId": "X" * 32}, f"id {'X' * 32!r} decodes to 24 bytes, expected 16"),
        ({"traceId": "0" * 20}, f"id {'0' * 20!r} decodes to 15 bytes, expected 16"),
        (
            {"traceId": "ASNFZ4mrze8B!I0VniavN7w=="},
            "id 'ASNFZ4mrze8B!I0VniavN7w==' is neither hex nor base64",
        ),
        # A long refused value is quoted cut, as every refusal quotes (``quoting.quote``).
        ({"traceId": "!" * 1000}, f"id '{'!' * 39}…' is neither hex nor base64"),
        ({"startTimeUnixNano": "9" * 1000 + "x"}, f"bad time '{'9' * 39}…'"),
        (
            {"attributes": [{"key": "a", "value": ["v"] * 1000}]},
            f"AnyValue must be an object, got {repr(['v'] * 1000)[:39]}…",
        ),
    ],
    ids=str,
)
def test_a_malformed_span_is_skipped_with_its_reason(
    changes: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A span that cannot be read is skipped, and the warning names it and why."""
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking.otlp_json"):
        spans = parse_traces(_body(_span(**changes)))
    expected = [f"body: skipped 1 malformed span (the first, 00000000000000aa: {reason})"]
    assert ([], expected) == (spans, [record.getMessage() for record in caplog.records])


def test_a_span_that_is_not_an_object_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    """A span that is not an object is skipped, the one beside it read."""
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking.otlp_json"):
        spans = parse_traces(_body(5, GOOD), where="f")  # type: ignore[arg-type]
    expected = (
        ["00000000000000aa"],
        ["f: skipped 1 malformed span (the first, None: span is not an object)"],
    )
    actual = ([span.span_id for span in spans], [r.getMessage() for r in caplog.records])
    assert expected == actual


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("false", False), (1, True)])
def test_a_bool_value_is_read_from_text_or_number(raw: Any, expected: bool) -> None:
    """``boolValue`` as the text ``true`` or ``false``, or as a number, is a bool."""
    assert expected is decode_any_value({"boolValue": raw})


# --- the body around the spans ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "expected an object, got list"),
        ({"batches": 5}, "'batches' is not a list"),
        ({"foo": 1}, "no 'resourceSpans', 'batches', 'trace' or 'result' key (keys: ['foo'])"),
        (
            dict.fromkeys("fedcba", 1),
            "no 'resourceSpans', 'batches', 'trace' or 'result' key "
            "(keys: ['a', 'b', 'c', 'd', 'e'])",
        ),
        ({"resourceSpans": [{"scopeSpans": 7}]}, "'scopeSpans' is not a list"),
        (
            {"resourceSpans": [{"instrumentationLibrarySpans": 7}]},
            "'instrumentationLibrarySpans' is not a list",
        ),
        ({"resourceSpans": [{"scopeSpans": [{"spans": 5}]}]}, "'spans' is not a list"),
    ],
    ids=str,
)
def test_a_body_that_is_no_otlp_trace_is_refused_saying_why(body: Any, message: str) -> None:
    """A body of no accepted shape is SpanSourceError naming what is wrong in it."""
    with pytest.raises(SpanSourceError) as raised:
        parse_traces(body)
    assert f"not an OTLP trace body: {message}" == str(raised.value)


@pytest.mark.parametrize("trace", [None, {}], ids=str)
def test_a_tempo_v2_answer_without_its_trace_has_no_spans(trace: Any) -> None:
    """Tempo v2's ``trace`` null or empty (nothing found) is no span."""
    assert [] == parse_traces({"trace": trace})


def test_a_resource_entry_that_is_not_an_object_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Entries of ``resourceSpans`` that are not objects are skipped with one warning for them
    all, however many (a hostile file of 40 million ``[]`` wrote 40 million lines), and the
    entries after them are read."""
    body = {"resourceSpans": [5, *[[]] * 10_000, *_body(GOOD)["resourceSpans"]]}
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking.otlp_json"):
        spans = parse_traces(body, where="f")
    expected = (
        1,
        ["f: skipped 10001 resourceSpans entries (the first, #0, int)"],
    )
    assert expected == (len(spans), [r.getMessage() for r in caplog.records])


def test_unreadable_resource_attributes_are_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A resource whose attributes cannot be read gives its spans an empty resource, with one
    warning for all such resources saying why the first could not be read."""
    entry = _body(GOOD, resource={"attributes": {"x": 1}})["resourceSpans"][0]
    body = {"resourceSpans": [entry] * 3}
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking.otlp_json"):
        spans = parse_traces(body, where="f")
    expected: tuple[list[dict[str, Any]], list[str]] = (
        [{}] * 3,
        [
            "f: skipped 3 resources' unreadable attributes"
            " (the first, #0: attributes must be a list)"
        ],
    )
    assert expected == ([span.resource for span in spans], [r.getMessage() for r in caplog.records])


def test_a_scope_entry_that_is_not_an_object_holds_no_spans() -> None:
    """A ``scopeSpans`` entry that is not an object is passed over, the next one read."""
    body = {"resourceSpans": [{"scopeSpans": [5, {"spans": [GOOD]}]}]}
    assert ["00000000000000aa"] == [span.span_id for span in parse_traces(body)]


def test_the_first_skipped_span_is_named_in_at_most_200_characters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The warning quotes the body's own text (an id it cannot decode, a number too long):
    a 100,000-character trace id was written whole into the line, which now holds its
    start only."""
    body = _body({**GOOD, "traceId": "A" * 100_000, "spanId": "B" * 100_000})
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking.otlp_json"):
        assert parse_traces(body, where="f") == []
    (message,) = [r.getMessage() for r in caplog.records]
    start = "f: skipped 1 malformed span (the first, BBBB"
    assert (message.startswith(start), message.endswith("…)"), len(message) < 300) == (
        True,
        True,
        True,
    ), message[:300]


def test_runs_list_reads_a_file_whose_run_span_starts_after_2262(
    home: Path, tmp_path: Path
) -> None:
    """A run span whose time is past SQLite's largest integer (2**63 - 1 ns, in 2262) is a
    malformed span, skipped: ``runs list`` died in a traceback writing its start (the
    platform's ``time_t`` overflowed)."""
    body = json.loads((FIXTURES / "schema2_run.json").read_text(encoding="utf-8"))
    spans = [s for r in body["resourceSpans"] for ss in r["scopeSpans"] for s in ss["spans"]]
    (run,) = [span for span in spans if not span.get("parentSpanId")]
    run["startTimeUnixNano"] = "1" + "0" * 30
    path = tmp_path / "late.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    done = taskdaemon(home, "runs", "list", "--source", f"otlp-json://{path}")
    assert (done.returncode, "Traceback" in done.stderr, "bad time" in done.stderr) == (
        0,
        False,
        True,
    ), done.stderr


class _StopError(Exception):
    """What the test's ``check`` raises to end the reading."""


@pytest.mark.parametrize(("stop_at", "checks"), [(None, 3), (2, 2)])
def test_check_is_called_every_512_spans_and_ends_the_reading(
    stop_at: int | None, checks: int
) -> None:
    """``check`` is called before the first span and every 512 spans (1,025 spans: three
    calls), malformed ones counted too; what it raises ends the reading there."""
    good = {"traceId": SOUGHT, "spanId": "1" * 16, "name": "s", "startTimeUnixNano": "1"}
    spans = [good if n % 2 else {"spanId": 5} for n in range(1025)]
    body = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    calls: list[int] = []

    def check() -> None:
        calls.append(len(calls))
        if len(calls) == stop_at:
            raise _StopError

    try:
        read: object = len(parse_traces(body, check=check))
    except _StopError:
        read = "stopped"
    assert (checks, 512 if stop_at is None else "stopped") == (len(calls), read)
