"""The future a sync stage's handler awaits: done on the loop, its task resumed in that turn.

A sync handler's result reaches the loop through its inbox (``_loop_inbox``), whose reader
completes the awaited future. An ``asyncio.Future`` then schedules its done-callbacks with
``call_soon``, so the awaiting task (its only callback) resumes on the loop's *next* turn: one
more ``select`` (with a zero timeout), its events processed, a ``Handle`` made and run, for
every sync stage. :class:`HopFuture` runs its done-callbacks at once when it is completed
(``set_result``, ``set_exception``): the task resumes in the reader's own turn.

It is awaited through asyncio's documented protocol for future-like objects (``asyncio.isfuture``:
an object with an ``_asyncio_future_blocking`` attribute, which ``__await__`` sets before it
yields itself and the task clears): the task asks its ``get_loop()``, registers its wake-up with
``add_done_callback(..., context=...)``, cancels it through ``cancel(msg)`` and reads
``result()``. Nothing of asyncio is patched or read.

Why the earlier wake-up is exact: the callbacks run on the loop's thread (completion only
ever happens there: the inbox's reader, or ``_threads._deliver`` through
``call_soon_threadsafe``), each in the context it was registered with, in registration order,
after the state is set, and a callback that raises is reported to the loop's exception handler
as a ``Handle`` would report it; only the turn differs, which asyncio does not promise (a
callback runs "soon"). A callback added once the future is done, and those of a cancellation
(which comes from the task's side, perhaps inside another callback), are scheduled with
``call_soon`` as ``asyncio.Future`` schedules them. It is used only for the hop a stage's
handler awaits itself (``_threads.hop``), never handed to other code.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Generator
from typing import Any

__all__ = ["HopFuture"]

_PENDING = "PENDING"
_CANCELLED = "CANCELLED"
_FINISHED = "FINISHED"

Callback = Callable[["HopFuture"], object]


class HopFuture:
    """A future of one loop whose done-callbacks run when it is completed (module doc)."""

    __slots__ = (
        "_asyncio_future_blocking",
        "_callbacks",
        "_cancel_message",
        "_error",
        "_loop",
        "_on_cancel",
        "_result",
        "_state",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._state = _PENDING
        self._result: Any = None
        self._error: BaseException | None = None
        self._cancel_message: Any = None
        self._callbacks: list[tuple[Callback, contextvars.Context]] = []
        self._asyncio_future_blocking = False
        #: Called when the future is cancelled: the pool gives up the job (``_threads._call``).
        self._on_cancel: Callable[[], object] | None = None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def done(self) -> bool:
        return self._state is not _PENDING

    def cancelled(self) -> bool:
        return self._state is _CANCELLED

    def add_done_callback(
        self, fn: Callback, *, context: contextvars.Context | None = None
    ) -> None:
        if context is None:
            context = contextvars.copy_context()
        if self._state is _PENDING:
            self._callbacks.append((fn, context))
        else:
            self._loop.call_soon(fn, self, context=context)

    def remove_done_callback(self, fn: Callback) -> int:
        kept = [entry for entry in self._callbacks if entry[0] != fn]
        removed = len(self._callbacks) - len(kept)
        self._callbacks[:] = kept
        return removed

    def result(self) -> Any:
        if self._state is _CANCELLED:
            raise self._cancelled_error()
        if self._state is _PENDING:
            raise asyncio.InvalidStateError("Result is not ready.")
        if self._error is not None:
            raise self._error
        return self._result

    def exception(self) -> BaseException | None:
        if self._state is _CANCELLED:
            raise self._cancelled_error()
        if self._state is _PENDING:
            raise asyncio.InvalidStateError("Exception is not set.")
        return self._error

    def _cancelled_error(self) -> asyncio.CancelledError:
        message = self._cancel_message
        return asyncio.CancelledError() if message is None else asyncio.CancelledError(message)

    def cancel(self, msg: Any = None) -> bool:
        if self._state is not _PENDING:
            return False
        self._state = _CANCELLED
        self._cancel_message = msg
        on_cancel, self._on_cancel = self._on_cancel, None
        if on_cancel is not None:
            on_cancel()
        callbacks, self._callbacks = self._callbacks, []
        for fn, context in callbacks:
            self._loop.call_soon(fn, self, context=context)
        return True

    def set_result(self, result: Any) -> None:
        """Done with ``result``; the callbacks run now (on the loop's thread)."""
        if self._state is not _PENDING:
            raise asyncio.InvalidStateError(f"{self._state}: {self!r}")
        self._result = result
        self._state = _FINISHED
        # The hook holds the job's delivery, which holds this future: no cycle once done, so
        # refcounting frees the result as soon as the stage lets go of it.
        self._on_cancel = None
        callbacks, self._callbacks = self._callbacks, []
        for fn, context in callbacks:
            try:
                context.run(fn, self)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as error:  # reported as a Handle reports it
                self._report(fn, error)

    def set_exception(self, error: BaseException) -> None:
        """Done with ``error``; the callbacks run now (on the loop's thread)."""
        if self._state is not _PENDING:
            raise asyncio.InvalidStateError(f"{self._state}: {self!r}")
        self._error = error
        self.set_result(None)  # the one place that runs the callbacks; ``result()`` raises

    def _report(self, fn: Callback, error: BaseException) -> None:
        self._loop.call_exception_handler(
            {"message": f"Exception in callback {fn!r}", "exception": error, "future": self}
        )

    def __await__(self) -> Generator[HopFuture, None, Any]:
        if self._state is _PENDING:
            self._asyncio_future_blocking = True
            yield self  # the task registers its wake-up and waits
        if self._state is _FINISHED and self._error is None:  # ``result()``'s answer, inline
            return self._result
        return self.result()

    __iter__ = __await__
