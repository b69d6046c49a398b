"""``taskdaemon watch RUN``: follow a run live, in this process or any other.

::

    taskdaemon watch RUN [--source URL] [--interval SECONDS]

The run is read from the span source (``--source``, else ``TASKDAEMON_SPAN_SOURCE``, else the
embedded store), polled every ``--interval`` seconds (default 0.5), so it follows a run started
by another process. On a terminal it draws a live table (``rich``): each stage's state, elapsed
time, instance progress of fan-outs, its attempts once a stage retried, and what it waits
for. When stdout is not a terminal it writes one plain line per change instead. It ends when
the run does; from a remote source, where a run whose process died never ends, a minute without
a new span (120 polls) is said on stderr, once per quiet stretch, and the watch goes on
(``watch_stored_run``). Exit codes: 0 the run succeeded, 1 it did not (or could not be read),
2 invalid arguments or settings, 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (all stop it cleanly: the
terminal gets its cursor back).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import IO, TYPE_CHECKING, Any

from taskdaemon.pipeline.cli.options import (
    add_interval_option,
    add_source_option,
    source_exit_code,
)
from taskdaemon.pipeline.cli.refusal import refuse, say
from taskdaemon.pipeline.errors import PipelineError, SpanSourceError
from taskdaemon.pipeline.stdout_first import flush_stdout

if TYPE_CHECKING:
    from taskdaemon.pipeline.visualization import DagSnapshot

__all__ = ["follow", "redrawable", "register", "run_watch"]


def register(subparsers: Any) -> None:
    """Add the ``watch`` sub-command."""
    parser = subparsers.add_parser(
        "watch",
        help="follow a run live: stage states, elapsed times, fan-out progress, waits",
        description="Follow a run live, in this process or any other: a table redrawn on a "
        "terminal (state, elapsed time, fan-out progress, what each stage waits for), one line "
        "per change otherwise. Ends when the run does. Exit codes: 0 the run succeeded, 1 it "
        "did not (or could not be read), 2 invalid arguments, 130 interrupted.",
    )
    parser.add_argument("run", metavar="RUN", help="the run (a unique prefix will do)")
    add_source_option(parser)
    add_interval_option(parser)
    parser.set_defaults(func=run_watch, writes_home=False)  # cli._foreign_home


class _LiveView:
    """What ``rich.live.Live`` redraws: the latest snapshot, with elapsed times as of now."""

    def __init__(self, console: Any) -> None:
        self.snapshot: DagSnapshot | None = None
        self._console = console

    def __rich__(self) -> Any:
        from rich.text import Text  # noqa: PLC0415

        from taskdaemon.pipeline.visualization._terminal import render_table  # noqa: PLC0415

        if self.snapshot is None:
            return Text("waiting for the run's first spans…")
        size = self._console.size
        # Two lines to spare, as before the summary could wrap (it was one of height - 2).
        return render_table(self.snapshot, time.time(), size.height - 2, size.width)


async def follow(
    snapshots: AsyncIterator[DagSnapshot], stream: IO[str], *, tty: bool
) -> DagSnapshot | None:
    """Show ``snapshots`` on ``stream`` until they end; returns the last one.

    ``tty``: a live ``rich`` table redrawn four times a second (elapsed times move between
    snapshots), keys typed meanwhile not echoed, echo and cursor put back even by a second
    signal's exit (``terminal_state``: ``watch`` and ``run --watch`` both draw here);
    otherwise one plain line per change (``_terminal.changes``).
    """
    from taskdaemon.pipeline.visualization._terminal import changes  # noqa: PLC0415

    if not tty:
        last: DagSnapshot | None = None
        async for snapshot in snapshots:
            flush_stdout()  # ``run --watch`` writes to stderr: after what a handler printed
            for line in changes(last, snapshot, time.time()):
                stream.write(line + "\n")
            stream.flush()
            last = snapshot
        return last
    from rich.console import Console  # noqa: PLC0415
    from rich.live import Live  # noqa: PLC0415

    from taskdaemon.pipeline.cli.sigterm import signals_held  # noqa: PLC0415
    from taskdaemon.pipeline.cli.terminal_state import (  # noqa: PLC0415
        cursor_hidden,
        keys_unechoed,
    )

    console = Console(file=stream, force_terminal=True)
    view = _LiveView(console)
    live = Live(
        view,
        console=console,
        refresh_per_second=4,
        redirect_stdout=False,
        # A line written to stderr meanwhile (the first Ctrl-C's "SIGINT: cancelling run",
        # a warning) goes above the table: written past it, it moved the cursor the redraw
        # counts on, and the next frame was drawn over half of the last one.
        redirect_stderr=True,
    )
    with keys_unechoed(stream), cursor_hidden(stream):
        try:
            # Its start and stop are done whole, a Ctrl-C meanwhile raised after them: one
            # raised inside left the cursor hidden (``cli/sigterm.py``, ``signals_held``).
            with signals_held():
                live.start(refresh=True)
            with _records_above(stream):
                async for snapshot in snapshots:
                    view.snapshot = snapshot
                    live.refresh()
        finally:
            with signals_held():
                live.stop()
    return view.snapshot


@contextlib.contextmanager
def _records_above(stream: IO[str]) -> Iterator[None]:
    """While the live table is drawn, the root logger's handlers that write to ``stream``
    write through ``sys.stderr``, which ``rich`` has replaced with its own (``Live``'s
    ``redirect_stderr``): a log record then goes above the table, as a line written to
    stderr does. A handler keeps the stream it was made with, so a record written meanwhile
    (an approval granted from another terminal, ``taskdaemon.audit``) went past the table,
    and the next frame was drawn over half of the last one, the record lost under it."""
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream is stream
    ]
    for handler in handlers:
        handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler in handlers:
            handler.setStream(stream)


def redrawable(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal that can redraw a live table: a tty whose ``TERM`` is
    not ``dumb``. A dumb terminal cannot move its cursor: ``rich`` drew nothing there until the
    run ended, then one table 80 columns wide whatever the terminal's; it gets the plain lines
    a pipe gets."""
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"


