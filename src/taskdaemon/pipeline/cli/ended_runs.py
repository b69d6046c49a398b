"""Why no process serves a run any more: the answer ``approve``, ``publish``, ``cancel``,
``status`` and ``debug attach|continue|step|skip`` give when the control socket finds no served
run and the home's embedded store has that run ended; and, on the serving side,
:func:`store_run_end`, which makes sure that answer is the one given as soon as the run ends.

Its imports (the span store, the run states, even ``pathlib``) are made inside the functions,
on their paths alone, so the commands that import this module pay nothing at start-up for it.
"""

from __future__ import annotations

__all__ = ["ended_run", "store_run_end"]


async def store_run_end(run_id: str) -> None:
    """Wait, off the event loop and within ``tracking.writer.RUN_END_WAIT``, for this
    process's span store writers to hold ``run_id``'s end, and its log writers the run's last
    lines.

    ``serve``, ``run`` and ``debug`` await this once their run has ended and before they say
    so or close its control socket: a command that then finds no socket reads the store, and
    must find the run ended there (:func:`ended_run`), not running with no process serving it.
    A late writer says so itself (``SqliteSpanProcessor.flush_run_end``); the caller goes on.

    The writer's module is looked up, never imported: a process whose telemetry has not loaded
    has no writer to wait for, and one whose loading thread is stuck inside an import holds
    the lock an import here would wait on for ever (``cli/deferred.py`` abandons that load;
    the command must still end).
    """
    import asyncio  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import time  # noqa: PLC0415

    spans = sys.modules.get("taskdaemon.pipeline.tracking.writer")
    flush = getattr(spans, "flush_run_end", None)  # None: not loaded, or still loading
    logs = sys.modules.get("taskdaemon.pipeline.tracking.log_writer")
    flush_logs = getattr(logs, "flush_all", None)
    if flush is None and flush_logs is None:
        return
    wait = getattr(spans, "RUN_END_WAIT", 2.0)

    def both() -> None:
        start = time.monotonic()
        if flush is not None:
            flush(run_id, wait)
        if flush_logs is not None:  # the run's last output lines, for ``logs`` read at once
            flush_logs(max(0.0, wait - (time.monotonic() - start)))

    await asyncio.to_thread(both)


def ended_run(run: str, home: str | None) -> str | None:
    """Why no process serves ``run`` when the home's embedded store has it ended: the control
    socket's answer asked whether its ``taskdaemon run`` was still running, with no hint that
    the run was simply over. None when the store has no such ended run (or no store)."""
    from pathlib import Path  # noqa: PLC0415

    from taskdaemon.pipeline.errors import PipelineError, SettingsError, SpanSourceError  # noqa: PLC0415
    from taskdaemon.pipeline.home import home_directory  # noqa: PLC0415
    from taskdaemon.pipeline.state import RunStatus  # noqa: PLC0415
    from taskdaemon.pipeline.status_rules import INTERRUPTED  # noqa: PLC0415
    from taskdaemon.pipeline.tracking import open_source  # noqa: PLC0415

    store = (Path(home) if home else home_directory()) / "spans.db"
    try:
        source = open_source(f"sqlite:///{store.absolute()}")
        try:
            record = source.get_run(run)
        finally:
            source.close()
    except (PipelineError, SettingsError, SpanSourceError, ValueError):
        return None  # the socket's own answer then (a bad retention setting is not this one's)
    # Ended: a final status, or interrupted (its process died): no process serves it again.
    ended = {status.value for status in RunStatus if status.is_final} | {INTERRUPTED}
    if record.status not in ended:
        return None
    return (
        f"run {record.run_id} has ended ({record.status}): no process serves it any more "
        f"('taskdaemon runs show {record.run_id}' has its record)"
    )
