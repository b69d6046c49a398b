"""``TempoSource``'s search over ids as Tempo spells them in a search answer: hex without its
leading zeros (Tempo's ``util.TraceIDToHexString`` trims them), so one run in sixteen has an id
shorter than 32 digits there, and is still listed."""

from __future__ import annotations

import pytest

from pipeline_tracking_support import T0, Backend, S, example_spans, serve
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking import TempoSource, encode_traces
from taskdaemon.pipeline.tracking.otlp_json import normalize_id


@pytest.mark.parametrize(
    "run_id", ["0f067aa0ba902b7a4bf92f3577b34da6", "000000000000000000f067aa0ba902b7"]
)
def test_a_run_whose_id_lost_its_leading_zeros_in_the_search_is_listed(run_id: str) -> None:
    spans = [replace(span, trace_id=run_id) for span in example_spans()]
    trace = {"trace": encode_traces(spans, ids="base64", enums="int"), "status": "COMPLETE"}
    found = {"traceID": run_id.lstrip("0"), "startTimeUnixNano": str(T0)}
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route(f"/api/v2/traces/{run_id}", trace)
        tempo.route("/api/search", {"traces": [found]})
        listed = source.search(since=T0 / S - 1, until=T0 / S + 3600)
        asked = [path.split("?")[0] for path in tempo.requests]
    assert [run_id] == [summary.run_id for summary in listed]
    assert ["/api/search", f"/api/v2/traces/{run_id}"] == asked


def test_only_a_search_answers_ids_to_pad() -> None:
    """A span's own ids are whole in every answer: a short one there is refused, not padded."""
    with pytest.raises(ValueError, match="neither hex nor base64"):
        normalize_id("f067aa0ba902b7", 32)
    assert "0" * 18 + "f067aa0ba902b7" == normalize_id("F067AA0BA902B7", 32, pad=True)