async def _watch(source: Any, run_id: str, interval: float) -> DagSnapshot | None:
    from taskdaemon.pipeline.daemon_call import daemon_call  # noqa: PLC0415
    from taskdaemon.pipeline.visualization import watch_stored_run  # noqa: PLC0415

    resolve = getattr(source, "resolve_run_id", None)
    if callable(resolve):  # off the loop's thread, as each poll is: Ctrl-C need not wait
        run_id = await daemon_call(resolve, run_id)
    stream = watch_stored_run(
        source, run_id, interval=interval, on_quiet=functools.partial(say, "watch")
    )
    return await follow(stream, sys.stdout, tty=redrawable(sys.stdout))


def run_watch(args: argparse.Namespace) -> int:
    """Follow the run named by ``args``; returns the exit code."""
    from taskdaemon.pipeline.tracking.sources import open_source  # noqa: PLC0415

    url = args.source
    if url is None:
        from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

        url = load_settings().span_source
    try:
        source = open_source(url)
    except ValueError as exc:
        return refuse("watch", 2, str(exc))
    except (PipelineError, SpanSourceError) as exc:
        return refuse("watch", source_exit_code(exc), str(exc))
    from taskdaemon.pipeline.cli.sigterm import (  # noqa: PLC0415
        exit_code,
        sigterm_raises,
        woken_by_signals,
    )

    try:
        with sigterm_raises():  # a clean stop: the live table gives the terminal its cursor back
            last = asyncio.run(woken_by_signals(_watch(source, args.run, args.interval)))
    except KeyboardInterrupt as stop:
        return exit_code(stop)
    except (PipelineError, SpanSourceError) as exc:
        return refuse("watch", source_exit_code(exc), str(exc))
    finally:
        source.close()
    if last is None or last.run is None:
        return refuse("watch", 1, f"run {args.run} showed no state")
    return 0 if last.run.status == "success" else 1
