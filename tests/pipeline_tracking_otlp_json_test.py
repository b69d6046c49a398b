"""OTLP JSON trace bodies (``tracking/otlp_json.py``) of shapes no exporter writes."""

from __future__ import annotations

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
