"""The monitor's record queue: order, the worker thread, the bound a busy producer keeps."""

from __future__ import annotations

import threading
import time

from taskdaemon.pipeline._record_queue import INLINE_BATCH, RecordQueue


def test_a_producer_faster_than_the_worker_handles_batches_itself() -> None:
    """A producer that outruns the worker (a loop that never waits) never leaves more than
    INLINE_BATCH records queued: it handles the batch itself, so memory stays bounded, and
    every record is still handled once, in order."""
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
        for record in range(INLINE_BATCH * 8):
            queue.put(record)
            most = max(most, len(queue._pending))
        queue.settle()
    finally:
        queue.close()
    assert most < INLINE_BATCH
    assert list(range(INLINE_BATCH * 8)) == handled
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
