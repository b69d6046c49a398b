"""A metric exporter's failed exports are counted per exporter (and said at exit); what the
wrapped exporter prefers (delta or cumulative temporality) is still what is sent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from cli_support import free_port
from collector_support import answered, answering_posts
from taskdaemon.pipeline.cli.telemetry import Telemetry
from taskdaemon.pipeline.settings import Settings, load_settings

TelemetryFor = Callable[[Settings], Telemetry]  # the telemetry_for fixture (conftest.py)


def _metrics_to(monkeypatch: pytest.MonkeyPatch, endpoint: str, protocol: str) -> None:
    """OTLP metric export (and nothing else) to ``endpoint`` over ``protocol``."""
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def _count_and_flush(telemetry: Telemetry, times: int) -> None:
    """Add 1 to a counter, then export what the reader collects, ``times`` times."""
    counter = telemetry.meter_provider.get_meter("test").create_counter("test.things")
    for _ in range(times):
        counter.add(1)
        telemetry.meter_provider.force_flush()  # type: ignore[attr-defined]  # the SDK's


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_each_export_a_closed_port_did_not_take_is_counted(
    protocol: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, telemetry_for: TelemetryFor
) -> None:
    path = "/v1/metrics" if protocol == "http/protobuf" else ""
    _metrics_to(monkeypatch, f"http://127.0.0.1:{free_port()}{path}", protocol)
    telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=1.0))
    _count_and_flush(telemetry, 2)
    failures = telemetry.metric_export_failures
    assert failures is not None
    assert ({"otlp": 2}, {"otlp": "export failed"}) == (failures.failed(), failures.last_errors())


def test_exports_a_collector_took_are_not_counted_and_keep_their_temporality(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, telemetry_for: TelemetryFor
) -> None:
    """With ``delta`` preferred, the OTLP exporter's counters are sent as deltas: the wrapper
    hands the reader its exporter's preference (the reader asks its exporter directly)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    received: list[bytes] = []
    with answering_posts(answered(200), received) as url:
        _metrics_to(monkeypatch, f"{url}/v1/metrics", "http/protobuf")
        telemetry = telemetry_for(load_settings(home=tmp_path, export_timeout=2.0))
        _count_and_flush(telemetry, 2)
    temporalities = set()
    for body in received:
        request = ExportMetricsServiceRequest.FromString(body)
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                temporalities.update(
                    metric.sum.aggregation_temporality
                    for metric in scope.metrics
                    if metric.name == "test.things"
                )
    failures = telemetry.metric_export_failures
    assert failures is not None
    expected = ({}, {AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA})
    assert expected == (failures.failed(), temporalities)
