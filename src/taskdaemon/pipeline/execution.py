"""The stage execution the running code works for, as a context variable.

The engine sets it around each handler call (``engine/_attempt.py``) to the handler's
:class:`~taskdaemon.pipeline.loops.StageContext`. Asyncio tasks and ``asyncio.to_thread`` copy
the context they start in, so the handler's own code sees it: on the engine's loop, in the
worker thread a sync handler runs in, and in tasks the handler starts. Code outside a handler
call (the engine between stages, the monitor's worker thread, and its queue flushed from within
a handler call: ``PipelineMonitor.flush``) sees ``None``: a task the engine starts on its own
account (a stage instance, an approval's timer) is given :func:`outside_execution`'s context,
because it may be started from inside a handler call (an event the handler publishes fires an
``on_event`` stage) and would otherwise inherit that execution for its whole life, with every
record the engine hands over in it.

``logs.ContextFilter`` reads it to tag every log record made during a stage with the run, the
stage, its instance and attempt, and the stage span's ids (from the execution's
``TRACEPARENT``). This module stays free of OpenTelemetry: the engine imports it.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskdaemon.pipeline.loops import StageContext

__all__ = ["current_execution", "enter_execution", "leave_execution", "outside_execution"]

_CURRENT: contextvars.ContextVar[StageContext | None] = contextvars.ContextVar(
    "taskdaemon_execution", default=None
)


def current_execution() -> StageContext | None:
    """The context of the stage execution this code runs for, or ``None`` outside one."""
    return _CURRENT.get()


#: Make a context the current execution; pass the token it returns to
#: :func:`leave_execution`. A plain pair, not a context manager, and the context variable's
#: own methods rather than functions calling them: they wrap every handler call on the
#: engine's hot path, where a Python frame around each is a visible cost.
enter_execution = _CURRENT.set

#: Restore the execution that was current before :func:`enter_execution`.
leave_execution = _CURRENT.reset


def outside_execution() -> contextvars.Context | None:
    """The context for a task the engine starts on its own account: a copy of the current one
    with no execution current, or ``None`` (the task copies the current context, as usual) when
    none is."""
    if _CURRENT.get() is None:
        return None
    context = contextvars.copy_context()
    context.run(_CURRENT.set, None)
    return context
