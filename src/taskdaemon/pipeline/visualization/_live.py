"""Live DAG state from engine events: ``DagWatcher`` (an engine observer) and ``watch_run``.

The watcher keeps, per run, the state of every stage as the engine's events describe it, and
turns it into the same ``RunRecord`` shape that spans rebuild, so a live snapshot and a
reconstructed one render identically. ``watch()`` yields a new frozen ``DagSnapshot`` after each
change; a burst of events that arrives while the consumer is busy is coalesced into one
snapshot (the latest state), so a slow consumer never falls behind. The stream ends after the
snapshot that shows the run finished.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskdaemon.pipeline.events import (
    ApprovalRequested,
    BreakpointHit,
    BreakpointResumed,
    EngineEvent,
    RunFinished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageRetrying,
    StageSkipped,
    StageStarted,
    StageWaiting,
)
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord, stage_cancel_cause
from taskdaemon.pipeline.visualization._snapshot import DagSnapshot, dag_snapshot

__all__ = ["DagWatcher", "watch_run"]

_FAILED_ORDER = ("failure", "timeout", "cancelled")


@dataclass
class _Attempt:
    task_run_id: str
    instance: int
    attempt: int
    status: str
    start: float
    end: float | None = None
    queue_time: float | None = None
    trigger_wait: float | None = None
    error: str | None = None
    error_type: str | None = None
    cancel_reason: str | None = None
    cancel_cause: str | None = None


@dataclass
class _Stage:
    loop: str = ""
    status: str = "pending"
    attempts: dict[str, _Attempt] = field(default_factory=dict)
    queued: set[str] = field(default_factory=set)
    retrying: set[tuple[int, int]] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)  # task run ids paused at a breakpoint
    skip_reason: str | None = None
    triggers: tuple[str, ...] = ()
    skip_cause: tuple[str | None, str | None] = (None, None)  # a stop's reason and cause stage

    def aggregate(self) -> str:
        """The stage status from its executions (fan-out stages have several)."""
        if self.status == "skipped":
            return self.status
        if self.paused:
            return "paused"
        open_attempts = [a for a in self.attempts.values() if a.end is None]
        if open_attempts:
            return "running"
        if self.retrying:
            return "retrying"
        if self.queued:
            return "queued"
        if not self.attempts:
            return self.status
        latest: dict[int, _Attempt] = {}
        for attempt in self.attempts.values():
            if attempt.instance not in latest or attempt.attempt > latest[attempt.instance].attempt:
                latest[attempt.instance] = attempt
        results = {a.status for a in latest.values()}
        for status in _FAILED_ORDER:
            if status in results:
                return status
        return "success"


@dataclass
class _Run:
    pipeline_name: str
    pipeline: Pipeline | None = None
    status: str = "running"
    start: float = 0.0
    end: float | None = None
    started_by: str | None = None
    error: str | None = None
    error_type: str | None = None
    replay_of: str | None = None
    stages: dict[str, _Stage] = field(default_factory=dict)

    def stage(self, name: str) -> _Stage:
        return self.stages.setdefault(name, _Stage())

    def record(self, run_id: str) -> RunRecord:
        names = list(self.stages)
        if self.pipeline is not None:
            defined = [stage.name for stage in self.pipeline.stages]
            names = defined + [name for name in names if name not in set(defined)]
        stages = []
        for name in names:
            live = self.stages.get(name)
            if live is None:
                continue
            attempts = tuple(
                AttemptRecord(
                    task_run_id=a.task_run_id,
                    instance=a.instance,
                    attempt=a.attempt,
                    status=a.status,
                    start=a.start,
                    end=a.end,
                    queue_time=a.queue_time,
                    trigger_wait=a.trigger_wait,
                    error=a.error,
                    error_type=a.error_type,
                    cancel_reason=a.cancel_reason,
                    cancel_cause=a.cancel_cause,
                )
                for a in live.attempts.values()
            )
            cancel_reason, cancel_cause = (
                stage_cancel_cause(attempts) if attempts else live.skip_cause
            )
            stages.append(
                StageRecord(
                    name=name,
                    loop=live.loop,
                    status=live.aggregate(),
                    attempts=attempts,
                    triggers=live.triggers,
                    skip_reason=live.skip_reason,
                    cancel_reason=cancel_reason,
                    cancel_cause=cancel_cause,
                )
            )
        return RunRecord(
            run_id=run_id,
            pipeline=self.pipeline_name,
            status=self.status,
            start=self.start,
            end=self.end,
            stages=tuple(stages),
            edges=(),
            definition_hash=self.pipeline.definition_hash if self.pipeline else None,
            started_by=self.started_by,
            error=self.error,
            error_type=self.error_type,
            replay_of=self.replay_of,
        )


class _Waiter:
    """One ``watch()`` consumer: which run it follows and the flag that wakes it."""

    def __init__(self, run_id: str | None) -> None:
        self.run_id = run_id
        self.loop = asyncio.get_running_loop()
        self.changed = asyncio.Event()

    def wake(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.changed.set()
        else:  # the engine runs on another thread or loop
            self.loop.call_soon_threadsafe(self.changed.set)


class DagWatcher:
    """An engine observer that keeps live DAG state per run and streams snapshots.

    Register it with the engine (``Engine(observers=[watcher])``), then ``async for snapshot in
    watcher.watch(run_id)``. It keeps the state of the ``keep_finished`` most recent finished
    runs so a late watcher still gets their final picture. ``on_event`` never raises.
    """

    def __init__(self, *, keep_finished: int = 16) -> None:
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._waiters: set[_Waiter] = set()
        self._keep_finished = keep_finished
        self._lock = threading.Lock()

    def on_event(self, event: EngineEvent) -> None:
        """Fold one engine event into the run's state and wake the watchers of that run."""
        run_id = event.run_id
        with self._lock:
            self._apply(event)
            self._prune()
            waiters = [w for w in self._waiters if w.run_id in (run_id, None)]
        for waiter in waiters:
            if waiter.run_id is None:
                waiter.run_id = run_id
            waiter.wake()

    def snapshot(self, run_id: str) -> DagSnapshot:
        """The current snapshot of ``run_id``; KeyError if the watcher has not seen it."""
        with self._lock:
            run = self._runs[run_id]
            return dag_snapshot(run.pipeline, run.record(run_id))

    def record(self, run_id: str) -> RunRecord:
        """The current state of ``run_id`` as a run record; KeyError if the watcher has not
        seen it."""
        with self._lock:
            return self._runs[run_id].record(run_id)

    def pipelines(self) -> dict[str, Pipeline]:
        """The definitions of the runs the watcher holds, by pipeline name (the latest run's)."""
        with self._lock:
            return {r.pipeline.name: r.pipeline for r in self._runs.values() if r.pipeline}

    def runs(self) -> tuple[str, ...]:
        """The run ids the watcher holds state for, oldest first."""
        with self._lock:
            return tuple(self._runs)

    def watch(self, run_id: str | None = None) -> AsyncIterator[DagSnapshot]:
        """Yield a snapshot of ``run_id`` now (if known) and after each change, until it ends.

        Subscribes when called (call it inside the event loop), so no event emitted after the
        call is missed. With ``run_id=None`` the stream follows the next run that emits an
        event. Snapshots are coalesced: each reflects every event received before it was taken.
        """
        waiter = _Waiter(run_id)
        with self._lock:
            self._waiters.add(waiter)
            if run_id is not None and run_id in self._runs:
                waiter.changed.set()
        return self._stream(waiter)

    async def _stream(self, waiter: _Waiter) -> AsyncIterator[DagSnapshot]:
        try:
            while True:
                await waiter.changed.wait()
                waiter.changed.clear()
                assert waiter.run_id is not None
                with self._lock:
                    run = self._runs[waiter.run_id]
                    snapshot = dag_snapshot(run.pipeline, run.record(waiter.run_id))
                    finished = run.end is not None
                yield snapshot
                if finished:
                    return
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def _apply(self, event: EngineEvent) -> None:
        if isinstance(event, RunStarted):
            run = self._runs.setdefault(event.run_id, _Run(event.pipeline.name))
            run.pipeline = event.pipeline
            run.start = event.at
            run.started_by = event.started_by
            run.replay_of = event.replay_of
            for definition in event.pipeline.stages:
                live = run.stage(definition.name)
                live.loop = definition.loop
                live.triggers = tuple(t.describe() for t in definition.triggers)
            return
        # A watcher registered after the run started builds what it can from later events.
        run = self._runs.setdefault(event.run_id, _Run(event.pipeline, start=event.at))
        if isinstance(event, RunFinished):
            run.status = str(event.status)
            run.end = event.at
            run.error = event.error
            run.error_type = event.error_type
        elif isinstance(event, StageWaiting | ApprovalRequested):
            stage = run.stage(event.stage)
            if stage.status == "pending":
                stage.status = "waiting"
        elif isinstance(event, StageQueued):
            stage = run.stage(event.stage)
            stage.queued.add(event.task_run_id)
            stage.retrying.discard((event.instance, event.attempt - 1))
            stage.status = "queued"
        elif isinstance(event, StageStarted):
            stage = run.stage(event.stage)
            stage.loop = event.loop
            stage.queued.discard(event.task_run_id)
            stage.status = "running"
            stage.attempts[event.task_run_id] = _Attempt(
                task_run_id=event.task_run_id,
                instance=event.instance,
                attempt=event.attempt,
                status="running",
                start=event.at,
                queue_time=max(0.0, event.at - event.queued_at - event.paused),
                trigger_wait=max(0.0, event.queued_at - event.considered_at),
            )
        elif isinstance(event, StageFinished):
            stage = run.stage(event.stage)
            attempt = stage.attempts.get(event.task_run_id)
            if attempt is None:
                attempt = _Attempt(
                    event.task_run_id, event.instance, event.attempt, "running", event.at
                )
                stage.attempts[event.task_run_id] = attempt
            attempt.status = str(event.status)
            attempt.end = event.at
            attempt.error = event.error
            attempt.error_type = event.error_type
            attempt.cancel_reason = event.cancel_reason
            attempt.cancel_cause = event.cancel_cause
            if event.will_retry:
                stage.retrying.add((event.instance, event.attempt))
        elif isinstance(event, BreakpointHit):
            run.stage(event.stage).paused.add(event.task_run_id)
            run.status = "paused"  # while anything in it is paused
        elif isinstance(event, BreakpointResumed):
            run.stage(event.stage).paused.discard(event.task_run_id)
            if run.status == "paused" and not any(s.paused for s in run.stages.values()):
                run.status = "running"
        elif isinstance(event, StageRetrying):
            run.stage(event.stage).retrying.add((event.instance, event.attempt))
        elif isinstance(event, StageSkipped):
            stage = run.stage(event.stage)
            stage.status = "skipped"
            stage.skip_reason = event.reason
            stage.skip_cause = (event.cancel_reason, event.cancel_cause)

    def _prune(self) -> None:
        finished = [run_id for run_id, run in self._runs.items() if run.end is not None]
        watched = {w.run_id for w in self._waiters}
        for run_id in finished[: max(0, len(finished) - self._keep_finished)]:
            if run_id not in watched:
                del self._runs[run_id]


class _ObservableEngine(Protocol):
    def add_observer(self, observer: Any) -> None: ...

    def remove_observer(self, observer: Any) -> None: ...


def watch_run(
    source: DagWatcher | _ObservableEngine, run_id: str | None = None
) -> AsyncIterator[DagSnapshot]:
    """Stream snapshots of ``run_id`` from a registered ``DagWatcher``, or from an engine with
    ``add_observer``/``remove_observer``.

    With an engine, a watcher is attached *when this function is called* (so a run started
    right after the call is seen from its first event) and detached when the stream ends or is
    closed: iterate the stream to its end or ``aclose()`` it. The stream ends after the
    snapshot showing the run finished; ``run_id=None`` follows the next run that emits an event.
    """
    if isinstance(source, DagWatcher):
        return source.watch(run_id)
    watcher = DagWatcher()
    source.add_observer(watcher)
    return _detaching(watcher, source, run_id)


async def _detaching(
    watcher: DagWatcher, source: _ObservableEngine, run_id: str | None
) -> AsyncIterator[DagSnapshot]:
    try:
        async for snapshot in watcher.watch(run_id):
            yield snapshot
    finally:
        source.remove_observer(watcher)
