"""The engine's callbacks in a stage's context, safe from any thread.

``ctx.publish``, ``ctx.report_process``, ``ctx.report_usage`` and ``ctx.report_cpu`` of one
execution, and its lazily resolved ``environment``. Each is bound to the run's event loop and
may be called from any thread (a sync handler's worker thread above all):

* ``publish`` and ``report_process`` change the run or emit records, so called off the loop
  they run on the loop's thread, and the calling thread waits for their result or exception
  (``_threads.call_on_loop``): a sync handler sees what an async one sees (a refused
  ``publish`` raises in the handler);
* ``report_usage`` and ``report_cpu`` are plain stores on the execution, read once the
  handler's result reached the loop (which orders them before that read);
* the environment is asked of the observers on first read, on the loop's thread
  (``_threads.LoopEnvironment``).

They are the bound methods of one :class:`Callbacks` object, whose ``loop_safe`` attribute
holds its loop and says so, so the ``python`` loop type hands the engine's context to a worker
thread as it is (``_threads.thread_safe``), without copying it and wrapping each callback for
every sync stage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from threading import Lock
from typing import Any

from taskdaemon.pipeline._threads import LoopEnvironment, call_on_loop
from taskdaemon.pipeline.engine._run_base import RunBase, RunContext
from taskdaemon.pipeline.engine._stage_state import Execution, Instance, StageRun
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.events import StageProcess, StageStarted, TaskRunRef
from taskdaemon.pipeline.quoting import quote

__all__ = ["Callbacks", "LazyEnvironment"]

# The running loop of the calling thread, None off any loop (asyncio's own fast accessor).
_running_loop = asyncio._get_running_loop


class Callbacks:
    """One execution's ``ctx.publish``, ``ctx.report_process``, ``ctx.report_usage`` and
    ``ctx.report_cpu``: the bound methods of one object.

    One object a stage and four bound methods (made in C, without a Python frame) rather than
    an object per callback, each with its own ``__init__`` frame: every attempt makes them,
    whether its handler calls them or not (most never do). Every public method is safe from
    any thread for ``loop_safe`` (the two that change the run marshal themselves onto it, the
    two others are plain stores), which ``_threads.thread_safe`` reads through a bound
    method's ``__self__``."""

    __slots__ = ("ex", "inst", "loop_safe", "run", "srt")

    def __init__(
        self,
        run: RunBase,
        srt: StageRun,
        inst: Instance,
        ex: Execution,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.run, self.srt, self.inst, self.ex = run, srt, inst, ex
        self.loop_safe = loop

    def publish(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """``ctx.publish``: only the stage's ``emits``."""
        loop = self.loop_safe
        if _running_loop() is not loop:
            call_on_loop(loop, self._publish, event_type, payload)
        else:
            self._publish(event_type, payload)

    def _publish(self, event_type: str, payload: Mapping[str, Any]) -> None:
        emits = self.srt.cs.stage.emits
        if event_type not in emits:
            declared = ", ".join(emits) if emits else "none"
            raise PipelineError(
                f"stage {self.srt.name!r} cannot publish {quote(event_type)}: not in its emits "
                f"(declared: {declared})"
            )
        ref = TaskRunRef(self.srt.name, self.inst.index, self.ex.attempt)
        self.run.publish(event_type, payload, ref)

    def report_process(self, pid: int) -> None:
        """``ctx.report_process``: emits ``StageProcess``."""
        loop = self.loop_safe
        if _running_loop() is not loop:
            call_on_loop(loop, self._report, pid)
        else:
            self._report(pid)

    def _report(self, pid: int) -> None:
        run = self.run
        ctx = run.ctx
        if ctx.observed:
            ctx.emit(
                StageProcess(
                    run_id=run.run_id,
                    pipeline=run.name,
                    stage=self.srt.name,
                    task_run_id=self.ex.task_run_id,
                    pid=pid,
                    at=ctx.clock(),
                )
            )

    def report_usage(self, cpu_seconds: float | None, peak_bytes: int | None) -> None:
        """``ctx.report_usage``: CPU and peak memory of the execution's process tree (plain
        stores, from any thread)."""
        ex = self.ex
        ex.cpu = cpu_seconds
        ex.memory = peak_bytes

    def report_cpu(self, seconds: float) -> None:
        """``ctx.report_cpu``: the handler's thread used ``seconds`` of CPU (a plain store)."""
        self.ex.thread_cpu = seconds


class LazyEnvironment(LoopEnvironment):
    """A stage's extra environment, asked of the observers' ``stage_environment`` hooks on
    first read rather than when the stage starts: a handler that never reads it (most Python
    stages) never makes an observer settle its books on the run's critical path. Read from
    another thread, it is resolved on the loop's thread (``LoopEnvironment``).

    Its ``__init__`` stores the base's four fields itself, as ``LoopEnvironment.__init__`` with an
    empty source would: one is made for every observed stage, and the ``super()`` call is a
    frame of its own."""

    __slots__ = ("_ctx", "_event")

    def __init__(
        self, ctx: RunContext, event: StageStarted, loop: asyncio.AbstractEventLoop
    ) -> None:
        # ``LoopEnvironment.__init__(self, EMPTY_SOURCE, loop)``'s stores, inline: every
        # observed stage makes one of these, and the ``super()`` call is a frame (and a
        # ``super`` object) of its own. ``tests/pipeline_engine_callbacks_test.py`` holds the
        # two to the same fields.
        self._source = EMPTY_SOURCE
        self._loop = loop
        self._resolved = None
        self._guard = Lock()
        self._ctx = ctx
        self._event = event

    def _resolve(self) -> dict[str, str]:
        return self._ctx.environment(self._event)

    def _values(self) -> dict[str, str]:
        # On the loop, without the lock, as the engine always read it: resolving asks the
        # observers, whose own work (a log record's filter stamping the execution's ids) may
        # read this environment again on the same thread, and a lock held here, or by a worker
        # thread waiting for the loop, would deadlock it. Such a read resolves it again.
        resolved = self._resolved
        if resolved is not None:
            return resolved
        if _running_loop() is self._loop:
            resolved = self._resolve()
            if self._resolved is None:
                self._resolved = resolved
            return self._resolved
        return super()._values()


EMPTY_SOURCE: Mapping[str, str] = {}
