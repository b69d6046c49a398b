"""OTLP JSON trace bodies (``tracking/otlp_json.py``) of shapes no exporter writes."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import parse_traces
from taskdaemon.pipeline.tracking.otlp_json import may_hold_trace

TRACE = "000000000000000089abcdef01234567"


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
        TRACE,
        TRACE.upper(),
        "000000000000000089ABcdef01234567",
        TRACE[16:],
        _base64(TRACE),
        _base64(TRACE)[:21] + "B==",  # the last character's padding bits set
        "\\u0030" + TRACE[1:],  # "0" escaped
        TRACE[:20] + "\\/" + TRACE[20:],  # no id, but an escaped "/" may hide one
    ],
    ids=["hex", "upper", "mixed", "jaeger", "base64", "base64-padding-bits", "u-escape", "slash"],
)
def test_a_line_spelling_the_trace_id_any_way_may_hold_it(spelling: str) -> None:
    """Every spelling ``normalize_id`` reads, or an escape that may hide one, keeps the line."""
    line = '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ID"}]}]}]}'
    assert may_hold_trace(TRACE)(line.replace("ID", spelling)) is True


def test_a_line_of_another_trace_cannot_hold_it() -> None:
    """A line whose ids are another trace's, with escapes that spell no id, is passed over."""
    other = "1" * 32
    template = (
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "TRACE", "spanId": "SPAN",'
        ' "name": "a \\u003c b \\u0026 \\"c\\""}]}]}]}'
    )
    line = template.replace("TRACE", other).replace("SPAN", _base64(other)[:16])
    assert may_hold_trace(TRACE)(line) is False
