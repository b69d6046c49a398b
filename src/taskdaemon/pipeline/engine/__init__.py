"""The asyncio pipeline engine: scheduling, worker slots, timeouts, retries, data flow, approvals.

Usage::

    async with Engine(resolver=my_resolver, observers=[monitor]) as engine:
        result = await engine.run(pipeline, {"goal": "ship it"})       # start + wait
        handle = await engine.start_run(pipeline, {"goal": "again"})
        handle.approve("release", by="alice")                          # or engine.approve(id, ...)
        handle.publish("spec.ready", {"spec": {...}})
        result = await handle.wait()                                   # a frozen RunResult

``resolver.resolve(pipeline, stage)`` returns the stage's handler (an async callable taking a
:class:`~taskdaemon.pipeline.loops.StageContext`); the default is
``LoopRegistry.default()``. Observers receive every :mod:`~taskdaemon.pipeline.events` record,
in causal order, synchronously; one that raises is logged (once per observer and event type)
and ignored. An observer whose class sets ``guards_itself = True`` promises that its
``on_event`` and ``wants_record`` never raise; when it is the only one, the engine calls them
directly, without the guarding fan-out. With no observer no record is even built. Leaving
``async with`` cancels open runs. One engine runs any number of runs at once; each run has its
own worker slots.

Semantics (docs/architecture.md, "Run semantics", plus the decisions below):

* **Worker slots**: ``pipeline.concurrency`` per run; every execution (each attempt of each
  instance) holds one from just before ``pause_gate`` until its handler returned.
* **Timeouts**: ``stage.timeout or pipeline.timeout`` per attempt; on expiry the handler task is
  cancelled (handlers clean up on ``CancelledError``) and the attempt ends ``timeout``. A
  Python ``async def`` handler that swallows the cancellation is abandoned after a grace
  (``cancel_grace``, applied by ``loops.python_handler``), and the attempt ends as if it had not.
  A handler raising ``StageTimeoutError`` (a deadline of its own) ends its attempt ``timeout``.
* **Retries**: the policy is ``stage.retry``, else ``pipeline.retry`` when the error strategy is
  ``retry``, else a single attempt. A failed or timed-out attempt ``n < max_attempts`` is
  followed by ``await sleep(backoff.delay(n))`` (the injected ``sleep``) and attempt ``n + 1``.
  *Data errors are not retried*: a required input or output that cannot be read, or a loop type
  that cannot be resolved, ends the stage at once (the same data would fail the same way).
* **Error strategies**: ``fail`` and ``retry`` (once retries are spent): the run stops: running
  executions end ``cancelled``, stages that never started are ``skipped``, the run ends
  ``failure``. ``continue``: the stage ends ``failure``/``timeout``, everything that does not
  depend on it keeps running, stages whose triggers can no longer fire are skipped, and the run
  ends ``failure``. A run ends ``success`` when no stage failed or timed out (skipped stages,
  e.g. after a rejected approval, do not fail a run).
* **Triggers** (see :mod:`~taskdaemon.pipeline.triggers`): re-evaluated incrementally: a
  finished stage re-evaluates only its ``on_completion`` dependents, the conditions that name it
  and the event stages it emits for; a published event only its listeners and the waiting
  ``on_condition`` stages. A stage fires at most once; only ``on_event`` instances and retries
  run a stage again.
* **on_event**: each matching event (filter over ``event``, ``request``, ``stages``) becomes one
  instance, at most ``parallel_instances`` unfinished at once (the rest wait, in order, and are
  queued when admitted). ``parallel_instances`` concerns ``on_event`` stages only; other stages
  run one instance. In mode ``all`` the stage's other triggers are a gate: events wait until
  they all hold, and the stage is skipped if they never can. In mode ``any`` the other triggers
  may also fire the stage once, as an instance without ``event``. The stage is final when all
  its emitter stages are final, its other triggers are settled, no admitted event waits and all
  instances ended; an event type only published from outside (``external_events``) keeps the
  stage open until the rest of the run is idle. No instance at all: ``skipped``. It succeeds
  only if every instance succeeded.
* **manual**: ``approval_required: false`` fires at run start. ``true``: ``ApprovalRequested``
  when the stage becomes considered (mode ``any``) or once its other triggers hold (mode
  ``all``). ``approve`` fires the trigger; ``reject`` (or the trigger's ``timeout``, counted with
  the injected ``sleep``) skips the stage and so what depends on it. Approving a stage that is
  not waiting for an approval raises :class:`ApprovalError`. A request that is no longer needed
  (the stage fired through another trigger, was skipped, or the run stopped) is withdrawn with
  ``ApprovalResolved(approved=False, by="engine")``.
* **on_condition**: CEL over ``{request, stages}``; an evaluation error is false (reported in
  ``TriggerEvaluated.detail``). When the run is idle (nothing queued, running, retrying or
  awaiting approval) conditions can change no more: what still waits is skipped and the run ends.
* **Considered**: at run start for stages without upstream (and entry stages), else when the
  first execution of an upstream stage starts. ``on_completion`` never fires for a skipped
  upstream (it did not complete).
* **Data flow**: the context is ``{"request", "stages": {name: {"status", "outputs"}}}`` plus
  ``event`` for event instances. Input ``from`` expressions are compiled once per pipeline; a
  missing required input fails the attempt with ``missing required input 'x': <path>: <why>``
  (``cannot evaluate required input`` when the expression fails otherwise, a type error say).
  A handler's ``None`` result is ``{}`` and a non-mapping ``v`` is ``{"value": v}``; with an
  ``outputs:`` mapping the outputs are those expressions over ``result`` (a
  :class:`MappedOutputs` result is the outputs as is: a replay's recorded ones). A stage with
  more than one instance has ``stages.X.outputs == {"instances": [outputs, in instance
  order]}``.
  ``ctx.publish`` accepts only the stage's ``emits`` (else :class:`PipelineError` in the
  handler); ``publish`` from outside only types some stage listens to or ``external_events``.
* **Cancellation** (``cancel()``, or leaving ``async with``): running and queued executions end
  ``cancelled`` (each execution that was queued gets its ``StageFinished``), stages that never
  started are ``skipped``, the run ends ``cancelled``. Under any stop (this, or a failure under
  ``fail``/``retry``) a stage paused at a start breakpoint is ``cancelled``; one whose
  executions were all still queued for a worker slot is ``skipped``, ``not reached: the run
  ended (<status>)`` in ``RunResult.stage_status`` and ``skip_reasons``, since its records
  cannot know it was queued (docs/run-state.md, "Rules"; ``Run.not_reached``).
* **pause_gate**: awaited with a :class:`StageGateRequest` after an execution got its slot and
  before ``StageStarted``; when None nothing is awaited. Its answer (a :class:`GateDecision`, or
  None to go on) may skip the execution or replace its inputs, and says how long it held it
  (kept out of the queue time). ``engine.with_debug(True)`` installs a :class:`DebugSession`
  as the gate (breakpoints, stepping, skip, retry, input overrides: ``engine/_debug.py``).
* **Environment**: ``ctx.environment`` is the merge of the observers' ``stage_environment``
  answers (``TRACEPARENT`` from the monitor), asked on the handler's first read of it, so a
  stage that never reads it never makes an observer settle its books on the critical path.
* **workspace**: when given, each run gets the directory ``{workspace}/{run_id}`` (created),
  handed to handlers as ``ctx.workspace``.

Modules:

* ``_api``: ``Engine``: starts runs, keeps the recent ones, fans their records out.
* ``_handle``: ``RunHandle``, a started run to wait for, steer (approve, publish, cancel) and
  look at.
* ``_results``: the public value types: the resolver protocol, a pause gate's request and
  decision, an execution's and a run's results.
* ``_observers``: the fan-out of event records to observers and their optional hooks, each
  guarded.
* ``_plan``: a pipeline's compiled trigger plan, built and checked once per pipeline object.
* ``_run_base``: what a run is given (``RunContext``; a run never sees its engine) and what it
  holds (``RunBase``).
* ``_run``: one run's lifecycle: start, fire, propagate finished stages, stop, finish.
* ``_triggering``: considering a stage, evaluating its triggers and acting on their states.
* ``_approvals``: approval requests of ``manual`` triggers: request, resolve, time out,
  withdraw.
* ``_attempt``: a stage instance's attempts: its slot, the pause gate, the handler under its
  timeout, retries with backoff.
* ``_slots``: a run's worker slots, at most ``concurrency`` attempts holding one at once.
* ``_dataflow``: a stage's inputs from the run's context and its outputs from a handler's
  result, pure.
* ``_isolated``: a run's CEL evaluations answered off the engine's event loop (``cel_worker``).
* ``_stage_state``: a run's mutable books per stage: instances, executions, trigger counters.
* ``_callbacks``: the engine's callbacks a ``StageContext`` holds, safe to call from any
  thread.
* ``_context_builder``: a ``StageContext`` for one execution, built without its dataclass
  ``__init__``.
* ``_makers``: the makers of the event records the engine builds for every stage.
* ``_debug``: debug mode's ``DebugSession``: breakpoints, pausing, stepping, skipping,
  retrying, overriding inputs.
* ``_debug_pauses``: the base of ``DebugSession``: the pause gate, failure pauses, marked
  events and the hold of a paused execution, the side the engine calls.
* ``_debug_match``: breakpoints made from a request and matched against a run's moments.
* ``_debug_records``: the debugger's records: breakpoints and paused executions, live and as
  snapshots.
* ``_debug_views``: what the debugger shows of a run and of one stage (``inspect``,
  ``state``).
* ``_engine_state``: a live run's engine state as JSON-able data, for debug dumps.
"""

