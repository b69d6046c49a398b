"""A signal that comes as a readline prompt starts to wait still reaches it (``_prompt.py``).

``input()`` on a terminal waits for a key in readline's ``select``; a signal interrupts that
wait, and its Python handler runs there (Ctrl-C: ``KeyboardInterrupt``, which the prompt turns
into a dropped line). A signal that comes a moment before the wait starts (readline has drawn
its prompt, and its C hook waits for the GIL another thread holds) only marks its handler
pending, and nothing runs it until a key comes: the Ctrl-C typed as the prompt showed was
lost, the half-typed line kept (about one in five in the pseudo-terminal test).

:class:`PromptSignals` closes that window, as the interpreter cannot: Python's signal wakeup
descriptor tells a small thread that a signal came; while the ``input()`` that was waiting
then is still waiting, the thread sends the main thread :data:`KICK`, whose handler does
nothing, every few milliseconds for up to a second. Each interrupts the wait, and the pending
handler runs with it. A kick that finds nothing pending costs one wake-up. A real-time signal
is used: nothing else sends it (``SIGUSR1`` writes a dump in ``run``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["KICK", "PromptSignals"]

#: What wakes the main thread out of readline's wait.
KICK = signal.SIGRTMIN
_STOP = 0  # the byte that ends the thread: no signal has number 0
_KICKS, _EVERY = 100, 0.01  # up to a second of kicks


class PromptSignals:
    """Kicks the main thread while it waits in :meth:`waiting` and a signal came (a context
    manager around a prompt's whole loop; outside the main thread, it does nothing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waits = 0  # the ``waiting`` blocks entered so far
        self._inside = False  # one is entered now
        self._main = 0  # the thread to kick, set on entering
        self._thread: threading.Thread | None = None
        self._fds: tuple[int, int] = (-1, -1)
        self._previous: tuple[int, Any] = (-1, None)

    def __enter__(self) -> PromptSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals are handled in the main thread only: nothing to kick
        self._main = threading.get_ident()
        read, write = os.pipe()
        os.set_blocking(write, False)  # as the wakeup descriptor must be
        self._fds = (read, write)
        self._previous = (
            signal.set_wakeup_fd(write, warn_on_full_buffer=False),
            signal.signal(KICK, _nothing),
        )
        self._thread = threading.Thread(
            target=self._watch, name="taskdaemon-prompt-signals", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            return
        # The thread ends before the kick's handler is put back: a kick sent after that would
        # meet the default action of a real-time signal, which ends the process.
        os.write(self._fds[1], bytes([_STOP]))
        self._thread.join()
        self._thread = None
        wakeup, handler = self._previous
        signal.set_wakeup_fd(wakeup)
        signal.signal(KICK, handler)
        for fd in self._fds:
            os.close(fd)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Around the ``input()`` a signal must reach."""
        with self._lock:
            self._waits += 1
            self._inside = True
        try:
            yield
        finally:
            with self._lock:
                self._inside = False

    def _watch(self) -> None:
        while True:
            came = os.read(self._fds[0], 512)
            if not came or _STOP in came:
                return
            if any(number != KICK for number in came):
                self._kick()

    def _kick(self) -> None:
        """Kick the main thread until the wait entered when the signal came ends."""
        with self._lock:
            if not self._inside:
                return  # the main thread runs Python code: the handler runs there
            wait = self._waits
        for _ in range(_KICKS):
            signal.pthread_kill(self._main, KICK)
            time.sleep(_EVERY)
            with self._lock:
                if not self._inside or self._waits != wait:
                    return


def _nothing(signum: int, frame: object) -> None:
    """:data:`KICK`'s handler: the interrupted wait is all it is for."""
