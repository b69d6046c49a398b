"""The engine's public objects: ``Engine`` and the ``RunHandle`` of a run it started."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, overload

from taskdaemon.pipeline.engine._debug import DebugSession
from taskdaemon.pipeline.engine._results import HandlerResolver, PauseGate, RunResult
from taskdaemon.pipeline.engine._run import _RUN_ID, _Observer, _plan_for, _Run, _StageRun
from taskdaemon.pipeline.errors import PipelineError, RunNotFoundError
from taskdaemon.pipeline.events import EngineEvent, RunStarted, StageStarted
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.state import RunStatus

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- public API


class RunHandle:
    """A run started by :meth:`Engine.start_run`: wait for it, steer it, look at it."""

    def __init__(self, run: _Run) -> None:
        self._run = run

    def __repr__(self) -> str:
        return f"<RunHandle {self._run.name} {self.run_id} {self.status}>"

    @property
    def run_id(self) -> str:
        """The run's id (32 lowercase hex, the trace id when monitored)."""
        return self._run.run_id

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline the run executes."""
        return self._run.pipeline

    @property
    def status(self) -> RunStatus:
        """The run's current status."""
        return self._run.status

    @property
    def done(self) -> bool:
        """True once the run has ended."""
        return self._run.result is not None

    async def wait(self) -> RunResult:
        """Wait for the run to end and return its result (cancelling the wait leaves the run)."""
        return await asyncio.shield(self._run.done)

    def snapshot(self) -> RunResult:
        """The run as it is now (the final result once it ended)."""
        return self._run.result or self._run.snapshot()

    @property
    def backlog(self) -> int:
        """Events waiting for an instance slot plus event-stage instances not yet ended.

        O(stages): what a server checks before accepting one more event from outside.
        """
        return sum(
            len(srt.events) + srt.open_instances
            for srt in self._run.stages.values()
            if srt.cs.has_events
        )

    def _stage(self, stage: str) -> _StageRun:
        run = self._run
        try:
            return run.stages[stage]
        except KeyError:
            raise PipelineError(
                f"run {run.run_id} of pipeline {run.name!r} has no stage {stage!r}"
            ) from None

    def _open(self, action: str) -> None:
        if self._run.result is not None:
            raise PipelineError(f"run {self.run_id} has finished; cannot {action}")

    def approve(self, stage: str, by: str = "") -> None:
        """Grant the approval ``stage`` waits for; ApprovalError if it waits for none."""
        srt = self._stage(stage)
        self._open(f"approve {stage!r}")
        self._run.resolve_approval(srt, approved=True, by=by, timed_out=False)

    def reject(self, stage: str, by: str = "") -> None:
        """Reject the approval ``stage`` waits for: the stage (and what needs it) is skipped."""
        srt = self._stage(stage)
        self._open(f"reject {stage!r}")
        self._run.resolve_approval(srt, approved=False, by=by, timed_out=False)

    def publish(self, event_type: str, payload: Mapping[str, Any] | None = None) -> None:
        """Publish an event from outside; its type must be listened to or declared external."""
        run = self._run
        self._open(f"publish {event_type!r}")
        if event_type not in run.plan.event_listeners and (
            event_type not in run.pipeline.external_events
        ):
            known = sorted(set(run.plan.event_listeners) | set(run.pipeline.external_events))
            raise PipelineError(
                f"pipeline {run.name!r} has no stage listening to {event_type!r} and does not "
                f"declare it in external_events (known: {', '.join(known) or 'none'})"
            )
        run.publish(event_type, payload or {}, None)

    def cancel(self) -> None:
        """Cancel the run (running stages end ``cancelled``, the rest ``skipped``); idempotent."""
        self._run.stop(RunStatus.CANCELLED, "run cancelled")


