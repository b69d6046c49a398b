"""``PipelineMonitor``: turns engine events into OpenTelemetry spans and metric records.

Attach it to an engine as an observer; it uses only the OTel API and the providers it is given
(the globals by default)::

    from taskdaemon.pipeline.monitor import PipelineMonitor

    monitor = PipelineMonitor(tracer_provider=tp, meter_provider=mp)
    engine = Engine(observers=[monitor])      # or: engine.add_observer(monitor)
    result = await engine.run(pipeline, {"goal": "..."})
    print(monitor.get_metrics().success_rate)

or drive it by hand from code that runs its own stages (the taskdaemon API)::

    run_id = monitor.start_run(pipeline, {"goal": "..."})
    monitor.stage_started(run_id, "planning", inputs={"goal": "..."})
    monitor.stage_completed(run_id, "planning", {"plan": [...]})
    monitor.finish_run(run_id)

The manual API synthesises the same event records and feeds them to ``on_event``, so both
paths produce identical telemetry.

What is produced (contract: docs/architecture.md, "Telemetry schema"; names in ``telemetry.py``):

* **Run span** ``RUN {pipeline}``, kind SERVER, root of a new trace. Its trace id *is* the run id:
  the engine asks ``allocate_run_id`` before the run starts and the monitor answers the trace id of
  the run span it just started. ``cicd.pipeline.result`` is success, failure (status ERROR,
  ``error.type``) or cancellation (status UNSET: cancelling is not an error).
* **Stage span** per execution (attempt × instance), kind INTERNAL, child of the run span, from
  ``StageStarted.at`` to ``StageFinished.at``; failure and timeout set status ERROR and
  ``error.type`` (the exception class's qualname, or ``timeout``); the original exception is
  recorded with ``record_exception``. Links: ``triggered_by`` to the executions in ``fired_by``,
  ``previous_attempt`` to the attempt a retry follows.
* **Skip spans**: each stage that never ran (``StageSkipped``, or no event by ``RunFinished``)
  gets a zero-length span with result ``skip`` and ``taskdaemon.stage.skip_reason`` when the run
  ends, so the whole DAG is in the trace.
* **Span events**: ``trigger.evaluated`` (on the stage's open span if there is one, else on the
  run span), ``stage.input`` / ``stage.output`` (see ``payloads.PayloadCapture``),
  ``approval.requested`` / ``approval.resolved`` and ``stage.retrying`` (run span),
  ``pipeline.event.published`` (the publishing execution's span, else the run span), exceptions.
* **Metrics**: see ``metrics.PipelineMetrics``.

Decisions:

* *External parent* (``RunStarted.parent_traceparent``, the manual API's ``context=``, or the
  caller's current span when neither is given): the run span stays the root of a **new trace**
  and **links** to the parent (relation ``parent``). A child span would share the parent's trace
  id, so two runs started under one parent (a CI job, an HTTP request) would share a run id,
  and "run id = trace id" would stop identifying a run.
* *Replays* link to the original run's trace. Its root span id is not known at replay time (only
  the run id is), so the link carries a span id derived from the trace id (its low 64 bits) and
  ``taskdaemon.link.span_id_derived=true``; backends resolve trace links by trace id, and
  ``taskdaemon.pipeline.replay_of`` carries the run id as a plain attribute.
* *One start*: the engine reads its clock once, before it names the run, and hands that
  moment to ``allocate_run_id`` as ``at``; the run span starts at exactly that value, which
  is also the run's ``started_at`` and ``RunStarted.at``, so the live views, ``/api/runs``,
  the stored run and every duration agree. (Read by the monitor, the span's start came before
  the engine's by the time the monitor took for its lock and the definition's attributes.)
  Starting the span at ``RunStarted`` under a trace id drawn beforehand, as
  ``taskdaemon run`` does while telemetry loads, was the other way: it needs an id generator
  that honours the drawn id, which the CLI installs on its own tracer provider but a library
  user's provider does not have, so that run span would not carry the run id.
* If a run starts whose id the monitor did not allocate (another observer answered first), the
  run span still gets ``cicd.pipeline.run.id`` = the engine's run id; a warning says the two
  differ, since span stores then cannot fetch the run by id.
* Executions still open when their run finishes are ended as ``cancellation``.
* *Off the critical path*: records arriving from a running event loop are handled by a worker
  thread (see ``on_event``), so a stage that waits on I/O pays almost nothing for being
  monitored; ``RunFinished`` settles the queue, so a run's telemetry is complete when
  ``engine.run`` returns. ``close()`` stops the worker (it also ends by itself when idle).
  A stage's ``cpu_time_s`` comes on its ``StageFinished`` record: its process tree's CPU for a
  command stage, the CPU time of the thread that ran a Python handler (``loops.py``), measured
  where the handler ran; the monitor reads no clock of its own for it.
* Expensive work (payload JSON and hashing, event attributes) is skipped when the span is not
  recording. Observer entry points never raise: failures are logged and swallowed.

Modules:

* ``_worker``: each engine record handled in order (dispatch, metrics, event hooks) on the
  thread that settles it.
* ``_books``: what the monitor keeps per pipeline definition and per open run.
* ``_spans``: the run and skip spans and the span events, built from engine records.
* ``_stage_spans``: each execution's span, started with its input event and ended with its
  result, CPU, memory and output event.
* ``_shared_events``: span events with equal attributes sharing one attribute mapping.
* ``_span_ids``: a stage span's id chosen before the span starts, for a command's
  ``TRACEPARENT``.
* ``_feed``: the manual API (``start_run``, ``stage_started``, ...), which synthesises engine
  records.
* ``_debug``: the debugger's span events (breakpoints, overrides).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from threading import get_ident
from typing import Any, ClassVar, cast

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanContext, TracerProvider

from taskdaemon import __version__
from taskdaemon.pipeline import _threads
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline._record_queue import RecordQueue
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.events import (
    EngineEvent,
    EventPublished,
    RunFinished,
    RunStarted,
    StageStarted,
)
from taskdaemon.pipeline.execution import outside_execution
from taskdaemon.pipeline.metrics import (
    LabelGuard,
    MonitorMetrics,
    PipelineMetrics,
    ResourceSampler,
    RunAggregates,
)
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.monitor._books import Run
from taskdaemon.pipeline.monitor._feed import ManualFeed
from taskdaemon.pipeline.monitor._worker import Recorder
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.span_redaction import RedactingTracer

__all__ = ["PipelineMonitor"]

_logger = logging.getLogger(__name__)
#: Records handled at once, on the caller's thread: ``RunFinished`` completes the run's
#: telemetry; ``RunStarted`` unless it may go to the worker (see ``on_event``).
_SETTLE_NOW: frozenset[type] = frozenset({RunStarted, RunFinished})


class PipelineMonitor(ManualFeed):
    """The engine observer that records runs as traces and metrics. See the module docstring.

    The facade over the package's parts: ``_worker.Recorder`` handles each record (books, spans
    through ``_spans``, metrics), ``_record_queue.RecordQueue`` decides on which thread, and
    ``_feed.ManualFeed`` (a base class) is the manual API.

    ``clock`` (epoch seconds) times what the monitor starts itself: the run span in
    ``allocate_run_id`` when the caller gives no ``at``, and every event of the manual API.
    ``label_limits`` caps distinct metric label values (see ``metrics.LabelGuard``).
    """

    #: ``on_event`` and ``wants_record`` never raise (each catches and logs what fails), so the
    #: engine calls them directly when this is its only observer (``engine/_observers``).
    guards_itself: ClassVar[bool] = True

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture: PayloadCapture | None = None,
        clock: Callable[[], float] = time.time,
        resource_sampling: bool = True,
        label_limits: Mapping[str, int] | None = None,
    ) -> None:
        provider = tracer_provider or trace.get_tracer_provider()
        tracer = provider.get_tracer(t.SCOPE_NAME, __version__, schema_url=t.SCHEMA_URL)
        self.capture = capture if capture is not None else PayloadCapture()
        self._clock = clock
        self.sampler = ResourceSampler()
        self.metrics = PipelineMetrics(
            meter_provider=meter_provider,
            label_guard=LabelGuard(label_limits),
            sampler=self.sampler,
            resource_sampling=resource_sampling,
        )
        self._aggregates = RunAggregates()
        self._recorder = Recorder(
            tracer=RedactingTracer(tracer),  # every value recorded on a span is redacted
            capture=self.capture,
            metrics=self.metrics,
            sampler=self.sampler,
            aggregates=self._aggregates,
        )
        # Records queued by on_event, handled in order under its lock by its worker thread or by
        # whoever needs them settled first (see on_event and _record_queue).
        self._queue = RecordQueue(self._recorder.handle)
        # The record types the recorder makes nothing of (a stage waiting for its triggers or a
        # worker slot: two of a stage's six records). on_event drops them at once unless a hook
        # wants them (wants_record): queueing, settling and handling them is work per stage
        # for nothing (benchmarks/README.md, "Round 8 (engine8)").
        # Read from the recorder's own table, so a type it starts handling is never dropped.
        ignore = Recorder._ignore
        self._unrecorded = frozenset(
            kind for kind, handler in self._recorder._handlers.items() if handler is ignore
        )
        self._failed_kinds: set[type] = set()  # record types an entry point failed on (logged)
        # The loop last found running on the thread that called on_event (see there), held
        # until another is found.
        self._loop_seen: Any = None

    @property
    def span_hook(self) -> Any:
        """Replay's hook (``replay.run.ReplaySpanHook``): marks the spans of stages fed from
        a recorded run, and says which executions it feeds (``feeds(run_id, stage, instance)``:
        those record no duration or queue time). None outside a replay."""
        return self._recorder.span_hook

    @span_hook.setter
    def span_hook(self, hook: Any) -> None:
        self._recorder.span_hook = hook

    @property
    def run_end_attributes(self) -> Callable[[str], Mapping[str, Any]] | None:
        """Attributes to record on a run's span as it ends, by run id, from what only the
        composition root knows (``cli/process_end.threads_left``: the threads its stages left
        running). None: none. Called on the thread that handles ``RunFinished``; a failure is
        logged and the span ends without them."""
        return self._recorder.run_end_attributes

    @run_end_attributes.setter
    def run_end_attributes(self, attributes: Callable[[str], Mapping[str, Any]] | None) -> None:
        self._recorder.run_end_attributes = attributes

    def add_event_hook(self, hook: Callable[[EngineEvent, SpanContext | None], None]) -> None:
        """Call ``hook(event, span_context)`` after each record is handled, on the thread that
        handles it, with the span the record belongs to (its execution's, else its stage's open
        one, else the run's; None for an unknown run). ``run_log`` writes run logs this way."""
        self._recorder.hooks = (*self._recorder.hooks, hook)

    # --- observer protocol ----------------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        """Record one engine event, in order. Never raises.

        Called from a running event loop (the engine), the record is queued and handled by the
        monitor's worker thread: the engine goes on at once, and the spans and metric records
        are made while the loop waits for I/O (a stage sleeping, a subprocess running) instead
        of on the run's critical path. Span times come from the records, so nothing moves. A
        loop that never waits handles the queue itself in batches, and one that publishes
        events faster than their payloads are recorded handles the queue once it holds
        ``HEAVY_BOUND`` of them (``_record_queue``). What needs the result now settles the
        queue first, on the caller's thread: ``RunFinished`` (a finished run's telemetry is
        complete when ``engine.run`` returns), ``stage_environment``, the manual API,
        ``get_metrics`` and ``flush()``; and ``RunStarted`` when this monitor did not start its
        run span (``allocate_run_id``), which is then started under the caller's current span
        and context (a parent to link, ``taskdaemon run``'s preset trace id), or when a hook
        takes it (the run log's first record stays first). Else a run's start goes to the
        worker as its other records do (``Recorder.starts_on_worker``): ``allocate_run_id``
        read the caller's span, and the run's attributes, books and metric records are made
        off the loop. Outside a running loop (the manual API, records fed by hand) every
        record is handled at once. What fails is logged once per record type.
        """
        kind = type(event)
        try:
            # A record built by someone who did not ask. ``wants_record``'s first test inline:
            # a type the recorder handles is always wanted, without the call (a few a stage).
            if kind in self._unrecorded and not self.wants_record(kind):
                return
            # The loop running on this thread, if any: the one seen last when it notes this
            # thread as its own (asyncio's ``_thread_id``, set for the length of
            # ``run_forever``; a thread runs one loop at a time), else asyncio's non-raising
            # probe (``get_running_loop()`` would raise for every hand-fed record). The probe is
            # a ``getpid`` system call in CPython 3.11 (its check that the loop was not
            # inherited through ``os.fork``), and a live monitor gets about four records a
            # stage from its loop; in a forked child (``_threads._forked_child``) asyncio is
            # always asked.
            loop = self._loop_seen
            if loop is None or loop._thread_id != get_ident() or _threads._forked_child:
                loop = asyncio._get_running_loop()
                if loop is not None and getattr(loop, "_thread_id", None) == get_ident():
                    self._loop_seen = loop
            if kind in _SETTLE_NOW or loop is None:
                if (
                    kind is RunStarted
                    and loop is not None
                    and self._recorder.starts_on_worker(cast(RunStarted, event))
                ):
                    self._queue.put(event)
                else:
                    self._queue.handle_now(event)
            elif kind is EventPublished:  # a payload counts against the queue's own bound
                self._queue.put(event, heavy=bool(cast(EventPublished, event).payload))
            else:
                self._queue.put(event)
        except Exception:
            self._log_failure(kind, "recording")

    def on_events(self, events: Sequence[EngineEvent]) -> None:
        """Record ``events``, in order, now, on this thread, as ``on_event`` records each one
        outside a running loop (the types it declines are dropped). Never raises.

        For a caller holding many records at once: the stand-in of ``taskdaemon run``
        (``cli/deferred.py``) hands over what it kept while the monitor loaded, every record
        of an async run, on a thread without a loop. One call takes the queue's lock once per
        slice (``RecordQueue.handle_batch``) and asks ``wants_record`` once per record type,
        where ``on_event`` would do both for every record (a few µs a stage). The types are
        gathered first (``set(map(type, events))``, no Python step a record), and the records
        are copied only when some type is declined: a batch of ``run``'s records holds none
        of the declined types (the stand-in did not build them)."""
        declined = {kind for kind in set(map(type, events)) if not self.wants_record(kind)}
        if declined:
            events = [event for event in events if type(event) not in declined]
        self._queue.handle_batch(events)

    def wants_record(self, kind: type) -> bool:
        """Whether records of type ``kind`` are worth building: False for the types the
        recorder makes nothing of when no hook wants them either (the engine asks before it
        builds a ``StageWaiting`` or ``StageQueued``; ``on_event`` drops what it declines)."""
        if kind not in self._unrecorded:
            return True
        # Else whether some hook wants them: each hook has a ``wants(kind)`` (``run_log.RunLog``
        # at its levels), and one without it gets every record. Asked when the record is to
        # be built or arrives, on the caller's thread (the engine asks twice a stage). A hook
        # that fails counts as wanting (logged once per record type): this never raises.
        try:
            for hook in self._recorder.hooks:
                wants = getattr(hook, "wants", None)
                if wants is None or wants(kind):
                    return True
        except Exception:
            self._log_failure(kind, "asking a hook about")
            return True
        return False

    def _log_failure(self, kind: type, what: str) -> None:
        """Log the failure being handled, once per record type. A logging handler that raises
        (stage code's, added to the root logger) leaves it unsaid: out of here, it ended the
        thread that forwards ``run``'s kept records, and the run never ended."""
        if kind not in self._failed_kinds:
            self._failed_kinds.add(kind)
            with contextlib.suppress(Exception):
                _logger.warning("monitor failed %s a %s record", what, kind.__name__, exc_info=True)

    def flush(self) -> None:
        """Handle every queued record now, on this thread (safe at any time, and twice).

        Outside the stage execution the caller may be running for (``execution``): the
        records are other executions', and a stage reading its environment (``TRACEPARENT``,
        ``stage_environment``) flushes the queue from inside its handler call. In it,
        ``logs.ContextFilter`` stamped that stage's ids on the run log's records of others,
        and, reading the same unresolved environment for them, flushed again from within
        the first record's handling: the records queued behind it were written before it
        (a fed stage's trigger evaluation after the next stage had started)."""
        context = outside_execution()
        if context is None:
            self._queue.settle()
        else:
            context.run(self._queue.settle)

    def close(self) -> None:
        """Handle what is queued and stop the worker thread (safe twice; restarts on use)."""
        self._queue.close()

    def allocate_run_id(
        self, pipeline: Pipeline, request: Mapping[str, Any], *, at: float | None = None
    ) -> str | None:
        """Start the run span at ``at`` (the engine's start of the run; without it, now by
        this monitor's clock) and answer its trace id (the run id); None if not tracing."""
        try:
            return self._allocate(pipeline, self._clock() if at is None else at)
        except Exception:
            _logger.warning("monitor failed to allocate a run id", exc_info=True)
            return None

    def stage_environment(self, event: StageStarted) -> Mapping[str, str]:
        """``TRACEPARENT`` (and ``TRACESTATE`` if any) of the execution's span, for subprocesses.

        Without waiting for the records queued before the stage's ``StageStarted``: while that
        record waits in the queue, the span's id is chosen now (``_span_ids``); else the span
        is read under the queue's lock, a wait for at most the record being handled. When the
        id cannot be chosen (a run whose span this monitor has not started yet, a tracer
        without ids, the worker taking the record meanwhile) the queue is settled first, as
        every call once did (a command after a stage that returned a million outputs timed
        out while the loop recorded them)."""
        try:
            run_id, task_run_id = event.run_id, event.task_run_id
            if self._queue.waiting(
                lambda record: (
                    type(record) is StageStarted
                    and record.task_run_id == task_run_id
                    and record.run_id == run_id
                )
            ):
                chosen = self._recorder.chosen_environment(event)
                if chosen is not None:
                    return chosen
                self.flush()
            with self._queue.lock:
                return self._recorder.stage_environment(event)
        except Exception:
            _logger.warning("monitor failed to build a stage environment", exc_info=True)
            return {}

    def get_metrics(self, pipeline: str | None = None) -> MonitorMetrics:
        """A frozen snapshot of the in-process aggregates (one pipeline, or all of them)."""
        self.flush()
        return self._aggregates.snapshot(pipeline)

    # --- what the manual feed needs (``_feed.ManualFeed``) ----------------------------------

    def _now(self) -> float:
        return self._clock()

    def _allocate(self, pipeline: Pipeline, at: float) -> str | None:
        with self._queue.lock:  # the books are only ever touched under the queue's lock
            return self._recorder.allocate(pipeline, at)

    def _run(self, run_id: str) -> Run:
        self.flush()
        run = self._recorder.runs.get(run_id)
        if run is None:
            raise RunNotFoundError(f"no open run {run_id!r} in this monitor")
        return run
