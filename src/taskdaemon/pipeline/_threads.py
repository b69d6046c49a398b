"""Sync stage handlers in worker threads: the hop to the thread and back, and the callbacks.

``in_thread(function, ctx)`` is the ``python`` loop type's ``asyncio.to_thread`` for sync
handlers, made cheaper for the many short handlers a pipeline runs:

* the handler runs in the caller's ``contextvars`` context (as with ``to_thread``), on a thread
  of the loop's default executor, a ``_sync_pool.SyncPool`` when the loop had none: a chain of
  stages runs on one hot thread, woken by a bare lock (threads are reused; nothing is created
  per stage);
* its result comes back straight into the awaited future, instead of a
  ``concurrent.futures.Future`` chained to an asyncio future (two locks, two callback lists and
  a state copy per hop in ``wrap_future``): through the loop's ``_loop_inbox.Inbox`` (its own
  eventfd, without ``call_soon_threadsafe``'s handle and self-pipe) when the pool is the one
  installed here, else through one ``call_soon_threadsafe``;
* ``thread_safe(ctx, loop)`` marshals the context's engine callbacks (``publish``,
  ``report_process``, ``report_usage``) onto the loop and waits for them, and wraps a lazily
  resolved ``environment`` so that it is still resolved on first read, on the loop's thread: a
  handler that never reads it never makes an observer (the monitor) settle its queue while the
  stage waits.

A thread cannot be interrupted: when the awaiting task is cancelled (timeout, run cancelled)
the call goes on in the background and its result is dropped.

No inline fast path: a sync handler never runs on the loop's thread, even a cheap one. Nothing
tells a cheap handler from one that blocks before it has run (the first call of a handler that
reads a socket may be its slow one), and one blocking call on the loop stalls every other
stage, the stage's own timeout, approvals and cancellation. A handler whose cost matters is
written ``async def``: it runs on the loop, without the hop (see benchmarks/README.md).
Decision, after a tree that called a handler inline once its last calls in the pool had been
quick, and only with no timeout and nothing else ready on the loop, was measured: it took the
hand-over's whole cost off, and broke three promises. A handler that calls ``asyncio.run()``
failed at its first inline call (a running loop refuses it; hiding the loop would make the
engine's callbacks, which tell the loop's thread by its running loop, wait for themselves).
A call that turned long held SIGINT and SIGTERM until it returned, since the loop handles
signals between callbacks; only raising inside the handler would bound that, and today's
handler is never interrupted. And the handler saw the loop's thread, not a worker, for some
calls of a run and not others. An opt-in would be a second spelling of ``async def``
(tests/pipeline_loops_sync_off_loop_test.py holds all three; benchmarks/README.md,
inline59's section, the figures).

Nor does a pool thread take the loop's turn. Decision, after a tree whose worker, once a
handler returned, ran the loop's ready callbacks itself while the loop's thread slept in
``select`` (a lock the loop's thread held everywhere else): the stage's end, its dependents'
triggers and the next stage's start ran on the worker, which then took the next handler
without a wake-up. It kept the three promises above (the handler still ran on a pool thread
with no loop of its own, and a signal woke the loop's thread, which took its lock back after
one such turn) and cut the switches a stage, but the loop's code ran on a pool thread for
most turns: observers, the engine's callbacks and the caller's own coroutines saw another
thread than the loop's, and loop code bound to its thread (a thread-local, a ``sqlite3``
connection made there, ``signal.signal``) would break. The engine's state stays with the
loop's thread, so a sync stage hands over both ways (benchmarks/README.md, shape60's
section).

The worker thread does the handler's call and its CPU reading, nothing of the engine's work
on the stage: the result checks, the outputs and the records stay on the loop. Decision: a
hand-over's extra CPU, where the loop's thread and the worker's each have a CPU, is mostly a
fixed cost of the hand-over: it hardly grew with the loop's work on the stage (a loop that
builds every record pays little more of it than one that builds none) and did not shrink with
the worker's (a worker that skips its CPU reading saves none). Moving work between the threads
would move its cost, not cut it, and would put the engine's state in two threads' hands
(benchmarks/README.md, sync58's section).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from threading import get_ident
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from taskdaemon.pipeline._hop_future import HopFuture
from taskdaemon.pipeline._loop_inbox import open_inbox
from taskdaemon.pipeline._sync_pool import SyncPool

if TYPE_CHECKING:
    from taskdaemon.pipeline.loops import StageContext

__all__ = [
    "LoopEnvironment",
    "call_in_thread",
    "call_on_loop",
    "hop",
    "in_thread",
    "on_loop",
    "thread_safe",
]

T = TypeVar("T")

#: Seconds between checks that the loop still runs while a thread waits for it.
_LOOP_POLL = 0.5


def _unreachable(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether no thread of this process runs ``loop``: a copy a forked child inherited (stage
    code's ``os.fork()``), whose thread stayed in the parent or is the one asking.

    Decision: a call the child hands that loop would wait for ever (nobody runs it here), and a
    parent waiting for the child (``os.waitpid``) hung the run with it. So the child is told
    at once: an environment is resolved in place, as after the run, and a callback
    (``ctx.publish``) raises (:func:`call_on_loop`)."""
    if not _forked_child:
        return False
    thread = getattr(loop, "_thread_id", None)  # asyncio's note of the thread running it
    return thread == get_ident() or thread not in {t.ident for t in threading.enumerate()}


