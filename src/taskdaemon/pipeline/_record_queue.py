"""The monitor's record queue: engine records handled off the run's critical path, in order.

``RecordQueue(handle)`` takes records from the engine's event loop (``put``) and has them
handled, in order and one at a time under ``lock``, by a worker thread that runs while the loop
waits for I/O: a stage sleeping or waiting for a subprocess pays almost nothing for the
telemetry of the stages around it. ``settle()`` handles what is queued now, on the caller's
thread (whoever needs the telemetry complete: the run's end, ``stage_environment``, ``flush``).

Policy, and why:

* The worker is woken only by a record that finds it idle (waiting for a first record, or no
  thread at all): while it lingers or handles records it finds the later ones itself, so the
  loop pays no wake-up per record. The wake-up is the release of a bare lock the worker waits
  on (``Bell``), not ``threading.Event.set`` (a condition variable, its own lock and list of
  waiters): a stage that waits (a sleep, a subprocess) pays one wake-up on the run's critical
  path, and the bare lock's is several times cheaper for the producer (benchmarks/README.md,
  "Round 5 (concur5)").
* Once woken, the worker lingers ``WORKER_LINGER_SECONDS`` before it handles what is queued,
  as the span store's writer waits out its interval (``tracking/_span_queue.py``): the records
  of the next few stages join the batch without a wake-up each. Without it, a chain of sync
  stages woke the worker about once a stage, each wake-up a thread switch and a GIL hand-over
  with the loop and the handler's thread, dear on this VM when the thread runs on the other
  CPU (benchmarks/README.md, "Round 9 (wake9)", which also says how the value was chosen).
  The trade: live readers that do not settle (the live views, ``watch``) see a record up to
  the linger later; whatever needs the telemetry complete settles the queue itself, at once
  (``stage_environment``, ``flush``, ``get_metrics``, ``RunFinished``, a ``RunStarted``
  whose run span the monitor did not start), so a settle finds up to a linger's records more
  than before, on its own thread. The linger is kept well under the time a chain of sync
  stages takes to queue ``INLINE_BATCH`` records, so the worker, not the loop, still handles
  them. Only ``stop`` cuts a linger short.
* After a batch the worker does not go idle at once: for ``WORKER_POLL_SECONDS`` it looks for
  records every linger, still busy, so the records of a stage that ends within that time ring
  nobody. A stage that sleeps or waits for a subprocess (10 ms, say) used to find the worker
  idle and pay the wake-up on the run's critical path, a futex call that on this VM costs the
  loop tens of µs when the worker sleeps on the other CPU; now the worker finds the records on
  its own timer. A poll that finds nothing costs the worker a timed wait, off the critical
  path, at most ``WORKER_POLL_SECONDS / WORKER_LINGER_SECONDS`` times after each batch
  (benchmarks/README.md, "The worker polls after a batch").
* A loop that never waits (instant stages, thousands of runs at once) never lets the worker
  run except when the interpreter forces a thread switch (every 5 ms), and the queue, with
  everything its records reference, would grow without bound. Once ``INLINE_BATCH`` records
  are queued the loop handles them itself: it is busy anyway, so nothing waits that would not
  have waited for the GIL, and each batch saves the thread switches and their cache misses.
  Below that, a burst of records around a stage start (a few per stage) goes to the worker.
* The loop never waits for the worker's whole batch. At ``INLINE_BATCH`` it handles the queue
  only if the lock is free (when the worker holds it, it is draining the queue already; a
  lingering worker does not hold it). At
  ``QUEUE_BOUND``, the memory bound, and whenever a thread settles the queue, the waiting
  thread asks for the lock (``_QueueLock``): the worker hands it over after the record it is
  handling and the waiter handles the rest, so a wait lasts one record, not a batch of up to
  ``QUEUE_BOUND`` records (on a loaded machine a loop blocked on that lock also waited for
  the OS to reschedule the worker).
* A record that carries a payload (``put(record, heavy=True)``: the monitor's published
  events) can be large, and costs the worker far more than the producer: the monitor
  redacts, serialises and hashes each payload, whose publisher only handed it over, so a
  handler publishing in a loop filled the queue with payloads up to ``QUEUE_BOUND``
  (docs/span-store.md, "Payloads waiting to be recorded"). So at ``HEAVY_BOUND`` heavy
  records queued the producer settles the queue, as at ``QUEUE_BOUND``.
* Nothing is ever dropped: the producer that reaches the bound handles the queue itself, so
  the queue stays bounded without shedding records (a dropped ``StageFinished`` would leave a
  span open forever, and a dropped ``StageStarted`` a trace with a hole). ``stats()`` counts
  what went where, for tests and benchmarks.
* Each turn of the queue (a worker batch, or one caller's drain, settle, ``handle_now`` or
  ``handle_batch`` slice) is announced on its thread: ``turn.token`` is a new list for its
  duration, None outside one. A handler may keep an answer for the records of one turn by
  keying it on the token, and append to it what is to be called when the turn ends (``run_log``:
  where a row goes is asked once a turn, not once a row, and the turn's rows are handed to the
  writer together at its end); the queue itself neither knows nor cares who does so. What is
  appended must not raise: it runs in the queue's own loop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "HEAVY_BOUND",
    "INLINE_BATCH",
    "QUEUE_BOUND",
    "WORKER_IDLE_SECONDS",
    "WORKER_LINGER_SECONDS",
    "WORKER_POLL_SECONDS",
    "Bell",
    "RecordQueue",
    "turn",
]

#: Seconds an idle worker thread waits for records before it ends (it restarts on demand).
WORKER_IDLE_SECONDS = 5.0
#: Seconds the worker, woken by a first record, waits for more before it handles them.
WORKER_LINGER_SECONDS = 0.002
#: Seconds the worker keeps looking for records, every linger, after it has handled a batch,
#: before it waits idle (only an idle worker is rung; module doc).
WORKER_POLL_SECONDS = 0.05
#: Queued records at which the producing loop handles the queue itself (see the module doc).
INLINE_BATCH = 128
#: Queued records at which the producing loop takes the lock from the worker (which hands it
#: over after its current record) and handles the rest: the memory bound.
QUEUE_BOUND = 8 * INLINE_BATCH
#: Queued heavy records (``put(record, heavy=True)``) at which the producer settles the queue.
HEAVY_BOUND = 32


class _Turn(threading.local):
    """The turn of a record queue under way on this thread (module doc)."""

    #: A new list at the start of each turn, of what to call at its end; None outside one.
    token: list[Callable[[], None]] | None = None


#: The turn under way on this thread (module doc).
turn = _Turn()


class _TurnScope:
    """``with _TurnScope():`` one turn: a new token, the previous one put back at its end,
    then what the turn's handlers appended to it called, in order (a turn within a turn, a
    handler settling its own queue, gets a token of its own)."""

    __slots__ = ("_previous",)

    def __enter__(self) -> None:
        self._previous = turn.token
        turn.token = []

    def __exit__(self, *exc_info: object) -> None:
        ending = turn.token
        turn.token = self._previous
        if ending:
            for call in ending:
                call()


class Bell:
    """A wake-up that coalesces: ``ring`` from any thread, ``wait`` on the one worker thread.

    A bare lock, held while no wake-up is pending: ``ring`` releases it (a ring while one is
    pending does nothing), ``wait`` takes it back. Waking a thread blocked on a bare lock is
    one futex call, without ``threading.Event``'s condition variable (module doc).
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def ring(self) -> None:
        # try/except rather than contextlib.suppress: this runs once per stage on the loop.
        try:  # noqa: SIM105
            self._lock.release()
        except RuntimeError:  # already released: a wake-up is pending
            pass

    def wait(self, timeout: float) -> bool:
        """True when rung (within ``timeout`` seconds); the ring is consumed."""
        return self._lock.acquire(timeout=timeout)

    def take(self) -> bool:
        """Consume a pending ring without waiting; True if there was one."""
        return self._lock.acquire(blocking=False)


