"""OTLP JSON trace bodies (``tracking/otlp_json.py``) of shapes no exporter writes."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import parse_traces


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
