"""Log records a log exporter failed to export are counted per exporter and said at exit, and
make ``/readyz`` unready while no export succeeds (docs/architecture.md, "HTTP server")."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from cli_support import free_port, taskdaemon, write
from collector_support import answered, answering_posts
from pipeline_monitor_support import scope_labels
from schedule_support import scheduled_serve
from taskdaemon.pipeline.cli.telemetry import Telemetry
from taskdaemon.pipeline.server import HealthSources, create_app
from taskdaemon.pipeline.settings import Settings, load_settings

TelemetryFor = Callable[[Settings], Telemetry]  # the telemetry_for fixture (conftest.py)
SERIES = "taskdaemon_logs_export_failed_total"
PIPELINE = """
name: echo
stages:
  - name: say
    command: "echo one; echo two; echo three"
    triggers: [{manual: {approval_required: false}}]
"""


def _logs_to(monkeypatch: pytest.MonkeyPatch, endpoint: str, protocol: str) -> None:
    """OTLP log export (and nothing else) to ``endpoint`` over ``protocol``."""
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)


@pytest.fixture
def erring_collector() -> Iterator[str]:
    """A local OTLP/HTTP collector answering every export 500; yields its logs endpoint."""
    with answering_posts(answered(500)) as url:
        yield f"{url}/v1/logs"


def _emit_and_flush(telemetry: Telemetry, count: int) -> None:
    """Emit ``count`` log records through ``telemetry``'s logger provider, then flush it."""
    assert telemetry.logger_provider is not None
    logger = telemetry.logger_provider.get_logger("test")
    for index in range(count):
        logger.emit(body=f"record {index}")
    telemetry.logger_provider.force_flush()


def test_records_a_collector_answered_500_to_are_counted(
    erring_collector: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    telemetry_for: TelemetryFor,
) -> None:
    """Every record of a log export the collector answered 500 is counted on ``/metrics``."""
    _logs_to(monkeypatch, erring_collector, "http/protobuf")
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=2.0))
    _emit_and_flush(telemetry, 7)
    assert telemetry.registry is not None
    assert 7.0 == telemetry.registry.get_sample_value(SERIES, scope_labels(exporter="otlp"))


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_records_a_closed_port_did_not_take_are_counted(
    protocol: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, telemetry_for: TelemetryFor
) -> None:
    """Every record of a log export to a closed port is counted, whichever the protocol."""
    scheme_path = "/v1/logs" if protocol == "http/protobuf" else ""
    _logs_to(monkeypatch, f"http://127.0.0.1:{free_port()}{scheme_path}", protocol)
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=1.0))
    _emit_and_flush(telemetry, 4)
    assert telemetry.registry is not None
    assert 4.0 == telemetry.registry.get_sample_value(SERIES, scope_labels(exporter="otlp"))


async def test_readyz_names_the_log_exporter_a_collector_refuses(
    erring_collector: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    telemetry_for: TelemetryFor,
) -> None:
    """A log export the collector answered 500 makes ``/readyz`` 503, its ``log_export``
    naming the exporter, as ``span_export`` would; span export (none configured) stays ok."""
    _logs_to(monkeypatch, erring_collector, "http/protobuf")
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=2.0))
    _emit_and_flush(telemetry, 2)
    sources = HealthSources(
        export=telemetry.export_health.snapshot, log_export=telemetry.log_export_health.snapshot
    )
    transport = httpx.ASGITransport(app=create_app(health=sources))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/readyz")
    components = response.json()["components"]
    expected = (
        503,
        {"ok": True, "detail": "no span exporter configured"},
        {
            "ok": False,
            "detail": "1 failed export in 60s: otlp: export failed",
            "exporters": ["otlp"],
            "failures": 1,
            "window_seconds": 60.0,
        },
    )
    actual = (response.status_code, components["span_export"], components["log_export"])
    assert expected == actual


@pytest.mark.slow
def test_serve_is_unready_while_its_log_exports_fail(
    erring_collector: str, home: Path, tmp_path: Path
) -> None:
    """``serve`` wires its log exporters' health into ``/readyz``: once its scheduled run's
    records met the collector's 500 (the streak's line is the sync point), ``/readyz`` is 503
    with ``log_export`` naming the exporter."""
    pipeline = write(tmp_path / "echo.yaml", PIPELINE)
    with scheduled_serve(
        home,
        pipeline,
        "--max-runs=1",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=erring_collector,
        OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http/protobuf",
        OTEL_BLRP_SCHEDULE_DELAY="100",
    ) as served:
        served.line("log record exports to otlp fail")
        with pytest.raises(urllib.error.HTTPError) as unready:
            urllib.request.urlopen(f"http://127.0.0.1:{served.port}/readyz", timeout=30)
        answer = unready.value
        component = json.loads(answer.read())["components"]["log_export"]
        answer.close()
    expected = (503, False, ["otlp"])
    assert expected == (answer.code, component["ok"], component["exporters"]), component


def test_records_a_collector_took_are_not_counted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, telemetry_for: TelemetryFor
) -> None:
    """A collector answering 200 leaves the series at 0: nothing was lost (the series is there
    from the start, so Prometheus sees the first loss grow it)."""
    with answering_posts(answered(200)) as url:
        _logs_to(monkeypatch, f"{url}/v1/logs", "http/protobuf")
        telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=2.0))
        _emit_and_flush(telemetry, 3)
    assert telemetry.registry is not None
    assert 0.0 == telemetry.registry.get_sample_value(SERIES, scope_labels(exporter="otlp"))


@pytest.mark.slow
def test_run_says_how_many_log_records_were_not_exported(
    erring_collector: str, tmp_path: Path
) -> None:
    """`taskdaemon run` with a collector answering 500 succeeds and ends with one line saying
    how many log records it lost, and that line alone: logged after the log provider's
    shutdown, it once reached the provider too, which added a line of its own ("Shutdown
    called, ignoring Log.")."""
    (tmp_path / "echo.yaml").write_text(PIPELINE)
    done = taskdaemon(
        tmp_path / "home",
        "run",
        "echo.yaml",
        cwd=tmp_path,
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=erring_collector,
        OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http/protobuf",
    )
    said = [line for line in done.stderr.splitlines() if "log records were not exported" in line]
    after = done.stderr.partition(said[-1])[2].strip() if said else ""
    expected = (0, 1, "otlp: export failed", "")
    cause = said[0].rpartition("(")[2].rstrip(")") if said else ""
    actual = (done.returncode, len(said), cause, after)
    assert expected == actual, done.stderr
