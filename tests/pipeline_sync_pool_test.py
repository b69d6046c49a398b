"""The loop's default executor for sync handlers: one hot thread for a chain, bounded, joined."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import threading
import weakref
from functools import partial
from typing import Any

import pytest

from pipeline_engine_support import Resolver, after, pipeline, plain_context, stage
from taskdaemon.pipeline import _sync_pool
from taskdaemon.pipeline._sync_pool import Call, Deliver, SyncPool
from taskdaemon.pipeline._threads import in_thread
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext, python_handler
from taskdaemon.pipeline.model import ErrorStrategy, TriggerMode
from taskdaemon.pipeline.state import StageStatus

_context = plain_context


def _thread_name(ctx: StageContext) -> str:
    return threading.current_thread().name


def _thread(ctx: StageContext) -> threading.Thread:
    return threading.current_thread()


async def test_a_chain_of_sync_handlers_runs_on_one_thread() -> None:
    """Sequential hops reuse the thread that ran the previous one (it is idle before its
    result reaches the loop), so the pool never grows past one thread for a chain."""
    names = [await in_thread(_thread_name, _context()) for _ in range(50)]
    executor = asyncio.get_running_loop()._default_executor  # type: ignore[attr-defined]
    assert isinstance(executor, SyncPool)
    assert len(set(names)) == 1
    assert names[0].startswith("taskdaemon-sync-")


async def test_parallel_handlers_get_threads_up_to_the_bound_and_the_rest_wait() -> None:
    """Handlers blocked at once each get a thread up to ``max_workers``; more wait in the
    backlog and run as threads free up; every one returns."""
    pool = SyncPool(max_workers=3)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(pool)
    release = threading.Event()
    started: list[str] = []
    lock = threading.Lock()

    three_started = asyncio.Event()

    def block(ctx: StageContext) -> str:
        with lock:
            started.append(threading.current_thread().name)
            if len(started) == 3:
                loop.call_soon_threadsafe(three_started.set)
        release.wait(10)
        return threading.current_thread().name

    tasks = [asyncio.ensure_future(in_thread(block, _context())) for _ in range(5)]
    await asyncio.wait_for(three_started.wait(), 10)  # the three threads' handlers have begun
    running = len(started)
    release.set()
    names = await asyncio.gather(*tasks)
    assert running == 3
    assert len(set(names)) == 3
    assert len(names) == 5


def test_shutdown_runs_the_backlog_and_joins_every_thread() -> None:
    """``shutdown(wait=True)`` (what the loop's close calls) lets queued work finish, joins the
    threads, and refuses new work afterwards, as ``ThreadPoolExecutor`` does."""
    pool = SyncPool(max_workers=1)
    gate = threading.Event()
    first = pool.submit(gate.wait, 10)
    second = pool.submit(lambda: 42)
    gate.set()
    pool.shutdown()  # wait=True unless told otherwise, as Executor's
    assert first.result(0) is True
    assert second.result(0) == 42
    assert not [t for t in threading.enumerate() if t.name.startswith("taskdaemon-sync-")]
    with pytest.raises(RuntimeError, match=r"^cannot schedule new futures after shutdown$"):
        pool.submit(lambda: None)


def test_after_let_go_shutdown_joins_the_idle_threads_but_not_a_busy_one() -> None:
    """After ``let_go``, ``shutdown(wait=True)`` returns while a call nobody awaits still
    runs, but the threads that were idle have ended by then (not merely been woken)."""
    pool = SyncPool(max_workers=2)
    gate = threading.Event()
    busy = pool.submit(gate.wait, 30)
    idle: list[threading.Thread] = []
    delivered = threading.Event()

    def deliver(result: threading.Thread, error: BaseException | None) -> None:
        idle.append(result)  # called once the thread is idle again
        delivered.set()

    pool.dispatch(threading.current_thread, deliver)
    delivered.wait(10)
    pool.let_go()
    try:
        pool.shutdown(wait=True)
        alive = (idle[0].is_alive(), busy.done())
    finally:
        gate.set()
        busy.result(10)
    assert (False, False) == alive


def test_a_submitted_callable_that_raises_fails_its_future_only() -> None:
    """``submit`` keeps ``Executor``'s contract: the exception reaches the future, and the
    thread goes on serving."""
    pool = SyncPool(max_workers=1)
    try:
        failed = pool.submit(int, "x")
        with pytest.raises(ValueError, match="invalid literal"):
            failed.result(10)
        assert pool.submit(lambda: "next").result(10) == "next"
    finally:
        pool.shutdown(wait=True)


def test_a_submitted_job_s_thread_is_idle_before_its_future_is_done() -> None:
    """``run_in_executor`` wakes its loop from the future's callbacks: by then the thread is
    idle, so a loop that ends its run at once finds the pool not ``busy`` (``event_loop.run``
    warned of a sync handler still running, of a call that had returned: a flaky ``debug``
    test)."""
    pool = SyncPool(max_workers=1)
    busy_when_done: list[int] = []
    try:
        gate = threading.Event()
        blocked = pool.submit(gate.wait)
        blocked.add_done_callback(lambda _: busy_when_done.append(pool.busy()))
        gate.set()
        assert blocked.result(10) is True
    finally:
        pool.shutdown(wait=True)
    assert [0] == busy_when_done


def test_a_job_cancelled_in_the_backlog_stays_cancelled_and_never_runs() -> None:
    pool = SyncPool(max_workers=1)
    ran: list[str] = []
    try:
        gate = threading.Event()
        blocked = pool.submit(gate.wait)
        queued = pool.submit(ran.append, "ran")
        cancelled = queued.cancel()
        gate.set()
        blocked.result(10)
        after = pool.submit(lambda: "next").result(10)
    finally:
        pool.shutdown(wait=True)
    assert (True, True, [], "next") == (cancelled, queued.cancelled(), ran, after)


def test_asyncio_run_shuts_the_pool_down_with_the_loop() -> None:
    """A loop that got the pool as its default executor joins its threads when it closes."""

    async def main() -> str:
        return await in_thread(_thread_name, _context())

    name = asyncio.run(main())
    assert name.startswith("taskdaemon-sync-")
    assert not [t for t in threading.enumerate() if t.name == name]


async def test_a_cancelled_helper_call_ends_before_the_cancellation_is_seen() -> None:
    """``command_loop._in_thread`` (process-tree samples): cancelling the caller waits for the call
    to end, so nothing it touches is used after the stage reported its usage."""
    from taskdaemon.pipeline.command_loop import _in_thread

    loop = asyncio.get_running_loop()
    entered, release = asyncio.Event(), threading.Event()
    ended: list[bool] = []

    def call() -> None:
        loop.call_soon_threadsafe(entered.set)
        release.wait(10)
        ended.append(True)

    task = asyncio.ensure_future(_in_thread(call))
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()
    for _ in range(5):  # the task takes the cancellation and waits on
        await asyncio.sleep(0)
    waited = not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (True, [True]) == (waited, ended)


_ASKED: contextvars.ContextVar[str] = contextvars.ContextVar("asked", default="unset")


def _read_and_set(ctx: StageContext) -> str:
    seen = _ASKED.get()
    _ASKED.set("set by the handler")
    return seen


async def test_a_handler_runs_in_a_copy_of_the_callers_context() -> None:
    """The handler sees the awaiting task's context variables, and what it sets stays in its
    copy (as with ``asyncio.to_thread``)."""
    _ASKED.set("set by the caller")
    seen = await in_thread(_read_and_set, _context())
    assert (seen, _ASKED.get()) == ("set by the caller", "set by the caller")


class _Payload:
    """An object a handler's exception holds (a weak reference tells whether it lives on)."""


async def test_an_idle_thread_keeps_nothing_of_the_last_job() -> None:
    """Once the result is delivered, the idle pool thread holds neither the result nor the
    exception (whose traceback holds the handler's frames) while it waits for the next job:
    asked by the next job on that same thread, the last one's exception is gone."""
    held: list[weakref.ref[_Payload]] = []

    def fail(ctx: StageContext) -> None:
        payload = _Payload()
        held.append(weakref.ref(payload))
        raise ValueError(payload)

    def last_gone(ctx: StageContext) -> tuple[str, bool]:
        gc.collect()
        return threading.current_thread().name, held[0]() is None

    failed_on = ""
    try:
        await in_thread(fail, _context())
    except ValueError:  # not pytest.raises: its record of the exception would hold the payload
        failed_on = "raised"
    name, gone = await in_thread(last_gone, _context())
    assert failed_on == "raised"
    assert name.startswith("taskdaemon-sync-")
    assert gone


async def test_an_idle_thread_ends_and_the_next_job_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread idle for ``IDLE_SECONDS`` ends; the next job gets a new thread."""
    monkeypatch.setattr(_sync_pool, "IDLE_SECONDS", 0.01)
    # The thread itself, taken where it runs: under load it may be idle past 10 ms, and gone,
    # before a look at threading.enumerate() here.
    ending = await in_thread(_thread, _context())
    ending.join(10)
    second = await in_thread(_thread_name, _context())
    assert not ending.is_alive()
    assert second.startswith("taskdaemon-sync-")
    assert second != ending.name


async def test_sync_handlers_that_never_return_do_not_starve_the_pool() -> None:
    """More sync handlers than the pool has threads hang past their stages' timeout: the stage
    after them still runs (it used to wait for a thread for ever), and the handler still in the
    backlog when its stage timed out never runs."""
    workers = min(32, (os.cpu_count() or 1) + 4)  # the pool's bound, as ThreadPoolExecutor's
    gate = threading.Event()
    calls: list[str] = []

    def hang(ctx: StageContext) -> None:
        calls.append(ctx.stage)
        gate.wait(30)

    def ok(ctx: StageContext) -> None:
        return None

    hanging = [stage(f"h{i}", timeout=0.2) for i in range(workers + 1)]
    names = (s.name for s in hanging)
    last = stage("last", *after(*names, success_only=False), trigger_mode=TriggerMode.ALL)
    p = pipeline(
        *hanging,
        last,
        concurrency=workers + 2,
        error_strategy=ErrorStrategy.CONTINUE,
    )
    handlers = {s.name: python_handler(hang) for s in hanging} | {"last": python_handler(ok)}
    try:
        async with Engine(resolver=Resolver(handlers)) as engine:
            result = await asyncio.wait_for(engine.run(p), 10)
    finally:
        gate.set()
    assert (StageStatus.SUCCESS, workers) == (result.stage_status["last"], len(calls))


async def test_a_handlers_result_is_freed_once_its_hop_is_done() -> None:
    """A sync handler's result is freed by reference counting as soon as the stage let go of
    it, with the cyclic collector off: nothing of the hop (its future, the pool's hook to give
    it up) keeps it in a reference cycle until a collection."""
    held: list[weakref.ref[_Payload]] = []

    def produce(ctx: StageContext) -> _Payload:
        payload = _Payload()
        held.append(weakref.ref(payload))
        return payload

    await in_thread(_thread_name, _context())  # the pool and its thread exist already
    gc.disable()
    try:
        result = await in_thread(produce, _context())
        del result
        await in_thread(_thread_name, _context())  # the thread let go of it too (same thread)
        gone = held[0]() is None
    finally:
        gc.enable()
    assert gone


@pytest.mark.parametrize(("cpus", "bound"), [(None, 5), (3, 7), (100, 32)])
def test_without_max_workers_the_bound_is_the_cpus_plus_four_at_most_32(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, bound: int
) -> None:
    """As ``ThreadPoolExecutor``'s default: one CPU counted when the count is unknown, and
    jobs past the bound wait in the backlog instead of starting a thread."""
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    pool = SyncPool()
    gate = threading.Event()
    try:
        jobs = [pool.submit(gate.wait, 10) for _ in range(bound + 1)]
        busy = pool.busy()  # a thread is counted busy from the dispatch that starts it
    finally:
        gate.set()
        pool.shutdown(wait=True)
    assert (bound, [True] * (bound + 1)) == (busy, [job.result(0) for job in jobs])


def test_pool_threads_are_daemons_so_a_call_nobody_awaits_never_holds_the_exit() -> None:
    """A handler that never returns (its stage timed out, the pool let go) runs on a daemon
    thread: the interpreter's exit does not wait for it."""
    pool = SyncPool(max_workers=1)
    try:
        daemon = pool.submit(lambda: threading.current_thread().daemon).result(10)
    finally:
        pool.shutdown(wait=True)
    assert daemon is True


def test_submit_passes_keyword_arguments_and_delivers_falsy_results() -> None:
    """``Executor.submit``'s contract: keyword arguments reach the callable, and a result
    that is None, zero or empty completes its future as any other."""
    pool = SyncPool(max_workers=1)
    try:
        parsed = pool.submit(int, "ff", base=16).result(10)
        falsy = [pool.submit(lambda v=v: v).result(10) for v in (None, 0, "", False)]
    finally:
        pool.shutdown(wait=True)
    assert (255, [None, 0, "", False]) == (parsed, falsy)


def test_giving_up_a_running_job_keeps_the_backlog_and_frees_a_thread() -> None:
    """A running job given up on no longer counts against the bound: the next job gets a
    thread at once, while the job that was waiting in the backlog still runs later."""
    pool = SyncPool(max_workers=1)
    gate = threading.Event()
    delivered = threading.Event()

    def deliver(result: Any, error: BaseException | None) -> None:
        delivered.set()

    try:
        pool.dispatch(partial(gate.wait, 10), deliver)
        queued = pool.submit(lambda: "queued")
        pool.give_up(deliver)
        beside = pool.submit(lambda: "beside").result(10)  # while the first still runs
        gate.set()
        after = queued.result(10)
        delivered.wait(10)
    finally:
        gate.set()
        pool.shutdown(wait=True)
    assert ("beside", "queued") == (beside, after)


def test_a_given_up_job_that_returns_gives_its_thread_back_and_is_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound goes back to ``max_workers`` once a job given up on returns, whatever other
    job returned meanwhile, and the pool keeps no reference to that job's delivery."""
    monkeypatch.setattr(_sync_pool, "IDLE_SECONDS", 0.01)  # the threads end once idle
    pool = SyncPool(max_workers=2)
    ends = {name: threading.Event() for name in ("given up", "other")}
    gates = {name: threading.Event() for name in ends}
    threads: list[threading.Thread] = []

    def job(name: str) -> tuple[Call, Deliver]:
        def call() -> threading.Thread:
            gates[name].wait(10)
            return threading.current_thread()

        def deliver(result: threading.Thread, error: BaseException | None) -> None:
            threads.append(result)
            ends[name].set()

        return call, deliver

    gate = threading.Event()
    try:
        given_up = job("given up")
        pool.dispatch(*given_up)
        pool.give_up(given_up[1])
        pool.dispatch(*job("other"))  # a thread beyond the bound: the first is given up
        for name in ("other", "given up"):  # the other returns while the first is given up
            gates[name].set()
            ends[name].wait(10)
        forgotten = weakref.ref(given_up[1])
        del given_up
        for thread in threads:
            thread.join(10)
        gc.collect()
        for _ in range(3):  # no thread left: each of these starts one, up to the bound
            pool.submit(gate.wait, 10)
        busy = pool.busy()
    finally:
        gate.set()
        for event in gates.values():
            event.set()
        pool.shutdown(wait=True)
    assert (2, None) == (busy, forgotten())


def test_a_job_that_ends_after_shutdown_leaves_no_thread_counted_busy() -> None:
    """A thread whose job returns after ``shutdown(wait=False)`` ends and is forgotten: the
    pool counts no thread in a call any more."""
    pool = SyncPool(max_workers=1)
    gate = threading.Event()
    job = pool.submit(lambda: (gate.wait(10), threading.current_thread())[1])
    pool.shutdown(wait=False)
    gate.set()
    job.result(10).join(10)
    assert 0 == pool.busy()


def test_a_pool_of_one_whose_thread_ended_idle_runs_the_next_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The thread that ended idle no longer counts against ``max_workers``: the next job
    starts a new thread instead of waiting in the backlog for ever."""
    monkeypatch.setattr(_sync_pool, "IDLE_SECONDS", 0.01)
    pool = SyncPool(max_workers=1)
    try:
        pool.submit(threading.current_thread).result(10).join(10)
        busy = pool.busy()
        following = pool.submit(lambda: "ran").result(10)
    finally:
        pool.shutdown(wait=True)
    assert (0, "ran") == (busy, following)
