"""A remote answer holding an integer too long for Python to read (past 4,300 digits): it
costs the search hit or the span holding it, said in the answer's one warning, and every
readable one beside it is still read (a local HTTP server stands in for Tempo)."""

from __future__ import annotations

import json
import logging

import pytest

from pipeline_tracking_support import T0, Backend, example_spans, serve
from taskdaemon.pipeline.tracking import TempoSource, encode_traces

LONG = "1" + "0" * 99_999  # a 100,000-digit number, as JSON writes it


def test_a_search_hit_with_a_long_number_costs_that_hit_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two hits, one whose ``startTimeUnixNano`` is a 100,000-digit number: the other's run is
    listed, the long one is one warning, and its trace is never fetched."""
    spans = example_spans()
    run_id = spans[0].trace_id
    other = "d" * 32
    body = (
        f'{{"traces": [{{"traceID": "{other}", "startTimeUnixNano": {LONG}}}, '
        f'{{"traceID": "{run_id}", "startTimeUnixNano": "{T0}"}}], "metrics": {{}}}}'
    )
    with (
        caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"),
        serve(Backend()) as tempo,
        TempoSource(tempo.url) as source,
    ):
        tempo.route("/api/search", body.encode())
        tempo.route(f"/api/v2/traces/{run_id}", {"trace": encode_traces(spans)})
        listed = [summary.run_id for summary in source.search(since=0)]
        fetched = [path.rpartition("/")[2] for path in tempo.requests[1:]]
    warnings = [record.getMessage() for record in caplog.records]
    expected = (
        [run_id],
        [run_id],
        [
            "Tempo search: skipped 1 unreadable result "
            "(the first, startTimeUnixNano <a number of 100000 digits>)"
        ],
    )
    assert expected == (listed, fetched, warnings)


def test_a_span_with_a_long_number_costs_that_span_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A trace answer one of whose spans has a 100,000-digit ``kind``: that span is skipped as
    malformed, with one warning, and the run's other spans are read."""
    spans = example_spans()
    run_id = spans[0].trace_id
    document = encode_traces(spans)
    last = document["resourceSpans"][0]["scopeSpans"][0]["spans"][-1]
    last["kind"] = "LONG"
    text = json.dumps({"trace": document}).replace('"LONG"', LONG)
    with (
        caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"),
        serve(Backend()) as tempo,
        TempoSource(tempo.url) as source,
    ):
        tempo.route(f"/api/v2/traces/{run_id}", text.encode())
        read = source.get_trace(run_id)
    warnings = [record.getMessage() for record in caplog.records]
    url = f"{tempo.url}/api/v2/traces/{run_id}"
    expected = (
        len(spans) - 1,
        [
            f"{url}: skipped 1 malformed span (the first, {last['spanId']}: "
            "unknown enum value <a number of 100000 digits>)"
        ],
    )
    assert expected == (len(read), warnings)
