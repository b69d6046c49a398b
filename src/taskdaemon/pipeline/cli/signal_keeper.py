"""The stop signals' handling, put back when stage code changed it (a timer on the loop).

An ``async def`` handler runs on the event loop's thread, the main one for ``run``, ``serve``
and ``replay``, so it may call ``signal.signal``. ``signal.signal(SIGINT, SIG_IGN)`` made the
run ignore Ctrl-C from then on (a later ``sleep 20`` stage ran to its end, exit 0, the run a
success); ``SIG_DFL`` made the next Ctrl-C kill the process outright (the run left
``interrupted``, nothing said). A Python function of its own still let taskdaemon's handling
run (asyncio's wake-up descriptor is written for every signal), but ran too.

Decision: SIGINT, SIGTERM and SIGHUP are taskdaemon's for as long as it runs stages: they are
how a user stops a run cleanly (``cli/stop_signals.py``). :class:`SignalKeeper` takes their
handling once taskdaemon has installed its own, looks again every :data:`CHECK_SECONDS` on the
event loop, and puts back any that changed, with one warning naming the signal and what it had
become. Not refused up front: nothing can tell a handler's ``signal.signal`` before it runs.
Looked at on a timer, not as each stage ends: a check per stage would cost every stage of every
run for a mistake few handlers make, and a timer also gives Ctrl-C back while the handler that
changed it still runs. A handler that means to finish a step before it stops has the tools a
run's cancellation respects: catching ``asyncio.CancelledError``, or ``asyncio.shield``. Only
the main thread can change a signal's handling, so only ``async def`` handlers (run on the loop,
the main thread) can do it; the warning cannot name which one did.

The loop's signal wake-up descriptor is kept the same way. asyncio learns of a signal from the
byte the C handler writes to it (``signal.set_wakeup_fd``), and the Python handler it installs
does nothing: ``signal.set_wakeup_fd(-1)`` in a handler left every handling as it was, and
SIGTERM was lost (a later ``sleep 20`` stage ran to its end, exit 0). Each look puts the kept
descriptor back and learns what it was in the same call, so no signal finds none meanwhile.

A handler that *closes* that descriptor (``os.close``, ``os.closerange``) left asyncio writing
signals (and other threads' ``call_soon_threadsafe``) to nothing: SIGTERM was lost again. So
the keeper holds a copy of it (``os.dup``, close-on-exec) and, finding the number closed or
holding another file (one opened meanwhile takes the lowest free number), makes the copy the
wake-up descriptor and asyncio's socket for it (``loop._csock``), with one warning: the number
is let go, not written to or closed again, since it may be someone else's file now. What was
written to the number between the close and the next look (a signal byte, a thread's
``call_soon_threadsafe``) went where the number pointed: only the handler can avoid that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["CHECK_SECONDS", "SignalKeeper"]

_log = logging.getLogger(__name__)

#: The signals kept: every stop signal a command may handle (``cli/hangup.py``).
KEPT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: How often the handling is looked at: the longest a changed handling holds.
CHECK_SECONDS = 0.5

_Handling = Callable[[int, Any], Any] | int | signal.Handlers | None


class SignalKeeper:
    """Puts back the stop signals' handling stage code changed (module docstring)."""

    def __init__(self) -> None:
        self._kept: dict[int, _Handling] = {}
        self._wakeup = -1  # the loop's wake-up descriptor (-1: none to keep)
        self._copy = -1  # a copy of it, and what file it is: put back if closed
        self._file: tuple[int, int] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def keep(self) -> SignalKeeper:
        """Take the stop signals' handling as it is now (taskdaemon's own installed) as the
        handling to keep, and look at it again every :data:`CHECK_SECONDS` on the running loop
        until :meth:`close`; the keeper itself. Called on the loop's thread."""
        if threading.current_thread() is threading.main_thread():  # else none can change
            self._kept = {signum: signal.getsignal(signum) for signum in KEPT}
            # Read by setting it: blocked meanwhile, a signal waits for it instead of being lost.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, KEPT)
            try:
                self._wakeup = signal.set_wakeup_fd(-1)
                signal.set_wakeup_fd(self._wakeup)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            if self._wakeup != -1:
                with contextlib.suppress(OSError):
                    self._copy = os.dup(self._wakeup)
                    self._file = _file(self._copy)
            self._timer = asyncio.get_running_loop().call_later(CHECK_SECONDS, self._check)
        return self

    def close(self) -> None:
        """Stop looking (the handling is left as it is)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._copy != -1:
            with contextlib.suppress(OSError):
                os.close(self._copy)
            self._copy = -1

    def _check(self) -> None:
        self.put_back()
        self._timer = asyncio.get_running_loop().call_later(CHECK_SECONDS, self._check)

    def put_back(self) -> None:
        """Put back each kept signal's handling that changed, and the wake-up descriptor,
        saying so; never raises."""
        if self._copy != -1:
            self._reopen()
        if self._wakeup != -1:
            try:
                was = signal.set_wakeup_fd(self._wakeup)
            except (ValueError, OSError):  # closed by stage code: nothing to put back
                was = self._wakeup
            if was != self._wakeup:
                _log.warning(
                    "the signal wake-up descriptor was changed by stage code (to %d): "
                    "taskdaemon's is put back, so that a stop signal still stops the run",
                    was,
                )
        for signum, kept in self._kept.items():
            now = signal.getsignal(signum)
            if now == kept:
                continue
            try:
                signal.signal(signum, kept)
            except (ValueError, TypeError, OSError):  # never stops the run
                continue
            name = signal.Signals(signum).name
            _log.warning(
                "%s's handling was changed by stage code (%s): taskdaemon's is put back, so "
                "that %s still stops the run",
                name,
                _handling(now),
                name,
            )

    def _reopen(self) -> None:
        """The copy made the loop's wake-up socket if stage code closed it (module docstring)."""
        try:
            if _file(self._wakeup) == self._file:
                return
        except OSError:  # closed, the number free
            pass
        loop = asyncio.get_running_loop()
        old = getattr(loop, "_csock", None)  # asyncio's own: the write end of its self-pipe
        try:
            if isinstance(old, socket.socket) and old.fileno() == self._wakeup:
                new = socket.socket(fileno=self._copy)
                new.setblocking(False)
                loop._csock = new  # type: ignore[attr-defined]
                old.detach()  # the number is no longer asyncio's to write to or close
            signal.set_wakeup_fd(self._copy)
        except (OSError, ValueError):  # never stops the run
            return
        _log.warning(
            "the signal wake-up descriptor (%d) was closed by stage code: taskdaemon's copy "
            "(%d) takes its place, so that a stop signal still stops the run",
            self._wakeup,
            self._copy,
        )
        self._wakeup, self._copy = self._copy, -1  # the loop's now, closed with it
        with contextlib.suppress(OSError):
            self._copy = os.dup(self._wakeup)  # for a handler that closes it again


def _file(fd: int) -> tuple[int, int]:
    """Which file ``fd`` is open on (device and inode); OSError when it is not open."""
    status = os.fstat(fd)
    return status.st_dev, status.st_ino


def _handling(handling: _Handling) -> str:
    """What a signal's handling had become, in words."""
    if handling == signal.SIG_IGN:
        return "set to be ignored"
    if handling == signal.SIG_DFL:
        return "set to its default action"
    if handling is None:
        return "set outside Python"
    return "given a handler of its own"
