"""The span store writer's queue: spans in, batches out, one wake-up per batch.

``SpanQueue.put`` (on the thread that starts or ends a span) appends to a deque and rings the
writer's bell (``_record_queue.Bell``, a bare lock) only when the writer waits idle for a first
item, or when the queue just reached ``max_batch`` (the memory bound). The writer
(``next_batch``) then waits out the flush interval without being woken per span, and takes up
to ``max_batch`` items. A flush or stop marker (``put_urgent``) rings whatever the writer is
doing, and while one is queued the writer does not wait out the interval: ``force_flush``,
``flush_open_spans`` and ``shutdown`` are served at once.

Why: a writer blocked on ``SimpleQueue.get`` between spans was woken by every ``on_start`` and
``on_end``, a futex wake-up and a GIL hand-over each, to take one span and block again
(``benchmarks/README.md``, "Round 7 (wakeup7)").
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from taskdaemon.pipeline._record_queue import Bell

__all__ = ["STOP", "Flush", "SpanQueue"]


class Flush:
    """A flush marker: ``done`` is set once everything queued before it is written."""

    __slots__ = ("done", "refresh")

    def __init__(self, refresh: bool = False) -> None:
        self.done = threading.Event()
        self.refresh = refresh  # also rewrite open spans, whatever REFRESH_SPACING says


#: The stop marker: the writer ends after the batch it closes.
STOP = object()


class SpanQueue:
    """``(ended, span)`` pairs and markers, in order, for one writer thread."""

    __slots__ = ("_bell", "_idle", "_interval", "_markers", "_max_batch", "_pending")

    def __init__(self, interval: float, max_batch: int) -> None:
        self._interval = interval
        self._max_batch = max_batch
        self._pending: deque[Any] = deque()
        self._bell = Bell()
        self._idle = False  # the writer waits for a first item: the next put rings the bell
        # One entry per queued marker (list appends and pops are atomic): while any is queued
        # the writer does not wait out the interval.
        self._markers: list[None] = []

    def put(self, item: tuple[bool, Any]) -> None:
        """Queue a span; a lingering or busy writer finds it without being woken."""
        pending = self._pending
        pending.append(item)
        if self._idle:
            self._idle = False
            self._bell.ring()
        elif len(pending) == self._max_batch:
            self._bell.ring()

    def ended_waiting(self) -> int:
        """How many ended spans are queued (for the line that says what was not written at
        exit: it walks the queue)."""
        return sum(1 for item in list(self._pending) if type(item) is tuple and item[0])

    def put_urgent(self, *items: Flush | object) -> None:
        """Queue markers (``Flush``, ``STOP``) and wake the writer whatever it is doing."""
        for item in items:
            self._markers.append(None)  # before the item: the writer never lingers past it
            self._pending.append(item)
        self._idle = False
        self._bell.ring()

    def next_batch(self, idle_until: float) -> tuple[list[tuple[bool, Any]], list[Flush], bool]:
        """The writer's wait: the next batch of spans, the flush markers that end it, and
        whether ``STOP`` came. Waits idle until a first item or the monotonic time
        ``idle_until``, then out the interval unless rung (a marker, a full batch), then takes
        up to ``max_batch`` items, stopping after a marker."""
        pending, bell, markers = self._pending, self._bell, self._markers
        if not pending:
            self._idle = True
            # Checked again once idle is published: a put before it is seen here, one after it
            # rings the bell.
            if not pending:
                bell.wait(max(0.0, idle_until - time.monotonic()))
            self._idle = False
        if pending and not markers and len(pending) < self._max_batch:
            # A first span: written at most one interval from now, with what joins it meanwhile.
            bell.wait(self._interval)
        batch: list[tuple[bool, Any]] = []
        flushes: list[Flush] = []
        stop = False
        while pending and len(batch) < self._max_batch:
            item = pending.popleft()
            if item is STOP:
                markers.pop()
                stop = True
                break
            if isinstance(item, Flush):
                markers.pop()
                flushes.append(item)
                break
            batch.append(item)
        return batch, flushes, stop
