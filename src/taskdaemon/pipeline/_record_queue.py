"""The monitor's record queue: engine records handled off the run's critical path, in order.

``RecordQueue(handle)`` takes records from the engine's event loop (``put``) and has them
handled, in order and one at a time under ``lock``, by a worker thread that runs while the loop
waits for I/O: a stage sleeping or waiting for a subprocess pays almost nothing for the
telemetry of the stages around it. ``settle()`` handles what is queued now, on the caller's
thread (whoever needs the telemetry complete: the run's end, ``stage_environment``, ``flush``).

Policy, and why:

* The worker is woken only when a record lands in an empty queue: while it has records to
  handle it finds the later ones itself, so the loop pays no ``Event.set`` per record.
* A loop that never waits (instant stages, thousands of runs at once) never lets the worker
  run except when the interpreter forces a thread switch (every 5 ms), and the queue, with
  everything its records reference, would grow without bound. Once ``INLINE_BATCH`` records
  are queued the loop handles them itself: it is busy anyway, so nothing waits that would not
  have waited for the GIL, and each batch saves the thread switches and their cache misses.
  Below that, a burst of records around a stage start (a few per stage) goes to the worker.
* The loop never waits for the worker's batch to end, unless ``QUEUE_BOUND`` records are
  queued: when the worker holds the lock it is draining the queue already, and on a loaded
  machine a loop blocked on that lock also waits for the OS to reschedule the worker (measured:
  the same CPU time, twice the wall time of a 1,001-stage chain of async no-op stages).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["INLINE_BATCH", "QUEUE_BOUND", "WORKER_IDLE_SECONDS", "RecordQueue"]

#: Seconds an idle worker thread waits for records before it ends (it restarts on demand).
WORKER_IDLE_SECONDS = 5.0
#: Queued records at which the producing loop handles the queue itself (see the module doc).
INLINE_BATCH = 128
#: Queued records at which the producing loop waits for the worker's batch to end and handles
#: the rest: the memory bound.
QUEUE_BOUND = 8 * INLINE_BATCH


class _Worker:
    """A daemon thread that calls ``work`` whenever woken; it ends after
    ``WORKER_IDLE_SECONDS`` without records and is started again by the next ``wake``."""

    def __init__(self, work: Callable[[], None]) -> None:
        self._work = work
        self._event = threading.Event()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def wake(self) -> None:
        self._event.set()
        if self._thread is None:
            with self._guard:
                if self._thread is None:
                    self._stopping = False
                    self._thread = threading.Thread(
                        target=self._loop, name="taskdaemon-monitor", daemon=True
                    )
                    self._thread.start()

    def stop(self) -> None:
        with self._guard:
            thread, self._thread = self._thread, None
            self._stopping = True
        self._event.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        while True:
            woken = self._event.wait(WORKER_IDLE_SECONDS)
            self._event.clear()
            if self._stopping:
                return
            if not woken:
                with self._guard:
                    if self._event.is_set():
                        continue
                    self._thread = None
                    return
            self._work()


class RecordQueue:
    """Records handled in order by ``handle`` (which must not raise), under ``lock``."""

    def __init__(self, handle: Callable[[Any], None]) -> None:
        self._handle = handle
        self._pending: deque[Any] = deque()
        self.lock = threading.RLock()
        self._worker = _Worker(self.settle)

    def put(self, record: Any) -> None:
        """Queue ``record`` (from the producing loop's thread)."""
        pending = self._pending
        pending.append(record)
        queued = len(pending)
        if queued == 1:
            self._worker.wake()
        elif queued >= INLINE_BATCH:
            if queued >= QUEUE_BOUND:
                self.settle()
            elif self.lock.acquire(blocking=False):  # else the worker is draining it right now
                try:
                    self._drain()
                finally:
                    self.lock.release()

    def handle_now(self, record: Any) -> None:
        """Handle what is queued, then ``record``, on this thread."""
        with self.lock:
            self._drain()
            self._handle(record)

    def settle(self) -> None:
        """Handle every queued record now, on this thread."""
        with self.lock:
            self._drain()

    def close(self) -> None:
        """Handle what is queued and stop the worker (safe twice; it restarts on use)."""
        self.settle()
        self._worker.stop()

    def _drain(self) -> None:
        pending = self._pending
        handle = self._handle
        while pending:
            handle(pending.popleft())