class Engine:
    """Runs pipelines. See the module docstring for the semantics and the API."""

    def __init__(
        self,
        *,
        resolver: HandlerResolver | None = None,
        observers: Iterable[Any] = (),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        pause_gate: PauseGate | None = None,
        workspace: str | os.PathLike[str] | None = None,
        keep_finished: int = 1000,
    ) -> None:
        self._resolver = resolver
        self._clock = clock
        self._sleep = sleep
        self._pause_gate = pause_gate
        self._debugger: DebugSession | None = None
        self._workspace = None if workspace is None else os.fspath(workspace)
        self._observer_entries: list[_Observer] = []
        self._observers: tuple[_Observer, ...] = ()
        self._env_hooks: tuple[_Observer, ...] = ()
        self._logged: set[tuple[int, type]] = set()
        self._runs: dict[str, RunHandle] = {}
        self._finished: deque[str] = deque()
        self._keep_finished = keep_finished
        for observer in observers:
            self.add_observer(observer)

    # ------------------------------------------------------------------ debugging

    @overload
    def with_debug(self, enabled: Literal[True] = True) -> DebugSession: ...

    @overload
    def with_debug(self, enabled: Literal[False]) -> None: ...

    def with_debug(self, enabled: bool = True) -> DebugSession | None:
        """Debug mode: ``True`` returns the engine's :class:`DebugSession` (made on first call,
        installed as the pause gate); ``False`` resumes whatever is paused, removes the gate and
        returns None. Without debug mode no gate is installed and nothing is awaited."""
        if enabled:
            if self._debugger is None:
                if self._pause_gate is not None:
                    raise PipelineError("this engine already has a pause_gate; no debug mode")
                self._debugger = DebugSession(self)
                self._pause_gate = self._debugger.gate
            return self._debugger
        session, self._debugger = self._debugger, None
        if session is not None:
            self._pause_gate = None
            session.detach()
        return None

    # ------------------------------------------------------------------ observers

    def add_observer(self, observer: Any) -> None:
        """Register an observer (an object with ``on_event``); adding it twice does nothing."""
        if any(entry.observer is observer for entry in self._observer_entries):
            return
        self._observer_entries.append(_Observer(observer))
        self._refresh_observers()

    def remove_observer(self, observer: Any) -> None:
        """Unregister an observer; removing one that is not registered does nothing."""
        self._observer_entries = [e for e in self._observer_entries if e.observer is not observer]
        self._refresh_observers()

    def _refresh_observers(self) -> None:
        self._observers = tuple(self._observer_entries)
        self._env_hooks = tuple(e for e in self._observers if e.environment is not None)

    def _log_once(self, entry: _Observer, what: type, message: str) -> None:
        key = (id(entry.observer), what)
        if key not in self._logged:
            self._logged.add(key)
            logger.exception(message, type(entry.observer).__name__, what.__name__)

    def _emit(self, event: EngineEvent) -> None:
        for entry in self._observers:
            try:
                entry.on_event(event)
            except Exception:
                self._log_once(entry, type(event), "observer %s failed on %s (ignored)")

    def _environment(self, event: StageStarted) -> dict[str, str]:
        environment: dict[str, str] = {}
        for entry in self._env_hooks:
            assert entry.environment is not None
            try:
                answer = entry.environment(event)
                if answer:
                    environment.update({str(k): str(v) for k, v in answer.items()})
            except Exception:
                self._log_once(entry, StageStarted, "observer %s stage_environment failed (%s)")
        return environment

    def _allocate_run_id(self, pipeline: Pipeline, request: Mapping[str, Any]) -> str:
        for entry in self._observers:
            if entry.allocate is None:
                continue
            try:
                answer = entry.allocate(pipeline, request)
            except Exception:
                self._log_once(entry, RunStarted, "observer %s allocate_run_id failed (%s)")
                continue
            if isinstance(answer, str) and _RUN_ID.match(answer):
                return answer
        return secrets.token_hex(16)

    def _resolver_or_default(self) -> HandlerResolver:
        if self._resolver is None:
            # Imported late: loops.py is the registry's home and may import heavier things.
            loops = importlib.import_module("taskdaemon.pipeline.loops")
            self._resolver = loops.LoopRegistry.default()
        assert self._resolver is not None
        return self._resolver

    # ------------------------------------------------------------------ runs

    async def start_run(
        self,
        pipeline: Pipeline,
        request: Mapping[str, Any] | None = None,
        *,
        started_by: str = "api",
        run_id: str | None = None,
        parent_traceparent: str | None = None,
        replay_of: str | None = None,
    ) -> RunHandle:
        """Start a run of ``pipeline`` and return its handle (the run goes on in the background).

        PipelineError if the pipeline cannot run (unknown stage reference, cycle, bad
        expression) or ``run_id`` is taken.
        """
        plan = _plan_for(pipeline)
        request = dict(request or {})
        if run_id is None:
            run_id = self._allocate_run_id(pipeline, request)
        elif run_id in self._runs:
            raise PipelineError(f"run id {run_id} is already in use")
        run = _Run(self, pipeline, plan, run_id, request)
        if self._workspace is not None:
            run.workspace = os.path.join(self._workspace, run_id)
            os.makedirs(run.workspace, exist_ok=True)
        handle = RunHandle(run)
        self._runs[run_id] = handle
        run.start(started_by, parent_traceparent, replay_of)
        return handle

    async def run(
        self,
        pipeline: Pipeline,
        request: Mapping[str, Any] | None = None,
        *,
        started_by: str = "api",
        run_id: str | None = None,
        parent_traceparent: str | None = None,
        replay_of: str | None = None,
    ) -> RunResult:
        """Start a run and wait for its result; cancelling this call cancels the run."""
        handle = await self.start_run(
            pipeline,
            request,
            started_by=started_by,
            run_id=run_id,
            parent_traceparent=parent_traceparent,
            replay_of=replay_of,
        )
        try:
            return await handle.wait()
        except asyncio.CancelledError:
            handle.cancel()
            raise

    def _run_finished(self, run: _Run) -> None:
        self._finished.append(run.run_id)
        while len(self._finished) > self._keep_finished:
            self._runs.pop(self._finished.popleft(), None)

    @property
    def runs(self) -> tuple[RunHandle, ...]:
        """Open runs and the most recent finished ones, oldest first."""
        return tuple(self._runs.values())

    def get_run(self, run_id: str) -> RunHandle:
        """The run called ``run_id``; RunNotFoundError if the engine does not know it."""
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFoundError(f"no run {run_id!r} in this engine") from None

    def approve(self, run_id: str, stage: str, by: str = "") -> None:
        """``get_run(run_id).approve(stage, by)``."""
        self.get_run(run_id).approve(stage, by)

    def reject(self, run_id: str, stage: str, by: str = "") -> None:
        """``get_run(run_id).reject(stage, by)``."""
        self.get_run(run_id).reject(stage, by)

    def publish(
        self, run_id: str, event_type: str, payload: Mapping[str, Any] | None = None
    ) -> None:
        """``get_run(run_id).publish(event_type, payload)``."""
        self.get_run(run_id).publish(event_type, payload)

    def cancel(self, run_id: str) -> None:
        """``get_run(run_id).cancel()``."""
        self.get_run(run_id).cancel()

    async def aclose(self) -> None:
        """Cancel every open run and wait for them to end; safe to call twice."""
        open_runs = [h for h in self._runs.values() if not h.done]
        for handle in open_runs:
            handle.cancel()
        for handle in open_runs:
            await handle.wait()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
