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
import functools
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from taskdaemon.pipeline.cli.refusal import note, printable
from taskdaemon.pipeline.daemon_call import daemon_call
from taskdaemon.pipeline.errors import PipelineError

__all__ = ["DumpWriter", "dump_writer", "install_dump_signal"]

logger = logging.getLogger(__name__)


class DumpWriter(Protocol):
    """Writes a dump of a run (``debug_ops.DumpWriter``); ``waiting`` is told at once, in
    one line, when the dump must first wait for telemetry to load, and for how long at most."""

    def __call__(
        self, run_id: str, path: str | None, /, waiting: Callable[[str], None] | None = None
    ) -> Awaitable[dict[str, str]]: ...


def dump_writer(
    engine: Any, observers: Sequence[Any], registry: Any = None, definition: Any = None
) -> DumpWriter:
    """An async ``(run_id, path or None) -> answer`` for runs of ``engine`` (``path``: the file
    written; ``missing``: what the dump lacks, and why). It settles the monitor (one of
    ``observers``) and the span store first, so the dump has every span so far, and adds the
    live engine state and, with a Prometheus ``registry``, the metrics. ``definition``: the
    pipeline to dump in place of the one the engine runs (a replay's engine runs a variant
    that feeds its fed stages; the definition replayed is what its run span records, and what
    a dump of the ended run holds).

    When telemetry did not load (``cli/deferred.py``: it failed, or the load was abandoned
    once a wait for it timed out, the monitor's ``flush`` among those waits), the run has no
    spans: the dump holds what the process knows live, and says so. Nothing of the span store
    or OTel is imported then, and the rest of the dump's code is loaded on a thread of its
    own, waited for within the same bound: a load abandoned inside an import holds that
    module's lock for ever, and an import of it here waited with it, the signal's dump never
    written and the run never ended (the loop's own thread was the one waiting).

    A dump asked while telemetry still loads waits for it, up to the monitor's
    ``load_timeout`` (60 s by default), and the caller's ``waiting`` is told so first, the
    bound in its line: a SIGUSR1 or a prompt's ``dump`` said nothing for that long. A load
    given up then leaves its dump's code the same bound again, should that code be held by
    the import the load was stuck in; the line names the wait for telemetry, which every
    such dump has, not that rarer second one. A dump that need not wait says nothing more."""
    monitor = next((o for o in observers if hasattr(o, "capture") and hasattr(o, "flush")), None)

    def settling() -> float:
        """Seconds a dump asked now would first wait for telemetry to load, at most; 0 when
        it would not wait (the load is over, or this process has no deferred one)."""
        if monitor is None or not getattr(monitor, "loading", False):
            return 0.0
        return float(monitor.load_timeout)

    async def write(
        run_id: str, path: str | None, /, waiting: Callable[[str], None] | None = None
    ) -> dict[str, str]:
        # Loaded: the engine runs, and its settings were read.
        from taskdaemon.pipeline.engine import engine_state  # noqa: PLC0415
        from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

        handle = engine.get_run(run_id)
        state = engine_state(engine, handle.run_id)
        metrics = None
        if registry is not None:
            from prometheus_client import generate_latest  # noqa: PLC0415

            metrics = generate_latest(registry)
        loop = asyncio.get_running_loop()
        if monitor is not None:  # every span so far; a load under way is waited for, bounded
            if waiting is not None and (seconds := settling()):
                waiting(
                    f"dumping run {handle.run_id}: waiting for telemetry to settle first"
                    f" ({seconds:g}s at most)"
                )
            await loop.run_in_executor(None, monitor.flush)
        dump = functools.partial(
            _write,
            path,
            handle.run_id,
            pipeline=handle.pipeline if definition is None else definition,
            engine_state=state,
            metrics=metrics,
            settings=load_settings(),
            capture=getattr(monitor, "capture", None),
        )
        unloaded = getattr(monitor, "not_loaded", None)
        if unloaded is None or monitor is None:
            return {"path": await loop.run_in_executor(None, dump)}
        why = f"telemetry failed to start ({unloaded})"
        written = await _on_a_thread_of_its_own(
            functools.partial(dump, unrecorded=why), monitor.load_timeout
        )
        return {"path": written, "missing": f"no spans: {why}"}

    return _Writer(write, settling)


