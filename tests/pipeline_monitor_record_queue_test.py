"""The monitor's record queue: order, the worker thread, the bound a busy producer keeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from taskdaemon.pipeline import _record_queue
from taskdaemon.pipeline._record_queue import (
    HEAVY_BOUND,
    INLINE_BATCH,
    QUEUE_BOUND,
    RecordQueue,
    turn,
)


@pytest.mark.slow
def test_a_producer_faster_than_the_worker_handles_batches_itself() -> None:
    """A producer that outruns the worker (a loop that never waits) never leaves QUEUE_BOUND
    records queued: past INLINE_BATCH it handles the queue itself whenever the worker is not
    draining it, so memory stays bounded, and every record is still handled once, in order."""
    handled: list[int] = []
    threads: set[str] = set()
    producer = threading.current_thread().name

    def handle(record: int) -> None:
        name = threading.current_thread().name
        threads.add(name)
        if name != producer:
            time.sleep(0.001)  # a worker slower than the producer
        handled.append(record)

    queue = RecordQueue(handle)
    try:
        most = 0
        for record in range(QUEUE_BOUND * 4):
            queue.put(record)
            most = max(most, len(queue._pending))
        queue.settle()
    finally:
        queue.close()
    assert INLINE_BATCH < QUEUE_BOUND
    assert most < QUEUE_BOUND
    assert list(range(QUEUE_BOUND * 4)) == handled
    assert producer in threads


def test_a_few_records_go_to_the_worker_thread() -> None:
    """Below the batch size, records are handled by the worker thread, not the producer."""
    done = threading.Event()
    threads: list[str] = []

    def handle(record: int) -> None:
        threads.append(threading.current_thread().name)
        if record == 2:
            done.set()

    queue = RecordQueue(handle)
    try:
        for record in range(3):
            queue.put(record)
        assert done.wait(10)
    finally:
        queue.close()
    assert ["taskdaemon-monitor"] * 3 == threads


def _wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (a state another thread reaches) for up to 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


class _ByThread:
    """Records handled, each with its thread's name; ``done`` is set once ``last`` is."""

    def __init__(self, last: int) -> None:
        self.handled: list[tuple[int, str]] = []
        self.done = threading.Event()
        self.last = last

    def __call__(self, record: int) -> None:
        self.handled.append((record, threading.current_thread().name))
        if record == self.last:
            self.done.set()


class _GatedHandler:
    """Records handled by thread name; the worker's first record blocks until ``gate`` opens."""

    def __init__(self, last: int) -> None:
        self.by_thread: dict[str, list[int]] = {}
        self.gate = threading.Event()
        self.inside = threading.Event()
        self.done = threading.Event()
        self.last = last

    def __call__(self, record: int) -> None:
        name = threading.current_thread().name
        if record == 0:
            self.inside.set()
            assert self.gate.wait(10)
        self.by_thread.setdefault(name, []).append(record)
        if record == self.last:
            self.done.set()


def test_a_settling_thread_waits_one_record_not_the_workers_batch() -> None:
    """A thread that settles while the worker drains gets the lock once the worker's current
    record is handled, and handles the rest itself, in order (it used to wait for the batch)."""
    handler = _GatedHandler(last=49)
    queue = RecordQueue(handler)
    try:
        for record in range(50):
            queue.put(record)
        assert handler.inside.wait(10)  # the worker is inside record 0, holding the lock
        settler = threading.Thread(target=queue.settle, name="settler")
        settler.start()
        _wait_until(lambda: bool(queue.lock.waiting))
        handler.gate.set()
        settler.join(10)
        assert not settler.is_alive()
        stats = queue.stats()
    finally:
        queue.close()
    assert {"taskdaemon-monitor": [0], "settler": list(range(1, 50))} == handler.by_thread
    assert (1, 49, 0) == (stats["by_worker"], stats["by_caller"], stats["queued"])
    # 1, or 2 when a record landed in the queue emptied by the worker's pop and rang again.
    assert stats["handovers"] >= 1


