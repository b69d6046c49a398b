"""SIGINT and SIGTERM for the commands that run a pipeline on their event loop (``run``,
``replay``): the first signal cancels the run cleanly, a second one exits at once.

Cancelling (rather than letting Python's ``KeyboardInterrupt`` or SIGTERM's default end the
process) is what makes the run's record honest: its stages and run span end ``cancelled``,
its command stages' process groups are killed, its telemetry is flushed, and the exit code says
which signal stopped it (130 for SIGINT, 143 for SIGTERM). A process ended by SIGTERM's
default action leaves its run ``interrupted`` in the store, as after ``kill -9``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["StopSignals"]


class StopSignals:
    """Cancels a run on SIGINT or SIGTERM (installed on the running loop by ``install``).

    ``cancel`` is called for the first signal; ``run_id`` names the run in the line said then.
    A signal before the run has an id (``bind`` not called yet) is kept, and cancels it when
    ``bind`` is called."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._cancel: Callable[[], object] | None = None
        self._run_id = ""
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Handle SIGINT and SIGTERM on the running loop until ``remove``."""
        self._loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(signum, self._on_signal, signum)

    def remove(self) -> None:
        """Give SIGINT and SIGTERM back to their previous handling."""
        if self._loop is not None:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._loop.remove_signal_handler(signum)
            self._loop = None

    def bind(self, run_id: str, cancel: Callable[[], object]) -> None:
        """The run to cancel; a signal received before is acted on now."""
        self._run_id, self._cancel = run_id, cancel
        if self.received:
            self._say(self.received[0])
            cancel()

    def exit_code(self) -> int | None:
        """128 + the first signal's number (130 SIGINT, 143 SIGTERM), or None without one."""
        return 128 + self.received[0] if self.received else None

    def _say(self, signum: int) -> None:
        name = signal.Signals(signum).name
        # Said, not required: with stderr gone (its reader ended, a closed terminal), the
        # cancel must still happen, and an error here would skip it.
        with contextlib.suppress(OSError, ValueError):
            print(f"\n{name}: cancelling run {self._run_id}...", file=sys.stderr, flush=True)

    def _on_signal(self, signum: int) -> None:
        if self.received:  # a second signal: the user does not want to wait
            os._exit(128 + signum)
        self.received.append(signum)
        if self._cancel is not None:
            self._say(signum)
            self._cancel()
