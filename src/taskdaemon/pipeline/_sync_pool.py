"""The event loop's default executor for sync stage handlers: a pool that reuses its hot thread.

``asyncio``'s default executor (``ThreadPoolExecutor``) counts a thread idle only after the
work item returned, that is after the result was handed to the loop; the loop then submits the
next stage before that, finds no idle thread and starts another, up to its maximum. A chain of
sync stages so round-robins over several threads, and each hop wakes a cold one through the
pool's queue (``benchmarks/README.md``, "Round 7 (wakeup7)": 4.4 context switches and 105-128
µs CPU a bare hop, against 2.9 and 66-74 µs here).

:class:`SyncPool` instead:

* makes a thread idle *before* its result reaches the loop (``dispatch``'s job returns the
  delivery, which the thread calls once it is back on the idle stack), so a chain of stages
  runs on one thread;
* hands the next job to the most recently idle thread (a stack), woken by the release of a
  bare lock (``_record_queue.Bell``), not a queue's condition variable;
* starts a thread only when none is idle, never more than ``max_workers`` (as
  ``ThreadPoolExecutor``'s default, ``min(32, cpus + 4)``); jobs beyond that wait in a FIFO
  backlog that busy threads take from before they go idle; a thread idle for
  ``IDLE_SECONDS`` ends.

It is a ``ThreadPoolExecutor`` (``loop.set_default_executor`` requires one) so the loop shuts it
down as it does its default executor (``asyncio.run``, ``Runner.close``:
``shutdown_default_executor``): ``shutdown(wait=True)`` lets running and backlogged jobs finish
and joins every thread. ``submit`` keeps ``Executor``'s contract for anyone else's
``run_in_executor(None, ...)`` on that loop.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from taskdaemon.pipeline._record_queue import Bell

__all__ = ["IDLE_SECONDS", "Job", "SyncPool"]

T = TypeVar("T")

#: Seconds an idle thread waits for a job before it ends.
IDLE_SECONDS = 10.0

#: A job runs on a pool thread and returns its delivery: a call made once the thread is idle.
Job = Callable[[], Callable[[], None]]

_numbers = itertools.count(1)


def _nothing() -> None:
    return None


class _Worker:
    __slots__ = ("bell", "job")

    def __init__(self, job: Job) -> None:
        self.bell = Bell()
        self.job: Job | None = job


class SyncPool(concurrent.futures.ThreadPoolExecutor):
    """A LIFO pool of at most ``max_workers`` threads (see the module docstring)."""

    def __init__(self, max_workers: int | None = None) -> None:
        workers = max_workers if max_workers is not None else min(32, (os.cpu_count() or 1) + 4)
        super().__init__(max_workers=workers)
        self._limit = workers
        self._guard = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the last thread to go idle is woken first
        self._backlog: deque[Job] = deque()
        self._running: set[threading.Thread] = set()
        self._closed = False

    def dispatch(self, job: Job) -> None:
        """Run ``job`` on a pool thread; raise ``RuntimeError`` after ``shutdown``."""
        with self._guard:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._idle:
                worker = self._idle.pop()
                worker.job = job
                worker.bell.ring()
                return
            if len(self._running) >= self._limit:
                self._backlog.append(job)
                return
            worker = _Worker(job)
            thread = threading.Thread(
                target=self._serve,
                args=(worker,),
                name=f"taskdaemon-sync-{next(_numbers)}",
                daemon=True,
            )
            self._running.add(thread)
        thread.start()

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """``Executor.submit``: ``fn(*args, **kwargs)`` on a pool thread, as a future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> Callable[[], None]:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as error:  # the future's caller sees it
                    future.set_exception(error)
            return _nothing

        self.dispatch(job)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more jobs; idle threads end, busy ones after the backlog (dropped first
        with ``cancel_futures``: its ``submit`` futures are cancelled); ``wait`` joins them."""
        with self._guard:
            self._closed = True
            if cancel_futures:
                self._backlog.clear()  # a submit's job never ran: its future stays pending
            idle, self._idle = self._idle, []
            threads = list(self._running)
        for worker in idle:
            worker.bell.ring()  # job None and closed: the thread ends
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _serve(self, worker: _Worker) -> None:
        job, worker.job = worker.job, None  # worker.job is only ever a job not yet taken
        while True:
            deliver = job() if job is not None else _nothing
            closing = False
            with self._guard:
                if self._backlog:
                    job = self._backlog.popleft()
                elif self._closed:
                    job = None
                    closing = True
                    self._running.discard(threading.current_thread())
                else:
                    job = None
                    self._idle.append(worker)
            deliver()
            if job is not None:
                continue
            if closing or not self._wait(worker):
                return
            job, worker.job = worker.job, None

    def _wait(self, worker: _Worker) -> bool:
        """Wait idle for a job; False when the thread is to end (shut down, or idle too long).

        Only an idle thread waits (on the idle stack, put there under the guard while the pool
        was open; a thread that found it closed ends in ``_serve``), so no check of
        ``_closed`` comes first: a ``shutdown`` after the thread went idle rang its bell, and
        the wait returns at once to the check below."""
        woken = worker.bell.wait(IDLE_SECONDS)
        with self._guard:
            if not woken and worker.bell.take():
                woken = True  # rung between the time-out and the guard
            if worker.job is None and (not woken or self._closed):
                self._end(worker)
                return False
        return True

    def _end(self, worker: _Worker) -> None:
        """Forget this (idle or closing) thread; under ``_guard``."""
        if worker in self._idle:
            self._idle.remove(worker)
        self._running.discard(threading.current_thread())
