"""The monitoring wiring ``taskdaemon run``, ``serve`` and ``replay`` share.

:func:`start_monitoring` builds telemetry from the settings, structured logging, one
:class:`~taskdaemon.pipeline.monitor.PipelineMonitor`, and (when asked) the HTTP server with an
engine controller to :meth:`~taskdaemon.pipeline.server.EngineController.bind` later. Without
the server, nothing of it is imported (Starlette, Uvicorn: start-up time of ``taskdaemon run``).
:func:`parse_address` reads the ``[HOST:]PORT`` of ``run --serve``.

It lives apart from the command modules so that none of them imports another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskdaemon.pipeline.ascii_number import ascii_only
from taskdaemon.pipeline.cli.process_end import threads_left
from taskdaemon.pipeline.cli.run_logging import HandlerSlot, install_run_logging
from taskdaemon.pipeline.cli.sign_in import api_auth, publish_sign_in
from taskdaemon.pipeline.cli.span_losses import (
    announce_unavailable_store,
    report_lost_spans,
    report_unexported_logs,
    report_unexported_metrics,
    report_unexported_spans,
    unstored_cause,
)
from taskdaemon.pipeline.cli.telemetry import Telemetry, build_telemetry
from taskdaemon.pipeline.handler_prints import capture_prints
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.logs import configure_logging, install_otel_log_handler
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    from taskdaemon.pipeline.engine import Engine
    from taskdaemon.pipeline.server import EngineController, MonitorServer
    from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

__all__ = ["Monitoring", "build_monitor", "parse_address", "start_monitoring"]

_log = logging.getLogger("taskdaemon.serve")


def parse_address(text: str, default_host: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (``[::1]:9090`` for IPv6) as ``(host, port)``; ValueError if invalid."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = default_host, text
    host = host.strip("[]") or default_host
    try:
        port = int(ascii_only(port_text))
    except ValueError:
        raise ValueError(f"expected [HOST:]PORT, got {quote(text)}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    return host, port


@dataclass(slots=True)
class Monitoring:
    """What :func:`start_monitoring` built: add :attr:`observers` to the engine, then
    :meth:`bind` it."""

    settings: Settings
    telemetry: Telemetry
    monitor: PipelineMonitor
    controller: EngineController | None  # the run API's; None without the server
    server: MonitorServer | None

    @property
    def observers(self) -> list[Any]:
        """The engine observers monitoring needs (the monitor, the API's controller)."""
        return [self.monitor] if self.controller is None else [self.monitor, self.controller]

    def unstored(self) -> str | None:
        """Why the runs of this process are in no span store (``span_losses.unstored_cause``)."""
        return unstored_cause(self.telemetry.span_processors)

    def bind(self, engine: Engine) -> None:
        """Let the run API steer ``engine``."""
        if self.controller is not None and self.controller.engine is not engine:
            self.controller.bind(engine)


def build_monitor(
    settings: Settings,
    *,
    serve_metrics: bool,
    stack: contextlib.AsyncExitStack | contextlib.ExitStack,
    slot: HandlerSlot | None = None,
    capture: PayloadCapture | None = None,
    id_generator: IdGenerator | None = None,
) -> tuple[Telemetry, PipelineMonitor, SqliteLogWriter | None]:
    """The telemetry (global providers) and the monitor of one process, with run logging (and
    its store writer, when run logs are stored).

    Console logging must be configured already (``logs.configure_logging``); this adds the
    OTel log handler when a log exporter is set. Shutdowns are pushed on ``stack``. ``capture``
    defaults to one from the settings; ``slot`` and ``id_generator`` are for
    ``cli/deferred.py`` (see ``install_run_logging`` and ``build_telemetry``).
    """
    telemetry = build_telemetry(
        settings, set_global=True, serve_metrics=serve_metrics, id_generator=id_generator
    )
    # After the shutdown (LIFO), so that the counts are final.
    stack.callback(report_unexported_metrics, telemetry.metric_export_failures)
    stack.callback(report_unexported_logs, telemetry.log_export_health.failures)
    failures = telemetry.export_health.failures
    stack.callback(report_unexported_spans, failures.failed, failures.last_errors)
    stack.callback(report_lost_spans, telemetry.span_processors)
    stack.callback(telemetry.shutdown)
    if telemetry.logger_provider is not None:
        # Off before its provider shuts down, so before the loss reports and the shutdown's
        # own warning (its bound passed) log: a record sent to a provider shut down, or
        # shutting down, is dropped with a line of the SDK's own ("Shutdown called, ignoring
        # Log.") beside the one warning line each promises. The run's records are all in
        # its queue by then (the monitor closes first, below).
        handler = install_otel_log_handler(telemetry.logger_provider)
        stack.callback(logging.getLogger().removeHandler, handler)
    announce_unavailable_store(telemetry.span_processors)
    monitor = PipelineMonitor(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        capture=capture
        or PayloadCapture(
            max_bytes=settings.capture_limit, redact_patterns=settings.redact_patterns
        ),
    )
    # The threads its stages left running, on each run span as it ends (``cli/process_end.py``).
    monitor.run_end_attributes = threads_left
    writer = install_run_logging(settings, monitor, telemetry, stack, slot=slot)
    # Pushed last, so run first: what is still queued is handled while run logging and the
    # providers are up, and the monitor's worker thread ends with the command.
    stack.callback(monitor.close)
    return telemetry, monitor, writer


def start_monitoring(
    settings: Settings,
    *,
    serve: tuple[str, int] | None,
    stack: contextlib.AsyncExitStack,
) -> Monitoring:
    """Build telemetry, logging, the monitor and (with ``serve``) start the HTTP server.

    Call it inside the running event loop. Shutdowns are pushed on ``stack``: the server stops
    first (once the records queued by then are stored), then telemetry is flushed within
    ``TASKDAEMON_EXPORT_TIMEOUT``. Raises ``OSError`` when the address is taken.
    """
    configure_logging(settings)
    telemetry, monitor, writer = build_monitor(
        settings, serve_metrics=serve is not None, stack=stack
    )
    capture_prints(stack)  # a handler's print() is a log line of its stage too
    controller = server = None
    if serve is not None:
        from taskdaemon.pipeline.server import (  # noqa: PLC0415 - see the module docstring
            EngineController,
            HealthSources,
            LoopLagMonitor,
            MonitorServer,
            create_app,
        )
        from taskdaemon.pipeline.web import WebOptions  # noqa: PLC0415

        controller = EngineController()
        lag = LoopLagMonitor()
        auth = api_auth(settings)
        app = create_app(
            dump=_dump_through(controller, monitor, telemetry.registry),
            web=WebOptions(source_url=settings.span_source, grafana_url=settings.grafana_url),
            engine=controller,
            registry=telemetry.registry if telemetry.serves_prometheus else None,
            health=HealthSources(
                lag=lag,
                export=telemetry.export_health.snapshot,
                log_export=telemetry.log_export_health.snapshot,
                store=telemetry.store_health,
            ),
            auth=auth,
            redact_patterns=settings.redact_patterns,
        )
        server = MonitorServer(app, host=serve[0], port=serve[1], lag=lag)
        server.start_nowait()
        stack.push_async_callback(
            _close_once_stored, server, monitor, writer, settings.export_timeout
        )
        _announce(server, auth, settings, stack)
    return Monitoring(settings, telemetry, monitor, controller, server)


async def _close_once_stored(
    server: MonitorServer, monitor: PipelineMonitor, writer: SqliteLogWriter | None, seconds: float
) -> None:
    """Close ``server`` once the records queued so far are in the store (within ``seconds``):
    ``run --serve`` closes it as its run ends, and the stage log streams it ends then send
    their final tail read from the store (``web._app``), not one cut before the last lines."""
    monitor.flush()
    if writer is not None:
        await asyncio.to_thread(writer.flush, seconds)
    await server.aclose()


def _announce(
    server: MonitorServer, auth: ApiAuth, settings: Settings, stack: contextlib.AsyncExitStack
) -> None:
    """Write a generated token to this server's 0600 files and say where to sign in
    (``cli.sign_in``: the token itself only to a terminal, never to a log); the files go when
    the server stops (``token_files``)."""
    publish_sign_in(
        _log,
        "API",
        server.url,
        auth,
        settings.home,
        written=lambda files: stack.callback(files.remove),
        public=settings.api_public_url,
    )


def _dump_through(controller: Any, monitor: Any, registry: Any) -> Any:
    """``POST /api/runs/{id}/dump``: a dump of the controller's engine's run."""
    from taskdaemon.pipeline.cli._dump_hook import dump_writer  # noqa: PLC0415

    async def write(run_id: str, path: str | None) -> dict[str, str]:
        return await dump_writer(controller.engine, [monitor], registry)(run_id, path)

    return write
