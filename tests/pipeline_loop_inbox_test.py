"""Sync hops' results reach the loop through its inbox's eventfd, closed with the loop."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest

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
