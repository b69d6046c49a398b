"""``taskdaemon report`` (``cli/report.py``) over a remote span source."""

from __future__ import annotations

import json

import pytest

from pipeline_tracking_support import Backend, example_spans, serve
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.tracking import encode_traces


def test_a_report_names_its_source_without_its_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """A report over a Tempo URL holding a password and a ``token=`` query names the source
    with both redacted."""
    spans = example_spans()
    run_id = spans[0].trace_id
    with serve(Backend()) as backend:
        backend.route("/api/search", {"traces": [{"traceID": run_id}]})
        backend.route(f"/api/v2/traces/{run_id}", {"trace": encode_traces(spans)})
        host = backend.url.removeprefix("http://")
        url = f"tempo+http://alice:hunter2pw@{host}?org=acme&token=qtokensecret"
        code = main(["report", "--source", url, "--since", "36500d", "--format", "json"])
    shown = json.loads(capsys.readouterr().out)["source"]
    expected = (0, True, False, False)
    actual = (
        code,
        shown.startswith("tempo+http://alice:"),
        "hunter2pw" in shown,
        "qtokensecret" in shown,
    )
    assert expected == actual, shown
