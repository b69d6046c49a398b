"""The future a sync stage's handler awaits: its task resumes in the turn the result arrives."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest

from pipeline_engine_support import plain_context
from taskdaemon.pipeline._hop_future import HopFuture
from taskdaemon.pipeline._threads import hop
from taskdaemon.pipeline.loops import StageContext

_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="none")


_context = plain_context


async def test_the_awaiting_task_resumes_when_the_result_is_set() -> None:
    """The task awaiting the future resumes inside ``set_result`` (the inbox's reader), not on
    the loop's next turn: before a callback queued earlier in the same turn (with an
    ``asyncio.Future`` the order is the other way round). A stage's hop is such a future."""
    loop = asyncio.get_running_loop()
    order: list[str] = []
    future = HopFuture(loop)

    async def waiter() -> None:
        order.append(f"task resumed with {await future}")

    def arrive() -> None:  # as the inbox's reader: on the loop, in a turn of its own
        loop.call_soon(order.append, "queued before the result")
        future.set_result("value")

    task = asyncio.ensure_future(waiter())
    await asyncio.sleep(0)  # the task waits on the future
    loop.call_soon(arrive)
    await task
    await asyncio.sleep(0)
    assert order == ["task resumed with value", "queued before the result"]
    assert isinstance(hop(lambda ctx: None, _context()), HopFuture)


async def test_callbacks_run_at_once_in_order_and_in_their_context() -> None:
    """``set_result`` runs the callbacks registered so far, in order, each in its context;
    one added once the future is done is scheduled with ``call_soon``, as asyncio's."""
    loop = asyncio.get_running_loop()
    future = HopFuture(loop)
    seen: list[tuple[str, str]] = []
    first = contextvars.copy_context()
    first.run(_SEEN.set, "first")
    future.add_done_callback(lambda f: seen.append(("a", _SEEN.get())), context=first)
    future.add_done_callback(lambda f: seen.append(("b", f.result())))
    future.set_result("value")
    assert seen == [("a", "first"), ("b", "value")]
    future.add_done_callback(lambda f: seen.append(("late", f.result())))
    assert seen == [("a", "first"), ("b", "value")]
    await asyncio.sleep(0)
    assert seen[-1] == ("late", "value")
    assert (future.done(), future.cancelled(), future.exception()) == (True, False, None)


async def test_a_raising_callback_is_reported_and_the_next_still_runs() -> None:
    """A callback that raises goes to the loop's exception handler, as a ``Handle``'s would;
    the callbacks after it still run."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    try:
        future = HopFuture(loop)
        ran: list[str] = []

        def fail(f: HopFuture) -> None:
            raise ValueError("callback")

        future.add_done_callback(fail)
        future.add_done_callback(lambda f: ran.append("next"))
        future.set_exception(KeyError("handler"))
    finally:
        loop.set_exception_handler(None)
    assert ran == ["next"]
    assert [type(c["exception"]) for c in reported] == [ValueError]
    assert isinstance(future.exception(), KeyError)
    with pytest.raises(KeyError):
        future.result()


async def test_a_cancelled_future_refuses_its_result_and_wakes_its_task_soon() -> None:
    """``cancel`` schedules the callbacks (as asyncio's) and the result then raises the
    cancellation, with its message; a late result is refused with ``InvalidStateError``,
    which the inbox takes as "nobody waits any more"."""
    loop = asyncio.get_running_loop()
    future = HopFuture(loop)
    woken: list[bool] = []
    future.add_done_callback(lambda f: woken.append(f.cancelled()))
    assert future.cancel("stage timed out")
    assert woken == []
    await asyncio.sleep(0)
    assert woken == [True]
    assert not future.cancel()
    with pytest.raises(asyncio.CancelledError, match="stage timed out"):
        future.result()
    with pytest.raises(asyncio.InvalidStateError):
        future.set_result("late")
    with pytest.raises(asyncio.InvalidStateError):
        future.set_exception(KeyError("late"))


async def test_a_task_awaiting_a_hop_is_cancelled_and_the_late_result_dropped() -> None:
    """A stage's task cancelled while its handler runs (a timeout) ends cancelled; the
    handler's result, arriving later, is dropped without an error."""
    loop = asyncio.get_running_loop()
    started, release = asyncio.Event(), threading.Event()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    def handler(ctx: StageContext) -> str:
        loop.call_soon_threadsafe(started.set)
        release.wait(10)
        return "late"

    async def stage() -> Any:
        return await hop(handler, _context())

    try:
        task = asyncio.ensure_future(stage())
        await asyncio.wait_for(started.wait(), 10)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(task, 0.01)
        release.set()
        assert (await hop(lambda ctx: "next", _context())) == "next"
    finally:
        release.set()
        loop.set_exception_handler(None)
    assert task.cancelled()
    assert errors == []


async def test_a_handler_raising_stop_iteration_fails_its_await_instead_of_hanging() -> None:
    """``asyncio.Future.set_exception`` refuses a ``StopIteration`` (a ``TypeError`` in the
    inbox's reader), which left the stage awaiting for ever; the hop's future takes it, and the
    await fails as a generator raising it does."""

    def handler(ctx: StageContext) -> None:
        raise StopIteration("from a handler")

    with pytest.raises(RuntimeError, match="StopIteration") as caught:
        await asyncio.wait_for(hop(handler, _context()), 10)
    assert isinstance(caught.value.__cause__, StopIteration)
