"""The OpenTelemetry composition root: SDK providers built from :class:`Settings`.

:func:`build_telemetry` is the one place that constructs ``TracerProvider``, ``MeterProvider`` and
``LoggerProvider`` for the ``taskdaemon`` command (tests and embedding applications call it too).
What it builds:

* **Resource**: ``Resource.create`` (so ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` and
  the SDK's detectors apply) with ``service.name`` (default ``taskdaemon``) and
  ``service.version``.
* **Spans**: first the span store's processors (:func:`store_span_processors`, keyed by
  ``TASKDAEMON_SPAN_SOURCE``), then any ``extra_span_processors`` given by the caller, then one
  ``BatchSpanProcessor`` per ``OTEL_TRACES_EXPORTER`` entry (``otlp`` = gRPC or HTTP per
  ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL``, ``console``). Each exporter is wrapped so its
  results feed an ``ExportHealth`` (``/readyz``'s ``span_export``: ``cli/export_health.py``),
  and gets ``TASKDAEMON_EXPORT_TIMEOUT`` as its per-request timeout unless
  ``OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT`` is set; a gRPC one is handed its compression (each
  exporter is made by ``cli/otel_exporters.py``). An exporter (of any signal) that cannot be
  built turns off alone, said in one line, the rest built as asked (``cli/unbuilt_exporters.py``).
* **Sampling**: none, whatever ``OTEL_TRACES_SAMPLER`` says. A run's spans are its history,
  the store's and every view's: a sampled-out run was a run id that ``run -q`` printed and
  no view found. Sample the export in the Collector instead (tail sampling).
* **Span limits**: the SDK's, except that a span keeps ``tracking.spans.WRITTEN_SPAN_ITEMS``
  events and links rather than 128 unless ``OTEL_SPAN_EVENT_COUNT_LIMIT`` /
  ``OTEL_SPAN_LINK_COUNT_LIMIT`` say otherwise (:func:`span_limits`).
* **Metrics**: a ``PrometheusMetricReader`` on a *private* ``CollectorRegistry``
  (:attr:`Telemetry.registry`, served by ``server.py`` on ``/metrics``) when
  ``OTEL_METRICS_EXPORTER`` includes ``prometheus`` (the default), plus a
  ``PeriodicExportingMetricReader`` for ``otlp``/``console``. One reader per registry: naming
  ``prometheus`` never starts the SDK's own server on 9464; it is our reader, and a note says so.
  Views pin every ``pipeline.*``/``cicd.*`` histogram (and the SDK's own ``otel.sdk.*``
  durations) to the seconds buckets of
  :data:`~taskdaemon.pipeline.telemetry.DURATION_BUCKETS` (never exponential).
* **Logs**: a ``LoggerProvider`` with a batch processor when ``OTEL_LOGS_EXPORTER`` is set,
  each exporter wrapped as the span exporters are, its results feeding an ``ExportHealth``
  of its own (``/readyz``'s ``log_export``); ``logs.configure_logging`` attaches the handler.

Start-up time: the SDK parts are imported only when the settings ask for them: the metrics SDK
only with a metric reader to feed, the logs SDK only with a log exporter, each exporter only when
named. With ``serve_metrics=False`` (``taskdaemon run`` without ``--serve``: nobody could scrape
``/metrics``) the ``prometheus`` reader is not built; with no other metric exporter the meter
provider is then the API's no-op one, so a plain ``run`` loads neither the metrics SDK nor the
Prometheus exporter.

A dead or slow collector never blocks a stage: spans are queued by the batch processor (ending a
span is a deque append), and the exporters' lines about failed exports are folded into
taskdaemon's own at exit (shown at ``--log-level debug``, then once per five minutes of a
set-up with a count of what was suppressed, per signal: ``cli/exporter_logs.py``). What is
lost is counted: the spans of every failed export in ``taskdaemon.spans.export_failed``, per
exporter (``span_losses.observe_failed_exports``), the log records of every failed
log export in ``taskdaemon.logs.export_failed`` (``cli/observed_log_exporter.py``), and the
failed exports of every OTLP or console metric exporter (``cli/observed_metric_exporter.py``),
each said in one line at exit (``span_losses``) and, while the process lives, in one line when
an exporter's exports start to fail and one when they succeed again (``cli/export_streaks.py``;
not once :meth:`Telemetry.shutdown` began). The batch span
processors and the OTLP span exporters are also given the meter provider, so when the SDK's
own self-observability metrics are switched on (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true``;
off by default upstream) they reach the same readers: the spans a full queue dropped
(``otel.sdk.processor.span.processed`` with ``error.type`` ``queue_full``), the exports by
``error.type``, the queue's size and capacity.
Without an exporter there is no batch processor, and nothing is added.

Decision: the ``console`` exporters write to stderr, not to the SDK's default stdout: a
command's stdout is its result (``run -q``'s run id, a summary, ``--json``), which scripts read,
and the exports made it unreadable; stderr is where taskdaemon's diagnostics go.

:meth:`Telemetry.shutdown` flushes and shuts everything down within ``TASKDAEMON_EXPORT_TIMEOUT``
seconds in all (one helper thread a provider, all at once, so that a dead collector's retries
for one signal do not spend the others' time; past the bound they are abandoned, a warning says
that what was not exported yet is dropped, and the process exits anyway: the SDK does not say
how much its queues still held). It is safe to call twice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.environment_variables import (
    OTEL_SPAN_EVENT_COUNT_LIMIT,
    OTEL_SPAN_LINK_COUNT_LIMIT,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from taskdaemon import __version__
from taskdaemon.pipeline.cli.export_health import ExportHealth
from taskdaemon.pipeline.cli.export_streaks import ExportStreak, Signal, Tally
from taskdaemon.pipeline.cli.exporter_logs import (
    EXPORTER_LOGGERS,
    RepeatedLogFilter,
    drop_sdk_duplicate_filters,
    install_export_failure_filter,
    install_repeated_log_filter,
)
from taskdaemon.pipeline.cli.masked_span_exporter import MaskedSpanExporter
from taskdaemon.pipeline.cli.otel_exporters import log_exporter, metric_exporter, span_exporter
from taskdaemon.pipeline.cli.span_losses import (
    ExportFailures,
    observe_dropped_spans,
    observe_failed_exports,
    observe_failed_log_exports,
)
from taskdaemon.pipeline.cli.unbuilt_exporters import UnbuiltSpanExporter, built
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.settings import Settings
from taskdaemon.pipeline.telemetry import DURATION_BUCKETS
from taskdaemon.pipeline.tracking.spans import WRITTEN_SPAN_ITEMS
from taskdaemon.pipeline.tracking.store_processor import store_processor_for
from taskdaemon.pipeline.tracking.unavailable import UnavailableSpanStore
from taskdaemon.pipeline.tracking.writer import SqliteSpanProcessor
from taskdaemon.pipeline.wording import counted

if TYPE_CHECKING:  # imported where built (see "Start-up time" above)
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.metrics.view import View
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from prometheus_client import CollectorRegistry

    from taskdaemon.pipeline.tracking._health import StoreHealth

__all__ = [
    "EXPORTER_LOGGERS",
    "RepeatedLogFilter",
    "Telemetry",
    "build_telemetry",
    "install_repeated_log_filter",
    "store_span_processors",
]

_log = logging.getLogger(__name__)

#: What each signal's shutdown step drops when it is cut: the words of the warning.
_LOST = {"traces": "spans", "metrics": "metrics", "logs": "log records"}


def _unfinished(steps: Mapping[str, object], workers: Sequence[threading.Thread]) -> str:
    """The data of the shutdown steps still running, ``spans and log records are``: a cut
    shutdown names what it drops, not every signal (a hung log endpoint alone said its spans
    and metrics were dropped, of a run that exported neither)."""
    lost = [
        _LOST[signal] for signal, worker in zip(steps, workers, strict=True) if worker.is_alive()
    ]
    lost = lost or list(_LOST.values())  # interrupted between two checks: say all
    head = ", ".join(lost[:-1])
    return f"{head} and {lost[-1]} are" if head else f"{lost[0]} are"


# --- span exports observed ---------------------------------------------------------------------


class _ObservedSpanExporter(SpanExporter):
    """Delegates to ``inner`` and tells ``streak`` of each export's result."""

    def __init__(self, inner: SpanExporter, streak: ExportStreak) -> None:
        self._inner = inner
        self._streak = streak

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception as exc:
            self._streak.failed(len(spans), f"{type(exc).__name__}: {exc}")
            raise
        if result is SpanExportResult.SUCCESS:
            self._streak.succeeded()
        else:
            self._streak.failed(len(spans), f"export of {counted(len(spans), 'span')} failed")
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