class _Writer:
    """A :class:`DumpWriter` that also answers the debugger's ``settling``
    (``debug_ops``): a prompt asks it before its ``dump``, whose answer comes only once
    written, to say the wait first, on its own output."""

    def __init__(self, write: DumpWriter, settling: Callable[[], float]) -> None:
        self._write = write
        self.settling = settling

    def __call__(
        self, run_id: str, path: str | None, /, waiting: Callable[[str], None] | None = None
    ) -> Awaitable[dict[str, str]]:
        return self._write(run_id, path, waiting)


def _write(path: str | None, run_id: str, *, unrecorded: str | None = None, **given: Any) -> str:
    """Write the dump (``dump.write_dump``'s ``given`` arguments) to ``path``, else to the
    default place; the spans and log records from the store unless ``unrecorded`` says why the
    run has none. Returns the absolute path written."""
    from taskdaemon.pipeline.dump import default_dump_path, write_dump  # noqa: PLC0415

    target = path or default_dump_path(given["settings"].home, run_id)
    if unrecorded is None:
        spans, logs, logs_note = _stored(run_id)
    else:
        spans, logs, logs_note = [], None, f"logs.otlp.json: no log records: {unrecorded}"
    try:
        written = write_dump(
            target,
            run_id,
            spans,
            logs=logs,
            logs_note=logs_note,
            unrecorded=unrecorded,
            **given,
        )
    except OSError as exc:  # as ``dump -o`` of a run from the store says it
        raise PipelineError(f"cannot write {target}: {exc.strerror or exc}") from None
    return str(written.absolute())


def _stored(run_id: str) -> tuple[list[Any], Any, str | None]:
    """The run's spans and log records from the store, once every span and record so far
    reached it: the spans, the logs and why there are none (``dump.stored_logs``)."""
    from opentelemetry import trace  # noqa: PLC0415

    from taskdaemon.pipeline.debug_ops import flush_log_handlers  # noqa: PLC0415
    from taskdaemon.pipeline.dump import stored_logs  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.sources import (  # noqa: PLC0415
        default_source_url,
        open_source,
    )
    from taskdaemon.pipeline.tracking.writer import flush_open_spans  # noqa: PLC0415

    flush_log_handlers()  # the store's log writer: the run's records so far
    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if callable(flush):
        flush()
    flush_open_spans()  # the run span's latest events (a breakpoint.hit) too
    source = open_source()
    try:
        spans = source.get_trace(run_id)
    finally:
        source.close()
    logs, logs_note = stored_logs(default_source_url(), run_id)
    return spans, logs, logs_note


async def _on_a_thread_of_its_own(work: Callable[[], str], bound: float) -> str:
    """``work()`` on a daemon thread, waited for at most ``bound`` seconds: a thread of the
    loop's executor left waiting on an import lock would hold up the process's exit, which
    joins them. A thread left waiting is left, daemon; its answer, should it come, dropped."""
    try:
        return await asyncio.wait_for(daemon_call(work, name="taskdaemon-dump"), bound)
    except TimeoutError:
        raise PipelineError(
            f"the dump's code did not load within {bound:g}s"
            " (telemetry's load is stuck inside an import)"
        ) from None


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
        note(f"taskdaemon: {printable(said)}")

    async def dump_all() -> None:
        handles = [handle for handle in engine.runs if not handle.done]
        if not handles:
            say("SIGUSR1: no run in progress to dump")
        for handle in handles:
            try:
                answer = await writer(handle.run_id, None, functools.partial(say, handle=handle))
            except Exception as exc:  # a dump never stops a run
                say(f"no dump of run {handle.run_id}: {exc}", logging.WARNING, handle)
            else:
                said = f"dump of run {handle.run_id} written to {answer['path']}"
                missing = answer.get("missing")
                say(said + (f" ({missing})" if missing else ""), handle=handle)

    def on_signal() -> None:
        task = loop.create_task(dump_all())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return on_signal
