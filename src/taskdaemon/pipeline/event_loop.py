"""The event loop the commands that run pipelines (``run``, ``serve``, ``replay``, ``debug``) use.

It is asyncio's selector loop with one change, in its selector (:class:`SpacedSelector`): while
the loop is busy, it asks the kernel for ready I/O at most once every :data:`POLL_SPACING`
seconds, instead of once every turn.

Why. asyncio's loop polls its selector on every turn: with callbacks ready, with a timeout of
zero. A poll is a system call, and CPython lets go of the GIL around it. A run is GIL-bound
Python with helper threads beside the loop, and those threads are often waiting for the GIL:

* the span store's writer after each SQL statement;
* the monitor's worker;
* ``run``'s telemetry loader, which hands the monitor the records it kept while the SDK loaded.

Each release wakes the waiting thread, usually on the other CPU. The loop's own poll returns
at once and takes the GIL back, so the woken thread finds it taken and sleeps again: a context
switch and a cross-CPU wake-up for nothing, once a turn. On an idle second CPU of a VM such a
wake-up costs tens of microseconds: a chain of no-op async stages made about one a stage.
Waiting threads still get the GIL as CPython arranges it for any busy thread: they ask for it
after the switch interval (5 ms by default). Measured in
benchmarks/README.md, "Round 21 (lead): the busy loop's polls".

What it changes. While callbacks keep the loop busy, I/O that became ready (a socket, a
subprocess pipe, a signal's wake-up byte, the worker threads' results) is seen up to
:data:`POLL_SPACING` later than asyncio would see it. Nothing else: an idle loop (no callback
ready) polls as before, blocking or with its timer's timeout, and every poll that happens
reports everything ready. The spacing is a millisecond: where the saving levelled off (a
quarter of a millisecond kept a third of the wake-ups, five milliseconds saved no more), and
well under the switch interval that already paces the threads' turns.
"""

from __future__ import annotations

import asyncio
import selectors
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

__all__ = ["POLL_SPACING", "SpacedSelector", "new_event_loop", "run"]

T = TypeVar("T")

#: Seconds between two polls of a busy loop's selector.
POLL_SPACING: Final = 0.001


class SpacedSelector(selectors.DefaultSelector):
    """The platform's default selector, whose zero-timeout polls are skipped (no events)
    within ``spacing`` seconds of its previous poll (module docstring)."""

    def __init__(
        self, spacing: float = POLL_SPACING, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._spacing = spacing
        self._clock = clock
        self._polled = -spacing  # never polled: the first poll is not skipped

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        """The ready keys, as the selector's ``select``; ``[]`` without asking the kernel for a
        poll that would not block (``timeout`` zero or less) so soon after the last one."""
        if timeout is not None and timeout <= 0 and self._clock() - self._polled < self._spacing:
            return []
        ready: list[tuple[Any, int]] = super().select(timeout)
        self._polled = self._clock()
        return ready


class _Loop(asyncio.SelectorEventLoop):
    """asyncio's selector loop, whose ``run_until_complete`` carries on after a stray
    ``stop()``.

    A stage's handler runs on this loop, and ``asyncio.get_event_loop().stop()`` in one made
    ``run_until_complete`` raise with the run still pending; closing the loop then waited for
    ever for the run's tasks, deaf to SIGTERM. The future awaited is what ends the call, so a
    ``stop()`` before it is done is ignored, with one warning each time."""

    def run_until_complete(self, future: Any) -> Any:
        future = asyncio.ensure_future(future, loop=self)
        while True:
            try:
                return super().run_until_complete(future)
            except RuntimeError:
                if future.done() or self.is_closed() or self.is_running():
                    raise
            import logging  # noqa: PLC0415 - only then (start-up time)

            logging.getLogger(__name__).warning(
                "the event loop was stopped (loop.stop()) by code running on it, such as a "
                "stage's handler: ignored, the run goes on"
            )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A selector event loop over a :class:`SpacedSelector` that ignores a stray ``stop()``
    (:class:`_Loop`); on Windows, asyncio's own loop (its proactor runs subprocesses, which a
    selector loop there cannot)."""
    if sys.platform == "win32":  # pragma: no cover - taskdaemon's CI runs Linux
        return asyncio.new_event_loop()
    return _Loop(SpacedSelector())


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on :func:`new_event_loop`'s loop, except that closing the loop
    does not wait for the calls still running on its ``_sync_pool.SyncPool``.

    Once ``main`` has ended, a call still running there is one its caller gave up on: a sync
    stage handler that timed out or whose run was cancelled (a thread cannot be interrupted).
    ``asyncio.run`` would join its thread, so a handler that never returns would hold the
    command after its run had ended and its summary was printed, Ctrl-C included; the pool's
    threads are daemon threads, and end with the process instead. How many were left so is
    logged, once, as a warning.
    """
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        try:
            return runner.run(main)
        finally:
            # Asked by name: the pool's module is imported only once a sync stage runs.
            pool = getattr(runner.get_loop(), "_default_executor", None)
            let_go = getattr(pool, "let_go", None)
            if let_go is not None:
                let_go()
                busy: int = pool.busy()  # type: ignore[union-attr]
                if busy:  # said once, not silently left behind
                    import logging  # noqa: PLC0415 - only then (start-up time)

                    logging.getLogger(__name__).warning(
                        "sync handlers still running after their stages ended (timed out or "
                        "cancelled): %d, left to end with the process",
                        busy,
                    )
