"""A metric exporter that counts its failed exports (``cli/telemetry.py`` wraps each one).

A metric export that fails (a dead collector, an error answer) is said in one warning line at
exit (``span_losses.report_unexported_metrics``), as lost spans and log records are: the
exporters' own lines about it are folded away (``exporter_logs.ExportFailureFilter``), so
without this count nothing would say that metrics were not exported; while it runs, one line
says when exports start to fail and one when they succeed again (``cli/export_streaks.py``).
Exports are counted, not points: a later export carries the cumulative points again, so what
a failed export lost is how fresh the collector's view is. It lives apart from
``cli/telemetry.py`` because it subclasses the metrics SDK's exporter, which only a process
with a metric reader imports (start-up time).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from taskdaemon.pipeline.cli.export_streaks import ExportStreak

__all__ = ["ObservedMetricExporter", "UnbuiltMetricExporter"]


class ObservedMetricExporter(MetricExporter):
    """Delegates to ``inner`` (with its preferred temporality and aggregation, which the
    reader takes from its exporter); tells ``streak`` of each export, a failed one (an error
    result, or an exception, which is raised on) as one lost."""

    def __init__(self, inner: MetricExporter, streak: ExportStreak) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._streak = streak

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._streak.failed(1, f"{type(exc).__name__}: {exc}")
            raise
        if result is MetricExportResult.SUCCESS:
            self._streak.succeeded()
        else:
            self._streak.failed(1, "export failed")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class UnbuiltMetricExporter(MetricExporter):
    """Stands in for a metric exporter that could not be built: every export fails
    (``cli/unbuilt_exporters.py``)."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to release."""
