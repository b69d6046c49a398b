"""Sync hops' results reach the loop through its inbox's eventfd, closed with the loop."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from typing import Any

import pytest

from taskdaemon.pipeline._loop_inbox import Inbox
from taskdaemon.pipeline._threads import call_in_thread

pytestmark = pytest.mark.skipif(not hasattr(os, "eventfd"), reason="eventfd: Linux only")


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _hops() -> tuple[list[int], asyncio.AbstractEventLoop]:
    """The results of hops on a runner's loop (as ``asyncio.run``'s), and that loop, closed."""

    async def main() -> list[int]:
        results = [await call_in_thread(lambda n=n: n * 2) for n in range(3)]
        with pytest.raises(ZeroDivisionError):
            await call_in_thread(lambda: 1 / 0)
        return results

    with asyncio.Runner() as runner:
        return runner.run(main()), runner.get_loop()


def test_results_and_errors_come_back_and_the_fd_closes_with_the_loop() -> None:
    """Results and exceptions reach the awaiting task; once the runner closed its loop, the
    inbox's fd is closed too, while the loop is still referenced (not left to its
    collection)."""
    _hops()  # imports and first-use allocations out of the way
    before = _open_fds()
    results, loop = _hops()
    assert (results, loop.is_closed()) == ([0, 2, 4], True)
    assert _open_fds() == before


def test_a_result_after_the_loop_closed_is_dropped() -> None:
    """A call still running when its loop closes (its awaiting task gave up) finishes
    without error on its thread: its result is dropped, never written to the closed fd."""
    release = threading.Event()
    ran_on: list[threading.Thread] = []
    errors: list[Any] = []

    def slow() -> str:
        ran_on.append(threading.current_thread())
        release.wait(5)
        return "late"

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call_in_thread(slow), 0.05)

    previous_hook = threading.excepthook
    threading.excepthook = errors.append
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
        loop.close()  # shuts the pool down without waiting, the call still running
        running = ran_on[0].is_alive()
        release.set()
        ran_on[0].join(5)
        assert (running, ran_on[0].is_alive()) == (True, False)
    finally:
        release.set()
        threading.excepthook = previous_hook
    assert errors == []


class _Result:
    """A stand-in for the awaited future: what ``set_result`` was given."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def set_result(self, value: Any) -> None:
        self.values.append(value)


def _drain_beside_a_gil_waiter() -> tuple[int, int, list[Any], list[int]]:
    """One result drained while another thread queues for the GIL (see the test): how often
    that thread had run before and during the drain, the result set, and its runs after."""
    fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    inbox = Inbox(fd)
    future = _Result()
    inbox.put(future, "done", None)  # type: ignore[arg-type]
    go = threading.Lock()
    go.acquire()
    ran: list[int] = []

    def waiter() -> None:
        with go:
            ran.append(1)

    thread = threading.Thread(target=waiter)
    thread.start()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(60.0)
    collecting = gc.isenabled()
    gc.disable()  # no finalizer (a file's close) lets go of the GIL in the window
    try:
        go.release()
        deadline = time.perf_counter() + 0.05
        while time.perf_counter() < deadline:  # Python code: the GIL is kept
            pass
        before = len(ran)
        inbox._drain()
        during = len(ran)
    finally:
        if collecting:
            gc.enable()
        sys.setswitchinterval(interval)
        thread.join(5)
        inbox.close()
    return before, during, future.values, ran


def test_the_reader_keeps_the_gil_while_a_thread_waits_for_it() -> None:
    """The loop's reader takes the eventfd's counter without letting go of the GIL: a thread
    waiting for the GIL meanwhile does not run until the reader is done (the pool thread
    that delivered the result would otherwise take the GIL, find no job, and block again).

    The other thread is made to wait for the GIL: it is released from a lock while this one
    holds the GIL with a switch interval of a minute (no forced switch), then this thread
    stays in Python code for 50 ms, time for it to wake and queue for the GIL. That wait
    only lets the old reader's let-go be seen (three rounds, in case the machine is too busy
    to wake it in one); with the GIL kept, nothing can run the other thread before the
    reader returns, however late it queues."""
    rounds = [_drain_beside_a_gil_waiter() for _ in range(3)]
    assert rounds == [(0, 0, ["done"], [1])] * 3