from typing import TYPE_CHECKING, Any

from taskdaemon.pipeline.engine._api import Engine
from taskdaemon.pipeline.engine._engine_state import engine_state
from taskdaemon.pipeline.engine._handle import RunHandle
from taskdaemon.pipeline.engine._results import (
    ExecutionResult,
    GateDecision,
    HandlerResolver,
    MappedOutputs,
    PauseGate,
    RunResult,
    StageGateRequest,
)

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine._debug import Breakpoint, DebugSession, PausedExecution

__all__ = [
    "Breakpoint",
    "DebugSession",
    "Engine",
    "ExecutionResult",
    "GateDecision",
    "HandlerResolver",
    "MappedOutputs",
    "PauseGate",
    "PausedExecution",
    "RunHandle",
    "RunResult",
    "StageGateRequest",
    "engine_state",
]


#: The debugger's names, imported at their first use: a run that sets no breakpoint never loads
#: ``_debug.py`` and its records (which build ``dataclasses``), start-up time of ``run``.
_DEBUG_NAMES = ("Breakpoint", "DebugSession", "PausedExecution")


def __getattr__(name: str) -> Any:
    if name in _DEBUG_NAMES:
        from taskdaemon.pipeline.engine import _debug  # noqa: PLC0415

        value = getattr(_debug, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
