"""How a CLI process writes debug dumps of the runs it runs: ``dump`` at the prompt, ``POST
/api/runs/{id}/dump``, ``taskdaemon dump RUN`` through the control socket, and ``SIGUSR1``
(a dump of each active run, the run going on; each path is said on stderr, and so is a
signal that found no run in progress).

Where SIGUSR1's lines go: ``taskdaemon run`` prints them among its progress lines; ``serve``
writes log records alone (one JSON object a line with ``TASKDAEMON_LOG_FORMAT=json``), so
there each line is a record of its log, with the run's fields: a bare line among them broke
a reader of its JSON lines."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from taskdaemon.pipeline.cli.refusal import printable
from taskdaemon.pipeline.errors import PipelineError

__all__ = ["DumpWriter", "dump_writer", "install_dump_signal"]

logger = logging.getLogger(__name__)

DumpWriter = Callable[[str, str | None], Awaitable[str]]


def dump_writer(
    engine: Any, observers: Sequence[Any], registry: Any = None, definition: Any = None
) -> DumpWriter:
    """An async ``(run_id, path or None) -> written path`` for runs of ``engine``: it settles
    the monitor (one of ``observers``) and the span store first, so the dump has every span
    so far, and adds the live engine state and, with a Prometheus ``registry``, the metrics.
    ``definition``: the pipeline to dump in place of the one the engine runs (a replay's
    engine runs a variant that feeds its fed stages; the definition replayed is what its run
    span records, and what a dump of the ended run holds)."""
    monitor = next((o for o in observers if hasattr(o, "capture") and hasattr(o, "flush")), None)

    async def write(run_id: str, path: str | None) -> str:
        from opentelemetry import trace  # noqa: PLC0415

        from taskdaemon.pipeline.debug_ops import flush_log_handlers  # noqa: PLC0415
        from taskdaemon.pipeline.dump import (  # noqa: PLC0415
            default_dump_path,
            stored_logs,
            write_dump,
        )
        from taskdaemon.pipeline.engine import engine_state  # noqa: PLC0415
        from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415
        from taskdaemon.pipeline.tracking.sources import (  # noqa: PLC0415
            default_source_url,
            open_source,
        )
        from taskdaemon.pipeline.tracking.writer import flush_open_spans  # noqa: PLC0415

        handle = engine.get_run(run_id)
        state = engine_state(engine, handle.run_id)
        metrics = None
        if registry is not None:
            from prometheus_client import generate_latest  # noqa: PLC0415

            metrics = generate_latest(registry)
        settings = load_settings()
        target = path or default_dump_path(settings.home, handle.run_id)
        capture = getattr(monitor, "capture", None)

        def blocking() -> str:
            if monitor is not None:
                monitor.flush()
            flush_log_handlers()  # the store's log writer: the run's records so far
            flush = getattr(trace.get_tracer_provider(), "force_flush", None)
            if callable(flush):
                flush()
            flush_open_spans()  # the run span's latest events (a breakpoint.hit) too
            source = open_source()
            try:
                spans = source.get_trace(handle.run_id)
            finally:
                source.close()
            logs, logs_note = stored_logs(default_source_url(), handle.run_id)
            try:
                written = write_dump(
                    target,
                    handle.run_id,
                    spans,
                    logs=logs,
                    logs_note=logs_note,
                    pipeline=handle.pipeline if definition is None else definition,
                    engine_state=state,
                    metrics=metrics,
                    settings=settings,
                    capture=capture,
                )
            except OSError as exc:  # as ``dump -o`` of a run from the store says it
                raise PipelineError(f"cannot write {target}: {exc.strerror or exc}") from None
            return str(written.absolute())

        return await asyncio.get_running_loop().run_in_executor(None, blocking)

    return write


def install_dump_signal(
    engine: Any, writer: DumpWriter, log: logging.Logger | None = None
) -> Callable[[], None]:
    """On ``SIGUSR1`` write a dump of each of ``engine``'s open runs (in the running loop);
    returns the function that removes the handler. ``log``: as for
    :func:`dump_signal_handler`."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, dump_signal_handler(engine, writer, log))

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGUSR1)

    return remove


def dump_signal_handler(
    engine: Any, writer: DumpWriter, log: logging.Logger | None = None
) -> Callable[[], None]:
    """The ``SIGUSR1`` handler of :func:`install_dump_signal`: each call starts a task (in the
    running loop) writing a dump of each of ``engine``'s open runs. Each line goes to ``log``
    as a record (INFO, WARNING when a dump failed) when given, else to stderr (module doc)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def say(said: str, level: int = logging.INFO, handle: Any = None) -> None:
        if log is not None:  # its handlers redact and escape, as printable does
            ids = (
                {}
                if handle is None
                else {"run_id": handle.run_id, "pipeline": handle.pipeline.name}
            )
            log.log(level, "%s", said, extra=ids)
            return
        # The path is under TASKDAEMON_HOME, and the error may quote it: a name the user
        # gave, which may hold ESC or a secret (``refusal.printable``).
        print(f"taskdaemon: {printable(said)}", file=sys.stderr)

    async def dump_all() -> None:
        handles = [handle for handle in engine.runs if not handle.done]
        if not handles:
            say("SIGUSR1: no run in progress to dump")
        for handle in handles:
            try:
                path = await writer(handle.run_id, None)
            except Exception as exc:  # a dump never stops a run
                say(f"no dump of run {handle.run_id}: {exc}", logging.WARNING, handle)
            else:
                say(f"dump of run {handle.run_id} written to {path}", handle=handle)

    def on_signal() -> None:
        task = loop.create_task(dump_all())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return on_signal
