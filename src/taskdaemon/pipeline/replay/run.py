"""Running a replay: a new run (a new trace) of the planned pipeline, linked to the original.

``execute_plan(plan, ...)`` runs a ``ReplayPlan`` on a fresh engine with today's handler code:

* the run is started with ``replay_of`` = the original run id, so the monitor gives its run
  span ``taskdaemon.pipeline.replay_of`` and a ``replay_of`` link;
* a **fed** stage (see ``plan.py``) runs a stand-in handler that publishes the recorded events
  and returns the recorded outputs (or fails with the recorded error when the original
  failed, under the recorded error type, and times out, ``ReplayedTimeoutError``, when it
  timed out: the replay's run then says what the original did, in its run error and type, a
  trigger's reason, the span's result and ``error.type``); a recorded cancellation stops the
  replay's run for the recorded reason (the engine cancels a stage only by stopping its run),
  unless a fed failure stopped it first, as it did the original's, and so cancelled the stage
  with the record's reason. Fed executions running at once end in the order the record ended
  them (``_FedEndings``), not in the order they started: the run's first failure (its error,
  its type, its exit line), the failure that stops it under ``error_strategy: fail`` and the
  stages that stop cancels are then the record's, by the engine's own rules, and a replay of
  the replay, whose fed spans ended in that order, orders them alike. The engine runs a fed
  stage with its ``outputs:`` mapping removed, since the recorded outputs are already mapped,
  and its ``inputs:`` too, not evaluated again (its span records the recorded ones), with no
  timeout (its wait for its turn is no work of its: ``_feeding_pipeline``), and
  with one attempt: the stand-in hands on the outcome of every attempt the record made,
  so a retry of a recorded failure would invent attempts (and wait their backoff) that the
  run log and the spans would then tell of as replayed.
  ``ReplaySpanHook`` marks its span ``replayed``, with the original's status in
  ``taskdaemon.stage.replayed_status`` and a ``replayed_from`` link to the original span, and
  keeps the run span's definition the replayed one: of the replay's run alone, which it learns
  from the replay's engine (the monitor may watch other engines' runs meanwhile, and their
  stages of the same names are not fed);
* a **reused** instance (of a stage run again whose other instances run: ``plan.py``; one
  that gets the item and inputs the original's got: ``reuse.py``) hands
  on its recorded events and outputs at once, as they were, with no outputs mapping applied
  to them again (``MappedOutputs``), and its span is ``replayed`` and linked as a fed one's;
  it waits for no turn (``_FedEndings``): it succeeded, so no ending of it decides a failure;
* approvals are decided as they were recorded (in order, per stage); an approval with no
  recorded decision is rejected, so a replay never approves what nobody approved;
* events the original received from outside are published again, in order, at the start;
* with ``seed_workspace`` (the recorded run's workspace, when stages are fed), that folder is
  copied into the replay's workspace before its first re-executed stage runs: a stage resumed
  after fed ones finds the files they left, as it did in the original, and the original's
  folder is not touched.

With ``verify`` the re-executed stages are compared with the record (``verify.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import shutil
import threading
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Link, SpanContext, TraceFlags

from taskdaemon.pipeline import recorded as recorded_values
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.engine import (
    Engine,
    HandlerResolver,
    MappedOutputs,
    RunHandle,
    RunResult,
)
from taskdaemon.pipeline.errors import PipelineError, StageFailedError, StageTimeoutError
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    EngineEvent,
    EventPublished,
    RunStarted,
    StageFinished,
    StageQueued,
    StageStarted,
)
from taskdaemon.pipeline.loops import Handler
from taskdaemon.pipeline.model import Pipeline, RetryPolicy, Stage
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.replay.plan import FedExecution, ReplayPlan
from taskdaemon.pipeline.replay.record import RecordedExecution
from taskdaemon.pipeline.replay.reuse import InstanceReuse
from taskdaemon.pipeline.replay.verify import DivergenceReport, compare_run
from taskdaemon.pipeline.stage_context import StageContext
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.wording import not_run_word

__all__ = ["ReplayOutcome", "ReplaySpanHook", "execute_plan", "recorded_workspace"]


@dataclass(frozen=True)
class ReplayOutcome:
    """A finished replay: the new run's result, the divergence report (with ``verify``) and
    the plan it ran."""

    result: RunResult
    report: DivergenceReport | None
    plan: ReplayPlan

    @property
    def run_id(self) -> str:
        """The new run's id."""
        return self.result.run_id


