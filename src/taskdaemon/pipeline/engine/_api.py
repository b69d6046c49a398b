"""The engine: starts runs, keeps the recent ones, fans their records out to observers."""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from taskdaemon.pipeline.engine._handle import RunHandle
from taskdaemon.pipeline.engine._observers import Observers
from taskdaemon.pipeline.engine._plan import plan_for
from taskdaemon.pipeline.engine._results import HandlerResolver, PauseGate, RunResult
from taskdaemon.pipeline.engine._run import Run
from taskdaemon.pipeline.engine._run_base import RunContext
from taskdaemon.pipeline.errors import PipelineError, RunNotFoundError
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.private_file import make_private_dirs
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.secret_values import (
    declare_secrets,
    release_secrets,
    remember_environment_secrets,
)

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine._debug import DebugSession

__all__ = ["Engine", "RunHandle"]


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
        # Command stages inherit this process's environment: its secrets are masked by value.
        remember_environment_secrets()
        self._resolver = resolver
        self._debug_session: DebugSession | None = None
        #: The ``unattended_limit`` of the debug session when debug mode goes on (``serve``).
        self.debug_unattended_limit: float | None = None
        self._workspace = None if workspace is None else os.fspath(workspace)
        self._observers = Observers(on_change=self._observers_changed)
        self._runs: dict[str, RunHandle] = {}
        self._finished: deque[str] = deque()
        #: Who declared each open run's request's secrets (``secret_values.declare_secrets``).
        self._secret_holders: dict[str, object] = {}
        self._keep_finished = keep_finished
        # What every run reads of its engine (the runs never see the engine itself).
        self._ctx = RunContext(
            clock=clock,
            sleep=sleep,
            emit=self._observers.emit,
            wants_record=self._observers.wants_record,
            environment=self._observers.environment,
            resolver=self._resolver_or_default,
            run_finished=self._run_finished,
            pause_gate=pause_gate,
        )
        for observer in observers:
            self.add_observer(observer)

    @property
    def _pause_gate(self) -> PauseGate | None:
        """The gate every execution awaits before it starts (None: nothing is awaited)."""
        return self._ctx.pause_gate

    @property
    def _debugger(self) -> DebugSession | None:
        """The debug session while debug mode is on."""
        return self._debug_session

    # ------------------------------------------------------------------ debugging

    @overload
    def with_debug(self, enabled: Literal[True] = True) -> DebugSession: ...

    @overload
    def with_debug(self, enabled: Literal[False]) -> None: ...

    def with_debug(self, enabled: bool = True) -> DebugSession | None:
        """Debug mode: ``True`` returns the engine's :class:`DebugSession` (made on first call,
        installed as the pause gate); ``False`` resumes whatever is paused, removes the gate and
        returns None. Without debug mode no gate is installed and nothing is awaited."""
        ctx = self._ctx
        if enabled:
            if self._debug_session is None:
                if ctx.pause_gate is not None:
                    raise PipelineError("this engine already has a pause_gate; no debug mode")
                # Imported here: a run without breakpoints never loads the debugger (its
                # records build ``dataclasses``), which is start-up time of ``run``.
                from taskdaemon.pipeline.engine._debug import DebugSession  # noqa: PLC0415

                session = DebugSession(self)
                session.unattended_limit = self.debug_unattended_limit
                self._debug_session = session
                ctx.debugger = session
                ctx.pause_gate = session.gate
            return self._debug_session
        session_off, self._debug_session = self._debug_session, None
        if session_off is not None:
            ctx.debugger = None
            ctx.pause_gate = None
            session_off.detach()
        return None

    # ------------------------------------------------------------------ observers

    def add_observer(self, observer: Any) -> None:
        """Register an observer (an object with ``on_event``); adding it twice does nothing."""
        self._observers.add(observer)

    def remove_observer(self, observer: Any) -> None:
        """Unregister an observer; removing one that is not registered does nothing."""
        self._observers.remove(observer)

    def _observers_changed(self) -> None:
        ctx, observers = self._ctx, self._observers
        ctx.observed = bool(observers.entries)
        ctx.env_hooks = bool(observers.env_hooks)
        ctx.emit, ctx.wants_record = observers.callables()

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
        scheduled_at: float | None = None,
    ) -> RunHandle:
        """Start a run of ``pipeline`` and return its handle (the run goes on in the background).
        ``scheduled_at``: the epoch seconds a schedule meant the run to start at (its run span's
        ``taskdaemon.pipeline.scheduled_at_ns``), None for a run no schedule started.

        PipelineError if the pipeline cannot run (unknown stage reference, cycle, bad
        expression), ``run_id`` is taken, or the run's workspace cannot be created.
        """
        plan = plan_for(pipeline)
        request = dict(request or {})
        # Before any stage or record can carry a secret of it elsewhere; kept masked until the
        # run ends, whatever it learns meanwhile (``secret_values``, "Declared and learnt").
        holder = object()
        if request and (refusal := declare_secrets(request, holder)) is not None:
            raise PipelineError(f"the run's request holds {refusal}")
        try:
            # The run's start, read once, before the run is named: the run's ``started_at``,
            # ``RunStarted.at`` and the start of the run span the monitor starts to name it
            # (``allocate_run_id``'s ``at``; the monitor's docstring, "Decisions", says why).
            started_at = self._ctx.clock()
            if run_id is None:
                run_id = self._observers.allocate_run_id(pipeline, request, started_at)
            elif run_id in self._runs:
                raise PipelineError(f"run id {run_id} is already in use")
            run = Run(self._ctx, pipeline, plan, run_id, request, started_at=started_at)
            if self._workspace is not None:
                run.workspace = os.path.join(self._workspace, run_id)
                # Private to the owner, as the span store is: a run's files are run data. The
                # folders above it too when made here (``private_file``).
                try:
                    make_private_dirs(self._workspace)
                    make_private_dirs(run.workspace)
                except OSError as error:  # a read-only or full home, a file in the way
                    reason = error.strerror or str(error)
                    raise PipelineError(
                        f"cannot create the workspace {run.workspace}: {reason}"
                    ) from error
            handle = RunHandle(run)
            self._runs[run_id] = handle
        except BaseException:
            release_secrets(holder)
            raise
        self._secret_holders[run_id] = holder  # released when the run ends
        try:
            run.start(started_by, parent_traceparent, replay_of, scheduled_at)
        except Exception as exc:
            # A run that broke while starting (an injected clock or observer hook that raises)
            # is ended here, so that nothing waits for it; the caller gets the error.
            run.abort(exc)
            run.done.exception()  # retrieved: raised below, not logged as lost
            raise
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

    def _run_finished(self, run_id: str) -> None:
        # The secrets the run declared (its request's; a debugger's override of a secret input)
        # join those learnt on the way (``secret_values``, "Declared and learnt").
        release_secrets(self._secret_holders.pop(run_id, None))
        release_secrets(run_id)
        self._finished.append(run_id)
        while len(self._finished) > self._keep_finished:
            self._runs.pop(self._finished.popleft(), None)

    @property
    def runs(self) -> tuple[RunHandle, ...]:
        """Open runs and the most recent finished ones, oldest first."""
        return tuple(self._runs.values())

    def get_run(self, run_id: str) -> RunHandle:
        """The run called ``run_id``; RunNotFoundError if the engine does not know it.

        A run is named here by its whole id only: what acts on a run (approve, cancel, debug)
        must not guess. The CLI and the span source routes take a unique prefix of 4 or more,
        so a person who pasted one gets, when it starts the id of exactly one run the engine
        knows, that id in the refusal: the next request is then a copy away."""
        try:
            return self._runs[run_id]
        except KeyError:
            refusal = f"no run {quote(run_id)} in this engine"
            if len(run_id) >= 4:
                started = [known for known in self._runs if known.startswith(run_id)]
                if len(started) == 1:
                    refusal += f": did you mean run {started[0]}? (give its whole id)"
            raise RunNotFoundError(refusal) from None

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

    def cancel(self, run_id: str, by: str | None = None) -> None:
        """``get_run(run_id).cancel(by=by)``: a run cancelled by id says who, as one cancelled by
        its handle does."""
        self.get_run(run_id).cancel(by=by)

    async def aclose(self) -> None:
        """Cancel every open run, for the shutdown (``run cancelled by engine shutdown``: a run
        ended so says why, as one a user or a signal cancelled does), and wait for them to
        end; safe to call twice."""
        open_runs = [h for h in self._runs.values() if not h.done]
        for handle in open_runs:
            handle.cancel(by="engine shutdown")
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
