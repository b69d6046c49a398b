"""The event loop's default executor for sync stage handlers: a pool that reuses its hot thread.

``asyncio``'s default executor (``ThreadPoolExecutor``) counts a thread idle only after the
work item returned, that is after the result was handed to the loop; the loop then submits the
next stage before that, finds no idle thread and starts another, up to its maximum. A chain of
sync stages so round-robins over several threads, and each hop wakes a cold one through the
pool's queue: more context switches and more CPU a hop than here (benchmarks/README.md,
"Round 7 (wakeup7)").

:class:`SyncPool` instead:

* makes a thread idle *before* its result reaches the loop (``dispatch`` takes the call and
  its delivery apart: the thread calls the delivery with the call's result or exception once it
  is back on the idle stack), so a chain of stages runs on one thread;
* hands the next job to the most recently idle thread (a stack), woken by the release of a
  bare lock (the ``_record_queue.Bell`` technique, its two methods bound on the worker: no
  Python frame a wake-up), not a queue's condition variable;
* runs the call and the delivery itself: a job is a pair of callables (``partial`` objects of
  C functions for a stage's hop), not a Python function that runs one and returns the other
  (a frame and a closure a stage);
* after a delivery that found no next job in its slot, gives up its CPU once
  (``os.sched_yield``, which lets go of the GIL) before its idle wait. The delivery woke the
  loop, which the scheduler most often puts on the delivering thread's CPU. Were the thread to
  go straight to its idle wait, the loop's ring for the next stage would wake it while the loop
  still held the GIL: woken twice (the bell, then the GIL), each wake-up preempting the loop.
  The yield lets the loop run its turn first: it takes the result, puts the next stage in the
  slot while nobody waits on the bell (the ring then wakes no one) and lets go of the GIL as it
  blocks, and the thread goes on with that job. Where the loop runs on another CPU the yield
  returns at once and the thread waits as before (benchmarks/README.md, "The hop's yield (perf41,
  2026-12-05)");
* starts a thread only when none is idle, never more than ``max_workers`` (as
  ``ThreadPoolExecutor``'s default, ``min(32, cpus + 4)``); jobs beyond that wait in a FIFO
  backlog that busy threads take from before they go idle; a thread idle for
  ``IDLE_SECONDS`` ends;
* forgets a job its caller gave up on (``give_up``: a sync handler whose stage timed out or
  was cancelled): dropped from the backlog, or, running, no longer counted against the bound;
* ends at once (``os._exit``, :func:`child_exit_code`) the child of a job that forked and
  returned or raised in both processes (a sync handler's ``os.fork()``, as
  ``engine/_attempt.py`` ends an async one's): the child's pool thread went idle with nobody to
  ring it and lived ``IDLE_SECONDS``, and a handler that waited for its child waited that long.

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

__all__ = ["IDLE_SECONDS", "Call", "Deliver", "SyncPool", "child_exit_code"]

T = TypeVar("T")

#: Seconds an idle thread waits for a job before it ends.
IDLE_SECONDS = 10.0

#: A job's call: run on a pool thread; what it returns or raises goes to its delivery.
Call = Callable[[], Any]
#: A job's delivery: ``deliver(result, error)`` (``error`` None when the call returned), called
#: on the pool thread once it is idle again.
Deliver = Callable[[Any, "BaseException | None"], None]

_numbers = itertools.count(1)

#: ``os.sched_yield`` (it lets go of the GIL), None where there is none (Windows).
_yield = getattr(os, "sched_yield", None)


class _Process:
    """This process's id, kept current across ``os.fork`` (no system call a job)."""

    pid = os.getpid()


_process = _Process()
os.register_at_fork(after_in_child=lambda: setattr(_process, "pid", os.getpid()))


def child_exit_code(error: BaseException | None) -> int:
    """The exit code of a handler's forked child that returned (0) or raised ``error``: as
    Python's own for it at the top of a script (``SystemExit``'s code, else 1), so that the
    parent's ``os.waitpid`` tells a failed child from one that did its work."""
    if error is None:
        return 0
    if isinstance(error, SystemExit):
        code = error.code
        return code if type(code) is int and 0 <= code <= 255 else int(code is not None)
    return 1


