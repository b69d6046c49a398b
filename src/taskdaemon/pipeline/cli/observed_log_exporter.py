"""A log exporter that counts what it failed to export (``cli/telemetry.py`` wraps each one).

Monitoring never stops a pipeline, so a log export that fails (a dead collector, an error
answer) loses its records; :class:`ObservedLogExporter` tells its exporter's streak
(``cli/export_streaks.py``), which says when exports start to fail and succeed again and
records each outcome in the logs' ``export_health.ExportHealth``: the records per exporter, which
``taskdaemon.logs.export_failed`` and the warning line at exit read, and the recent failures,
which ``/readyz`` judges (``log_export``). It lives apart from
``cli/telemetry.py`` because it subclasses the logs SDK's exporter, which only a process
with a log exporter imports (start-up time).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from taskdaemon.pipeline.cli.export_streaks import ExportStreak

__all__ = ["ObservedLogExporter", "UnbuiltLogExporter"]


class ObservedLogExporter(LogRecordExporter):
    """Delegates to ``inner``; tells ``streak`` of each export, a failed one (an error result,
    or an exception, which is raised on) with its records."""

    def __init__(self, inner: LogRecordExporter, streak: ExportStreak) -> None:
        self._inner = inner
        self._streak = streak

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            result = self._inner.export(batch)
        except Exception as exc:
            self._streak.failed(len(batch), f"{type(exc).__name__}: {exc}")
            raise
        if result is LogRecordExportResult.SUCCESS:
            self._streak.succeeded()
        else:
            self._streak.failed(len(batch), "export failed")
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it untyped

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class UnbuiltLogExporter(LogRecordExporter):
    """Stands in for a log exporter that could not be built: every export fails
    (``cli/unbuilt_exporters.py``)."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
