"""An async handler that ignores its cancellation: given a grace, then abandoned.

The engine awaits an ``async def`` handler inside its attempt's own task (no task of its own:
docs/architecture.md, "Run semantics"), and ends the attempt by cancelling that task: on the
stage's timeout, when the run is cancelled (Ctrl-C, SIGTERM, ``cancel``) or stopped by another
stage's failure. A handler that catches the ``CancelledError`` and awaits again (``while True:
try: await sleep(10) except CancelledError: pass``) would keep the task, so the attempt, the
stage and the run, for ever: no timeout reported, a Ctrl-C that does nothing.

:func:`driven` awaits the handler's coroutine step by step in the same task, so that it sees
each exception the task throws in. The first cancellation the handler swallows (it yields
again instead of raising) starts a grace of ``grace`` seconds; a handler that ends meanwhile,
however it ends, ends its attempt as it always did. Past the grace the task is cancelled once
more, and this time the handler is not told: its coroutine is closed (its ``finally`` blocks
run, no ``except CancelledError`` does) and never resumed, the cancellation that caused it goes
on up as if the handler had let it through (the engine's timeout reads it as a timeout, a
cancelled run as a cancellation), and one warning names the stage and counts the handlers
abandoned so in this process. What the cancellation was for is so done after ``grace``; what
the handler does in the meantime is its own business.

The grace exists for handlers that clean up when cancelled (close a connection, end a child
process they started): cancelled, such a handler awaits its cleanup and then raises; one that
has not raised after the grace is taken to ignore the cancellation.

Cost: a generator frame's step per suspension of the handler (and one at its start), nothing
more until a cancellation is swallowed: no task, no timer per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator
from typing import Any, Final

__all__ = ["CANCEL_GRACE", "abandoned", "driven"]

logger = logging.getLogger(__name__)

#: Seconds an async handler that swallowed its cancellation is given before it is abandoned.
CANCEL_GRACE: Final = 1.0

_abandoned = [0]  # handlers abandoned in this process (the warning's count), in a cell


def abandoned() -> int:
    """How many handlers this process has abandoned so far."""
    return _abandoned[0]


class _Grace:
    """A swallowed cancellation's grace: running, then over (the task cancelled again)."""

    __slots__ = ("handle", "over", "task")

    def __init__(self, task: asyncio.Task[Any], grace: float) -> None:
        self.task = task
        self.over = False
        self.handle = task.get_loop().call_later(grace, self.expire)

    def expire(self) -> None:
        self.over = True
        self.task.cancel()


@types.coroutine
def driven(
    coro: Coroutine[Any, Any, Any], grace: float, stage: str, run_id: str
) -> Generator[Any, Any, Any]:
    """Await ``coro`` (the handler of ``stage`` in run ``run_id``) in the calling task, and
    abandon it ``grace`` seconds after it swallowed a cancellation (module docstring)."""
    send = coro.send
    value: Any = None
    error: BaseException | None = None
    watch: _Grace | None = None
    try:
        while True:
            try:
                step = send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            if watch is None and type(error) is asyncio.CancelledError:
                # Thrown in, and the handler yields again: it swallowed the cancellation.
                task = asyncio.current_task()
                if task is not None:
                    watch = _Grace(task, grace)
            try:
                value = yield step
                error = None
            except GeneratorExit:
                coro.close()  # the awaiting task went away: so does the handler
                raise
            except BaseException as exc:
                if watch is not None and watch.over:
                    _abandon(coro, watch, stage, run_id, grace)
                    raise
                value = None
                error = exc
    finally:
        if watch is not None:
            watch.handle.cancel()


def _abandon(
    coro: Coroutine[Any, Any, Any], watch: _Grace, stage: str, run_id: str, grace: float
) -> None:
    """Close ``coro`` unresumed, undo the grace's own cancellation and say so, counted."""
    # The grace's cancel is this module's, not the caller's: what reaches the awaiting code is
    # the cancellation the handler swallowed (an ``asyncio.timeout`` reads a timeout from it).
    watch.task.uncancel()
    try:
        coro.close()
    except BaseException:  # its finally raised, or it awaited again: it is let go all the same
        logger.debug("closing the abandoned handler of stage %r raised", stage, exc_info=True)
    _abandoned[0] += 1
    logger.warning(
        "async handler of stage %r (run %s) ignored its cancellation for %gs: abandoned, never "
        "resumed (%d abandoned in this process)",
        stage,
        run_id,
        grace,
        _abandoned[0],
    )
