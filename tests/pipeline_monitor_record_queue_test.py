"""The monitor's record queue: order, the worker thread, the bound a busy producer keeps."""

from __future__ import annotations

import threading
import time

import pytest

from taskdaemon.pipeline._record_queue import INLINE_BATCH, QUEUE_BOUND, RecordQueue


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
