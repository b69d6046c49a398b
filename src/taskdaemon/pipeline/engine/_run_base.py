"""What a run is given (:class:`RunContext`) and what it holds (:class:`RunBase`).

A run never sees its engine: it reads the clock, sleeps, emits records, resolves handlers and
asks the debugger through the context, which the engine shares between its runs and keeps
current (observers and debug mode may change while runs go on). The run's behaviour is split
by topic over classes that all extend :class:`RunBase`: attempts, timeouts and retries
(``_attempt.py``), approvals (``_approvals.py``), triggers and scheduling (``_run.py``).
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from taskdaemon.pipeline.engine._isolated import IsolatedEvaluations
from taskdaemon.pipeline.engine._results import HandlerResolver, PauseGate, RunResult
from taskdaemon.pipeline.engine._slots import WorkerSlots
from taskdaemon.pipeline.engine._stage_state import Execution, Instance, StageRun
from taskdaemon.pipeline.events import EngineEvent, RunFinished, StageStarted, TaskRunRef
from taskdaemon.pipeline.loops import Handler
from taskdaemon.pipeline.model import ErrorStrategy, Pipeline
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.state import RunStatus
from taskdaemon.pipeline.triggers import TriggerPlan, TriggerState


class DebugHook(Protocol):
    """What a run tells the debugger (``engine/_debug.py``), besides its pause gate."""

    def may_pause(self, run_id: str, stage: str, event: object) -> bool:
        """Whether the pause gate could pause this execution (asked before building a request)."""
        ...

    async def failed(self, run: RunBase, srt: StageRun, inst: Instance, ex: Execution) -> bool:
        """An attempt failed, before the error strategy acts; True: retry it now."""
        ...

    def published(self, run: RunBase, event_type: str, payload: dict[str, Any]) -> None:
        """An event is being published into ``run`` (before any listener sees it)."""
        ...


class RunContext:
    """What a run needs of its engine; one per engine, shared by its runs, kept current.

    ``observed``: some observer is registered (without one no record is even built).
    ``emit(record)``: hand a record to the observers (``Observers.callables``: the fan-out, or the
    one observer that guards itself, called directly).
    ``wants_record(kind)``: some observer wants records of that type (asked for the ones observers
    may decline, before building them).
    ``env_hooks``: some observer answers ``stage_environment``, which ``environment`` merges.
    ``resolver()``: the engine's handler resolver (the default one made on first use).
    ``run_finished(run_id)``: the run ended (the engine trims the finished runs it keeps).
    """

    __slots__ = (
        "clock",
        "debugger",
        "emit",
        "env_hooks",
        "environment",
        "observed",
        "pause_gate",
        "resolver",
        "run_finished",
        "sleep",
        "wants_record",
    )

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]],
        emit: Callable[[EngineEvent], None],
        wants_record: Callable[[type], bool],
        environment: Callable[[StageStarted], dict[str, str]],
        resolver: Callable[[], HandlerResolver],
        run_finished: Callable[[str], None],
        pause_gate: PauseGate | None = None,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.emit = emit
        self.wants_record = wants_record
        self.environment = environment
        self.resolver = resolver
        self.run_finished = run_finished
        self.pause_gate = pause_gate
        self.debugger: DebugHook | None = None
        self.observed = False
        self.env_hooks = False


class RunBase:
    """Everything about one run; all methods run on the event loop thread.

    Its fields are slots, declared here for the whole run (its parts add none): a stage reads
    and stores a run's fields many times, and CPython 3.11 shares an instance dict's keys for
    fewer than thirty names only; past that each run gets a dict of its own, whose reads and
    stores cost more than a slot's (figures in ``benchmarks/README.md``, round 21).
    """

    __slots__ = (
        "active",
        "cancel_cause",
        "cancel_reason",
        "cancelled_by",
        "ctx",
        "default_retry",
        "done",
        "error",
        "error_type",
        "event_seq",
        "finished_at",
        "finished_queue",
        "first_failure",
        "handlers",
        "isolated",
        "loop",
        "name",
        "pipeline",
        "plan",
        "processing",
        "request",
        "resolver",
        "result",
        "run_id",
        "scheduled_at",
        "slots",
        "stages",
        "stages_ctx",
        "started_at",
        "status",
        "stopping",
        "strategy",
        "workspace",
    )

    def __init__(
        self,
        ctx: RunContext,
        pipeline: Pipeline,
        plan: TriggerPlan,
        run_id: str,
        request: Mapping[str, Any],
        *,
        started_at: float,
    ) -> None:
        self.ctx = ctx
        self.pipeline = pipeline
        self.name = pipeline.name
        self.plan = plan
        self.run_id = run_id
        self.request = request
        self.status = RunStatus.PENDING
        self.started_at = started_at  # read by the engine before the run was named
        self.scheduled_at: float | None = None  # when a schedule meant it to start (``start``)
        self.finished_at: float | None = None
        self.error: str | None = None
        self.error_type: str | None = None
        self.stages_ctx: dict[str, dict[str, Any]] = {}
        self.stages: dict[str, StageRun] = {}
        for name, cs in plan.stages.items():
            stage_ctx: dict[str, Any] = {"status": "pending", "outputs": {}}
            self.stages_ctx[name] = stage_ctx
            self.stages[name] = StageRun(cs, stage_ctx, self.started_at)
        self.slots = WorkerSlots(max(1, pipeline.concurrency))
        self.active = 0  # unfinished instances + open approval requests
        self.stopping: RunStatus | None = None  # the final status a stop aims at
        self.finished_queue: deque[StageRun] = deque()
        self.processing = False
        # The loop the run is made on, and runs on (``done`` is its future), kept: asyncio's
        # probe for it is a ``getpid`` system call in CPython 3.11, a few a stage if asked.
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[RunResult] = self.loop.create_future()
        self.event_seq = 0
        self.handlers: dict[str, Handler] = {}
        self.resolver: HandlerResolver | None = None  # ``ctx.resolver()``, asked at first use
        self.workspace: str | None = None
        strategy = pipeline.error_strategy
        self.strategy = strategy
        self.default_retry = pipeline.retry if strategy is ErrorStrategy.RETRY else None
        self.first_failure: str | None = None
        # Why a stop cancels what runs ("stage 'x' failed (error_strategy: fail)") and the stage
        # that caused it: every cancelled attempt and skipped stage carries both.
        self.cancel_reason: str | None = None
        self.cancel_cause: str | None = None
        # Who cancelled the run (``cancel``'s ``by``: the debugger's user, ``taskdaemon cancel``'s):
        # the pauses the stop resumes are attributed to them, as a ``continue`` is.
        self.cancelled_by: str | None = None
        self.result: RunResult | None = None
        self.isolated = IsolatedEvaluations(self)  # expensive CEL, answered off the loop

    def abort(self, exc: BaseException) -> None:
        """End the run on an internal error that left it unable to finish: cancel what still
        runs, count it among the engine's finished runs, and raise ``exc`` in every waiter
        (``RunHandle.wait``, ``Engine.run``) instead of letting them wait forever.

        Observers that saw the run start get a ``RunFinished`` of status failure, whose error
        is ``internal error: <exc>``, so the trace and the run history end the run as failed
        rather than show it running for ever. It is built from what cannot have failed: the
        time is the engine's clock, or the wall clock when that clock is what broke; no
        outputs; the monitor ends the stage spans still open as cancelled.
        """
        if self.done.done():
            return
        current = asyncio.current_task()
        for srt in self.stages.values():
            for inst in srt.instances:
                task = inst.task
                if task is not None and task is not current and not task.done():
                    task.cancel()
        if self.ctx.observed and self.status is RunStatus.RUNNING:
            self.status = RunStatus.FAILURE
            self.ctx.emit(
                RunFinished(
                    run_id=self.run_id,
                    pipeline=self.name,
                    status=RunStatus.FAILURE,
                    at=_reading(self.ctx.clock),
                    error=redact_text(f"internal error: {exc!r}"),
                    error_type=type(exc).__qualname__,
                )
            )
        self.ctx.run_finished(self.run_id)
        self.done.set_exception(exc)

    if TYPE_CHECKING:
        # Each part calls into the others; the scheduler (``_run.py``) defines these.

        @abstractmethod
        def stop(
            self, status: RunStatus, reason: str | None = None, cause: str | None = None
        ) -> None: ...

        @abstractmethod
        def process(self) -> None: ...

        @abstractmethod
        def evaluate(self, srt: StageRun, index: int, trigger: Any) -> None: ...

        @abstractmethod
        def update(self, srt: StageRun) -> None: ...

        @abstractmethod
        def record(
            self,
            srt: StageRun,
            index: int,
            state: TriggerState,
            detail: str,
            values: Mapping[str, Any] | None,
        ) -> None: ...

        @abstractmethod
        def filtered(
            self,
            srt: StageRun,
            index: int,
            seq: int,
            payload: Mapping[str, Any],
            *,
            source: TaskRunRef | None,
            accepted: bool,
            detail: str,
            values: Mapping[str, Any] | None,
        ) -> None: ...

        @abstractmethod
        def fire(
            self,
            srt: StageRun,
            event: Mapping[str, Any] | None,
            fired_by: tuple[TaskRunRef, ...],
            event_trigger: int | None,
        ) -> None: ...

        @abstractmethod
        def admit(self, srt: StageRun) -> None: ...

        @abstractmethod
        def check_event_stage(self, srt: StageRun) -> None: ...

        @abstractmethod
        def skip(self, srt: StageRun, reason: str, at: float) -> None: ...

        @abstractmethod
        def instance_ended(self, srt: StageRun, inst: Instance) -> None: ...

        @abstractmethod
        def first_start(self, srt: StageRun, at: float) -> None: ...

        @abstractmethod
        def publish(
            self, event_type: str, payload: Mapping[str, Any], source: TaskRunRef | None
        ) -> None: ...

        @abstractmethod
        def snapshot(self, final: bool = False) -> RunResult: ...

    def cancel(self, reason: str | None = None, by: str | None = None) -> None:
        """Cancel the run, with ``reason`` as its error, or else for ``by``, who asked: its
        error, its skipped stages and its cancelled attempts then read ``run cancelled by
        <by>``, and the pauses the stop ends were resumed by them (``DebugSession``). A run
        already stopping or ended keeps its reason and who."""
        if by is not None and self.stopping is None and self.result is None:
            self.cancelled_by = by
        self.stop(
            RunStatus.CANCELLED, reason or (f"run cancelled by {by}" if by else "run cancelled")
        )

    def cancelled_error(self) -> str:
        """The error of an attempt a stop cancels: ``cancelled: <why>``."""
        return f"cancelled: {self.cancel_reason}" if self.cancel_reason else "cancelled"


def _reading(clock: Callable[[], float]) -> float:
    """``clock()``, or the wall clock when reading it raises (an aborted run's end time)."""
    try:
        return clock()
    except Exception:
        return time.time()
