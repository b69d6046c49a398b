"""What a user is told when spans or log records were lost: the loss counters read through a
real meter provider, and the one warning line each report gives when the process ends."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from taskdaemon import __version__
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.cli.span_losses import (
    ExportFailures,
    announce_unavailable_store,
    observe_dropped_logs,
    observe_dropped_spans,
    observe_failed_exports,
    observe_failed_log_exports,
    report_lost_spans,
    report_unexported_logs,
    report_unexported_metrics,
    report_unexported_spans,
)
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter
from taskdaemon.pipeline.tracking.unavailable import UnavailableSpanStore


@pytest.fixture
def meters() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    """A meter provider and the reader that reads its metrics back."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


def _metrics(reader: InMemoryMetricReader) -> dict[str, Any]:
    """Each metric read now by name, with the scope that made it."""
    data = reader.get_metrics_data()
    found: dict[str, Any] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = (scope.scope, metric)
    return found


def _points(metric: Any) -> dict[tuple[tuple[str, Any], ...], int]:
    return {tuple(sorted(p.attributes.items())): p.value for p in metric.data.data_points}


class _Store:
    """A span store processor as the reports read one (duck-typed: ``dropped_spans`` and,
    optionally, ``path``, ``last_write_error``, ``unwritten()``)."""

    def __init__(self, dropped: int | None, **fields: Any) -> None:
        self.dropped_spans = dropped
        for name, value in fields.items():
            setattr(self, name, value)


def _unavailable(spans: int) -> UnavailableSpanStore:
    """A store that could not be opened, ``spans`` spans ended into it."""
    store = UnavailableSpanStore("/nowhere/spans.db", "cannot open /nowhere/spans.db")
    provider = TracerProvider()
    provider.add_span_processor(store)
    tracer = provider.get_tracer("test")
    for _ in range(spans):
        tracer.start_span("s").end()
    provider.shutdown()
    return store


