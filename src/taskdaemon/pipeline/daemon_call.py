"""A blocking call awaited without making the process wait for it.

``asyncio.to_thread`` runs a call in the loop's default executor, which ``asyncio.run`` joins
on its way out: Ctrl-C to ``watch`` on a remote source that accepts and never answers waited
until ``TASKDAEMON_SOURCE_TIMEOUT`` for the poll in flight, and a debug dump whose code waited
on an import a stuck telemetry load holds would have held the process for ever
(``cli/_dump_hook.py``). :func:`daemon_call` runs each call on a daemon thread of its own
instead: when the awaiting task is cancelled (Ctrl-C, or ``asyncio.wait_for``'s bound) the
call is abandoned (its result or error dropped), and the thread cannot hold the process at
exit. A thread per call is cheap next to a poll (one every ``--interval``, default half a
second) or a dump; a call that finishes ends its thread, so an in-process caller whose calls
return leaves none.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["daemon_call"]

T = TypeVar("T")


async def daemon_call(
    function: Callable[..., T], /, *args: Any, name: str = "taskdaemon-call"
) -> T:
    """``function(*args)`` on a daemon thread of its own named ``name`` (in the caller's
    ``contextvars`` context), awaited; cancelling the caller abandons the call."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # the caller was cancelled: nobody wants the outcome
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def call() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = context.run(function, *args)
        except BaseException as exc:  # handed to the awaiting task, as to_thread does
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: the caller is gone
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=call, name=name, daemon=True).start()
    return await future