class _Worker:
    """A daemon thread that calls ``work`` once records are queued in ``pending`` and it has
    lingered ``WORKER_LINGER_SECONDS`` for more (module doc). It ends after
    ``WORKER_IDLE_SECONDS`` without records and is started again by the next ``wake``.

    ``idle`` is True while no thread runs or the thread waits for a first record: only then
    does a new record need a ``wake``. While it lingers, works or polls after a batch, it
    finds later records itself."""

    def __init__(self, work: Callable[[], None], pending: deque[Any]) -> None:
        self._work = work
        self._pending = pending
        self._bell = Bell()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.idle = True

    def wake(self) -> None:
        self.idle = False
        self._bell.ring()
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
            self.idle = True  # the next record starts a new thread
        self._bell.ring()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        bell = self._bell
        pending = self._pending
        bell.take()  # the ring of the ``wake`` that started this thread: it finds the records
        while not self._stopping:  # ``stop`` sets it, then rings
            if not pending:
                self._poll()
                if self._stopping:
                    return
            if not pending:
                self.idle = True
                # Checked again once idle is published: a record queued before it is seen
                # here, one queued after it rings the bell.
                if not pending:
                    woken = bell.wait(WORKER_IDLE_SECONDS)
                    if self._stopping:
                        return
                    if not woken:
                        with self._guard:
                            # A ring between the time-out and the guard: it found the thread
                            # still registered and started none, so this thread does the work.
                            if not bell.take():
                                self._thread = None
                                return
                self.idle = False
            # The linger: records that land meanwhile ring nobody. Only ``stop`` cuts it short
            # (or a ring left over from a record queued as the worker went idle).
            bell.wait(WORKER_LINGER_SECONDS)
            if self._stopping:
                return
            self._work()

    def _poll(self) -> None:
        """Look for records every linger for up to ``WORKER_POLL_SECONDS``, still busy (not
        ``idle``), so a record that lands meanwhile rings nobody. A ring (``stop``, a settle's
        release with records queued) ends a wait early; it finds what the ring was for."""
        bell, pending = self._bell, self._pending
        deadline = time.monotonic() + WORKER_POLL_SECONDS
        while not pending and not self._stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            bell.wait(min(WORKER_LINGER_SECONDS, left))