def test_dropped_spans_are_the_sum_over_the_stores(
    meters: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    """Over the processors that count dropped spans (an int): not another processor."""
    provider, reader = meters
    stores = [_unavailable(2), _Store(3), object(), _Store(None)]
    observe_dropped_spans(provider, stores)  # type: ignore[arg-type]
    scope, metric = _metrics(reader)[t.METRIC_SPANS_DROPPED]
    assert (scope.name, scope.version, scope.schema_url) == (
        t.SCOPE_NAME,
        __version__,
        t.SCHEMA_URL,
    )
    assert (metric.unit, metric.description) == (
        t.UNIT_SPANS,
        "Spans the embedded span store could not keep (failed write, store unavailable)",
    )
    assert metric.data.is_monotonic
    assert _points(metric) == {(): 5}


def test_no_store_no_dropped_spans_instrument(
    meters: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, reader = meters
    observe_dropped_spans(provider, [object()])  # type: ignore[list-item]
    assert t.METRIC_SPANS_DROPPED not in _metrics(reader)


def test_dropped_log_records_are_the_writers(
    meters: tuple[MeterProvider, InMemoryMetricReader], tmp_path: Path
) -> None:
    provider, reader = meters
    writer = SqliteLogWriter(tmp_path / "spans.db")
    try:
        observe_dropped_logs(provider, writer)
        writer.dropped = 7
        scope, metric = _metrics(reader)[t.METRIC_LOGS_DROPPED]
    finally:
        writer.close()
    assert scope.name == t.SCOPE_NAME
    assert (metric.unit, metric.description) == (
        t.UNIT_LOG_RECORDS,
        "Run log records the embedded store's log writer could not keep (queue full, failed write)",
    )
    assert _points(metric) == {(): 7}


def test_failed_exports_have_a_series_per_exporter_from_zero(
    meters: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, reader = meters
    failed = {"otlp": 4, "extra": 2}
    observe_failed_exports(provider, lambda: failed, ["console", "otlp"])
    scope, metric = _metrics(reader)[t.METRIC_SPANS_EXPORT_FAILED]
    assert scope.name == t.SCOPE_NAME
    assert (metric.unit, metric.description) == (
        t.UNIT_SPANS,
        "Spans whose export failed (the exporter answered an error or raised)",
    )
    assert _points(metric) == {
        (("exporter", "console"),): 0,
        (("exporter", "otlp"),): 4,
        (("exporter", "extra"),): 2,
    }


def test_failed_log_exports_are_counted_per_exporter_with_the_last_error(
    meters: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, reader = meters
    failures = ExportFailures()
    observe_failed_log_exports(provider, failures, ["otlp", "console"])
    _, metric = _metrics(reader)[t.METRIC_LOGS_EXPORT_FAILED]
    assert _points(metric) == {(("exporter", "otlp"),): 0, (("exporter", "console"),): 0}
    failures.record("otlp", 3, "connection refused")
    failures.record("otlp", 2, "503 Service Unavailable")
    failures.record("other", 1, "timed out")
    scope, metric = _metrics(reader)[t.METRIC_LOGS_EXPORT_FAILED]
    assert scope.name == t.SCOPE_NAME
    assert (metric.unit, metric.description) == (
        t.UNIT_LOG_RECORDS,
        "Log records whose export failed (the exporter answered an error or raised)",
    )
    assert _points(metric) == {
        (("exporter", "otlp"),): 5,
        (("exporter", "console"),): 0,
        (("exporter", "other"),): 1,
    }
    assert failures.failed() == {"otlp": 5, "other": 1}
    assert failures.last_errors() == {"otlp": "503 Service Unavailable", "other": "timed out"}


def test_an_unavailable_store_is_announced_once(caplog: pytest.LogCaptureFixture) -> None:
    store = UnavailableSpanStore("/nowhere/spans.db", "cannot open /nowhere/spans.db")
    with caplog.at_level(logging.WARNING):
        announce_unavailable_store([_Store(0), store])  # type: ignore[list-item]
        announce_unavailable_store([store])
    assert [r.getMessage() for r in caplog.records] == [
        "span store unavailable, spans are not stored: cannot open /nowhere/spans.db"
    ]


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    """The reports' lines (not the unavailable store's own, logged as its first span ends)."""
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "taskdaemon.spans"]


def test_lost_spans_are_said_in_one_line_with_their_causes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Spans still unwritten at exit and spans dropped count; an unavailable store (said at
    start) and a store that lost nothing do not."""
    stores = [
        _Store(2, path="/a/spans.db", last_write_error="disk full"),
        _Store(0, path="/b/spans.db", last_write_error="old error"),
        _Store(
            1, path="/c/spans.db", unwritten=lambda: (4, "database is locked by another process")
        ),
        _Store(0, unwritten=lambda: (0, "")),
        _unavailable(5),
    ]
    with caplog.at_level(logging.WARNING):
        assert report_lost_spans(stores) == 7  # type: ignore[arg-type]
    assert _lines(caplog) == [
        (
            logging.WARNING,
            "7 spans were not stored (/a/spans.db: disk full; /c/spans.db: not written before"
            " exit: database is locked by another process)",
        )
    ]


def test_lost_spans_without_a_cause_or_path(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert report_lost_spans([_Store(3)]) == 3  # type: ignore[list-item]
        assert report_lost_spans([_Store(0, unwritten=lambda: (2, "locked"))]) == 2  # type: ignore[list-item]
        assert report_lost_spans([_Store(0), _unavailable(1)]) == 0  # type: ignore[list-item]
        unavailable_first = [_unavailable(1), _Store(2, last_write_error="disk full")]
        assert report_lost_spans(unavailable_first) == 2  # type: ignore[arg-type]
    assert [line[1] for line in _lines(caplog)] == [
        "3 spans were not stored (write failed)",
        "2 spans were not stored (span store: not written before exit: locked)",
        "2 spans were not stored (span store: disk full)",
    ]


def test_unexported_spans_name_the_exporters_that_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert report_unexported_spans(lambda: {"otlp": 3, "console": 0, "zipkin": 2}) == 5
        assert report_unexported_spans(lambda: {"otlp": 0}) == 0
        assert report_unexported_spans(lambda: {"otlp": 1}) == 1
    assert _lines(caplog) == [
        (
            logging.WARNING,
            "5 spans were not exported (otlp: export failed; zipkin: export failed)",
        ),
        (logging.WARNING, "1 span was not exported (otlp: export failed)"),
    ]


def test_unexported_log_records_name_each_exporters_last_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Said under a logger of their own: under the spans' one, the line read "taskdaemon.spans:
    7 log records were not exported"."""
    failures = ExportFailures()
    with caplog.at_level(logging.WARNING):
        assert report_unexported_logs(None) == 0
        assert report_unexported_logs(failures) == 0
        failures.record("otlp", 3, "connection refused")
        failures.record("other", 4, "timed out")
        assert report_unexported_logs(failures) == 7
        one = ExportFailures()
        one.record("otlp", 1, "timed out")
        assert report_unexported_logs(one) == 1
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "taskdaemon.logs",
            logging.WARNING,
            "7 log records were not exported (otlp: connection refused; other: timed out)",
        ),
        ("taskdaemon.logs", logging.WARNING, "1 log record was not exported (otlp: timed out)"),
    ]


def test_failed_metric_exports_are_said_under_the_metrics_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No metric exporter but Prometheus, or none failed: no line; else one with each
    exporter's last error."""
    failures = ExportFailures()
    with caplog.at_level(logging.WARNING):
        assert report_unexported_metrics(None) == 0
        assert report_unexported_metrics(failures) == 0
        failures.record("otlp", 1, "connection refused")
        assert report_unexported_metrics(failures) == 1
        failures.record("otlp", 1, "export failed")
        failures.record("console", 1, "ValueError: closed")
        assert report_unexported_metrics(failures) == 3
    warning = ("taskdaemon.metrics", logging.WARNING)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (*warning, "1 metric export failed (otlp: connection refused)"),
        (*warning, "3 metric exports failed (otlp: export failed; console: ValueError: closed)"),
    ]