def _wait_on_loop(
    loop: asyncio.AbstractEventLoop,
    done: concurrent.futures.Future[Any],
    fallback: Callable[[], Any],
) -> Any:
    """``done``'s result once the loop ran the call; ``fallback()`` if the loop stopped first
    (the run is over: nothing would ever run the call)."""
    while True:
        try:
            return done.result(_LOOP_POLL)
        except TimeoutError:
            if loop.is_closed() or not loop.is_running():
                return fallback()


def on_loop(loop: asyncio.AbstractEventLoop, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` made callable from a worker thread: it runs on ``loop``'s thread and the
    caller waits for its result (or exception), so a sync handler sees the same behaviour as an
    async one (a refused ``publish`` raises in the handler)."""

    def call(*args: Any) -> Any:
        return call_on_loop(loop, function, *args)

    return call


def call_on_loop(loop: asyncio.AbstractEventLoop, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` run on ``loop``'s thread, called from another thread, which waits
    for its result (or exception, re-raised here). In a process forked by stage code, which
    runs no engine (:func:`_unreachable`), it raises instead."""
    if _unreachable(loop):
        raise RuntimeError(_FORKED)
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            done.set_result(function(*args))
        except BaseException as error:  # handed to the waiting thread, re-raised there
            done.set_exception(error)

    loop.call_soon_threadsafe(run)
    return done.result()


_FORKED = "the run's engine is not in this process, forked by stage code: nothing to call there"


class LoopEnvironment(Mapping[str, str]):
    """A lazily resolved environment read from a worker thread: resolved once, on first read,
    on ``loop``'s thread (where the engine's observers expect to be asked). Read after the loop
    stopped, it is resolved in place."""

    __slots__ = ("_guard", "_loop", "_resolved", "_source")

    def __init__(self, source: Mapping[str, str], loop: asyncio.AbstractEventLoop) -> None:
        self._source = source
        self._loop = loop
        self._resolved: dict[str, str] | None = None
        self._guard = threading.Lock()

    def _resolve(self) -> dict[str, str]:
        return dict(self._source)

    def _values(self) -> dict[str, str]:
        resolved = self._resolved
        if resolved is not None:
            return resolved
        with self._guard:
            if self._resolved is None:
                self._resolved = self._fetch()
            return self._resolved

    def _fetch(self) -> dict[str, str]:
        loop = self._loop
        if asyncio._get_running_loop() is loop or _unreachable(loop):  # read here
            return self._resolve()
        done: concurrent.futures.Future[dict[str, str]] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(self._resolve())
            except BaseException as error:  # handed to the reading thread
                done.set_exception(error)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop is closed: the run is over
            return self._resolve()
        result: dict[str, str] = _wait_on_loop(loop, done, self._resolve)
        return result

    def __getitem__(self, key: str) -> str:
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())


def thread_safe(ctx: StageContext, loop: asyncio.AbstractEventLoop) -> StageContext:
    """The context with its engine callbacks marshalled onto ``loop`` and its environment, when
    it is resolved lazily, resolved on ``loop`` on first read.

    ``ctx`` itself when that is so already: its three callbacks say they are safe from any
    thread for ``loop`` (a ``loop_safe`` attribute that is ``loop``, on the callback or, for a
    bound method, on its object, every public method of which is then safe: the engine's own,
    ``engine/_callbacks.Callbacks``, which marshal themselves when called off the loop) and its
    environment is a plain mapping or a :class:`LoopEnvironment` of ``loop``. That spares a
    sync stage a copy of its context (a ``dataclasses.replace``) and three wrappers on the
    loop's thread (benchmarks/README.md, "Round 8 (engine8)")."""
    environment = ctx.environment
    kind = type(environment)
    safe = kind is dict or kind is MappingProxyType
    if not safe:
        # The class's MRO, not ``isinstance``: a Mapping's ABC check costs a Python frame
        # (``ABCMeta.__instancecheck__``); the MRO holds every real subclass, and a virtual one
        # (registered) would have no ``_loop``.
        if LoopEnvironment in kind.__mro__ and getattr(environment, "_loop", None) is loop:
            safe = True
        else:
            environment = LoopEnvironment(environment, loop)
    # Inline, not a helper function: a Python frame each, on every sync stage.
    publish, report_process, report_usage = ctx.publish, ctx.report_process, ctx.report_usage
    if (
        safe
        and getattr(getattr(publish, "__self__", publish), "loop_safe", None) is loop
        and getattr(getattr(report_process, "__self__", report_process), "loop_safe", None) is loop
        and getattr(getattr(report_usage, "__self__", report_usage), "loop_safe", None) is loop
    ):
        return ctx
    return dataclasses.replace(
        ctx,
        environment=environment,
        publish=on_loop(loop, ctx.publish),
        report_process=on_loop(loop, ctx.report_process),
        report_usage=on_loop(loop, ctx.report_usage),
    )


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled meanwhile
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _deliver_soon(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    """A job's delivery without the loop's inbox: ``_deliver`` through
    ``call_soon_threadsafe`` (on the worker thread)."""
    # try/except, not contextlib.suppress (three calls more): once a stage.
    try:  # noqa: SIM105
        loop.call_soon_threadsafe(_deliver, future, result, error)
    except RuntimeError:  # the loop closed meanwhile, nobody awaits the result any more
        pass


def _work(call: Callable[[], Any], deliver: Callable[[Any, BaseException | None], None]) -> None:
    """A job's call and delivery in one, for an executor other than a ``SyncPool``."""
    try:
        result = call()
    except BaseException as error:  # handed to the awaiting task
        deliver(None, error)
    else:
        deliver(result, None)


async def in_thread(function: Callable[[StageContext], T], ctx: StageContext) -> T:
    """``function(thread_safe(ctx))`` on a worker thread (``call_in_thread``); its result or
    exception comes back here."""
    return await hop(function, ctx)


def hop(function: Callable[[StageContext], T], ctx: StageContext) -> asyncio.Future[T]:
    """``in_thread`` as the future it awaits: what the ``python`` loop type's sync handler
    awaits itself, without a coroutine (its frame, its two resumptions) in between."""
    # The engine's own context is recognised here first, by attribute reads in a ``try`` (no
    # ``thread_safe`` frame, no ``getattr`` calls, each a builtin call): a plain mapping or a
    # ``LoopEnvironment`` of ``loop``, and three bound methods whose object's ``loop_safe`` is
    # ``loop``, the loop running on this thread. That is a case of ``thread_safe``'s test,
    # which passes such a context through unchanged; any other context (or one of these reads
    # failing) goes through it. Only the reads are in the ``try``: an AttributeError from
    # ``_call`` itself is the caller's, not a sign of a foreign context to hop again with.
    # The loop running here is told without ``asyncio.get_running_loop()``, a ``getpid``
    # system call in CPython 3.11 (its check that the loop was not inherited through
    # ``os.fork``): an asyncio loop notes the thread it runs on (``_thread_id``, from the start
    # of ``run_forever`` to its end) and a thread runs one loop at a time; the fork check is
    # kept by ``_forked_child``. A loop without the note (not asyncio's own) goes through
    # ``thread_safe``, which asks asyncio.
    try:
        loop = ctx.publish.__self__.loop_safe  # type: ignore[attr-defined]
        environment = ctx.environment
        kind = type(environment)
        safe = (
            loop._thread_id == get_ident()
            and not _forked_child
            and (
                kind is MappingProxyType
                or kind is dict
                or (LoopEnvironment in kind.__mro__ and environment._loop is loop)  # type: ignore[attr-defined]
            )
            and ctx.report_process.__self__.loop_safe is loop  # type: ignore[attr-defined]
            and ctx.report_usage.__self__.loop_safe is loop  # type: ignore[attr-defined]
        )
    except AttributeError:
        safe = False
    if safe:
        return _call(loop, function, (ctx,), True)
    loop = asyncio.get_running_loop()
    return _call(loop, function, (thread_safe(ctx, loop),), True)


#: Set in a forked child: its loop, if it runs one, is not the parent's (``hop``).
_forked_child = False


def _note_fork() -> None:
    global _forked_child  # noqa: PLW0603 - a flag the fork hook sets, read once a stage
    _forked_child = True


os.register_at_fork(after_in_child=_note_fork)


def call_in_thread(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """``function(*args)`` on a worker thread of the running loop's default executor (a
    ``_sync_pool.SyncPool``, installed when the loop has none yet), in a copy of the caller's
    ``contextvars`` context: a future of the loop, done with its result or exception.
    Cancelling the future gives up the result, not the call."""
    return _call(asyncio.get_running_loop(), function, args)


def _call(
    loop: asyncio.AbstractEventLoop,
    function: Callable[..., T],
    args: tuple[Any, ...],
    hop: bool = False,
) -> asyncio.Future[T]:
    """``call_in_thread`` on ``loop``, the running loop. For ``hop`` (a stage's handler, which
    awaits the answer itself), on the loop's own pool, the answer is a
    ``_hop_future.HopFuture``: the awaiting task resumes in the turn its result arrives."""
    pool = getattr(loop, "_default_executor", None)
    # The job is two ``partial`` objects of C functions, not a closure: no Python frame of its
    # own on the worker thread (the pool calls ``call`` and passes what it returned or raised
    # to ``deliver``), no cells made here. ``call`` runs ``function`` in a copy of this
    # context, as the closure did.
    call = partial(contextvars.copy_context().run, function, *args)
    if type(pool) is not _LoopPool:
        # The loop's own pool is looked for first, without asking whether the loop shut its
        # executor down: the pool's ``dispatch`` refuses a job once it is shut down, as
        # ``_elsewhere`` does for the others.
        shut_down = getattr(loop, "_executor_shutdown_called", True)
        if pool is not None or shut_down:
            return _elsewhere(loop, pool, shut_down, call)
        pool = _LoopPool(loop)
        loop.set_default_executor(pool)
    future: asyncio.Future[T] = HopFuture(loop) if hop else loop.create_future()  # type: ignore[assignment]
    put = pool.put
    # The thread is idle again before the result reaches the loop.
    deliver = partial(put, future) if put is not None else partial(_deliver_soon, loop, future)
    if hop:  # a stage that timed out or was cancelled gives its handler's job up
        future._on_cancel = partial(pool.give_up, deliver)  # type: ignore[attr-defined]
    pool.dispatch(call, deliver)
    return future


def _elsewhere(
    loop: asyncio.AbstractEventLoop,
    executor: concurrent.futures.Executor | None,
    shut_down: bool,
    call: Callable[[], T],
) -> asyncio.Future[T]:
    """``_call``'s job on an executor other than the loop's ``_LoopPool``: one set by hand
    (a ``SyncPool`` or another), or none on a loop that is not of asyncio's base class or
    has shut its executor down; its result comes back through ``call_soon_threadsafe``."""
    future: asyncio.Future[T] = loop.create_future()
    deliver = partial(_deliver_soon, loop, future)
    if isinstance(executor, SyncPool):
        executor.dispatch(call, deliver)
    elif executor is None or shut_down:
        # run_in_executor creates the executor or raises as asyncio does.
        loop.run_in_executor(None, _work, call, deliver)
    else:
        # Another default executor: its submit, without run_in_executor's asyncio future
        # chained to the concurrent one (the delivery reports through call_soon_threadsafe).
        executor.submit(_work, call, deliver)
    return future


class _LoopPool(SyncPool):
    """The pool ``_call`` installs as a loop's default executor: with the loop's
    ``_loop_inbox.Inbox`` (None where it has none), through which its jobs' results reach the
    loop, closed when the pool is shut down with the loop closed (``loop.close``; ``asyncio.run``
    first shuts the pool down from another thread while the loop still runs, and a backlog's
    results still need the inbox then)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self.inbox = open_inbox(loop)
        #: ``inbox.put``, bound once (None without an inbox).
        self.put = self.inbox.put if self.inbox is not None else None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait, cancel_futures=cancel_futures)
        if self.inbox is not None and self._loop.is_closed():
            self.inbox.close()
