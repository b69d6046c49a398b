"""A run's worker slots: at most ``concurrency`` attempts hold one at once.

What ``asyncio.Semaphore`` does, in the same order: a slot free and nobody waiting is taken at
once; otherwise the attempt waits, first come first served, and a released slot is handed to
the first waiter still waiting (its task wakes on the loop's next step, as a semaphore's
would), so which attempt starts when is unchanged.

Why not the semaphore: every attempt takes a slot, and ``async with`` a semaphore creates and
runs three coroutines (``__aenter__``, ``acquire``, ``__aexit__``) and a generator (its
``locked()`` looks through the waiters) even when a slot is free, which is nearly always.
Here taking a free slot is one plain call, and only waiting awaits anything. The engine's
attempt loop (``_attempt.Attempts.execute``) does the usual case of :meth:`take` and
:meth:`release` inline, a free slot and nobody waiting (a frame each spared, every attempt), and
calls them otherwise; ``tests/pipeline_engine_slots_test.py`` holds the two to the same order.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["WorkerSlots"]


class WorkerSlots:
    """``size`` slots; ``free`` of them are not held (the debugger's views show it)."""

    __slots__ = ("free", "waiters")

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """Take a free slot now if nobody waits for one; False: :meth:`wait` for it."""
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Wait for a slot, after those who waited first; it is held when this returns.

        Cancelled while waiting, the attempt holds none: a slot handed to it at that very
        moment goes on to the next waiter."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            raise
        finally:
            if waiter in self.waiters:  # not when handed a slot: release() took it off
                self.waiters.remove(waiter)

    def release(self) -> None:
        """Give a slot back: to the first waiter still waiting, else to the free ones."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