# --- the span store's slot -----------------------------------------------------------------------


def store_span_processors(settings: Settings) -> list[SpanProcessor]:
    """The span processors that persist spans for ``settings.span_source``.

    The SQLite span store registers its processor here for ``sqlite:///`` sources (remote
    sources such as ``tempo+http://`` are read-only: spans reach them through OTLP). A processor
    with a ``health()`` method (returning an object with ``ok: bool`` and ``detail: str``) is
    reported by ``/readyz`` as the ``span_store`` component.

    A store that cannot be opened (corrupt, read-only, a directory, a newer schema, a full
    disk) must not stop the pipeline: an ``UnavailableSpanStore`` takes its place, reporting the
    store down and counting the spans it could not keep.
    """
    try:
        processor: SpanProcessor | None = store_processor_for(settings)
    except SpanSourceError as exc:
        processor = UnavailableSpanStore(str(settings.span_source), str(exc))
    return [] if processor is None else [processor]


# --- providers -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Telemetry:
    """The SDK providers of one process, and what ``/metrics`` and ``/readyz`` need from them."""

    settings: Settings
    resource: Resource
    tracer_provider: TracerProvider
    #: The SDK's ``MeterProvider``; the API's no-op one when no metric reader was built.
    meter_provider: metrics_api.MeterProvider
    logger_provider: LoggerProvider | None
    #: The Prometheus reader's registry; None when no Prometheus reader was built.
    registry: CollectorRegistry | None
    export_health: ExportHealth
    #: Log record export's outcomes (no exporters without a log exporter).
    log_export_health: ExportHealth
    span_processors: tuple[SpanProcessor, ...]
    notes: tuple[str, ...] = ()
    #: The metric exporters' failed exports; None without an OTLP or console metric exporter.
    metric_export_failures: ExportFailures | None = None
    #: Set as the shutdown starts: no failing exporter starts a streak line after it.
    closing: threading.Event = field(default_factory=threading.Event, repr=False)
    _closed: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _shutdown_workers: tuple[threading.Thread, ...] = field(default=(), repr=False)

    @property
    def serves_prometheus(self) -> bool:
        """True when ``registry`` has our Prometheus reader (``/metrics`` has data)."""
        return self.registry is not None

    def store_health(self) -> StoreHealth | None:
        """The span store processor's ``health()`` answer, or ``None`` without a store."""
        for processor in self.span_processors:
            if isinstance(processor, SqliteSpanProcessor | UnavailableSpanStore):
                return processor.health()
        return None

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and shut down every provider within ``timeout`` seconds (default: the export
        timeout setting). Returns True when everything finished in time; False past the bound or
        when Ctrl-C (``KeyboardInterrupt``) stopped the wait. Safe to call twice."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        self.closing.set()  # what fails from now on is the exit line's (``export_streaks``)
        budget = self.settings.export_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget

        def remaining_ms() -> int:
            return max(0, int((deadline - time.monotonic()) * 1000))

        def shutdown_meters() -> None:
            shutdown = getattr(self.meter_provider, "shutdown", None)  # the no-op one has none
            if shutdown is not None:
                shutdown(timeout_millis=remaining_ms())

        def guarded(step: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                try:
                    step()
                except Exception:  # telemetry must never break the exit path
                    _log.exception("telemetry shutdown step failed")

            return run

        # One thread a provider, all at once: each exporter's final export may spend the
        # export timeout in retries (a dead collector), and in turn the second and third found
        # the bound spent, so what they lost went uncounted.
        steps = {"metrics": shutdown_meters, "traces": self.tracer_provider.shutdown}
        if self.logger_provider is not None:
            steps["logs"] = self.logger_provider.shutdown
        workers = tuple(
            threading.Thread(
                target=guarded(step), name=f"taskdaemon-telemetry-shutdown-{signal}", daemon=True
            )
            for signal, step in steps.items()
        )
        self._shutdown_workers = workers
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:
            # Ctrl-C while a slow exporter holds the exit (the run has ended, its signal
            # handlers are gone): stop waiting, as at the bound, rather than a traceback that
            # also loses the run's summary and exit code.
            _log.warning(
                "telemetry shutdown interrupted; unexported %s dropped", _unfinished(steps, workers)
            )
            return False
        if any(worker.is_alive() for worker in workers):
            _log.warning(
                "telemetry shutdown did not finish within %.1fs (TASKDAEMON_EXPORT_TIMEOUT); "
                "unexported %s dropped",
                budget,
                _unfinished(steps, workers),
            )
            return False
        return True

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (``None``: as long as it takes) for a shutdown that
        outlived its bound to finish; True when no shutdown work is left running. A process
        about to exit never needs this; code that goes on living after ``shutdown`` (a test,
        an embedding application) calls it so no exporter keeps working, and logging, behind
        its back."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._shutdown_workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(worker.is_alive() for worker in self._shutdown_workers)


def span_limits() -> SpanLimits:
    """The SDK's span limits (read from the ``OTEL_*_LIMIT`` variables, its defaults else), but
    ``WRITTEN_SPAN_ITEMS`` events and links a span where the user set no limit of their own.

    The run span gathers events for as long as the run lasts, some for every stage (its
    approval, its trigger evaluations before it has a span of its own): at the SDK's 128 a run
    of a few hundred stages lost its first events, and with them the history rebuilt from
    them. ``WRITTEN_SPAN_ITEMS`` is what a reader keeps of a span whose events are all ones
    taskdaemon reads (``tracking.spans``, "Dropped when written"), so all that is kept reads
    back, and it bounds what a hostile pipeline can make one span hold. Attributes keep the
    SDK's limit: taskdaemon sets a few dozen a span. What the limits still drop is counted on
    the span and said by every view of its run."""
    return SpanLimits(
        max_events=None if OTEL_SPAN_EVENT_COUNT_LIMIT in os.environ else WRITTEN_SPAN_ITEMS,
        max_links=None if OTEL_SPAN_LINK_COUNT_LIMIT in os.environ else WRITTEN_SPAN_ITEMS,
    )


def build_telemetry(
    settings: Settings,
    *,
    extra_span_processors: Sequence[SpanProcessor] = (),
    set_global: bool = False,
    serve_metrics: bool = True,
    id_generator: IdGenerator | None = None,
) -> Telemetry:
    """Build the providers ``settings`` describe (see the module docstring).

    ``extra_span_processors`` run after the store's and before the exporters' (tests pass a
    ``SimpleSpanProcessor(InMemorySpanExporter())``). With ``set_global`` the providers become
    the OTel globals unless someone (``opentelemetry-instrument``) already set them. With
    ``serve_metrics=False`` nothing will serve ``/metrics``, so no Prometheus reader is built.
    ``id_generator`` replaces the SDK's random one (``cli/run_ids.py``).
    """
    fold = install_export_failure_filter()  # first: see its docstring
    install_repeated_log_filter().reset()  # a window of this set-up's: see its docstring
    notes: list[str] = []
    closing = threading.Event()

    def streak(signal: Signal, name: str, record: Tally) -> ExportStreak:
        return ExportStreak(signal, name, closing, fold.take_cause, record)

    resource = Resource.create(
        {"service.name": settings.service_name, "service.version": __version__}
    )
    registry: CollectorRegistry | None = None
    readers: list[MetricReader] = []
    metric_failures: ExportFailures | None = None
    for name in settings.metrics_exporters:
        if name == "prometheus":
            if not serve_metrics:
                continue
            registry, reader = _prometheus_reader()
            readers.append(reader)
            if settings.otel_metrics_exporter is not None:
                # No address: `serve --port` and `run --serve HOST:PORT` bind one the settings
                # do not hold (port 0 any free one), and the server's own line names it.
                notes.append(
                    "OTEL_METRICS_EXPORTER=prometheus is served by taskdaemon's own /metrics, "
                    "where it serves the API "
                    "(one reader per registry; no second server on OTEL_EXPORTER_PROMETHEUS_PORT)"
                )
        else:
            from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
                PeriodicExportingMetricReader,
            )

            from taskdaemon.pipeline.cli.observed_metric_exporter import (  # noqa: PLC0415
                ObservedMetricExporter,
                UnbuiltMetricExporter,
            )

            if metric_failures is None:
                metric_failures = ExportFailures()
            metrics = streak("metrics", name, metric_failures.record)
            made = built(partial(metric_exporter, name, settings), UnbuiltMetricExporter, metrics)
            observed_metrics = ObservedMetricExporter(made, metrics)
            readers.append(PeriodicExportingMetricReader(observed_metrics))
    meter_provider: metrics_api.MeterProvider = metrics_api.NoOpMeterProvider()
    if readers:
        from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415

        meter_provider = MeterProvider(
            resource=resource,
            metric_readers=readers,
            views=_histogram_views(),
            shutdown_on_exit=False,
        )

    # After the meter provider: the batch processors and the OTLP exporters count what they
    # drop and fail to export on it (the SDK's ``otel.sdk.*`` metrics, module docstring).
    health = ExportHealth()
    processors: list[SpanProcessor] = [*store_span_processors(settings), *extra_span_processors]
    for name in settings.traces_exporters:
        spans = streak("traces", name, health.record)
        make = partial(span_exporter, name, settings, meter_provider)
        health.exporters.append(name)
        observed = _ObservedSpanExporter(built(make, UnbuiltSpanExporter, spans), spans)
        # Masked as the batch leaves: values learnt while its spans waited.
        masked = MaskedSpanExporter(observed)
        processors.append(BatchSpanProcessor(masked, meter_provider=meter_provider))
    tracer_provider = TracerProvider(
        resource=resource,
        shutdown_on_exit=False,
        id_generator=id_generator,
        span_limits=span_limits(),
        sampler=ALWAYS_ON,  # not OTEL_TRACES_SAMPLER's (the module docstring)
    )
    for processor in processors:
        tracer_provider.add_span_processor(processor)
    observe_dropped_spans(meter_provider, processors)
    if health.exporters:
        observe_failed_exports(meter_provider, health.failures.failed, tuple(health.exporters))

    logger_provider: LoggerProvider | None = None
    log_health = ExportHealth()
    if settings.logs_exporters:
        from opentelemetry.sdk._logs import LoggerProvider  # noqa: PLC0415
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: PLC0415

        from taskdaemon.pipeline.cli.masked_log_exporter import (  # noqa: PLC0415
            MaskedLogExporter,
        )
        from taskdaemon.pipeline.cli.observed_log_exporter import (  # noqa: PLC0415
            ObservedLogExporter,
            UnbuiltLogExporter,
        )

        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        for name in settings.logs_exporters:
            log_health.exporters.append(name)
            logs = streak("logs", name, log_health.record)
            made_logs = built(partial(log_exporter, name, settings), UnbuiltLogExporter, logs)
            observed_logs = ObservedLogExporter(made_logs, logs)
            # Masked as the batch leaves: values learnt while its records waited.
            masked_logs = MaskedLogExporter(observed_logs)
            logger_provider.add_log_record_processor(BatchLogRecordProcessor(masked_logs))
        observe_failed_log_exports(meter_provider, log_health.failures, settings.logs_exporters)

    if set_global:
        _set_globals(tracer_provider, meter_provider, notes)
    for note in notes:
        _log.info("%s", note)
    drop_sdk_duplicate_filters()  # the exporters' modules, imported above, added theirs
    return Telemetry(
        settings=settings,
        resource=resource,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
        registry=registry,
        export_health=health,
        log_export_health=log_health,
        span_processors=tuple(processors),
        notes=tuple(notes),
        metric_export_failures=metric_failures,
        closing=closing,
    )


