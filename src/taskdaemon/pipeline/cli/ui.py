"""``taskdaemon ui``: the web page, read-only, over any span source.

::

    taskdaemon ui [--source URL] [--host HOST] [--port PORT]

* Serves the runs page and each run's page (DAG, timeline, stage details) from ``--source``
  (default ``TASKDAEMON_SPAN_SOURCE``, else the embedded store under ``TASKDAEMON_HOME``): the
  embedded store, Tempo, Jaeger or OTLP-JSON files. A running run is followed live by polling
  the source, so a run in another process (or in Tempo) updates on the page as it goes.
* Read-only: no approve, reject or debugger buttons; this process has no engine. Runs are
  controlled where they run (``serve``, ``run --serve``, ``taskdaemon approve``).
* Binds ``--host`` (default ``TASKDAEMON_METRICS_HOST``, 127.0.0.1) and ``--port`` (default 9091,
  next to ``serve``'s 9090 so both can run at once). Access is the API's: the token
  (``TASKDAEMON_API_TOKEN``, else one generated now, written 0600 to ``ui-token.PORT`` under
  the home, and to ``ui-token`` for the first ``ui`` of the home, as ``serve`` does with
  ``api-token``: ``token_files``; shown as a sign-in URL on a terminal: ``cli/sign_in.py``).
  Not to the ``api-token`` files: those name servers that can control runs, which a read-only
  ``ui`` must not pass for.
* Exit codes: 0 stopped by SIGINT/SIGTERM (or SIGHUP, its terminal closed, unless ignored at
  start: ``nohup``; ``cli/hangup.py``), 1 the address is taken or the span store file cannot
  be opened (missing, damaged), 2 bad settings or a source URL that names no source. A remote
  source (Tempo, Jaeger) is not asked at start: one that does not answer yet, or no longer,
  fails the page that asks it (502), and ``ui`` serves on, so it can be started before the
  backend and outlive its restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from taskdaemon.pipeline.cli.hangup import detach_terminal, stop_signals
from taskdaemon.pipeline.cli.options import (
    add_server_options,
    add_source_option,
    cannot_serve,
    source_exit_code,
)
from taskdaemon.pipeline.cli.refusal import refuse
from taskdaemon.pipeline.logs import configure_logging
from taskdaemon.pipeline.settings import load_settings

__all__ = ["DEFAULT_PORT", "register"]

_log = logging.getLogger("taskdaemon.ui")

DEFAULT_PORT = 9091
EXIT_OK, EXIT_ADDRESS, EXIT_INVALID = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the ``ui`` sub-command."""
    parser = subparsers.add_parser(
        "ui",
        help="serve the web page read-only over a span source (the store, Tempo, Jaeger)",
        description="Serve the runs and run pages, live, read-only, over a span source, until "
        "SIGINT, SIGTERM or SIGHUP (its terminal closed; not under nohup). Exit codes: 0 "
        "stopped by a signal, 1 the address is taken or the span store file cannot be opened "
        "(a remote source that does not answer fails its pages, not the start), 2 invalid "
        "settings or source URL.",
    )
    add_source_option(parser)
    add_server_options(parser, str(DEFAULT_PORT))
    parser.set_defaults(func=ui_command)


def ui_command(args: argparse.Namespace) -> int:
    """Serve until stopped; returns the exit code."""
    from taskdaemon.pipeline.errors import SpanSourceError  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.sources import open_source  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings)
    host = args.host or settings.metrics_host
    port = DEFAULT_PORT if args.port is None else args.port
    url = args.source or settings.span_source
    try:
        open_source(url).close()  # a bad URL or missing file is an error now, not per page
    except SpanSourceError as error:  # one line, as every reader of a source says it
        return refuse("ui", source_exit_code(error), str(error))
    try:
        return asyncio.run(_serve(settings, url, host, port))
    except OSError as error:
        return refuse("ui", EXIT_ADDRESS, cannot_serve(host, port, error))


async def _serve(settings: Any, url: str, host: str, port: int) -> int:
    from taskdaemon.pipeline.cli.sign_in import api_auth, publish_sign_in  # noqa: PLC0415
    from taskdaemon.pipeline.http_security import UI_TOKEN_FILE_NAME  # noqa: PLC0415
    from taskdaemon.pipeline.server import MonitorServer, create_app  # noqa: PLC0415
    from taskdaemon.pipeline.tracking._remote import display_url  # noqa: PLC0415
    from taskdaemon.pipeline.web import WebOptions  # noqa: PLC0415

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = stop_signals()

    def on_signal(signum: int) -> None:
        if signum == signal.SIGHUP:
            detach_terminal()  # the log lines of the stop must not fail on a hung-up terminal
        stop.set()

    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    auth = api_auth(settings)
    app = create_app(
        auth=auth,
        web=WebOptions(source_url=url, grafana_url=settings.grafana_url, read_only=True),
    )
    server = MonitorServer(app, host=host, port=port)
    await server.start()
    token_files: list[Any] = []
    try:
        _log.info("taskdaemon ui: read-only, runs from %s", display_url(url))
        publish_sign_in(
            _log,
            "taskdaemon ui",
            server.url,
            auth,
            settings.home,
            file_name=UI_TOKEN_FILE_NAME,
            written=token_files.append,
            public=settings.api_public_url,
        )
        await stop.wait()
    finally:
        for files in token_files:
            files.remove()
        await server.aclose()
        app.state.web.close()
        for signum in handled:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
    return EXIT_OK
