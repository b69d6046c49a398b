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

The reader takes the counter without letting go of the GIL: a ``read(2)`` of the eventfd
through ``ctypes.PyDLL`` (whose calls keep the GIL), not ``os.eventfd_read`` (which lets go of it
around the system call). The read cannot block (the fd is non-blocking and readable), so letting
go bought nothing, and cost a sync stage a hand-over: the pool thread that delivered the result
yields (``_sync_pool``) and then waits for the GIL; the loop's let-go handed it the GIL before
the next stage was in its slot, so it found no job, blocked on its bell, and the loop's ring
for the next stage woke it again, each step a ``futex`` call on both threads
(benchmarks/README.md, "The loop's inbox keeps the GIL (perf52, 2026-12-07)"). ``ctypes`` is
imported by the first inbox a process opens (its first sync hop), not before; where it cannot
be had, the reader uses ``os.eventfd_read``.

Only where ``os.eventfd`` exists (Linux) and the loop's ``add_reader`` works (selector loops):
:func:`open_inbox` returns None elsewhere, and the caller keeps ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Inbox", "open_inbox"]


def _eventfd_read(fd: int, buffer: Any, size: int) -> None:
    """The reader where ``ctypes`` cannot be had: ``os.eventfd_read``, which lets go of the
    GIL."""
    os.eventfd_read(fd)


@functools.cache
def _counter_reader() -> tuple[Callable[[int, Any, int], object], Any]:
    """``read(fd, buffer, size)`` that takes an eventfd's counter keeping the GIL, and the
    8-byte buffer it reads into (module doc); made once a process."""
    try:
        import ctypes  # noqa: PLC0415 - only a process whose loop opens an inbox pays for it

        read = ctypes.PyDLL(None).read
        read.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
        read.restype = ctypes.c_ssize_t
    except (ImportError, OSError, AttributeError):  # no ctypes, or no libc read symbol
        return _eventfd_read, None
    # One buffer for every inbox: a ``PyDLL`` call holds the GIL, so no two reads overlap,
    # and what is read is never looked at.
    return read, ctypes.create_string_buffer(8)


class Inbox:
    """Results from any thread, delivered on one loop (see the module docstring)."""

    __slots__ = ("__weakref__", "_buffer", "_fd", "_guard", "_items", "_read")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._read, self._buffer = _counter_reader()
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
        # Only called readable: the counter is set. Read keeping the GIL (module doc).
        self._read(self._fd, self._buffer, 8)
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