def _ignore(result: Any, error: BaseException | None) -> None:
    return None


class _Worker:
    """A pool thread's job slot and its bell.

    The bell is a bare lock held while no wake-up is pending (``_record_queue.Bell``), with its
    ``release`` and ``acquire`` bound here as ``ring`` and ``wait``, so neither costs a Python
    frame. ``ring`` never finds it released: only a thread taken off the idle stack is rung,
    under the pool's guard, once (by ``dispatch`` or ``shutdown``, whichever took it), and it
    was pushed there after consuming its previous ring (or as a new thread, never rung)."""

    __slots__ = ("call", "deliver", "ring", "thread", "wait")

    def __init__(self) -> None:
        lock = threading.Lock()
        lock.acquire()
        self.ring = lock.release
        self.wait = lock.acquire
        self.call: Call | None = None  # a job handed to the idle thread, not yet taken
        self.deliver: Deliver = _ignore
        self.thread: threading.Thread | None = None  # set before the thread starts


class SyncPool(concurrent.futures.ThreadPoolExecutor):
    """A LIFO pool of at most ``max_workers`` threads (see the module docstring)."""

    def __init__(self, max_workers: int | None = None) -> None:
        workers = max_workers if max_workers is not None else min(32, (os.cpu_count() or 1) + 4)
        super().__init__(max_workers=workers)
        self._limit = workers
        self._guard = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the last thread to go idle is woken first
        self._backlog: deque[tuple[Call, Deliver]] = deque()
        self._running: set[threading.Thread] = set()
        self._closed = False
        self._join = True  # whether ``shutdown(wait=True)`` joins the threads (``let_go``)
        self._given_up: set[Deliver] = set()  # running jobs nobody waits for (``give_up``)

    def dispatch(self, call: Call, deliver: Deliver) -> None:
        """Run ``call()`` on a pool thread, then, once that thread is idle again,
        ``deliver(result, None)`` or ``deliver(None, error)`` with what it raised (any
        ``BaseException``); raise ``RuntimeError`` after ``shutdown``."""
        with self._guard:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._idle:
                worker = self._idle.pop()
                worker.call = call
                worker.deliver = deliver
                worker.ring()
                return
            if len(self._running) >= self._limit:
                self._backlog.append((call, deliver))
                return
            worker = _Worker()
            # The first job in the slot too, not in the thread's arguments (which the thread
            # object keeps until it ends).
            worker.call, worker.deliver = call, deliver
            thread = threading.Thread(
                target=self._serve,
                args=(worker,),
                name=f"taskdaemon-sync-{next(_numbers)}",
                daemon=True,
            )
            worker.thread = thread
            self._running.add(thread)
        thread.start()

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """``Executor.submit``: ``fn(*args, **kwargs)`` on a pool thread, as a future.

        The future is done only once the thread is idle again (in the delivery), as a
        ``dispatch`` job's result is delivered: ``run_in_executor`` and ``to_thread`` wake
        their loop from the future's callbacks, and a loop woken before the thread went idle
        could end its run and find the pool ``busy`` (``event_loop.run`` then warned of a
        handler still running, of a call that had returned)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> tuple[bool, Any]:
            if not future.set_running_or_notify_cancel():
                return False, None  # cancelled while in the backlog: nothing to run
            return True, fn(*args, **kwargs)

        def deliver(result: Any, error: BaseException | None) -> None:
            if error is not None:  # the future's caller sees it
                future.set_exception(error)
            elif result[0]:
                future.set_result(result[1])

        self.dispatch(call, deliver)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more jobs; idle threads end, busy ones after the backlog (dropped first
        with ``cancel_futures``: its ``submit`` futures are cancelled); ``wait`` joins them,
        or after ``let_go`` the idle ones only (they end at once)."""
        with self._guard:
            self._closed = True
            if cancel_futures:
                self._backlog.clear()  # a submit's job never ran: its future stays pending
            idle, self._idle = self._idle, []
            if self._join:
                threads = list(self._running)
            else:
                threads = [worker.thread for worker in idle if worker.thread is not None]
        for worker in idle:
            worker.ring()  # no call and closed: the thread ends
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def give_up(self, deliver: Deliver) -> None:
        """Nobody waits any more for the job dispatched with ``deliver`` (its stage timed out
        or was cancelled). Still in the backlog, it is dropped: it never runs. Running (a
        thread cannot be interrupted), its thread no longer counts against ``max_workers``
        until its call returns: sync handlers that never return would otherwise take every
        thread, and every later job would wait in the backlog for ever. A job given up on
        after its call returned (its result on the way to the loop) leaves the bound one
        higher until the pool ends: a thread more, never a job less."""
        with self._guard:
            for index, (_, queued) in enumerate(self._backlog):
                if queued is deliver:
                    del self._backlog[index]
                    return
            self._given_up.add(deliver)
            self._limit += 1

    def busy(self) -> int:
        """How many threads are in a call now."""
        with self._guard:
            return len(self._running) - len(self._idle)

    def let_go(self) -> None:
        """Make a later ``shutdown`` join only the idle threads: a thread still in a call that
        nobody awaits any more (a sync handler whose stage timed out or was cancelled: a thread
        cannot be interrupted) goes on as the daemon thread it is, and ends with its call or
        with the process. The idle ones are still joined, so that a command whose handlers all
        returned leaves no thread behind when it exits. Jobs are still taken until
        ``shutdown``."""
        self._join = False

    def _serve(self, worker: _Worker) -> None:
        call: Call = worker.call  # type: ignore[assignment]  # set by dispatch
        deliver = worker.deliver
        worker.call, worker.deliver = None, _ignore
        pid = _process.pid
        while True:
            error: BaseException | None = None
            try:
                result = call()
            except BaseException as caught:  # handed to the delivery
                result, error = None, caught
            if _process.pid != pid:  # a forked child of the job's (module docstring)
                os._exit(child_exit_code(error))
            # Nothing of the job is kept while the thread waits idle: the call holds the
            # handler's context, the delivery the awaited future (and an exception's traceback
            # the handler's frames). The call goes first, here, so that freeing it does not
            # hold the GIL between the delivery's wake-up of the loop and the wait below.
            del call
            next_call: Call | None = None
            closing = False
            with self._guard:
                if self._given_up and deliver in self._given_up:
                    self._given_up.discard(deliver)
                    self._limit -= 1
                if self._backlog:
                    next_call, next_deliver = self._backlog.popleft()
                elif self._closed:
                    closing = True
                    self._running.discard(threading.current_thread())
                else:
                    self._idle.append(worker)
            deliver(result, error)
            del deliver, result, error
            if next_call is not None:
                call, deliver = next_call, next_deliver
                continue
            if closing:
                return
            if worker.call is None and _yield is not None:
                # The delivery woke the loop, most often onto this CPU: let it run its turn
                # first (module docstring). The slot is read without the guard: a stale
                # answer costs one yield more or less, nothing else.
                _yield()
            # The idle wait, inline (a method would be a frame a stage). Only an idle thread
            # waits (on the idle stack, put there under the guard while the pool was open; a
            # thread that found it closed ended above), so no check of ``_closed`` comes first:
            # a ``shutdown`` after the thread went idle rang it. Rung with a job, the slot is
            # read without the guard: ``dispatch`` set it before it rang, under the guard, and
            # took the thread off the idle stack, so nothing else writes it now. Anything else
            # (a time-out, ``shutdown``'s ring) is settled under the guard.
            taken = worker.call if worker.wait(True, IDLE_SECONDS) else None
            if taken is None:
                taken = self._idle_taken(worker)
                if taken is None:
                    return
            call, deliver = taken, worker.deliver
            worker.call, worker.deliver = None, _ignore
            del taken

    def _idle_taken(self, worker: _Worker) -> Call | None:
        """After an idle wait that timed out, or was rung without a job (by ``shutdown``): the
        job that came meanwhile, or None when the thread is to end (it is then forgotten)."""
        with self._guard:
            taken = worker.call
            if taken is None:
                self._end(worker)
                return None
            # Rung between the time-out and the guard: the ring is consumed, so that the next
            # idle wait does not return at once.
            worker.wait(False)
            return taken

    def _end(self, worker: _Worker) -> None:
        """Forget this (idle or closing) thread; under ``_guard``."""
        if worker in self._idle:
            self._idle.remove(worker)
        self._running.discard(threading.current_thread())