def test_records_left_behind_a_non_draining_lock_holder_go_back_to_the_worker() -> None:
    """A thread that takes the lock without settling (the run-id allocation) makes the worker
    hand it over; when it lets go, the worker is woken for the records still queued."""
    handler = _GatedHandler(last=9)
    queue = RecordQueue(handler)
    holder_inside = threading.Event()

    def hold() -> None:
        with queue.lock:
            holder_inside.set()

    try:
        for record in range(10):
            queue.put(record)
        assert handler.inside.wait(10)
        holder = threading.Thread(target=hold, name="holder")
        holder.start()
        _wait_until(lambda: bool(queue.lock.waiting))
        handler.gate.set()
        assert holder_inside.wait(10)
        holder.join(10)
        assert handler.done.wait(10)  # no further put or settle: the release woke the worker
    finally:
        queue.close()
    assert {"taskdaemon-monitor": list(range(10))} == handler.by_thread


def test_an_idle_worker_ends_and_the_next_record_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker thread ends after its idle time; a record queued later is still handled by
    a worker thread (the wake-up starts a new one)."""
    monkeypatch.setattr(_record_queue, "WORKER_IDLE_SECONDS", 0.01)
    handler = _ByThread(last=1)
    queue = RecordQueue(handler)
    try:
        queue.put(0)
        _wait_until(lambda: bool(handler.handled) and queue._worker._thread is None)
        queue.put(1)
        assert handler.done.wait(10)
    finally:
        queue.close()
    assert [(0, "taskdaemon-monitor"), (1, "taskdaemon-monitor")] == handler.handled


class _CountingBell(_record_queue.Bell):
    """The worker's bell, counting its rings (``ring`` is what wakes a waiting worker)."""

    __slots__ = ("rings",)

    def __init__(self) -> None:
        super().__init__()
        self.rings = 0

    def ring(self) -> None:
        self.rings += 1
        super().ring()


def _lingering_queue(
    monkeypatch: pytest.MonkeyPatch, handle: Callable[[int], None]
) -> tuple[RecordQueue, _CountingBell]:
    """A queue whose worker lingers far longer than any test waits: only a ring (``stop``, or
    the test's own) ends the linger, so what happens meanwhile does not depend on timing."""
    monkeypatch.setattr(_record_queue, "WORKER_LINGER_SECONDS", 3600.0)
    return _counting_queue(handle)


def _counting_queue(handle: Callable[[int], None]) -> tuple[RecordQueue, _CountingBell]:
    """A queue whose worker's bell counts its rings."""
    queue = RecordQueue(handle)
    bell = _CountingBell()
    queue._worker._bell = bell
    return queue, bell


def test_records_queued_while_the_worker_lingers_wake_nobody_and_go_in_one_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first record wakes the worker; the ones queued while it lingers ring nothing, and
    the worker handles them all in the one turn that ends its linger."""
    handler = _ByThread(last=4)
    queue, bell = _lingering_queue(monkeypatch, handler)
    try:
        queue.put(0)
        _wait_until(lambda: not queue._worker.idle and queue._worker._thread is not None)
        for record in range(1, 5):
            queue.put(record)
        assert 1 == bell.rings
        assert [] == handler.handled  # the worker lingers: nothing is handled yet
        bell.ring()  # the linger ends (as its time-out would)
        assert handler.done.wait(10)
        stats = queue.stats()
    finally:
        queue.close()
    assert [(record, "taskdaemon-monitor") for record in range(5)] == handler.handled
    assert (5, 0) == (stats["by_worker"], stats["by_caller"])


def test_a_settle_during_the_linger_handles_the_records_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whoever needs the telemetry complete does not wait for the linger: ``settle`` handles
    what is queued on its own thread at once; a record queued after it, while the worker still
    lingers, rings nothing; ``close`` ends the linger, drains and joins the worker."""
    handler = _ByThread(last=2)
    queue, bell = _lingering_queue(monkeypatch, handler)
    caller = threading.current_thread().name
    try:
        queue.put(0)
        queue.put(1)
        queue.settle()
        assert [(0, caller), (1, caller)] == handler.handled
        queue.put(2)  # into an empty queue, but the worker lingers: no ring
        assert 1 == bell.rings
    finally:
        queue.close()
    assert [(0, caller), (1, caller), (2, caller)] == handler.handled
    assert queue._worker._thread is None
    assert (0, 3, 0) == tuple(queue.stats()[key] for key in ("by_worker", "by_caller", "queued"))


