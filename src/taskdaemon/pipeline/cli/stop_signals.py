"""SIGINT, SIGTERM and SIGHUP for the commands that run a pipeline on their event loop
(``run``, ``replay``): the first signal cancels the run cleanly, a second one exits at once.

Cancelling (rather than letting Python's ``KeyboardInterrupt`` or SIGTERM's default end the
process) is what makes the run's record honest: its stages and run span end ``cancelled``,
its command stages' process groups are killed, its telemetry is flushed, and the exit code says
which signal stopped it (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP). A process ended by
SIGTERM's or SIGHUP's default action leaves its run ``interrupted`` in the store, as after
``kill -9``. SIGHUP (the terminal closed) follows ``cli/hangup.py``: left ignored under
``nohup``; the terminal's streams detached first; the run's reason says the terminal hung up;
and a SIGHUP after the first signal is no hurry (the shell sends one more as it exits): it is
not a second signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable

from taskdaemon.pipeline.cli.hangup import HANGUP_REASON, detach_terminal, stop_signals
from taskdaemon.pipeline.cli.terminal_state import exit_now
from taskdaemon.pipeline.stdout_first import flush_stdout

__all__ = ["StopSignals", "stop_cancel"]


class StopSignals:
    """Cancels a run on SIGINT, SIGTERM or SIGHUP (installed on the running loop by ``install``).

    ``cancel`` is called for the first signal, with the reason to record (None: the engine's
    ``run cancelled by <by>``) and who cancels, the signal's name (``RunHandle.cancel``'s
    ``by``: a run's record names who cancelled it, as after ``taskdaemon cancel``);
    ``run_id`` names the run in the line said then.
    A signal before the run has an id (``bind`` not called yet) is kept, and cancels it when
    ``bind`` is called."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._cancel: Callable[[str | None, str], object] | None = None
        self._run_id = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handled: tuple[int, ...] = ()
        self._hung_up = False

    def install(self) -> None:
        """Handle SIGINT, SIGTERM and SIGHUP (unless ignored: ``nohup``) on the running loop
        until ``remove``."""
        self._loop = asyncio.get_running_loop()
        self._handled = stop_signals()
        for signum in self._handled:
            self._loop.add_signal_handler(signum, self._on_signal, signum)

    def remove(self) -> None:
        """Give the signals back to their previous handling. A second call does nothing: by
        then the signals may have a new owner on the loop, whose handlers stay."""
        if self._loop is not None:
            for signum in self._handled:
                self._loop.remove_signal_handler(signum)
            self._loop = None
            if self._hung_up:  # the terminal is gone: a later SIGHUP (the shell's) must not
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # end the process as it exits

    def bind(self, run_id: str, cancel: Callable[[str | None, str], object]) -> None:
        """The run to cancel; a signal received before is acted on now."""
        self._run_id, self._cancel = run_id, cancel
        if self.received:
            self._say(self.received[0])
            cancel(*stop_cancel(self.received[0]))

    def exit_code(self) -> int | None:
        """128 + the first signal's number (130 SIGINT, 143 SIGTERM, 129 SIGHUP), or None
        without one."""
        return 128 + self.received[0] if self.received else None

    def _say(self, signum: int) -> None:
        name = signal.Signals(signum).name
        # Said, not required: with stderr gone (its reader ended, a closed terminal), the
        # cancel must still happen, and an error here would skip it.
        with contextlib.suppress(OSError, ValueError):
            flush_stdout()  # after what a handler printed, in a log of both streams too
            print(f"\n{name}: cancelling run {self._run_id}...", file=sys.stderr, flush=True)

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self._hung_up = True
            detach_terminal()  # before any line: writing to a hung-up terminal fails
            if self.received:  # the shell's SIGHUP after the kernel's, or one mid-stop
                return
        elif self.received:  # a second signal: the user does not want to wait
            exit_now(128 + signum)  # the terminal's echo put back (cli/terminal_state.py)
        self.received.append(signum)
        if self._cancel is not None:
            self._say(signum)
            self._cancel(*stop_cancel(signum))


def stop_cancel(signum: int) -> tuple[str | None, str]:
    """``RunHandle.cancel``'s reason and who for a run stopped by ``signum``: the signal's name,
    and SIGHUP's own reason (None for the others: the engine's, which names the signal, ``run
    cancelled by SIGTERM``)."""
    return HANGUP_REASON if signum == signal.SIGHUP else None, signal.Signals(signum).name
