"""``os._exit`` called by stage code while a command runs stages: said and stored first.

``os._exit`` ends the process at once: no ``finally``, no ``atexit``, no flush. Called by a
handler (or code it calls, or a task it started), it left ``run`` silent (no summary, no line,
the handler's exit code), the run's end never stored (it reads ``interrupted`` once a reader
finds its process gone: ``tracking/store.py``), and what the process still had queued for the
store (the handler's last log lines, the spans of stages that had just ended) lost.

Decision: while ``run``, ``serve``, ``debug FILE`` or ``replay`` runs stages, :func:`exits_said`
replaces ``os._exit`` (``serve`` ends with its run: its other runs, stored already, stay).
Called for a stage execution of this process (``execution.current_execution()``: a handler's own
thread or task, and code it calls), it logs one error line naming the stage and the code, which
is the last line on the console and the stage's last record in the store, then has the process's
queues written to the store (the monitor's records, the log writer's rows, the span writer's
spans: what a debug dump waits for), within :data:`FLUSH_BOUND` seconds on a daemon thread (the
thread that called ``os._exit`` may hold a lock that work needs), then ends the process. The
process always ends: code that calls ``os._exit`` means it. Its exit code is the one asked
for, but one the shell reads as 0 (its low 8 bits: 0, 256, -256), which would read as a run
that succeeded, is 1: the run did not end. A code past a C int is the real ``os._exit``'s
(its ``OverflowError`` raised in the stage, as before): it ends nothing, so nothing is said.

A thread stage code started (``threading.Thread``, a ``concurrent.futures`` pool's worker) runs
for no execution, but the block notes which execution started it (``cli/stage_leftovers.py``,
which the block enters): its ``os._exit`` is said and stored alike, the line naming the thread
too (``... (os._exit(5)) from its thread 'uploader': ...``). Before, such a call ended the process
silent, and the run was lost when its telemetry had not loaded yet.

A call of this replacement after the block (kept by stage code: ``atexit.register(os._exit,
5)`` in a handler) is passed on to the ``os._exit`` of then: during the process's end, the one
that says it (``cli/process_end.py``); before, it went to the real one unsaid, and a thread of
the stage's that had kept it was said as ending a run that had been stored.

A handler module that bound ``os._exit`` as it was imported (``from os import _exit``) holds
``cli/late_exit.py``'s stand-in, which calls this replacement while the block runs: said and
stored alike.

Passed straight to the real ``os._exit``: a forked child (``multiprocessing``'s leave that way,
and the engine ends a handler's stray fork so: ``engine/_attempt.py``), and taskdaemon's own
exits (a second Ctrl-C: no stage execution is current there, nor is it a thread stage code
started).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Final, NoReturn

from taskdaemon.pipeline.cli.late_exit import beneath
from taskdaemon.pipeline.cli.stage_leftovers import leftovers_traced, started_by
from taskdaemon.pipeline.execution import current_execution, enter_execution

__all__ = ["FLUSH_BOUND", "exits_said"]

_log = logging.getLogger(__name__)

#: Seconds the process's queues get to reach the store before the process ends: the monitor
#: may first wait for the telemetry still loading on its thread (a few seconds on a busy host).
FLUSH_BOUND: Final = 10.0


@contextlib.contextmanager
def exits_said(observers: Iterable[object]) -> Iterator[None]:
    """Replace ``os._exit`` for the block (module docstring); the monitor among ``observers``
    (the run's) hands its queued records on first (its spans then go to the span writer)."""
    before = os._exit
    real_exit = beneath(before)  # not the stand-in, which would call this one again
    pid = os.getpid()
    monitor = next((o for o in observers if hasattr(o, "capture") and hasattr(o, "flush")), None)
    flush_monitor = getattr(monitor, "flush", None)

    # False once the block has ended; None once a call after it was passed on.
    running: list[bool | None] = [True]

    def said_exit(status: int) -> NoReturn:
        if not running[0]:  # kept past the block (``atexit.register(os._exit, 5)``)
            if running[0] is False:  # once: the ``os._exit`` of now may wrap this one
                running[0] = None
                os._exit(status)  # the process's end says it (``cli/process_end.py``)
            real_exit(status)
        thread = threading.current_thread()
        execution = current_execution() or started_by(thread)
        if (
            execution is None
            or os.getpid() != pid
            or type(status) is not int
            or not -(2**31) <= status < 2**31
        ):
            real_exit(status)  # not stage code's, or a wrong call (its error as before)
        try:
            from taskdaemon.pipeline.quoting import quote  # noqa: PLC0415 - said once

            from_thread = current_execution() is None
            if from_thread:  # the record is the stage's, in the store as on the console
                enter_execution(execution)
            _log.error(
                "stage '%s' ended taskdaemon's process (os._exit(%d))%s: run %s is left "
                "interrupted, its end never stored",
                execution.stage,
                status,
                f" from its thread {quote(thread.name)}" if from_thread else "",
                execution.run_id,
            )
            flushing = threading.Thread(
                target=_flush, args=(flush_monitor,), name="taskdaemon-exit-flush", daemon=True
            )
            flushing.start()
            flushing.join(FLUSH_BOUND)
        finally:
            real_exit(status if status % 256 else 1)

    # A hook registered as ``atexit.register(os._exit, 5)`` is named as what it was asked.
    said_exit.__module__, said_exit.__qualname__ = "os", "_exit"
    os._exit = said_exit
    try:
        with leftovers_traced():
            yield
    finally:
        running[0] = False
        if os._exit is said_exit:
            os._exit = before


def _flush(flush_monitor: Callable[[], object] | None) -> None:
    """Have what this process queued for the store written (as a debug dump does first)."""
    from taskdaemon.pipeline.debug_ops import flush_log_handlers  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.writer import flush_open_spans  # noqa: PLC0415

    with contextlib.suppress(Exception):  # the process ends anyway
        if flush_monitor is not None:
            flush_monitor()
        flush_log_handlers()
        flush_open_spans(int(FLUSH_BOUND * 1000))
