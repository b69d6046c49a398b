"""Results handed from worker threads to the event loop through one ``eventfd`` of its own.

``call_soon_threadsafe`` wakes the loop through asyncio's self-pipe: a ``Handle`` made on the
worker, a byte written, and on the loop the pipe's reader, which reads until the pipe is empty
and so ends every wake-up on a raised ``BlockingIOError``. A sync stage pays that once. An
:class:`Inbox` instead keeps the results in a deque and rings one ``eventfd`` registered with the
loop's selector; its reader reads the counter once (no exception: it is only called when the
counter is set) and completes every queued future. The wake-ups are the same (one a result,
coalesced when several land before the loop reads), the Python around them is less.

Lifetime: the fd is the loop's; it is closed when the loop is closed (its default executor's
``shutdown``, see ``_threads``) or, failing that, when the loop is collected. A worker that
finishes after that (a cancelled stage's thread still running) finds it closed and drops its
result, as ``call_soon_threadsafe`` would raise on a closed loop: ``put`` and ``close`` share a
lock so a write never reaches a closed (and perhaps reused) fd number.

Only where ``os.eventfd`` exists (Linux) and the loop's ``add_reader`` works (selector loops):
:func:`open_inbox` returns None elsewhere, and the caller keeps ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections import deque
from typing import Any

__all__ = ["Inbox", "open_inbox"]


class Inbox:
    """Results from any thread, delivered on one loop (see the module docstring)."""

    __slots__ = ("__weakref__", "_fd", "_guard", "_items")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._items: deque[tuple[Any, Any, Any]] = deque()
        self._guard = threading.Lock()

    def put(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        """Queue ``future``'s result (``error`` None) or exception for the loop and wake it;
        dropped once the inbox is closed (the loop closed: nobody awaits the result any more)."""
        with self._guard:
            if self._fd < 0:
                return
            self._items.append((future, result, error))
            os.eventfd_write(self._fd, 1)

    def _drain(self) -> None:
        """The fd's reader, on the loop: every queued result delivered, here rather than
        through a function called for each (a Python frame a result): the lines of
        ``_threads._deliver``, which the loops without an inbox still call."""
        os.eventfd_read(self._fd)  # only called readable: the counter is set
        items = self._items
        while items:
            future, result, error = items.popleft()
            # No ``done()`` asked first (a Python frame for a ``_hop_future.HopFuture``): a done
            # future refuses its result with ``InvalidStateError``, as ``asyncio.Future`` does.
            try:
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)
            except asyncio.InvalidStateError:  # the awaiting task was cancelled meanwhile
                pass

    def close(self) -> None:
        """Close the fd (once); later ``put``\\ s are dropped."""
        with self._guard:
            fd, self._fd = self._fd, -1
            if fd >= 0:
                os.close(fd)


def open_inbox(loop: asyncio.AbstractEventLoop) -> Inbox | None:
    """An inbox registered with ``loop`` (which must be running on this thread), closed at
    the latest when ``loop`` is collected; None where there is none to be had."""
    make = getattr(os, "eventfd", None)
    if make is None:
        return None
    fd = make(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    inbox = Inbox(fd)
    try:
        loop.add_reader(fd, inbox._drain)
    except NotImplementedError:  # not a selector loop
        inbox.close()
        return None
    weakref.finalize(loop, inbox.close)
    return inbox