class _QueueLock:
    """The queue's re-entrant lock, which the worker hands over to any thread that waits.

    A thread that finds the lock taken registers in ``waiting`` before it blocks; the worker
    checks ``waiting`` between records and lets go when it is not empty. Whoever releases the
    lock with records still queued rings the worker, so records queued behind a caller that
    took the lock without draining (the monitor's run-id allocation) are not left waiting
    for the next record.
    """

    __slots__ = ("_lock", "_queue", "waiting")

    def __init__(self, queue: RecordQueue) -> None:
        self._lock = threading.RLock()
        self._queue = queue
        #: One entry per thread blocked on the lock (list appends and pops are atomic).
        self.waiting: list[None] = []

    def acquire(self, blocking: bool = True) -> bool:
        lock = self._lock
        if lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        waiting = self.waiting
        waiting.append(None)
        try:
            lock.acquire()
        finally:
            waiting.pop()
        return True

    def release(self) -> None:
        self._lock.release()
        queue = self._queue
        if queue._pending and queue._worker.idle:
            queue._worker.wake()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class RecordQueue:
    """Records handled in order by ``handle`` (which must not raise), under ``lock``."""

    def __init__(self, handle: Callable[[Any], None]) -> None:
        self._handle = handle
        self._pending: deque[Any] = deque()
        self.lock = _QueueLock(self)
        self._worker = _Worker(self._work, self._pending)
        # What went where (``stats``): plain counters, only ever written under ``lock``.
        self._by_worker = 0
        self._by_caller = 0
        self._handovers = 0
        # Heavy records queued (module doc): ``_heavy`` holds each one's number among the
        # records put (``_put``), ``_taken`` counts the records taken from the queue. Only the
        # producer writes ``_put`` and ``_heavy``; ``_taken`` is written under ``lock``, and read
        # by the producer without it: a stale count only makes it settle sooner.
        self._put = 0
        self._taken = 0
        self._heavy: deque[int] = deque()

    def put(self, record: Any, heavy: bool = False) -> None:
        """Queue ``record`` (from the producing loop's thread); ``heavy`` when it carries a
        payload (module doc)."""
        pending = self._pending
        pending.append(record)
        self._put += 1
        if heavy:
            heavies = self._heavy
            heavies.append(self._put)
            while heavies and heavies[0] <= self._taken:
                heavies.popleft()
            if len(heavies) >= HEAVY_BOUND:
                self.settle()
                return
        if self._worker.idle:
            self._worker.wake()
        elif (queued := len(pending)) >= INLINE_BATCH:
            if queued >= QUEUE_BOUND:
                self.settle()
            elif self.lock._lock.acquire(blocking=False):  # else the worker is draining it
                try:
                    with _TurnScope():
                        self._drain()
                finally:
                    self.lock._lock.release()

    def waiting(self, wanted: Callable[[Any], bool]) -> bool:
        """Whether a record still queued (not yet taken to be handled) is one ``wanted``
        accepts, the latest first. Read from a copy: the worker takes records meanwhile."""
        return any(wanted(record) for record in reversed(list(self._pending)))

    def handle_now(self, record: Any) -> None:
        """Handle what is queued, then ``record``, on this thread."""
        with self.lock, _TurnScope():
            self._drain()
            self._by_caller += 1
            self._handle(record)

    def handle_batch(self, records: Sequence[Any]) -> None:
        """Handle what is queued, then ``records`` in order, on this thread.

        For a caller that has many records at once (``cli/deferred.py`` handing over what it
        kept while the monitor loaded): the lock is taken once per ``INLINE_BATCH`` records
        instead of once a record, as ``handle_now`` would. Between slices it is let go, so a
        thread waiting for it waits for at most a slice, as a settle waits for the worker."""
        handle = self._handle
        for start in range(0, len(records), INLINE_BATCH):
            part = records[start : start + INLINE_BATCH]
            with self.lock, _TurnScope():
                self._drain()
                for record in part:
                    handle(record)
                self._by_caller += len(part)

    def settle(self) -> None:
        """Handle every queued record now, on this thread."""
        with self.lock, _TurnScope():
            self._drain()

    def close(self) -> None:
        """Handle what is queued and stop the worker (safe twice; it restarts on use)."""
        self.settle()
        self._worker.stop()

    def stats(self) -> dict[str, int]:
        """Records handled by the worker and by callers, and how often the worker handed the
        lock to a waiting thread; ``queued`` is what waits now."""
        with self.lock:
            return {
                "by_worker": self._by_worker,
                "by_caller": self._by_caller,
                "handovers": self._handovers,
                "queued": len(self._pending),
            }

    def _drain(self) -> None:
        pending = self._pending
        handle = self._handle
        handled = 0
        while pending:
            handle(pending.popleft())
            handled += 1
        self._by_caller += handled
        self._taken += handled

    def _work(self) -> None:
        """The worker's turn: handle records until none is left or a thread waits for the
        lock (then that thread has it, and handles the rest if it settles)."""
        pending = self._pending
        handle = self._handle
        lock = self.lock._lock
        waiting = self.lock.waiting
        # not ``self.lock``: the worker never asks another thread to hand over
        with lock, _TurnScope():
            handled = 0
            while pending and not waiting:
                handle(pending.popleft())
                handled += 1
            self._by_worker += handled
            self._taken += handled
            if pending:
                self._handovers += 1
