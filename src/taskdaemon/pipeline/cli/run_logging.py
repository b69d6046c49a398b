"""Wiring of run logs for the ``taskdaemon`` process (``start_monitoring`` calls it).

* the monitor gets a :class:`~taskdaemon.pipeline.run_log.RunLog` hook (lifecycle records, and
  engine decisions / events at ``debug`` / ``trace``), told which executions a replay feeds;
* with the embedded store (``sqlite:///`` span source), a
  :class:`~taskdaemon.pipeline.tracking.log_writer.SqliteLogWriter` on the same file takes the
  captured command output and every ``logging`` record that belongs to a run;
* with an OTel ``LoggerProvider`` (``OTEL_LOGS_EXPORTER``, or an OTLP endpoint), captured output
  is also exported (records already are, by ``logs.OTelLogHandler``);
* the capture bound comes from ``TASKDAEMON_LOG_CAPTURE_MAX_LINES`` / ``_MAX_BYTES``;
* the records the writer could not keep (its queue full, a failed write) are counted in
  ``taskdaemon.logs.dropped`` (Prometheus ``taskdaemon_logs_dropped_total``), beside the
  writer's warning line, as the span store's losses are (``span_losses``); so are all of them
  when the store cannot be opened (``log_writer.UnstoredLogs`` takes the writer's place), which
  the span store's one warning line already says.

Decision: the console (stderr) does not print lifecycle records nor captured output: ``run``
already prints one progress line per transition, and a command's output is read with
``taskdaemon logs`` (a failed command's stderr tail is printed under its failure). Decision and
event records (``--log-level debug|trace``) do reach the console: that is what one asks them for.
Everything is undone when ``stack`` closes (the writer flushed within the export timeout).

The store's log handler goes on the root logger and its writer among the output sinks, or both
into ``slot`` when one is given: ``run`` loads telemetry on a thread while its pipeline starts
(``cli/deferred.py``), and its slot, on the root logger and among the sinks from the start,
keeps the run's records and output until the monitor has the events before them.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from typing import TYPE_CHECKING, Any, Protocol

from taskdaemon.pipeline import output_sinks
from taskdaemon.pipeline.cli.span_losses import observe_dropped_logs
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.logs import ContextFilter
from taskdaemon.pipeline.run_log import LIFECYCLE_LOGGER, RunLog
from taskdaemon.pipeline.secret_values import use_secret_key_patterns
from taskdaemon.pipeline.settings import Settings

if TYPE_CHECKING:
    from taskdaemon.pipeline.cli.telemetry import Telemetry
    from taskdaemon.pipeline.monitor import PipelineMonitor
    from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter, UnstoredLogs

__all__ = ["install_run_logging"]

_NOT_ON_CONSOLE = (LIFECYCLE_LOGGER, "taskdaemon.run.output")
_logger = logging.getLogger(__name__)


class HandlerSlot(Protocol):
    """Where the store's log handler and writer go instead of the root logger and the sinks."""

    def attach(self, handler: logging.Handler, sink: output_sinks.OutputSink) -> None:
        """Start passing records to ``handler`` and captured output to ``sink``."""

    def detach(self, handler: logging.Handler, sink: output_sinks.OutputSink) -> None:
        """Stop passing records to ``handler`` and output to ``sink``."""


class _RootSlot:
    def attach(self, handler: logging.Handler, sink: output_sinks.OutputSink) -> None:
        logging.getLogger().addHandler(handler)
        output_sinks.add_output_sink(sink)

    def detach(self, handler: logging.Handler, sink: output_sinks.OutputSink) -> None:
        output_sinks.remove_output_sink(sink)
        logging.getLogger().removeHandler(handler)


class _ConsoleFilter(logging.Filter):
    @staticmethod
    def keeps_logger(name: str) -> bool:
        """Whether records of logger ``name`` pass (``log_rows.row_sink_for`` reads it)."""
        return not name.startswith(_NOT_ON_CONSOLE)

    def filter(self, record: logging.LogRecord) -> bool:
        return self.keeps_logger(record.name)


def install_run_logging(
    settings: Settings,
    monitor: PipelineMonitor,
    telemetry: Telemetry,
    stack: contextlib.AsyncExitStack | contextlib.ExitStack,
    *,
    slot: HandlerSlot | None = None,
) -> SqliteLogWriter | None:
    """Install run logging (see the module docstring); returns the store's log writer, if any."""
    output_sinks.bound_captures(settings, stack)
    stack.callback(use_secret_key_patterns, use_secret_key_patterns(settings.redact_patterns))

    def fed(run_id: str, stage: str, instance: int) -> tuple[str, int, Any] | None:
        """What the record says of an execution the replay under way feeds
        (``replay.run.ReplaySpanHook``, the monitor's span hook while it runs), for its run
        log record (``run_log``); None when it runs."""
        hook = monitor.span_hook
        return None if hook is None else hook.recorded(run_id, stage, instance)

    monitor.add_event_hook(RunLog(fed))
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_taskdaemon_installed", False) and isinstance(
            handler, logging.StreamHandler
        ):
            handler.addFilter(_ConsoleFilter())
    writer = None
    if settings.span_source.lower().startswith("sqlite:///"):
        from taskdaemon.pipeline.tracking.log_writer import UnstoredLogs  # noqa: PLC0415

        writer = None if _store_unavailable(telemetry) else _store_writer(settings)
        kept = writer if writer is not None else UnstoredLogs()
        _attach(kept, slot or _RootSlot(), settings, stack)
        observe_dropped_logs(telemetry.meter_provider, kept)
    if telemetry.logger_provider is not None:
        from taskdaemon.pipeline.log_export import OTelOutputSink  # noqa: PLC0415

        sink = OTelOutputSink(telemetry.logger_provider)
        output_sinks.add_output_sink(sink)
        stack.callback(output_sinks.remove_output_sink, sink)
    return writer


def _store_writer(settings: Settings) -> SqliteLogWriter | None:
    """The store's log writer; None (one warning) when the store cannot be opened: the span
    store says the same of its spans, and the run goes on."""
    from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.source_urls import store_path  # noqa: PLC0415

    try:
        return SqliteLogWriter(store_path(settings.span_source))
    except (SpanSourceError, OSError, sqlite3.Error) as error:
        _logger.warning("run logs are not stored: %s", error)
        return None


def _attach(
    writer: SqliteLogWriter | UnstoredLogs,
    slot: HandlerSlot,
    settings: Settings,
    stack: contextlib.AsyncExitStack | contextlib.ExitStack,
) -> None:
    """Register ``writer`` as sink and handler (through ``slot``) until ``stack`` closes."""
    handler = writer.handler()
    handler.addFilter(ContextFilter())
    slot.attach(handler, writer)

    def close_writer() -> None:
        slot.detach(handler, writer)
        writer.close(settings.export_timeout)

    stack.callback(close_writer)


def _store_unavailable(telemetry: Telemetry) -> bool:
    """True when the span store could not be opened: its warning (spans are not stored, and
    why) already covers the run logs kept in the same file, so no second one is written."""
    from taskdaemon.pipeline.tracking.unavailable import UnavailableSpanStore  # noqa: PLC0415

    processors = getattr(telemetry, "span_processors", ())
    return any(isinstance(processor, UnavailableSpanStore) for processor in processors)
