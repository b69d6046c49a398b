"""An exporter that cannot be built turns off alone: the rest of the telemetry stays.

An exporter's constructor can raise on what it reads from the environment past the checks at
start (a gRPC credential provider that returns no credentials, or raises), and
``build_telemetry`` raised with it: ``run`` then went on without any telemetry, its span
store and run log writer included, and printed a run id that no view (``runs show``,
``logs``, ``dag``, the web page) found. Now :func:`built` answers a stand-in in its place, one
that fails every export, and says in one line which exporter is off and why
(``ExportStreak.off``). The stand-in goes through the same wrapper and batch processor as the
exporter would have, so what it would have exported is counted where every failed export's
loss is (``taskdaemon.spans.export_failed`` and its siblings, ``/readyz``'s ``span_export``
and ``log_export``) and said in the line at exit (``span_losses``), as off rather than as
failed exports (``otlp: off, it could not be built (RuntimeError)``). The span store, fed by its
own processor, never depended on an exporter.

The log and metric stand-ins live beside their wrappers (``cli/observed_log_exporter.py``,
``cli/observed_metric_exporter.py``), whose SDK modules a process without such an exporter
never imports (start-up time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from taskdaemon.pipeline.cli.export_streaks import ExportStreak

__all__ = ["UnbuiltSpanExporter", "built"]

Exporter = TypeVar("Exporter")


def built(
    make: Callable[[], Exporter], stand_in: Callable[[], Exporter], streak: ExportStreak
) -> Exporter:
    """``make()``, or, when it raises, ``stand_in()`` with the one line said (``streak.off``)."""
    try:
        return make()
    except Exception as exc:  # any: an exporter's constructor is not ours (module docstring)
        streak.off(f"{type(exc).__name__}: {exc}", type(exc).__name__)
        return stand_in()


class UnbuiltSpanExporter(SpanExporter):
    """Stands in for a span exporter that could not be built: every export fails."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
