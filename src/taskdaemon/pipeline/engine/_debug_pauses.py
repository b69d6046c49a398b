"""The debugger's engine side, the base of ``_debug.DebugSession``: the pause gate the engine
awaits before each execution starts (:meth:`PauseGate.gate`), the pause after a failed attempt
(:meth:`PauseGate.failed`), the published events an event breakpoint marks, and the hold of a
paused execution until a command, the unattended bound or the run's stop resumes it. The
contract is ``_debug``'s docstring; the commands that set breakpoints and resume pauses are
``_debug.DebugSession``'s. Split from it so that each module holds one side: what the engine
calls, and what a person calls.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from taskdaemon.pipeline.engine._debug_match import applies, first_match, holds
from taskdaemon.pipeline.engine._debug_records import FAILURE, START, Breakpoint, _Pause
from taskdaemon.pipeline.engine._debug_views import Replayed
from taskdaemon.pipeline.engine._results import GateDecision, RunResult, StageGateRequest
from taskdaemon.pipeline.events import BreakpointHit, BreakpointResumed, StageSkipped
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.state import RunStatus, StageStatus

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine._handle import RunHandle
    from taskdaemon.pipeline.engine._run_base import RunBase
    from taskdaemon.pipeline.engine._stage_state import Execution, Instance, StageRun

__all__ = ["DebugHost", "PauseGate"]


class DebugHost(Protocol):
    """What a session needs of its engine (an ``Engine``, named without importing it)."""

    _runs: dict[str, RunHandle]

    def start_run(self, *args: Any, **kwargs: Any) -> Awaitable[RunHandle]:
        """``Engine.start_run``."""
        ...

    def run(self, *args: Any, **kwargs: Any) -> Awaitable[RunResult]:
        """``Engine.run``."""
        ...


class PauseGate:
    """What pauses an execution and holds it paused; ``DebugSession`` adds the commands."""

    def __init__(self, engine: DebugHost) -> None:
        self._engine = engine
        self._breakpoints: dict[int, Breakpoint] = {}
        self._last_id = 0  # the number of the last breakpoint taken (a refused one takes none)
        self._seq = itertools.count(1)
        self._paused: dict[tuple[str, str], _Pause] = {}
        self._stepping: set[str] = set()
        # id(payload) -> (payload, run id, breakpoint, event type): the payload object itself is
        # kept so that a recycled id never matches; entries of ended runs are dropped as
        # events are published.
        self._marked: dict[int, tuple[Any, str, Breakpoint, str]] = {}
        self._stage_before: dict[tuple[str, str], StageStatus] = {}
        self._changed: asyncio.Event | None = None
        # What can pause at all, kept current by every change (see may_pause).
        self._armed = False
        self._watched: frozenset[str | None] = frozenset()
        #: Seconds a pause waits in a run no prompt is attached to (None: no bound).
        self.unattended_limit: float | None = None
        #: run id -> whether a prompt is attached to it now (``DebugOps``).
        self.attended: dict[str, Callable[[], bool]] = {}
        #: (run id, stage, instance, inputs, event) -> True for an execution that never pauses,
        #: at a start or a failure: a replay's fed or reused one, which does no work to look
        #: at (``replay/run.py``; reuse depends on the inputs and the event it starts with).
        self.never_held: Callable[[str, str, int, Mapping[str, Any], Any], bool] | None = None
        #: A replay's word for its executions it did not run, which ``state`` and ``inspect``
        #: show (``_debug_views``); None for a run that is no replay.
        self.replay: Replayed | None = None

    # ------------------------------------------------------------------ engine hooks

    def may_pause(self, run_id: str, stage: str, event: object) -> bool:
        """Whether :meth:`gate` could pause this execution: the engine asks before building a
        gate request, so debug mode with nothing to stop at costs one call per execution."""
        if not self._armed:
            return False
        if run_id in self._stepping or (event is not None and self._marked):
            return True
        return None in self._watched or stage in self._watched

    def _rearm(self) -> None:
        self._watched = frozenset(bp.stage for bp in self._breakpoints.values() if bp.on == START)
        self._armed = bool(self._watched or self._stepping or self._marked)

    async def gate(self, request: StageGateRequest) -> GateDecision | None:
        """The pause gate: pause the execution when a breakpoint, step mode or a marked event
        says so, and answer how it goes on."""
        if not self._breakpoints and not self._stepping and not self._marked:
            return None
        handle = self._engine._runs.get(request.run_id)
        if handle is None:
            return None
        run = handle._run
        if run.stopping is not None:
            return None
        if self.never_held is not None and self.never_held(
            request.run_id, request.stage, request.instance, request.inputs, request.event
        ):
            return None
        srt = run.stages[request.stage]
        inst = srt.instances[request.instance]
        reason = self._start_reason(run, request)
        if reason is None:
            return None
        pause = self._new_pause(run, srt, inst, START, reason, dict(request.inputs))
        pause.ex.paused = 0.0  # held: reached, even if a stop cancels it here (``reached``)
        action, by, paused = await self._hold(pause, StageStatus.QUEUED)
        # A skip ends the whole stage only when it can have no other instance: an event stage
        # may get more from later events (its status is then the worst of its instances).
        if action == "skip" and not srt.cs.has_events and len(srt.instances) == 1 and not srt.final:
            srt.skip_reason = f"skipped at a breakpoint by {by}"
            ctx = run.ctx
            if ctx.observed:
                ctx.emit(
                    StageSkipped(
                        run_id=run.run_id,
                        pipeline=run.name,
                        stage=srt.name,
                        reason=srt.skip_reason,
                        at=ctx.clock(),
                    )
                )
        inputs = dict(pause.inputs) if pause.overridden else None
        return GateDecision(skip=action == "skip", inputs=inputs, paused=paused)

    async def failed(self, run: RunBase, srt: StageRun, inst: Instance, ex: Execution) -> bool:
        """After a failed attempt: pause at a failure breakpoint; True means retry it now."""
        ex.ended = run.ctx.clock()  # the attempt ended here; a pause is not run time
        if run.stopping is not None or not self._breakpoints:
            return False
        if self.never_held is not None and self.never_held(
            run.run_id, srt.name, inst.index, getattr(ex, "inputs", {}), inst.event
        ):
            return False
        # The inputs it ran with (none kept when debug mode came on while it ran).
        inputs = dict(getattr(ex, "inputs", {}))
        bp = first_match(
            self._breakpoints.values(),
            run,
            srt.name,
            FAILURE,
            lambda: {
                "request": run.request,
                "stages": run.stages_ctx,
                "event": inst.event,
                "inputs": inputs,
                "error": ex.error or "",
            },
        )
        if bp is None:
            return False
        reason = "failure: " + bp.describe()
        pause = self._new_pause(run, srt, inst, FAILURE, reason, inputs)
        action, _by, _paused = await self._hold(pause, StageStatus.RUNNING)
        return action == "retry"

    def published(self, run: RunBase, event_type: str, payload: dict[str, Any]) -> None:
        """An event is being published: mark it when an event breakpoint wants it, so the
        executions it starts pause."""
        runs = self._engine._runs
        for key, entry in list(self._marked.items()):
            handle = runs.get(entry[1])
            if handle is None or handle.done:
                del self._marked[key]
                self._rearm()
        for bp in self._breakpoints.values():
            if bp.event_type == event_type and applies(bp, run):
                context = {"request": run.request, "stages": run.stages_ctx, "event": payload}
                if holds(bp, {**context, "inputs": {}, "error": ""}):
                    self._marked[id(payload)] = (payload, run.run_id, bp, event_type)
                    self._rearm()
                    return

    def _start_reason(self, run: RunBase, request: StageGateRequest) -> str | None:
        if request.event is not None:
            marked = self._marked.get(id(request.event))
            if marked is not None and marked[0] is request.event:
                _payload, _run_id, bp, event_type = marked
                if bp.stage is None or bp.stage == request.stage:
                    bp.hits += 1
                    return f"event {event_type}: {bp.describe()}"
        if self._breakpoints:
            found = first_match(
                self._breakpoints.values(),
                run,
                request.stage,
                START,
                lambda: {
                    "request": run.request,
                    "stages": run.stages_ctx,
                    "event": request.event,
                    "inputs": request.inputs,
                    "error": "",
                },
            )
            if found is not None:
                return found.describe()
        if run.run_id in self._stepping:
            return "step"
        return None

    def _new_pause(  # noqa: PLR0917 - internal
        self,
        run: RunBase,
        srt: StageRun,
        inst: Instance,
        kind: str,
        reason: str,
        inputs: dict[str, Any],
    ) -> _Pause:
        ex = inst.executions[-1]
        # The reason quotes the breakpoint's condition, which may compare a secret with its
        # value: every observer prints or records it (the progress line wrote it in clear).
        reason = redact_text(reason)
        return _Pause(run, srt, inst, ex, kind, reason, inputs, next(self._seq), run.ctx.clock())

    async def _hold(self, pause: _Pause, back: StageStatus) -> tuple[str, str, float]:
        """Pause until resumed; returns (action, by, seconds paused)."""
        run, srt, inst, ex = pause.run, pause.srt, pause.inst, pause.ex
        ctx = run.ctx
        key = (run.run_id, pause.task_run_id)
        stage_key = (run.run_id, srt.name)
        inst.status = StageStatus.PAUSED
        ex.status = StageStatus.PAUSED
        if srt.status is not StageStatus.PAUSED and not srt.final:
            self._stage_before[stage_key] = srt.status
            srt.status = StageStatus.PAUSED
        self._paused[key] = pause
        run.status = RunStatus.PAUSED
        if ctx.observed:
            ctx.emit(
                BreakpointHit(
                    run_id=run.run_id,
                    pipeline=run.name,
                    stage=srt.name,
                    instance=inst.index,
                    attempt=ex.attempt,
                    task_run_id=pause.task_run_id,
                    at=pause.since,
                    kind=pause.kind,
                    reason=pause.reason,
                    error=ex.error if pause.kind == FAILURE else None,
                )
            )
        self._notify()
        action, by = "cancel", None
        try:
            action, by = await self._resumption(pause)
        finally:
            if by is None:  # the run's stop cancelled the pause (the module docstring)
                by = run.cancelled_by or "engine"
            del self._paused[key]
            inst.status = back
            ex.status = back
            if srt.status is StageStatus.PAUSED and not any(
                p.srt is srt for p in self._paused.values()
            ):
                srt.status = self._stage_before.pop(stage_key, StageStatus.WAITING)
            if run.result is None and not any(p.run is run for p in self._paused.values()):
                run.status = RunStatus.RUNNING
            now = ctx.clock()
            paused = max(0.0, now - pause.since)
            if ctx.observed:
                stopped = action == "cancel" and run.stopping is not None
                ctx.emit(
                    BreakpointResumed(
                        run_id=run.run_id,
                        pipeline=run.name,
                        stage=srt.name,
                        instance=inst.index,
                        attempt=ex.attempt,
                        task_run_id=pause.task_run_id,
                        at=now,
                        action=action,
                        by=by,
                        paused=paused,
                        cancel_reason=run.cancel_reason if stopped else None,
                        cancel_cause=run.cancel_cause if stopped else None,
                    )
                )
            self._notify()
        return action, by, paused

    async def _resumption(self, pause: _Pause) -> tuple[str, str | None]:
        """What resumes ``pause``: its future's (action, by), or ``("continue", "timeout")``
        once the unattended bound passed with no prompt attached to its run."""
        future = pause.future
        if self.unattended_limit is None:  # awaited as it is: no turn of the loop added
            return await future
        try:
            while True:
                await asyncio.wait((future,), timeout=self.unattended_limit)
                if future.done():
                    return future.result()
                attended = self.attended.get(pause.run.run_id)
                if attended is None or not attended():
                    future.set_result(("continue", "timeout"))
        except asyncio.CancelledError:
            future.cancel()
            raise

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
