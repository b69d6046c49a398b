"""A scheduled time from a foreign source (a Tempo's JSON spells any integer) past what OTLP's
times reach is no scheduled time: ``runs show``, its ``--json`` and the run's page read the
run as one no schedule started, and never fail on it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cli_support import start_ui, taskdaemon
from pipeline_tracking_support import Backend, example_spans, replaced, root_span, serve
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.landing import scheduled_at
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking import encode_traces

#: Past a date (10**30 ns: year 3e13) and past a float (10**400).
PAST_A_DATE, PAST_A_FLOAT = 10**30, 10**400


@pytest.mark.parametrize(
    "value", [2**63, 2**64, PAST_A_DATE, PAST_A_FLOAT], ids=["2**63", "2**64", "10**30", "10**400"]
)
def test_a_time_past_the_stores_integers_is_none(value: int) -> None:
    assert None is scheduled_at({t.PIPELINE_SCHEDULED_AT: value})


def test_the_last_nanosecond_the_store_holds_is_a_time() -> None:
    assert (2**63 - 1) / 1e9 == scheduled_at({t.PIPELINE_SCHEDULED_AT: 2**63 - 1})


def _tempo_run(value: int) -> tuple[str, dict[str, object]]:
    """The example run, its run span scheduled at ``value``: its id and Tempo's answer."""
    spans = example_spans()
    root = root_span(spans)
    attributes = {**root.attributes, t.PIPELINE_SCHEDULED_AT: value}
    spans = replaced(spans, root, replace(root, attributes=attributes))
    return root.trace_id, {"trace": encode_traces(spans, ids="base64", enums="int")}


@pytest.mark.slow
@pytest.mark.parametrize("value", [PAST_A_DATE, PAST_A_FLOAT], ids=["past-a-date", "past-a-float"])
def test_runs_show_reads_a_run_scheduled_past_any_date(home: Path, value: int) -> None:
    run_id, trace = _tempo_run(value)
    with serve(Backend()) as tempo:
        tempo.route(f"/api/v2/traces/{run_id}", trace)
        source = f"tempo+{tempo.url}"
        table = taskdaemon(home, "runs", "show", run_id, "--source", source)
        as_json = taskdaemon(home, "runs", "show", run_id, "--source", source, "--json")
    assert (0, "", 0, "") == (table.returncode, table.stderr, as_json.returncode, as_json.stderr)
    assert f"run       {run_id}" in table.stdout
    assert not any(line.startswith("scheduled") for line in table.stdout.splitlines())
    assert '"landing_delay": null' in as_json.stdout


@pytest.mark.slow
def test_the_run_page_reads_a_run_scheduled_past_any_float(home: Path) -> None:
    """``ui`` over the Tempo: the run's record, and its stream to its end, not a 500 and a
    ``problem`` event."""
    run_id, trace = _tempo_run(PAST_A_FLOAT)
    with serve(Backend()) as tempo:
        tempo.route(f"/api/v2/traces/{run_id}", trace)
        ui, url, token = start_ui(home, TASKDAEMON_SPAN_SOURCE=f"tempo+{tempo.url}")
        try:
            headers = {"Authorization": f"Bearer {token}"}
            record = httpx.get(f"{url}/api/runs/{run_id}", headers=headers, timeout=30)
            with httpx.stream(
                "GET", f"{url}/api/runs/{run_id}/stream", headers=headers, timeout=30
            ) as stream:
                events = [line for line in stream.iter_lines() if line.startswith("event:")]
        finally:
            ui.terminate()
            _, log = ui.communicate(timeout=30)
    assert (200, None, ["event: end"]) == (
        record.status_code,
        record.json()["landing_delay"],
        events,
    )
    assert "Traceback" not in log
