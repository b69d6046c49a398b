"""Saying and counting what the embedded span store, and the span exporters, lost (and
the run log records the store's log writer lost, :func:`observe_dropped_logs`, and those the
log exporters failed to export, :class:`ExportFailures`).

Monitoring never stops a pipeline, so when the span store drops spans (a full disk, a store that
could not be opened) the run goes on; the loss is told three ways:

* the metric ``taskdaemon.spans.dropped`` (Prometheus ``taskdaemon_spans_dropped_total``), an
  observable counter over the store processors' ``dropped_spans``
  (:func:`observe_dropped_spans`);
* ``/readyz``: the ``span_store`` component is down while writes fail (the processors'
  ``health()``);
* one warning line when the process ends (:func:`report_lost_spans`): how many spans were not
  stored and why, those the writer had still not written when the exit's bound ran out
  included (a store another process holds locked: SQLite is asked whether it is), and how
  many were dropped before and after the writer's last "writes succeed again" line, when
  some were after it (its "so far" figure is then not the total). A store
  that could not be opened at all already said so in its one line at start
  (:func:`announce_unavailable_store`), so it is not repeated.

A span exporter's failed exports (a dead collector) are counted in
``taskdaemon.spans.export_failed`` (``taskdaemon_spans_export_failed_total``, per ``exporter``:
:func:`observe_failed_exports`), shown on ``/readyz``, and counted in one warning line
when the process ends (:func:`report_unexported_spans`). The exporters' own lines about it
are folded into these lines (shown at ``--log-level debug`` only:
``exporter_logs.ExportFailureFilter``): they say that a batch failed or is retried, never how
many spans, records or exports the process lost in all. While the process lives, the start and
the end of each streak of failed exports is one line too (``cli/export_streaks.py``).

A log exporter's failed exports (``OTEL_LOGS_EXPORTER``: a dead collector, an error answer)
are counted in ``taskdaemon.logs.export_failed`` (``taskdaemon_logs_export_failed_total``, per
``exporter``: :func:`observe_failed_log_exports` over :class:`ExportFailures`, which the
exporter wrapper of ``cli/observed_log_exporter.py`` feeds) and said in one warning line when
the process ends (:func:`report_unexported_logs`), beside the span store's. A metric
exporter's failed exports (``OTEL_METRICS_EXPORTER=otlp``) are counted the same way
(``cli/observed_metric_exporter.py``) and said in one line at exit
(:func:`report_unexported_metrics`).

The exit code of ``taskdaemon run`` stays the pipeline's: lost telemetry is not a failed run.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from taskdaemon import __version__
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.tracking.unavailable import UnavailableSpanStore
from taskdaemon.pipeline.wording import counted

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

    from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter, UnstoredLogs

__all__ = [
    "ExportFailures",
    "announce_unavailable_store",
    "observe_dropped_logs",
    "observe_dropped_spans",
    "observe_failed_exports",
    "observe_failed_log_exports",
    "report_lost_spans",
    "report_unexported_logs",
    "report_unexported_metrics",
    "report_unexported_spans",
    "unstored_cause",
]

_log = logging.getLogger("taskdaemon.spans")
# The log records' line under a name of its own: "taskdaemon.spans: 21 log records were not
# exported" read as if spans were meant.
_logs_log = logging.getLogger("taskdaemon.logs")
_metrics_log = logging.getLogger("taskdaemon.metrics")


def _stores(processors: Iterable[Any]) -> list[Any]:
    return [p for p in processors if isinstance(getattr(p, "dropped_spans", None), int)]


def observe_dropped_spans(
    meter_provider: MeterProvider, processors: Sequence[SpanProcessor]
) -> None:
    """Register ``taskdaemon.spans.dropped`` over the processors that count dropped spans
    (none: no instrument, there is no store to lose anything)."""
    stores = _stores(processors)
    if not stores:
        return

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(sum(store.dropped_spans for store in stores))

    _observe(
        meter_provider,
        t.METRIC_SPANS_DROPPED,
        t.UNIT_SPANS,
        "Spans the embedded span store could not keep (failed write, store unavailable)",
        observe,
    )


def observe_dropped_logs(
    meter_provider: MeterProvider, writer: SqliteLogWriter | UnstoredLogs
) -> None:
    """Register ``taskdaemon.logs.dropped`` over the store's log writer's ``dropped``: run log
    records it could not keep (its queue full, a failed write, the store not opened)."""

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(writer.dropped)

    _observe(
        meter_provider,
        t.METRIC_LOGS_DROPPED,
        t.UNIT_LOG_RECORDS,
        "Run log records the embedded store's log writer could not keep (queue full, failed write)",
        observe,
    )


def observe_failed_exports(
    meter_provider: MeterProvider,
    failed_spans: Callable[[], Mapping[str, int]],
    exporters: Sequence[str],
) -> None:
    """Register ``taskdaemon.spans.export_failed`` over ``failed_spans()`` (spans whose export
    failed, per exporter name; ``ExportHealth.failures.failed``). Each of ``exporters`` has its
    series from the start, at 0 until it fails (:func:`_from_zero`)."""

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        for exporter, spans in _from_zero(exporters, failed_spans()):
            yield Observation(spans, {"exporter": exporter})

    _observe(
        meter_provider,
        t.METRIC_SPANS_EXPORT_FAILED,
        t.UNIT_SPANS,
        "Spans whose export failed (the exporter answered an error or raised)",
        observe,
    )


class ExportFailures:
    """What failed to export, per exporter, with each exporter's last error: spans or log
    records (each signal's ``export_health.ExportHealth``) or metric exports
    (``cli/observed_metric_exporter.py``), one instance each, told by the exporters'
    streaks (``cli/export_streaks.py``; thread-safe: the exporters' threads record, a metric
    reader and the exit path read; never reset)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._errors: dict[str, str] = {}

    def record(self, exporter: str, count: int, error: str | None) -> None:
        """Add ``count`` lost by one failed export of ``exporter``, and why (``None``: the
        export went through, which changes no count)."""
        if error is None:
            return
        with self._lock:
            self._counts[exporter] = self._counts.get(exporter, 0) + count
            self._errors[exporter] = error

    def failed(self) -> dict[str, int]:
        """What failed to export since the start, per exporter."""
        with self._lock:
            return dict(self._counts)

    def last_errors(self) -> dict[str, str]:
        """Each failed exporter's last error."""
        with self._lock:
            return dict(self._errors)


def observe_failed_log_exports(
    meter_provider: MeterProvider, failures: ExportFailures, exporters: Sequence[str]
) -> None:
    """Register ``taskdaemon.logs.export_failed`` over ``failures`` (per exporter name). Each
    of ``exporters`` has its series from the start, at 0 until it fails (:func:`_from_zero`)."""

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        for exporter, records in _from_zero(exporters, failures.failed()):
            yield Observation(records, {"exporter": exporter})

    _observe(
        meter_provider,
        t.METRIC_LOGS_EXPORT_FAILED,
        t.UNIT_LOG_RECORDS,
        "Log records whose export failed (the exporter answered an error or raised)",
        observe,
    )


def _from_zero(names: Sequence[str], counts: Mapping[str, int]) -> Iterable[tuple[str, int]]:
    """Each of ``names`` with its count, 0 when it has none, then any other name counted.

    Decision: a loss counter's series exists from the start, at 0. Prometheus' ``increase()``
    sees only what a series grew by between two samples, so a series that first appears at its
    count (an exporter's first failed batch) hides that loss, and the alerts on "any loss in
    the last 10 minutes" (``TaskdaemonSpansLost``, ``TaskdaemonRunLogsLost``) stayed quiet for
    a single lost batch (``tests/pipeline_cli_span_losses_alerts_test.py``)."""
    for name in names:
        yield name, counts.get(name, 0)
    for name, count in counts.items():
        if name not in names:
            yield name, count


def _observe(
    meter_provider: MeterProvider,
    name: str,
    unit: str,
    description: str,
    callback: Callable[[CallbackOptions], Iterable[Observation]],
) -> None:
    """One of taskdaemon's own observable counters, under its scope."""
    meter = meter_provider.get_meter(t.SCOPE_NAME, __version__, schema_url=t.SCHEMA_URL)
    meter.create_observable_counter(name, callbacks=[callback], unit=unit, description=description)


def announce_unavailable_store(processors: Iterable[SpanProcessor]) -> None:
    """Log the one warning line of a span store that could not be opened (once per store)."""
    for processor in processors:
        if isinstance(processor, UnavailableSpanStore):
            processor.warn_once()


def unstored_cause(processors: Iterable[SpanProcessor]) -> str | None:
    """Why none of the process's runs is in the span store: it could not be opened (an
    ``UnavailableSpanStore`` stands in, which said the details at start), or
    ``OTEL_SDK_DISABLED`` is true (the SDK's own reading of it), so that no span is made at all;
    None else. ``run`` says it of its run as it ends. The SDK is let off rather than refused:
    the variable is the specification's way to turn telemetry off, and the run's work matters
    more than its record (docs/architecture.md, "Span sources")."""
    if any(isinstance(processor, UnavailableSpanStore) for processor in processors):
        return "the span store could not be opened"
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "OTEL_SDK_DISABLED is true"
    return None


def report_lost_spans(processors: Iterable[SpanProcessor]) -> int:
    """Log one warning line when the span store dropped spans after it opened; returns the
    count. Call it once the processors are shut down, so the count is final."""
    lost = 0
    causes: list[str] = []
    for store in _stores(processors):
        if isinstance(store, UnavailableSpanStore):
            continue
        unwritten, why = store.unwritten() if hasattr(store, "unwritten") else (0, "")
        if unwritten:  # still waiting to write at exit (another process's lock): lost now
            lost += unwritten
            causes.append(f"{getattr(store, 'path', 'span store')}: not written before exit: {why}")
        if not store.dropped_spans:
            continue
        lost += store.dropped_spans
        cause = getattr(store, "last_write_error", None)
        if cause:
            causes.append(f"{getattr(store, 'path', 'span store')}: {cause}{_since(store)}")
    if lost:
        _log.warning("%d spans were not stored (%s)", lost, "; ".join(causes) or "write failed")
    return lost


def _since(store: Any) -> str:
    """``; 46 before writes last succeeded again, 4 after`` when the store dropped spans since
    its last recovery line (which said 46 so far): a full disk that fills again. Without it the
    exit line's count (50) read as contradicting that line's."""
    recovered = getattr(store, "dropped_at_recovery", None)
    if recovered is None or store.dropped_spans <= recovered:
        return ""
    return (
        f"; {recovered} before writes last succeeded again, {store.dropped_spans - recovered} after"
    )


def report_unexported_spans(
    failed_spans: Callable[[], Mapping[str, int]],
    last_errors: Callable[[], Mapping[str, str]] = dict,
) -> int:
    """Log one warning line when span exports failed (``ExportHealth.failures.failed``: per
    exporter); returns the count. Call it once the tracer provider is shut down, so the count
    is final. A ``taskdaemon run`` without ``--serve`` has no ``/metrics`` or ``/readyz``, and
    the exporter's own lines are folded away (the module docstring). An exporter that was off
    (its ``last_errors`` one ``export_streaks.OFF``) is said to be, with its cause in a word."""
    failed = {name: spans for name, spans in failed_spans().items() if spans}
    lost = sum(failed.values())
    if lost:
        errors = last_errors()
        causes = "; ".join(f"{name}: {_span_cause(errors.get(name))}" for name in failed)
        _log.warning("%s (%s)", _not_exported(lost, "span"), causes)
    return lost


def _span_cause(error: str | None) -> str:
    """An exporter that was off, said so; else ``export failed``: a span export's own error
    (``export of 3 spans failed``) says no more."""
    from taskdaemon.pipeline.cli.export_streaks import OFF  # noqa: PLC0415 - start-up time

    return error if error is not None and error.startswith(OFF) else "export failed"


def report_unexported_logs(failures: ExportFailures | None) -> int:
    """Log one warning line when log exports failed (``None``: no log exporter); returns the
    count. Call it once the logger provider is shut down, so the count is final."""
    return _report_failures(failures, _logs_log, lambda lost: _not_exported(lost, "log record"))


def _not_exported(count: int, noun: str) -> str:
    """``1 span was not exported``, ``2 spans were not exported``."""
    return f"{counted(count, noun)} {'was' if count == 1 else 'were'} not exported"


def report_unexported_metrics(failures: ExportFailures | None) -> int:
    """Log one warning line when metric exports failed (``None``: no metric exporter but
    Prometheus); returns how many exports failed. Call it once the meter provider is shut
    down, so the count is final."""
    return _report_failures(
        failures, _metrics_log, lambda failed: f"{counted(failed, 'metric export')} failed"
    )


def _report_failures(
    failures: ExportFailures | None, log: logging.Logger, said: Callable[[int], str]
) -> int:
    """One warning line, ``said(count)`` and each exporter's last error, when ``failures``
    counted any; the count (0 for None: no such exporter)."""
    if failures is None:
        return 0
    count = sum(failures.failed().values())
    if count:
        causes = "; ".join(f"{name}: {error}" for name, error in failures.last_errors().items())
        log.warning("%s (%s)", said(count), causes)
    return count