class ReplayedFailureError(StageFailedError):
    """A fed stage reproducing its recorded failure; raised as a subclass named as the
    recorded error type (``_recorded_end``)."""


class ReplayedTimeoutError(StageTimeoutError):
    """A fed stage reproducing its recorded timeout (the engine ends it ``timeout``)."""


#: A stage execution as the engine's records name it: stage, instance, attempt.
_Key = tuple[str, int, int]


#: The engine's records ``_FedEndings`` follows.
_FOLLOWED = frozenset(
    (RunStarted, StageQueued, StageStarted, StageFinished, ApprovalRequested, ApprovalResolved)
)


class _FedEndings:
    """Fed executions running at once end one at a time, in the order the record ended them
    (module docstring). The waiting stand-in the record ended first is let go when nothing
    that could still bring one it must go after is under way, as the replay's engine tells it
    (an observer, ahead of the monitor), not as turns of the event loop would suggest:

    * the one let go before has ended (its ``StageFinished``), and the step that emitted it
      has run out: the engine handles an end, queueing what it fires, in that same step;
    * every fed execution the engine queued (``StageQueued``) has come to wait its turn,
      ended, or waits for a worker slot: all the run's slots are held by executions that
      started and did not end (the stand-ins waiting included), so only an end frees one;
    * no approval the replay is to decide waits for it (``_ReplayObserver``): approved, it
      fires a stage.

    Each change of these looks again, once a step. None relies on how many steps the engine
    takes to bring a stand-in to its handler (a fed stage's inputs are not evaluated, but an
    approval or a worker slot may hold it back many)."""

    def __init__(self, plan: ReplayPlan, slots: int) -> None:
        #: The replay's engine, whose run a fed cancellation stops (``_fed_handler``).
        self.engine: Engine | None = None
        self._fed = plan.fed
        self._slots = max(1, slots)  # as the engine sizes a run's worker slots
        self._run_id: str | None = None
        self._waiting: list[tuple[bool, int, int, _Key, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._coming: set[_Key] = set()  # queued fed executions, not arrived
        self._holding: set[str] = set()  # the run's executions started and not ended
        self._asking: set[str] = set()  # stages whose approval the replay is to decide
        self._out: _Key | None = None  # the execution let go, until it ends
        self._looking = False

    def on_event(self, event: EngineEvent) -> None:
        """Follow what decides the next turn (the class docstring)."""
        # By exact type (the engine makes records of these classes, never of subclasses): no
        # chain of isinstance calls for each of the many records that change nothing here.
        if type(event) not in _FOLLOWED:
            return
        if type(event) is RunStarted:
            self._run_id = event.run_id
            return
        if event.run_id != self._run_id:
            return
        if type(event) is StageQueued:
            if event.instance in self._fed.get(event.stage, ()):
                self._coming.add((event.stage, event.instance, event.attempt))
            return
        if type(event) is StageStarted:
            self._holding.add(event.task_run_id)
        elif type(event) is StageFinished:
            self._holding.discard(event.task_run_id)
            key = (event.stage, event.instance, event.attempt)
            # A fed execution that never came: its inputs failed, or a stop caught it queued.
            self._coming.discard(key)
            if key == self._out:
                self._out = None
        elif type(event) is ApprovalRequested:
            self._asking.add(event.stage)
        elif type(event) is ApprovalResolved:
            self._asking.discard(event.stage)
        self._look_soon()

    async def turn(self, ctx: StageContext, end_ns: int | None) -> None:
        """Wait until the ending the record has at ``end_ns`` is next: None, an execution
        still running when the record stops or one it does not have, comes last (a stop of
        the run cancels the wait)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = (ctx.stage, ctx.instance, ctx.attempt)
        heapq.heappush(
            self._waiting, (end_ns is None, end_ns or 0, next(self._arrivals), key, future)
        )
        self._coming.discard(key)
        self._look_soon()
        await future

    def _look_soon(self) -> None:
        if not self._looking:
            self._looking = True
            asyncio.get_running_loop().call_soon(self._look)

    def _look(self) -> None:
        self._looking = False
        if self._out is not None or self._asking:
            return
        if self._coming and len(self._holding) < self._slots:
            return  # a fed stand-in is on its way, or may take the free slot
        while self._waiting:
            *_order, key, future = heapq.heappop(self._waiting)
            if not future.done():  # else its stand-in was cancelled while it waited
                future.set_result(None)
                self._out = key
                return


def _fed_handler(stage: str, fed: Mapping[int, FedExecution], endings: _FedEndings) -> Handler:
    async def handler(ctx: StageContext) -> Mapping[str, Any]:
        execution = fed.get(ctx.instance)
        if execution is None:
            # An instance the record's run stopped before starting (a fed stage published the
            # event that fired it): it ends after every recorded ending, so the fed failure
            # that stopped the original stops the replay first, and cancels it, as its
            # first failure would not if this one failed at once.
            await endings.turn(ctx, None)
            raise ReplayedFailureError(
                f"replay: the recorded run has no instance {ctx.instance} of stage {stage!r}"
            )
        for event_type, payload in execution.events:
            ctx.publish(event_type, payload)
        original = execution.original
        await endings.turn(ctx, original.end_ns)
        if original.status == StageStatus.CANCELLED:
            # The engine cancels a stage only by stopping its run: so is the replay's stopped,
            # for the recorded reason, unless a fed failure stopped it first (the wait above
            # is then cancelled, with the reason the record gives).
            assert endings.engine is not None
            endings.engine.get_run(ctx.run_id).cancel(reason=original.cancel_reason)
            await asyncio.get_running_loop().create_future()  # cancelled by that stop
        if original.status != "success":
            raise _recorded_end(original)
        return dict(execution.outputs)

    return handler


def _reusing_handler(reuse: InstanceReuse, handler: Handler) -> Handler:
    """``handler`` for the instances the replay runs again; the recorded outcome for those
    it reuses (decided as each started: ``reuse.py``)."""

    async def reusing(ctx: StageContext) -> Mapping[str, Any]:
        execution = reuse.reused(ctx.run_id, ctx.stage, ctx.instance)
        if execution is None:
            return await handler(ctx)
        for event_type, payload in execution.events:
            ctx.publish(event_type, payload)
        return MappedOutputs(execution.outputs)

    return reusing


def _recorded_end(original: RecordedExecution) -> Exception:
    """What a fed stage the record did not see succeed raises: its timeout, else its failure
    under the recorded error type's name. The engine, the span's ``error.type`` and the run's
    error take a failure's type from its exception's class name, so the class is named as the
    record's (its ``exception`` event's type, ``taskdaemon.pipeline.replay.run.NAME``, still
    says the replay raised it); a record with no type (schema 1) keeps ReplayedFailureError."""
    message = original.error or f"recorded as {original.status} in the original run"
    if original.status == StageStatus.TIMEOUT:
        return ReplayedTimeoutError(message)
    if original.error_type is None:
        return ReplayedFailureError(message)
    named: type[ReplayedFailureError] = type(
        ReplayedFailureError.__name__,
        (ReplayedFailureError,),
        {"__qualname__": original.error_type},
    )
    return named(message)


def recorded_workspace(root: str, plan: ReplayPlan, *elsewhere: str) -> str | None:
    """The recorded run's workspace under ``root`` (``root/<run id>``), else under the first
    of ``elsewhere`` that has it (the home of the store the record came from), to seed the
    replay's when ``plan`` feeds stages or reuses instances (the files they left); ``None``
    when it does neither, or the folder is in none of them."""
    if not (plan.fed or plan.reused):
        return None
    folders = (os.path.join(base, plan.recorded.run_id) for base in (root, *elsewhere))
    return next(filter(os.path.isdir, folders), None)


class _WorkspaceSeed:
    """A folder copied into the run's workspace once, before the first stage that asks."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._done = False

    def ensure(self, workspace: str | None) -> None:
        """Copy the folder into ``workspace`` unless done (blocking: call it on a thread)."""
        with self._lock:
            if self._done or workspace is None:
                return
            try:
                shutil.copytree(self._source, workspace, symlinks=True, dirs_exist_ok=True)
            except (OSError, shutil.Error) as error:
                raise StageFailedError(
                    f"replay: cannot copy the recorded run's workspace {self._source}: {error}"
                ) from None
            self._done = True

    def wrap(self, handler: Handler) -> Handler:
        """``handler``, run after the copy."""

        async def seeded(ctx: StageContext) -> Mapping[str, Any]:
            if not self._done:  # the copy's thread only until it is made (``ensure`` rechecks)
                await asyncio.to_thread(self.ensure, ctx.workspace)
            return await handler(ctx)

        return seeded


class _ReplayResolver:
    """Stand-in handlers for fed stages; the real resolver for every other stage (run after
    the workspace seed, when there is one)."""

    def __init__(
        self,
        base: HandlerResolver,
        plan: ReplayPlan,
        seed: _WorkspaceSeed | None,
        endings: _FedEndings,
        reuse: InstanceReuse,
    ) -> None:
        self._base = base
        self._plan = plan
        self._seed = seed
        self._endings = endings
        self._reuse = reuse

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Handler:
        fed = self._plan.fed.get(stage.name)
        if fed is not None:
            return _fed_handler(stage.name, fed, self._endings)
        handler = self._base.resolve(pipeline, stage)
        if self._seed is not None:
            handler = self._seed.wrap(handler)
        reused = stage.name in self._plan.reused
        return _reusing_handler(self._reuse, handler) if reused else handler


class ReplaySpanHook:
    """The monitor's ``span_hook`` during a replay (see the module docstring), and an observer
    of the replay's engine, ahead of the monitor: the engine's ``RunStarted`` names the run it
    speaks for before the monitor asks about any of its records."""

    def __init__(
        self, plan: ReplayPlan, definition: Mapping[str, Any], reuse: InstanceReuse
    ) -> None:
        self._plan = plan
        self._definition = definition
        self._reuse = reuse
        self._trace_id = int(plan.recorded.run_id, 16)
        self._run_id: str | None = None

    def on_event(self, event: EngineEvent) -> None:
        """Learn the replay's run id (its engine starts that run alone)."""
        if isinstance(event, RunStarted):
            self._run_id = event.run_id

    def run_started(self, event: RunStarted, attributes: dict[str, Any]) -> None:
        """Record the replayed definition, not the feeding variant the engine runs."""
        if event.run_id == self._run_id:
            attributes.update(self._definition)

    def _fed(self, run_id: str, stage: str, instance: int) -> FedExecution | None:
        if run_id != self._run_id:
            return None
        fed = self._plan.fed.get(stage)
        return self._reuse.reused(run_id, stage, instance) if fed is None else fed.get(instance)

    @property
    def replay_of(self) -> str:
        """The id of the run replayed."""
        return self._plan.recorded.run_id

    def shown_as(self, run_id: str, stage: str, instance: int) -> str | None:
        """The word the debugger's ``where`` shows for an execution the replay does not run, as
        its span and ``--dry-run`` name it: ``replayed`` (fed) or ``reused``; None when it
        runs (``_debug_views.run_state``)."""
        if run_id != self._run_id:
            return None
        if stage in self._plan.fed:
            return not_run_word(fed=True)
        reused = self._reuse.reused(run_id, stage, instance) is not None
        return not_run_word(fed=False) if reused else None

    def feeds(self, run_id: str, stage: str, instance: int) -> bool:
        """Whether this instance of ``stage`` in run ``run_id`` is fed from the record (the
        monitor then records no duration or queue time for it: it does no work)."""
        return self._fed(run_id, stage, instance) is not None

    def never_held(
        self,
        run_id: str,
        stage: str,
        instance: int,
        inputs: Mapping[str, Any],
        event: Mapping[str, Any] | None,
    ) -> bool:
        """``DebugSession.never_held``: a fed execution, or an instance reused (decided here
        when its gate comes first, from the inputs and the event it starts with)."""
        if run_id == self._run_id and stage not in self._plan.fed:
            self._reuse.decide(stage, instance, inputs, event)
        return self.feeds(run_id, stage, instance)

    def recorded(self, run_id: str, stage: str, instance: int) -> tuple[str, int, Any] | None:
        """A fed execution's recorded status, the attempts the record made of it
        (``attempts_made``) and, of a fed stage, its recorded inputs (the JSON read back, else
        the text as kept; None for a reused instance, which evaluated its own), for its run log
        records (``run_log``); None when it runs."""
        fed = self._fed(run_id, stage, instance)
        if fed is None:
            return None
        inputs: Any = None
        if stage in self._plan.fed:
            recorded = fed.original.inputs
            parsed = None if recorded is None else recorded.check()[1]
            inputs = parsed if parsed is not None else getattr(recorded, "text", None) or {}
        return fed.original.status, fed.original.attempts_made, inputs

    def stage_input(self, event: StageStarted) -> Mapping[str, Any] | None:
        """A fed execution's ``stage.input`` attributes, the record's (its inputs are not
        evaluated again: ``_feeding_pipeline``), empty when the record has none; None for an
        execution that runs, or is reused (it evaluated its inputs, as the original did)."""
        if event.run_id != self._run_id or event.stage not in self._plan.fed:
            return None
        fed = self._plan.fed[event.stage].get(event.instance)
        if fed is None or fed.original.inputs is None:
            return {}
        found = fed.original.inputs.attributes()
        if fed.original.event_sha256 is not None:
            found[t.PAYLOAD_EVENT_SHA256] = fed.original.event_sha256
        return found

    def stage_started(
        self, event: StageStarted, attributes: dict[str, Any], links: list[Link]
    ) -> None:
        """Link a fed execution's span to the original span."""
        fed = self._fed(event.run_id, event.stage, event.instance)
        if fed is None:
            return
        context = SpanContext(
            self._trace_id,
            int(fed.original.span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(1),
        )
        links.append(Link(context, {t.LINK_RELATION: t.LINK_REPLAYED_FROM}))

    def stage_finished(self, event: StageFinished, attributes: dict[str, Any]) -> None:
        """Mark a fed execution's span ``replayed`` with the original's status and the attempts
        the original made (``attempts_made``: the views' ATTEMPTS)."""
        fed = self._fed(event.run_id, event.stage, event.instance)
        if fed is not None:
            attributes[t.STAGE_STATUS] = t.STATUS_REPLAYED
            attributes[t.STAGE_REPLAYED_STATUS] = fed.original.status
            attributes[t.STAGE_REPLAYED_ATTEMPTS] = fed.original.attempts_made


#: Who the engine's record of a withdrawn approval request names (``engine/_approvals.py``,
#: ``withdraw_approval``): a rejection nobody decided, which a replay must not read as one
#: ("approval rejected by replay (engine)" of a run cancelled while it waited).
_WITHDRAWN_BY = "engine"


class _ReplayObserver:
    """Decides approvals as recorded and collects published events for ``verify``."""

    def __init__(self, plan: ReplayPlan) -> None:
        self._decisions: dict[str, deque[Any]] = defaultdict(deque)
        for approval in plan.recorded.approvals:
            if approval.by == _WITHDRAWN_BY and not approval.approved:
                continue  # withdrawn, not decided: the stage fired otherwise, or the run stopped
            self._decisions[approval.stage].append(approval)
        self.published: dict[str, list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
        self.engine: Engine | None = None

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, EventPublished) and event.source is not None:
            self.published[event.source.task_run_id].append((event.event_type, dict(event.payload)))
        elif isinstance(event, ApprovalRequested):
            asyncio.get_running_loop().call_soon(self._decide, event.run_id, event.stage)

    def _decide(self, run_id: str, stage: str) -> None:
        assert self.engine is not None
        queue = self._decisions.get(stage)
        with contextlib.suppress(PipelineError):  # the run ended or moved on meanwhile
            if queue:
                decision = queue.popleft()
                said = "timed out in the original" if decision.timed_out else "recorded"
                by = f"replay ({decision.by or said})"
                if decision.approved:
                    self.engine.approve(run_id, stage, by=by)
                else:
                    self.engine.reject(run_id, stage, by=by)
            else:  # said wherever a rejection is: progress, summary, span, run log
                self.engine.reject(run_id, stage, by="replay (no recorded decision)")


def _feeding_pipeline(pipeline: Pipeline, fed: Iterable[str]) -> Pipeline:
    """``pipeline`` with each fed stage unmapped, given one attempt (module docstring) and no
    timeout. Unmapped on both sides: its outputs are the record's, already mapped, and its
    inputs are not evaluated again, since its stand-in reads none and hands on what the
    record says the original made of the inputs it had; evaluated today (another
    ``--input``, a cut request replaced by ``--input``, another ``--stage-output`` upstream, a
    file that changed them), they could fail it where the original succeeded, which is not
    what feeding promises. Its span records the inputs the record has
    (``ReplaySpanHook.stage_input``). A fed stage does no work: its stand-in waits its turn
    (``_FedEndings``), which lasts as long as the others take to reach theirs, and hands on
    the record's outcome, a recorded timeout included (``ReplayedTimeoutError``). A deadline
    would measure only that wait, and end ``timeout`` a stage the record saw succeed. The
    pipeline's own timeout therefore moves onto each stage run again, which keeps it, and off
    the run."""
    names = set(fed)
    if not names:
        return pipeline
    once = RetryPolicy(max_attempts=1)
    stages = []
    for stage in pipeline.stages:
        if stage.name in names:
            stages.append(replace(stage, inputs=(), outputs=None, retry=once, timeout=None))
        elif stage.timeout is None and pipeline.timeout is not None:
            stages.append(replace(stage, timeout=pipeline.timeout))
        else:
            stages.append(stage)
    return replace(pipeline, stages=tuple(stages), timeout=None)


async def execute_plan(
    plan: ReplayPlan,
    *,
    resolver: HandlerResolver,
    monitor: PipelineMonitor,
    observers: Iterable[Any] = (),
    verify: bool = False,
    workspace: str | None = None,
    seed_workspace: str | None = None,
    started: Callable[[Engine, RunHandle], object] | None = None,
    prepare: Callable[[Engine, ReplaySpanHook], object] | None = None,
    reuse: InstanceReuse | None = None,
    ended: Callable[[RunResult], Awaitable[object]] | None = None,
) -> ReplayOutcome:
    """Run ``plan`` (which must pass ``check``) in a workspace under ``workspace`` (seeded
    from ``seed_workspace``: the module docstring) and return the outcome; the monitor's span
    hook is set for the run and cleared after it. ``started`` is given the engine and the
    run's handle as soon as the run started (the CLI cancels it through the handle on SIGINT
    or SIGTERM, and dumps it from the engine on SIGUSR1). ``prepare`` is given the engine
    before the run starts (``replay --break`` sets its breakpoints there) and the run's span
    hook, which says which executions are fed or reused (``never_held``: they never pause, a
    fed stage or a reused instance does no work to stop and look at; ``shown_as``: what
    the debugger's ``where`` calls them), and ``ended`` is awaited with the run's result
    before the engine closes (the debugger's prompt is done with the run:
    ``cli/replay_debug.py``). ``reuse``: where the decisions of which candidates are reused go
    (``reuse.py``; the progress lines read it), else a new one."""
    pipeline = plan.check(verify=verify)
    definition = recorded_values.definition_attributes(pipeline, monitor.capture)
    definition[t.PIPELINE_DEFINITION_HASH] = pipeline.definition_hash
    watcher = _ReplayObserver(plan)
    reuse = InstanceReuse(plan) if reuse is None else reuse
    reuse.capture = monitor.capture  # the record's hashes are of this capture's form
    hook = ReplaySpanHook(plan, definition, reuse)
    endings = _FedEndings(plan, pipeline.concurrency)
    seed = None if seed_workspace is None else _WorkspaceSeed(seed_workspace)
    engine = Engine(
        resolver=_ReplayResolver(resolver, plan, seed, endings, reuse),
        observers=[watcher, hook, reuse, *([endings] if plan.fed else []), *observers, monitor],
        workspace=workspace,
    )
    watcher.engine = endings.engine = engine
    previous, monitor.span_hook = monitor.span_hook, hook
    try:
        async with engine:
            if prepare is not None:
                prepare(engine, hook)
            handle = await engine.start_run(
                _feeding_pipeline(pipeline, plan.fed),
                plan.request,
                started_by="replay",
                replay_of=plan.recorded.run_id,
            )
            if started is not None:
                started(engine, handle)
            for event in plan.recorded.external_events:
                if event.source is None and event.payload.problem() is None:
                    with contextlib.suppress(PipelineError):
                        payload = event.payload.value() if event.payload.text else {}
                        handle.publish(event.event_type, payload or {})
            result = await handle.wait()
            if ended is not None:
                await ended(result)
    finally:
        monitor.flush()
        monitor.span_hook = previous
    report = None
    if verify:
        report = compare_run(
            plan.recorded,
            result.run_id,
            result.executions,
            watcher.published,
            plan.rerun,
            monitor.capture,
            reuse.by_stage(),
        )
    return ReplayOutcome(result, report, plan)