def _prometheus_reader() -> tuple[CollectorRegistry, MetricReader]:
    """Our Prometheus reader on a private registry (what ``/metrics`` serves)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    registry = CollectorRegistry(auto_describe=True)
    return registry, PrometheusMetricReader(registry=registry)


def _histogram_views() -> list[View]:
    from opentelemetry.sdk.metrics import Histogram  # noqa: PLC0415
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View  # noqa: PLC0415

    aggregation = ExplicitBucketHistogramAggregation(boundaries=DURATION_BUCKETS)
    return [
        View(instrument_type=Histogram, instrument_name=pattern, aggregation=aggregation)
        # The SDK's own histograms (``otel.sdk.*``, opt-in, see the module docstring) are in
        # seconds too; the SDK's default edges (0 to 10,000) would put every export in one.
        for pattern in ("pipeline.*", "cicd.pipeline.*", "otel.sdk.*")
    ]


def _set_globals(
    tracer_provider: TracerProvider, meter_provider: metrics_api.MeterProvider, notes: list[str]
) -> None:
    # The API allows setting each global once; a Proxy* provider means nobody has yet.
    # One note for all that were set (`opentelemetry-instrument` sets both): one fact, one line.
    taken: list[str] = []
    if isinstance(trace_api.get_tracer_provider(), trace_api.ProxyTracerProvider):
        trace_api.set_tracer_provider(tracer_provider)
    else:
        taken.append("TracerProvider")
    if isinstance(meter_provider, metrics_api.NoOpMeterProvider):
        pass  # nothing to collect: leave the global for someone who has something
    elif type(metrics_api.get_meter_provider()).__name__ == "_ProxyMeterProvider":
        metrics_api.set_meter_provider(meter_provider)
    else:
        taken.append("MeterProvider")
    if taken:
        which = " and ".join(taken)
        were = "were" if len(taken) > 1 else "was"
        notes.append(f"a global {which} {were} already set; taskdaemon uses its own")
