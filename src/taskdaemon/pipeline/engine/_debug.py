"""Debug mode: breakpoints, pausing, stepping, skipping, retrying and overriding inputs.

``engine.with_debug(True)`` returns the engine's :class:`DebugSession`, installed as its pause
gate (see ``Engine``): the engine awaits :meth:`DebugSession.gate` before each execution starts
and :meth:`DebugSession.failed` after an attempt fails, and tells it of each published event.
Without debug mode none of this exists, so it costs nothing. Contract (docs/debugging.md):

* **Breakpoints belong to a pipeline** (by name; ``None`` = every pipeline the session's engine
  runs) **or to one run** (``run_id``). Kinds (``on``): ``start`` pauses an execution before it
  starts (it holds its worker slot, its inputs are resolved); ``failure`` pauses after an
  attempt failed or timed out, before the error strategy acts (``retry`` runs the stage again at
  once, ``continue`` lets the strategy act); ``event:TYPE`` pauses each execution that an event
  of that type starts (the breakpoint's stage, or any listener when ``stage`` is None). ``stage``
  None matches every stage. ``when`` is CEL over ``request``, ``stages``, ``event``, ``inputs``
  (and ``error`` for failures); an evaluation error counts as false and is kept on the
  breakpoint (``last_error``).
* **Paused**: the execution's status (and its stage's, and the run's while anything in it is
  paused) is ``paused``; ``BreakpointHit`` / ``BreakpointResumed`` records go to the observers
  with who resumed and how, and how long it was paused (kept out of its queue time). Timeouts
  only run around the handler, so a paused execution never times out.
* **Stepping** is per run: :meth:`step` resumes one paused execution (the named stage's, else
  the one paused first) and puts the run in step mode, where every execution that becomes ready
  pauses; :meth:`continue_` with no stage leaves step mode and resumes everything paused.
* A stop of the run (cancel, a failure elsewhere) resumes a paused execution by cancelling it
  (``action="cancel"``, by ``engine``, or by who called :meth:`cancel`). Everything runs on
  the engine's event loop thread.
* **Unattended bound** (``unattended_limit``, ``serve --break-timeout``): when set, a pause
  that nothing resumed within that many seconds, in a run no prompt is attached to
  (``attended``, kept by ``debug_ops``), goes on as if continued, by ``timeout``. A
  scheduled run must never wait for ever for a debugger nobody opened; a prompt at work keeps
  it held for as long as it stays attached.

This module holds the session's commands: breakpoints, stepping, resuming, inspecting. What
pauses an execution and holds it, the engine's side, is ``_debug_pauses``. Making a breakpoint and
finding the one a stage meets is ``_debug_match``; what ``inspect`` and ``state`` show,
``_debug_views``; the records themselves, ``_debug_records``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.engine._debug_match import MAX_BREAKPOINTS, applies, new_breakpoint
from taskdaemon.pipeline.engine._debug_pauses import PauseGate
from taskdaemon.pipeline.engine._debug_records import (
    FAILURE,
    START,
    Breakpoint,
    PausedExecution,
    _Pause,
    split_instance,
)
from taskdaemon.pipeline.engine._debug_views import run_state, stage_of, stage_view
from taskdaemon.pipeline.engine._results import RunResult
from taskdaemon.pipeline.errors import DebugRequestError, PipelineError
from taskdaemon.pipeline.events import InputOverridden
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.quoting import QUOTED, quote

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine._handle import RunHandle
    from taskdaemon.pipeline.engine._run_base import RunBase

__all__ = ["Breakpoint", "DebugSession", "PausedExecution"]

_BY_API = "api"  # who a command without ``by`` is recorded as: the Python API


class DebugSession(PauseGate):
    """The engine's debugger (``engine.with_debug(True)``). See the module docstring."""

    # ------------------------------------------------------------------ breakpoints

    def set_breakpoint(
        self,
        stage: str | None,
        when: str | None = None,
        on: str = START,
        *,
        pipeline: str | Pipeline | None = None,
        run_id: str | None = None,
    ) -> Breakpoint:
        """Add a breakpoint and return it; DebugRequestError for a bad ``on`` or ``when``, or
        one past ``MAX_BREAKPOINTS``."""
        if len(self._breakpoints) >= MAX_BREAKPOINTS:
            raise DebugRequestError(
                f"a session keeps at most {MAX_BREAKPOINTS} breakpoints (delete one first)"
            )
        name = pipeline.name if isinstance(pipeline, Pipeline) else pipeline
        bp = new_breakpoint(self._last_id + 1, stage, when, on, name, run_id)
        self._last_id = bp.id
        self._breakpoints[bp.id] = bp
        self._rearm()
        return bp

    def delete_breakpoint(self, breakpoint_id: int | None = None) -> int:
        """Delete one breakpoint (or all with None); returns how many went. PipelineError if
        the id is unknown."""
        if breakpoint_id is None:
            count = len(self._breakpoints)
            self._breakpoints.clear()
            self._rearm()
            return count
        if self._breakpoints.pop(breakpoint_id, None) is None:
            raise PipelineError(f"no breakpoint #{breakpoint_id}")
        self._rearm()
        return 1

    def breakpoints(self, run_id: str | None = None) -> list[Breakpoint]:
        """The breakpoints (those that can apply to ``run_id`` when given), by id."""
        found = list(self._breakpoints.values())
        if run_id is not None:
            run = self._run_of(run_id, need_open=False)
            found = [bp for bp in found if applies(bp, run)]
        return found

    # ------------------------------------------------------------------ running

    async def start(
        self, pipeline: Pipeline, request: Mapping[str, Any] | None = None, **options: Any
    ) -> RunHandle:
        """``engine.start_run`` under this session."""
        return await self._engine.start_run(pipeline, request, **options)

    async def execute(
        self, pipeline: Pipeline, request: Mapping[str, Any] | None = None, **options: Any
    ) -> RunResult:
        """Run ``pipeline`` under the debugger and return its result (like ``engine.run``)."""
        return await self._engine.run(pipeline, request, **options)

    async def wait_paused(self, run_id: str | None = None) -> PausedExecution | None:
        """Wait until something (in ``run_id`` when given) is paused and return the earliest
        paused; None when that run ended first."""
        run = None if run_id is None else self._run_of(run_id, need_open=False)
        while True:
            found = self.paused(None if run is None else run.run_id)
            if found:
                return found[0]
            if run is not None and run.result is not None:
                return None
            if self._changed is None:
                self._changed = asyncio.Event()
            waiter: asyncio.Future[Any] = asyncio.ensure_future(self._changed.wait())
            waits: list[asyncio.Future[Any]] = [waiter] if run is None else [waiter, run.done]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()

    def paused(self, run_id: str | None = None) -> list[PausedExecution]:
        """What is paused (in ``run_id`` when given), in the order it paused."""
        pauses = sorted(self._paused.values(), key=lambda p: p.seq)
        return [p.snapshot() for p in pauses if run_id is None or p.run.run_id == run_id]

    def is_stepping(self, run_id: str) -> bool:
        """True while the run is in step mode."""
        return run_id in self._stepping

    # ------------------------------------------------------------------ resuming

    def continue_(self, run_id: str | None = None, stage: str | None = None, by: str = "") -> int:
        """Resume what is paused (in the run, of the stage); without a stage the run leaves
        step mode. Returns how many executions were resumed."""
        if stage is None:
            if run_id is None:
                self._stepping.clear()
                self._rearm()
            else:
                self._stepping.discard(run_id)
                self._rearm()
        resumed = 0
        for pause in self._select(run_id, stage):
            resumed += self._resume(pause, "continue", by)
        return resumed

    def cancel(self, run_id: str, by: str) -> None:
        """Cancel the run, for ``by``: its error and its pauses' ends name them (a quit at a
        prompt read ``cancel by engine``, ``run cancelled``, as if nobody had asked). A run that
        ended meanwhile is left as it ended, as ``RunHandle.cancel`` leaves it."""
        self._run_of(run_id, need_open=False).cancel(by=by)

    def step(self, run_id: str, stage: str | None = None, by: str = "") -> PausedExecution | None:
        """Step mode for the run, and resume exactly one paused execution (the stage's, else
        the one paused first); returns it (None when nothing was paused: the next ready
        execution will pause). A refused step (a stage not paused, or not the run's) leaves
        step mode as it was: a command that did nothing changes nothing."""
        self._run_of(run_id)
        pauses = self._select(run_id, stage)
        if not pauses and stage is not None:
            raise PipelineError(f"stage {quote(stage)} of run {run_id} is not paused")
        self._stepping.add(run_id)
        self._rearm()
        if not pauses:
            return None
        snapshot = pauses[0].snapshot()
        self._resume(pauses[0], "step", by)
        return snapshot

    def skip(self, run_id: str, stage: str | None = None, by: str = "") -> PausedExecution:
        """Skip a paused execution that has not started (it ends ``skipped``; what needs it
        is skipped too)."""
        pause = self._one(
            run_id,
            stage,
            START,
            "skip",
            "only an execution paused before it "
            "starts can be skipped (after a failure: continue or retry)",
        )
        snapshot = pause.snapshot()
        self._resume(pause, "skip", by)
        return snapshot

    def retry(self, run_id: str, stage: str | None = None, by: str = "") -> PausedExecution:
        """Run a stage paused at its failure again now (a new attempt, no backoff, whatever
        its retry policy says)."""
        pause = self._one(
            run_id,
            stage,
            FAILURE,
            "retry",
            "only a failed execution paused at its failure can be retried",
        )
        snapshot = pause.snapshot()
        self._resume(pause, "retry", by)
        return snapshot

    def override(self, run_id: str, stage: str | None, name: str, value: Any, by: str = "") -> None:
        """Replace input ``name`` of ``stage``'s paused execution (None: the one that paused
        first) before it starts (recorded as ``InputOverridden`` with the old and new values).

        ``name`` must be one of the stage's declared inputs (an optional one that did not
        resolve included): any other name is a typo the stage would never read, so it raises
        DebugRequestError naming the inputs.
        """
        pause = self._one(
            run_id,
            stage,
            START,
            "override an input of",
            "inputs can only be overridden before the execution starts (to retry it with "
            "another value: a start breakpoint on the stage, then retry, and override at its "
            "pause)",
        )
        declared = [input_name for input_name, _compiled, _required in pause.srt.cs.inputs]
        if name not in declared:
            names = ", ".join(declared) if declared else "none"
            raise DebugRequestError(
                f"stage {pause.srt.name!r} has no input {quote(name)} (inputs: {names})"
            )
        old = pause.inputs.get(name)
        pause.inputs[name] = value
        if name not in pause.overridden:
            pause.overridden.append(name)
        run = pause.run
        ctx = run.ctx
        if ctx.observed:
            ctx.emit(
                InputOverridden(
                    run_id=run.run_id,
                    pipeline=run.name,
                    stage=pause.srt.name,
                    instance=pause.inst.index,
                    attempt=pause.ex.attempt,
                    task_run_id=pause.task_run_id,
                    at=ctx.clock(),
                    name=name,
                    old=old,
                    new=value,
                    by=by or _BY_API,
                )
            )

    def detach(self) -> None:
        """Forget the breakpoints and step modes and resume everything paused."""
        self._breakpoints.clear()
        self._stepping.clear()
        self._marked.clear()
        self._rearm()
        for pause in list(self._paused.values()):
            self._resume(pause, "continue", "debug mode off")

    # ------------------------------------------------------------------ inspecting

    def inspect(self, run_id: str, stage: str) -> dict[str, Any]:
        """A stage's state for a person: its status, paused executions, resolved inputs (those
        it will run with when paused), its upstream stages' status and outputs, its triggers'
        state, its approval and the events waiting for an instance. JSON-able."""
        run = self._run_of(run_id, need_open=False)
        return stage_view(run, stage, self._select(run.run_id, stage), self.replay)

    def state(self, run_id: str) -> dict[str, Any]:
        """The run as a debugger shows it: status, step mode, each stage's status, what is
        paused, waiting and queued, worker slots in use, events waiting per stage. A run that
        has ended is in no step mode: nothing of it will pause again (``where`` read
        ``failure, step mode`` after a ``step`` ran a run to its end)."""
        run = self._run_of(run_id, need_open=False)
        return run_state(
            run,
            run.run_id in self._stepping and run.result is None,
            self.paused(run.run_id),
            self.breakpoints(run.run_id),
            self.replay,
        )

    # ------------------------------------------------------------------ internals

    def _resume(self, pause: _Pause, action: str, by: str) -> int:
        if pause.future.done():
            return 0
        pause.future.set_result((action, by or _BY_API))
        return 1

    def _run_of(self, run_id: str, need_open: bool = True) -> RunBase:
        runs = self._engine._runs
        handle = runs.get(run_id)
        if handle is None:
            matches = [h for rid, h in runs.items() if rid.startswith(run_id)] if run_id else []
            if len(matches) != 1:
                raise PipelineError(f"no run {quote(run_id)} in this engine")
            handle = matches[0]
        run = handle._run
        if need_open and run.result is not None:
            raise PipelineError(f"run {run.run_id} has finished")
        return run

    def _select(self, run_id: str | None, stage: str | None) -> list[_Pause]:
        """The run's paused executions (every run's when None), of ``stage`` (``STAGE`` or
        ``STAGE#N``: ``split_instance``) when given, first paused first. A stage the run does
        not have is StageNotFoundError (``stage_of``)."""
        name, instance = split_instance(stage) if stage is not None else (None, None)
        if run_id is not None:
            run = self._run_of(run_id, need_open=False)
            run_id = run.run_id
            if name:  # "" is no stage: "nothing is paused", as None
                stage_of(run, name)
        pauses = sorted(self._paused.values(), key=lambda p: p.seq)
        return [
            p
            for p in pauses
            if (run_id is None or p.run.run_id == run_id)
            and (name is None or p.srt.name == name)
            and (instance is None or p.inst.index == instance)
        ]

    def _one(self, run_id: str, stage: str | None, kind: str, verb: str, why: str) -> _Pause:
        pauses = self._select(run_id, stage)
        if not pauses:
            if stage:
                raise PipelineError(
                    f"cannot {verb} {cut(stage, QUOTED)}: stage {quote(stage)} is not paused"
                )
            raise PipelineError(f"cannot {verb} a stage: nothing is paused")
        right = [p for p in pauses if p.kind == kind]
        if not right:
            raise PipelineError(f"cannot {verb} {pauses[0].srt.name!r}: {why}")
        return right[0]
