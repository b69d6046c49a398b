"""``cli/unbuilt_exporters.py``: an exporter whose constructor raises turns off alone, said in
one line and counted, while the span store and the run log writer stay. The failure is the
SDK's own: a gRPC credential provider (``OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER``)
that exists but answers no ``grpc.ChannelCredentials``, which every gRPC exporter of an
``https://`` endpoint calls in its constructor."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.util._importlib_metadata import _original_entry_points_cached

from cli_support import (
    NOT_CREDENTIALS,
    ONE_STAGE_PIPELINE,
    credential_provider,
    taskdaemon,
    write,
)
from taskdaemon.pipeline.cli.telemetry import Telemetry
from taskdaemon.pipeline.settings import Settings, load_settings

pytestmark = pytest.mark.usefixtures("clean_environment")

RAISED = (
    f"RuntimeError: Requested component '{NOT_CREDENTIALS}' is of type <class 'dict'> must be "
    "of type `grpc.ChannelCredentials`."
)


def _unbuildable(folder: Path) -> dict[str, str]:
    """The variables that make every OTLP exporter's constructor raise."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://127.0.0.1:9",
        "OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER": NOT_CREDENTIALS,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(credential_provider(folder)), os.environ.get("PYTHONPATH")])
        ),
    }


@pytest.fixture
def entry_points_read_anew() -> Iterator[None]:
    """The SDK reads the installed entry points once a process (a cache of its own): read
    anew, so that the provider this test installs is found, and after it, so that no later
    test finds it."""
    _original_entry_points_cached.cache_clear()
    yield
    _original_entry_points_cached.cache_clear()


@pytest.mark.usefixtures("entry_points_read_anew")
def test_each_exporter_that_cannot_be_built_is_off_and_counted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    telemetry_for: Callable[[Settings], Telemetry],
) -> None:
    """The three exporters raise as they are built: telemetry is built all the same, with its
    span store; each exporter is one line, and what it would have exported is counted as
    failed exports are (a span, a log record, the metric export at shutdown), under an error
    that says it was off, for the lines at exit."""
    for name, value in _unbuildable(tmp_path / "dist").items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(tmp_path / "dist"))
    caplog.set_level(logging.WARNING)
    telemetry = telemetry_for(load_settings(home=tmp_path))
    telemetry.tracer_provider.get_tracer("t").start_span("s").end()
    assert telemetry.logger_provider is not None
    telemetry.logger_provider.get_logger("t").emit(body="a record")
    telemetry.meter_provider.get_meter("t").create_counter("c").add(1)
    store = telemetry.store_health()
    assert telemetry.shutdown(30)
    off = [r.getMessage() for r in caplog.records if " is off, " in r.getMessage()]
    assert [
        f"{what} exporter otlp is off, it could not be built: {RAISED} (what it would have "
        f"exported is {counter}said at exit)"
        for what, counter in (
            ("metric", ""),
            ("span", "counted in taskdaemon_spans_export_failed_total and "),
            ("log record", "counted in taskdaemon_logs_export_failed_total and "),
        )
    ] == off
    assert telemetry.metric_export_failures is not None
    assert ({"otlp": 1}, {"otlp": 1}, {"otlp": 1}) == (
        telemetry.export_health.failures.failed(),
        telemetry.log_export_health.failures.failed(),
        telemetry.metric_export_failures.failed(),
    )
    off = {"otlp": "off, it could not be built (RuntimeError)"}
    assert (off, off, off) == (
        telemetry.export_health.failures.last_errors(),
        telemetry.log_export_health.failures.last_errors(),
        telemetry.metric_export_failures.last_errors(),
    )
    assert store is not None
    assert store.ok, store.detail


@pytest.mark.slow
def test_a_run_whose_exporter_cannot_be_built_is_stored_all_the_same(
    home: Path, tmp_path: Path
) -> None:
    """``taskdaemon run`` whose span exporter raises as it is built: the run is in the store
    (``runs show`` of the id it printed, its run log in ``logs``), one line says the exporter
    is off, and the end says how many spans it did not export, and that it was off: it said
    ``export failed`` of an exporter that never ran. Before, the whole telemetry
    was off: the span store too, and no view found the run id printed."""
    path = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    env = {**_unbuildable(tmp_path / "dist"), "OTEL_METRICS_EXPORTER": "none"}
    env["OTEL_LOGS_EXPORTER"] = "none"
    done = taskdaemon(home, "run", "-q", str(path), **env)
    assert 0 == done.returncode, done.stderr
    said = [line.split(": ", 1)[1] for line in done.stderr.splitlines()]
    # The provider's name is redacted: a value of a variable named like a credential.
    raised = RAISED.replace(NOT_CREDENTIALS, "[REDACTED]")
    assert [
        f"span exporter otlp is off, it could not be built: {raised} (what it would have "
        "exported is counted in taskdaemon_spans_export_failed_total and said at exit)",
        "2 spans were not exported (otlp: off, it could not be built (RuntimeError))",
    ] == said, done.stderr
    run_id = done.stdout.strip()
    shown = taskdaemon(home, "runs", "show", run_id, "--json")
    assert 0 == shown.returncode, shown.stderr
    assert ("success", ["only"]) == (
        json.loads(shown.stdout)["status"],
        [stage["name"] for stage in json.loads(shown.stdout)["stages"]],
    )
    logged = taskdaemon(home, "logs", run_id)
    assert 0 == logged.returncode, logged.stderr
    assert "stage only" in logged.stdout, logged.stdout
