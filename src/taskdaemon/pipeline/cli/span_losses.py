"""Saying and counting what the embedded span store, and the span exporters, lost (and
counting the run log records the store's log writer lost: :func:`observe_dropped_logs`).

Monitoring never stops a pipeline, so when the span store drops spans (a full disk, a store that
could not be opened) the run goes on; the loss is told three ways:

* the metric ``taskdaemon.spans.dropped`` (Prometheus ``taskdaemon_spans_dropped_total``), an
  observable counter over the store processors' ``dropped_spans``
  (:func:`observe_dropped_spans`);
* ``/readyz``: the ``span_store`` component is down while writes fail (the processors'
  ``health()``);
* one warning line when the process ends (:func:`report_lost_spans`): how many spans were not
  stored and why. A store that could not be opened at all already said so in its one line at
  start (:func:`announce_unavailable_store`), so it is not repeated.

A span exporter's failed exports (a dead collector) are counted in
``taskdaemon.spans.export_failed`` (``taskdaemon_spans_export_failed_total``, per ``exporter``:
:func:`observe_failed_exports`), said by the exporter's own log line (once per five minutes,
``telemetry.RepeatedLogFilter``) and shown on ``/readyz``.

The exit code of ``taskdaemon run`` stays the pipeline's: lost telemetry is not a failed run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from taskdaemon import __version__
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.tracking.unavailable import UnavailableSpanStore

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

    from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

__all__ = [
    "announce_unavailable_store",
    "observe_dropped_logs",
    "observe_dropped_spans",
    "observe_failed_exports",
    "report_lost_spans",
]

_log = logging.getLogger("taskdaemon.spans")


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


def observe_dropped_logs(meter_provider: MeterProvider, writer: SqliteLogWriter) -> None:
    """Register ``taskdaemon.logs.dropped`` over the store's log writer's ``dropped``: run log
    records it could not keep (its queue full, a failed write)."""

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
    meter_provider: MeterProvider, failed_spans: Callable[[], Mapping[str, int]]
) -> None:
    """Register ``taskdaemon.spans.export_failed`` over ``failed_spans()`` (spans whose export
    failed, per exporter name; ``ExportHealth.failed_spans``). An exporter that never failed
    has no series until it does."""

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        for exporter, spans in failed_spans().items():
            yield Observation(spans, {"exporter": exporter})

    _observe(
        meter_provider,
        t.METRIC_SPANS_EXPORT_FAILED,
        t.UNIT_SPANS,
        "Spans whose export failed (the exporter answered an error or raised)",
        observe,
    )


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


def report_lost_spans(processors: Iterable[SpanProcessor]) -> int:
    """Log one warning line when the span store dropped spans after it opened; returns the
    count. Call it once the processors are shut down, so the count is final."""
    lost = 0
    causes: list[str] = []
    for store in _stores(processors):
        if isinstance(store, UnavailableSpanStore) or not store.dropped_spans:
            continue
        lost += store.dropped_spans
        cause = getattr(store, "last_write_error", None)
        if cause:
            causes.append(f"{getattr(store, 'path', 'span store')}: {cause}")
    if lost:
        _log.warning("%d spans were not stored (%s)", lost, "; ".join(causes) or "write failed")
    return lost