def test_a_record_that_lands_while_the_worker_polls_after_a_batch_rings_nobody(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a batch the worker keeps looking for records instead of waiting idle: a record
    queued then (a stage that ended a few ms after the last) wakes nobody, and the worker
    still handles it; ``close`` ends the poll and joins the worker."""
    monkeypatch.setattr(_record_queue, "WORKER_POLL_SECONDS", 3600.0)
    handler = _ByThread(last=1)
    queue, bell = _counting_queue(handler)
    try:
        queue.put(0)
        _wait_until(lambda: bool(handler.handled))
        time.sleep(0.05)  # well past the linger: without the poll the worker would wait idle
        queue.put(1)
        assert handler.done.wait(10)
        assert 1 == bell.rings
    finally:
        queue.close()
    assert [(0, "taskdaemon-monitor"), (1, "taskdaemon-monitor")] == handler.handled
    assert queue._worker._thread is None


def test_a_record_is_handled_after_the_linger_without_any_settle() -> None:
    """With the real linger, a record nobody settles is still handled, by the worker."""
    assert 0 < _record_queue.WORKER_LINGER_SECONDS < 0.1
    handler = _ByThread(last=0)
    queue = RecordQueue(handler)
    try:
        queue.put(0)
        assert handler.done.wait(10)
    finally:
        queue.close()
    assert [(0, "taskdaemon-monitor")] == handler.handled


def test_records_a_caller_handles_are_counted_one_each() -> None:
    """``handle_now`` and ``handle_batch`` (in slices of INLINE_BATCH) count every record they
    handle as the caller's; nothing reaches the worker."""
    handled: list[int] = []
    queue = RecordQueue(handled.append)
    total = 2 + 2 * INLINE_BATCH + 3
    try:
        queue.handle_now(0)
        queue.handle_now(1)
        queue.handle_batch(range(2, total))
        stats = queue.stats()
    finally:
        queue.close()
    assert list(range(total)) == handled
    assert (0, total, 0, 0) == tuple(stats.values())


class _FrozenClock:
    """``time`` for the record queue, its monotonic clock stopped: a poll after a batch never
    runs out by itself (or, with no poll time, runs out at once)."""

    @staticmethod
    def monotonic() -> float:
        return 0.0


@pytest.mark.parametrize(("poll", "rings"), [(0.5, 1), (0.0, 2)])
def test_a_worker_polls_while_any_poll_time_is_left(
    monkeypatch: pytest.MonkeyPatch, poll: float, rings: int
) -> None:
    """While any poll time is left, however little, the worker keeps looking for records and
    is not idle: the next record rings nobody. With none left it goes idle after its batch,
    and the next record rings it."""
    monkeypatch.setattr(_record_queue, "time", _FrozenClock)
    monkeypatch.setattr(_record_queue, "WORKER_POLL_SECONDS", poll)
    handler = _ByThread(last=1)
    queue, bell = _counting_queue(handler)
    try:
        queue.put(0)
        _wait_until(lambda: bool(handler.handled))
        if poll:
            time.sleep(0.05)  # well past the linger: the worker polls, or would have gone idle
            assert not queue._worker.idle
        else:
            _wait_until(lambda: queue._worker.idle)
        queue.put(1)
        assert handler.done.wait(10)
        assert rings == bell.rings
    finally:
        queue.close()
    assert [(0, "taskdaemon-monitor"), (1, "taskdaemon-monitor")] == handler.handled


def test_each_worker_turn_and_hand_over_adds_to_the_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two worker turns, each handing the lock over to a settling thread after its first
    record (which blocks until the settler waits): the worker handled 2 records in all, the
    settlers 18, and it handed over twice. The worker lingers until the test rings: with the
    real linger, a worker that took the lock back before the settler woke would hand it
    over once more."""
    monkeypatch.setattr(_record_queue, "WORKER_LINGER_SECONDS", 3600.0)
    gates = {0: threading.Event(), 10: threading.Event()}
    inside = threading.Event()
    handled: list[int] = []

    def handle(record: int) -> None:
        if record in gates:
            inside.set()
            assert gates[record].wait(10)
        handled.append(record)

    queue = RecordQueue(handle)
    bell = queue._worker._bell
    counts = []
    try:
        for first, gate in gates.items():
            for record in range(first, first + 10):
                queue.put(record)
            deadline = time.monotonic() + 10
            while not inside.wait(0.01):  # the worker lingers, or waits idle: ring it
                assert time.monotonic() < deadline, f"record {first} not handled within 10 s"
                bell.ring()
            bell.take()  # a ring left over would end the worker's next linger at once
            inside.clear()
            settler = threading.Thread(target=queue.settle, name="settler")
            settler.start()
            _wait_until(lambda: bool(queue.lock.waiting))
            gate.set()
            settler.join(10)
            assert not settler.is_alive()
            counts.append(queue.stats())
    finally:
        queue.close()
    assert list(range(20)) == handled
    assert [(1, 9, 1, 0), (2, 18, 2, 0)] == [tuple(c.values()) for c in counts]


def test_a_turn_gives_its_handlers_a_token_whose_calls_run_at_its_end() -> None:
    """Each turn hands its handlers a new token; what they append runs, in order, when the
    turn ends. A turn within a turn (a handler that has another queue handle a record) gets
    its own token, and the outer one is back when it ends."""
    calls: list[tuple[str, int]] = []

    def inner_handle(record: int) -> None:
        assert turn.token is not None
        turn.token.append(lambda: calls.append(("inner end", record)))

    inner = RecordQueue(inner_handle)

    def outer_handle(record: int) -> None:
        token = turn.token
        assert token is not None
        token.append(lambda: calls.append(("outer end", record)))
        inner.handle_now(record)
        assert turn.token is token
        calls.append(("handled", record))

    outer = RecordQueue(outer_handle)
    try:
        assert turn.token is None
        outer.handle_batch([1, 2])
        assert turn.token is None
    finally:
        outer.close()
        inner.close()
    assert [
        ("inner end", 1),
        ("handled", 1),
        ("inner end", 2),
        ("handled", 2),
        ("outer end", 1),
        ("outer end", 2),
    ] == calls


def test_a_closed_queue_joins_its_worker_and_starts_another_on_use() -> None:
    """``close`` ends the worker thread before it returns; the next record starts another.
    The worker is a daemon thread: a process that never closes its queue still exits."""
    handler = _ByThread(last=1)
    queue = RecordQueue(handler)
    try:
        queue.put(0)
        first = queue._worker._thread
        assert first is not None
        assert first.daemon
        _wait_until(lambda: bool(handler.handled))
        queue.close()
        assert not first.is_alive()
        queue.put(1)
        assert handler.done.wait(10)
    finally:
        queue.close()
    assert [(0, "taskdaemon-monitor"), (1, "taskdaemon-monitor")] == handler.handled


def test_an_idle_worker_waits_for_the_next_record_in_the_same_thread() -> None:
    """An idle worker waits WORKER_IDLE_SECONDS for records before it ends: the next record
    is handled by the same thread, not a new one."""
    threads: list[threading.Thread] = []
    done = threading.Event()

    def handle(record: int) -> None:
        threads.append(threading.current_thread())
        if record == 1:
            done.set()

    queue = RecordQueue(handle)
    try:
        queue.put(0)
        _wait_until(lambda: bool(threads) and queue._worker.idle)
        queue.put(1)
        assert done.wait(10)
    finally:
        queue.close()
    assert threads[0] is threads[1]


class _LingerBell(_CountingBell):
    """A counting bell; ``lingering`` is set when the worker starts to linger (the only wait
    of the test's long linger), after it took the ring that woke it."""

    __slots__ = ("lingering",)

    def __init__(self) -> None:
        super().__init__()
        self.lingering = threading.Event()

    def wait(self, timeout: float) -> bool:
        if timeout == _record_queue.WORKER_LINGER_SECONDS:
            self.lingering.set()
        return super().wait(timeout)


def test_a_worker_woken_from_idle_is_busy_while_it_lingers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The record that wakes an idle worker rings it; those queued while it then lingers
    ring nobody."""
    monkeypatch.setattr(_record_queue, "WORKER_LINGER_SECONDS", 3600.0)
    handler = _ByThread(last=3)
    queue = RecordQueue(handler)
    bell = _LingerBell()
    queue._worker._bell = bell
    try:
        queue.put(0)
        assert bell.lingering.wait(10)
        bell.ring()
        _wait_until(lambda: bool(handler.handled) and queue._worker.idle)
        bell.lingering.clear()
        queue.put(1)
        assert bell.lingering.wait(10)
        queue.put(2)
        queue.put(3)
        assert 3 == bell.rings  # put(0), the test's, put(1)
        bell.ring()
        assert handler.done.wait(10)
    finally:
        queue.close()
    assert [(r, "taskdaemon-monitor") for r in range(4)] == handler.handled


def test_the_lock_says_whether_it_was_taken() -> None:
    """``acquire`` answers True when it took the lock (at once, or after waiting for the
    thread that held it), False when told not to wait and another thread holds it."""
    queue = RecordQueue(lambda record: None)
    lock = queue.lock
    held = threading.Event()

    def hold() -> None:
        with lock:  # until the test's thread waits for it
            held.set()
            _wait_until(lambda: bool(lock.waiting))

    holder = threading.Thread(target=hold, name="holder")
    try:
        assert lock.acquire(blocking=False) is True
        lock.release()
        holder.start()
        assert held.wait(10)
        assert lock.acquire(blocking=False) is False
        assert lock.acquire() is True
        lock.release()
    finally:
        holder.join(10)
        queue.close()


def test_the_producer_handles_the_queue_at_exactly_inline_batch_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the worker lingering (not holding the lock), the put that makes INLINE_BATCH
    records handles them all on the producer's thread, not one later."""
    handled: list[int] = []
    queue, _ = _lingering_queue(monkeypatch, handled.append)
    try:
        for record in range(INLINE_BATCH - 1):
            queue.put(record)
        assert [] == handled
        queue.put(INLINE_BATCH - 1)
        assert list(range(INLINE_BATCH)) == handled
        assert (0, INLINE_BATCH, 0) == tuple(
            queue.stats()[k] for k in ("by_worker", "by_caller", "queued")
        )
    finally:
        queue.close()


def test_a_producer_never_waits_for_a_draining_worker_below_the_bound() -> None:
    """Past INLINE_BATCH, while the worker holds the lock (its record blocks here until the
    test opens the gate), a put leaves the records queued and returns."""
    handler = _GatedHandler(last=INLINE_BATCH + 9)
    queue = RecordQueue(handler)
    try:
        queue.put(0)
        assert handler.inside.wait(10)
        for record in range(1, INLINE_BATCH + 10):
            queue.put(record)
        assert len(queue._pending) == INLINE_BATCH + 9
        assert {} == handler.by_thread
        handler.gate.set()
        assert handler.done.wait(10)
    finally:
        queue.close()
    assert list(range(INLINE_BATCH + 10)) == handler.by_thread["taskdaemon-monitor"]


def test_the_producer_handles_the_queue_at_heavy_bound_records_with_a_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records that carry a payload count against HEAVY_BOUND, the others do not: with the
    worker lingering, the put that makes HEAVY_BOUND heavy records queued handles everything
    queued on the producer's thread, in order, however few records that is; after it the
    count starts again."""
    handled: list[int] = []
    queue, _ = _lingering_queue(monkeypatch, handled.append)
    first = 2 * HEAVY_BOUND - 1  # a light record, then a heavy one, and so on
    assert first + HEAVY_BOUND < INLINE_BATCH
    try:
        for record in range(first - 1):
            queue.put(record, heavy=record % 2 == 1)
        assert [] == handled
        queue.put(first - 1, heavy=True)
        assert list(range(first)) == handled
        for record in range(first, first + HEAVY_BOUND - 1):
            queue.put(record, heavy=True)
        assert (first, HEAVY_BOUND - 1) == (len(handled), queue.stats()["queued"])
    finally:
        queue.close()
    assert list(range(first + HEAVY_BOUND - 1)) == handled
