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
* If a run starts whose id the monitor did not allocate (another observer answered first), the
  run span still gets ``cicd.pipeline.run.id`` = the engine's run id; a warning says the two
  differ, since span stores then cannot fetch the run by id.
* Executions still open when their run finishes are ended as ``cancellation``.
* *Off the critical path*: records arriving from a running event loop are handled by a worker
  thread (see ``on_event``), so a stage that waits on I/O pays almost nothing for being
  monitored; ``RunFinished`` settles the queue, so a run's telemetry is complete when
  ``engine.run`` returns. ``close()`` stops the worker (it also ends by itself when idle).
  A Python stage's ``cpu_time_s`` is this process's CPU time between the handling of its start
  and end records, so it is approximate (as it always is for in-process stages).
* Expensive work (payload JSON and hashing, event attributes) is skipped when the span is not
  recording. Observer entry points never raise: failures are logged and swallowed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
    format_trace_id,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from taskdaemon import __version__
from taskdaemon.pipeline import recorded
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline._record_queue import RecordQueue
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    BreakpointHit,
    BreakpointResumed,
    EngineEvent,
    EventPublished,
    InputOverridden,
    RunFinished,
    RunStarted,
    StageFinished,
    StageProcess,
    StageQueued,
    StageRetrying,
    StageSkipped,
    StageStarted,
    StageWaiting,
    TaskRunRef,
    TriggerEvaluated,
    task_run_id,
)
from taskdaemon.pipeline.metrics import (
    LabelGuard,
    MonitorMetrics,
    PipelineMetrics,
    ResourceSampler,
    RunAggregates,
)
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.monitor_debug import DebugSpans
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.run_state import (
    FAILED_STAGE_STATUSES,
    failure_error_type,
    not_reached_reason,
    run_failed,
)
from taskdaemon.pipeline.span_redaction import RedactingTracer
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.telemetry_codec import (
    encode_edge,
    encode_trigger,
    run_result,
    stage_result,
)

__all__ = ["PipelineMonitor"]

_logger = logging.getLogger(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()
_ROOT = Context()  # an empty context: spans started in it are roots
#: Records handled at once, on the caller's thread: ``RunStarted`` reads the caller's current span
#: (linked as the parent), ``RunFinished`` completes the run's telemetry (see ``on_event``).
_SETTLE_NOW: frozenset[type] = frozenset({RunStarted, RunFinished})
_OTHER_ERROR = "_OTHER"  # semconv's fallback for error.type


def _ns(seconds: float) -> int:
    # Whole and fractional parts apart: ``seconds * 1e9`` on an epoch float loses nanoseconds
    # (61 significant bits do not fit a double), which would skew exact time attributes.
    whole = int(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


@dataclass(frozen=True, slots=True)
class _StageInfo:
    """What a stage's spans say about its definition (computed once per pipeline)."""

    loop: str
    is_command: bool
    event_type: str | None
    static: Mapping[str, Any]  # attributes that do not depend on the run


@dataclass(frozen=True, slots=True)
class _PipelineInfo:
    run_attributes: Mapping[str, Any]
    stages: Mapping[str, _StageInfo]


@dataclass(slots=True)
class _Execution:
    span: Span
    stage: str
    instance: int
    attempt: int
    started_at: float
    queue_time: float
    is_command: bool
    cpu_start: float


@dataclass(slots=True)
class _Run:
    run_id: str
    pipeline: Pipeline
    info: _PipelineInfo
    span: Span
    context: Context
    started_at: float
    open: dict[str, _Execution] = field(default_factory=dict)
    ended: dict[str, SpanContext] = field(default_factory=dict)
    ran: set[str] = field(default_factory=set)
    skipped: dict[str, StageSkipped] = field(default_factory=dict)
    attempts: dict[tuple[str, int], int] = field(default_factory=dict)
    last_status: dict[tuple[str, int], StageStatus] = field(default_factory=dict)
    last_success: dict[str, TaskRunRef] = field(default_factory=dict)
    stage_static: dict[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class _Allocated:
    span: Span
    at: float


def _is_command(pipeline: Pipeline, stage: Stage) -> bool:
    if stage.command is not None or stage.loop == "command":
        return True
    loop = pipeline.loops.get(stage.loop)
    return loop is not None and loop.command is not None


def _pipeline_info(pipeline: Pipeline, extra: Mapping[str, Any] | None = None) -> _PipelineInfo:
    run_attributes: dict[str, Any] = {
        **(extra or {}),
        t.CICD_PIPELINE_NAME: pipeline.name,
        t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
        t.PIPELINE_DEFINITION_HASH: pipeline.definition_hash,
        t.PIPELINE_STAGES: [stage.name for stage in pipeline.stages],
        t.PIPELINE_STAGE_LOOPS: [stage.loop for stage in pipeline.stages],
        t.PIPELINE_EDGE_SPECS: [encode_edge(edge) for edge in pipeline.edges],
        t.PIPELINE_CONCURRENCY: pipeline.concurrency,
        t.PIPELINE_ERROR_STRATEGY: str(pipeline.error_strategy),
    }
    stages: dict[str, _StageInfo] = {}
    for stage in pipeline.stages:
        event_types = stage.event_types
        stages[stage.name] = _StageInfo(
            loop=stage.loop,
            is_command=_is_command(pipeline, stage),
            event_type=event_types[0] if event_types else None,
            static={
                t.CICD_PIPELINE_NAME: pipeline.name,
                t.CICD_TASK_NAME: stage.name,
                t.STAGE_LOOP: stage.loop,
                t.STAGE_UPSTREAM: list(pipeline.upstream.get(stage.name, ())),
                t.STAGE_TRIGGERS: [trigger.describe() for trigger in stage.triggers],
                t.STAGE_TRIGGER_SPECS: [encode_trigger(trigger) for trigger in stage.triggers],
                t.STAGE_TRIGGER_MODE: str(stage.trigger_mode),
            },
        )
    return _PipelineInfo(run_attributes, stages)


def _unknown_stage(pipeline: str, stage: str, loop: str = "") -> _StageInfo:
    return _StageInfo(
        loop=loop,
        is_command=loop == "command",
        event_type=None,
        static={
            t.CICD_PIPELINE_NAME: pipeline,
            t.CICD_TASK_NAME: stage,
            t.STAGE_LOOP: loop,
            t.STAGE_UPSTREAM: [],
            t.STAGE_TRIGGERS: [],
            t.STAGE_TRIGGER_SPECS: [],
            t.STAGE_TRIGGER_MODE: "any",
        },
    )


def _parse_traceparent(traceparent: str) -> SpanContext | None:
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def _replay_context(original_run_id: str) -> SpanContext | None:
    try:
        trace_id = int(original_run_id, 16)
    except ValueError:
        return None
    if not 0 < trace_id < 2**128:
        return None
    span_id = (trace_id & 0xFFFFFFFFFFFFFFFF) or 1
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(1))


class PipelineMonitor:
    """The engine observer that records runs as traces and metrics. See the module docstring.

    ``clock`` (epoch seconds) times what the monitor starts itself: the run span in
    ``allocate_run_id`` and every event of the manual API. ``label_limits`` caps distinct
    metric label values (see ``metrics.LabelGuard``).
    """

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
        self._tracer = RedactingTracer(tracer)  # every value recorded on a span is redacted
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
        self._runs: dict[str, _Run] = {}
        self._allocated: dict[str, _Allocated] = {}
        self._infos: dict[int, tuple[Pipeline, _PipelineInfo]] = {}
        self._warned_foreign_id = False
        #: Replay's hook (``replay.spans.ReplaySpanHook``): marks the spans of stages fed from
        #: a recorded run. None outside a replay.
        self.span_hook: Any = None
        # Records queued by on_event, handled in order under its lock by its worker thread or by
        # whoever needs them settled first (see on_event and _record_queue).
        self._queue = RecordQueue(self._handle)
        self._lock = self._queue.lock
        self._handlers: dict[type, Callable[[Any], None]] = {
            RunStarted: self._run_started,
            RunFinished: self._run_finished,
            StageWaiting: self._ignore,
            StageQueued: self._ignore,
            TriggerEvaluated: self._trigger_evaluated,
            ApprovalRequested: self._approval_requested,
            ApprovalResolved: self._approval_resolved,
            StageStarted: self._stage_started,
            StageProcess: self._stage_process,
            StageRetrying: self._stage_retrying,
            StageFinished: self._stage_finished,
            StageSkipped: self._stage_skipped,
            EventPublished: self._event_published,
            BreakpointHit: self._debug_record,
            BreakpointResumed: self._debug_record,
            InputOverridden: self._debug_record,
        }
        self._hooks: tuple[Callable[[EngineEvent, SpanContext | None], None], ...] = ()
        self._debug = DebugSpans(self.capture)

    def add_event_hook(self, hook: Callable[[EngineEvent, SpanContext | None], None]) -> None:
        """Call ``hook(event, span_context)`` after each record is handled, on the thread that
        handles it, with the span the record belongs to (its execution's, else its stage's open
        one, else the run's; None for an unknown run). ``run_log`` writes run logs this way."""
        self._hooks = (*self._hooks, hook)

    # --- observer protocol ----------------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        """Record one engine event, in order. Never raises.

        Called from a running event loop (the engine), the record is queued and handled by the
        monitor's worker thread: the engine goes on at once, and the spans and metric records
        are made while the loop waits for I/O (a stage sleeping, a subprocess running) instead
        of on the run's critical path. Span times come from the records, so nothing moves. A
        loop that never waits handles the queue itself in batches (``_record_queue``). What
        needs the result now settles the queue first, on the caller's thread: ``RunStarted`` (the
        caller's current span is the run's parent link), ``RunFinished`` (a finished run's
        telemetry is complete when ``engine.run`` returns), ``stage_environment``, the manual
        API, ``get_metrics`` and ``flush()``. Outside a running loop (the manual API, records
        fed by hand) every record is handled at once.
        """
        # The non-raising loop probe: get_running_loop() would raise for every hand-fed record.
        if type(event) in _SETTLE_NOW or asyncio._get_running_loop() is None:
            self._queue.handle_now(event)
        else:
            self._queue.put(event)

    def flush(self) -> None:
        """Handle every queued record now, on this thread (safe at any time, and twice)."""
        self._queue.settle()

    def close(self) -> None:
        """Handle what is queued and stop the worker thread (safe twice; restarts on use)."""
        self._queue.close()

    def _handle(self, event: EngineEvent) -> None:
        try:
            opens = isinstance(event, RunStarted | StageStarted)  # its span exists only after
            span = None if opens or not self._hooks else self._span_context_of(event)
            handler = self._handlers.get(type(event))
            if handler is not None:
                handler(event)
            for hook in self._hooks:
                hook(event, span if span is not None else self._span_context_of(event))
        except Exception:
            _logger.warning("monitor failed on %s", type(event).__name__, exc_info=True)

    def _span_context_of(self, event: EngineEvent) -> SpanContext | None:
        run = self._runs.get(event.run_id)
        if run is None:
            return None
        task_run = getattr(event, "task_run_id", None)
        if task_run is not None:
            execution = run.open.get(task_run)
            if execution is not None:
                return execution.span.get_span_context()
            if (ended := run.ended.get(task_run)) is not None:
                return ended
        stage = getattr(event, "stage", None)
        if stage is not None and (span := self._open_span_of(run, stage)) is not None:
            return span.get_span_context()
        return run.span.get_span_context()

    def allocate_run_id(self, pipeline: Pipeline, request: Mapping[str, Any]) -> str | None:
        """Start the run span now and answer its trace id (the run id); None if not tracing."""
        try:
            return self._allocate(pipeline, self._clock())
        except Exception:
            _logger.warning("monitor failed to allocate a run id", exc_info=True)
            return None

    def stage_environment(self, event: StageStarted) -> Mapping[str, str]:
        """``TRACEPARENT`` (and ``TRACESTATE`` if any) of the execution's span, for subprocesses."""
        self.flush()
        try:
            run = self._runs.get(event.run_id)
            execution = run.open.get(event.task_run_id) if run is not None else None
            if execution is None or not execution.span.get_span_context().is_valid:
                return {}
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, trace.set_span_in_context(execution.span))
            return {key.upper(): value for key, value in carrier.items() if value}
        except Exception:
            _logger.warning("monitor failed to build a stage environment", exc_info=True)
            return {}

    # --- manual API -----------------------------------------------------------------------

    def start_run(
        self,
        pipeline: Pipeline | str,
        request: Mapping[str, Any] | None = None,
        *,
        context: Context | None = None,
        started_by: str = "api",
        replay_of: str | None = None,
    ) -> str:
        """Start a run by hand; returns its run id (the trace id when tracing, else a uuid4 hex).

        ``context`` is an external parent (linked, see the module docstring).
        """
        definition = pipeline if isinstance(pipeline, Pipeline) else Pipeline(pipeline, ())
        now = self._clock()
        run_id = self._allocate(definition, now) or uuid.uuid4().hex
        traceparent = None
        if context is not None:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context)
            traceparent = carrier.get("traceparent")
        self.on_event(
            RunStarted(
                run_id=run_id,
                pipeline=definition,
                request=dict(request or {}),
                at=now,
                started_by=started_by,
                parent_traceparent=traceparent,
                replay_of=replay_of,
            )
        )
        return run_id

    def stage_started(
        self,
        run_id: str,
        stage: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        instance: int = 0,
        event: Mapping[str, Any] | None = None,
    ) -> str:
        """Start the next attempt of ``stage`` (instance ``instance``); returns its task run id.

        Links to the latest successful execution of each upstream stage, and to the previous
        attempt on a retry. Queue time and trigger wait are zero: the caller schedules.
        """
        run = self._run(run_id)
        attempt = run.attempts.get((stage, instance), 0) + 1
        now = self._clock()
        upstream = run.pipeline.upstream.get(stage, ()) if stage in run.info.stages else ()
        fired_by = tuple(run.last_success[u] for u in upstream if u in run.last_success)
        info = run.info.stages.get(stage)
        trid = task_run_id(stage, instance, attempt)
        self.on_event(
            StageStarted(
                run_id=run_id,
                pipeline=run.pipeline.name,
                stage=stage,
                instance=instance,
                attempt=attempt,
                task_run_id=trid,
                loop=info.loop if info is not None else "",
                at=now,
                queued_at=now,
                considered_at=now,
                inputs=dict(inputs or {}),
                fired_by=fired_by,
                previous_attempt=TaskRunRef(stage, instance, attempt - 1) if attempt > 1 else None,
                event=event,
            )
        )
        return trid

    def stage_completed(
        self,
        run_id: str,
        stage: str,
        output: Mapping[str, Any] | None = None,
        *,
        instance: int = 0,
    ) -> None:
        """The open attempt of ``stage`` succeeded with ``output``."""
        self._finish_stage(run_id, stage, instance, StageStatus.SUCCESS, outputs=output)

    def stage_failed(
        self,
        run_id: str,
        stage: str,
        error: BaseException | str,
        *,
        instance: int = 0,
        timed_out: bool = False,
        will_retry: bool = False,
    ) -> None:
        """The open attempt of ``stage`` failed (or timed out) with ``error``."""
        self._finish_stage(
            run_id,
            stage,
            instance,
            StageStatus.TIMEOUT if timed_out else StageStatus.FAILURE,
            error=error,
            will_retry=will_retry,
        )

    def finish_run(
        self, run_id: str, status: RunStatus | str | None = None, *, error: str | None = None
    ) -> None:
        """End the run. Without ``status``: failure if an execution's last attempt failed."""
        run = self._run(run_id)
        if status is None:
            final = RunStatus.FAILURE if run_failed(run.last_status.values()) else RunStatus.SUCCESS
        else:
            final = RunStatus(status)
        error_type = None
        if final is RunStatus.FAILURE:
            error_type = "stage_failed" if error is None else _OTHER_ERROR
        self.on_event(
            RunFinished(
                run_id=run_id,
                pipeline=run.pipeline.name,
                status=final,
                at=self._clock(),
                error=error,
                error_type=error_type,
            )
        )

    def visualize(self, pipeline: Pipeline, fmt: str = "dot", run: Any = None) -> str:
        """The pipeline's DAG as DOT, JSON or Mermaid (``VisualizationFormat`` or its value),
        optionally with a ``RunRecord`` overlaid; see ``taskdaemon.pipeline.visualization``."""
        from taskdaemon.pipeline.visualization import visualize  # noqa: PLC0415 - pure, lazy

        return visualize(pipeline, fmt, run=run)

    def get_metrics(self, pipeline: str | None = None) -> MonitorMetrics:
        """A frozen snapshot of the in-process aggregates (one pipeline, or all of them)."""
        self.flush()
        return self._aggregates.snapshot(pipeline)

    def _run(self, run_id: str) -> _Run:
        self.flush()
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFoundError(f"no open run {run_id!r} in this monitor")
        return run

    def _finish_stage(
        self,
        run_id: str,
        stage: str,
        instance: int,
        status: StageStatus,
        *,
        outputs: Mapping[str, Any] | None = None,
        error: BaseException | str | None = None,
        will_retry: bool = False,
    ) -> None:
        run = self._run(run_id)
        attempt = run.attempts.get((stage, instance))
        trid = task_run_id(stage, instance, attempt or 0)
        if attempt is None or trid not in run.open:
            raise RunNotFoundError(
                f"stage {stage!r} instance {instance} is not running in {run_id}"
            )
        exception = error if isinstance(error, BaseException) else None
        error_type = None
        if status is StageStatus.TIMEOUT:
            error_type = t.RESULT_TIMEOUT
        elif exception is not None:
            error_type = type(exception).__qualname__
        elif error is not None:
            error_type = _OTHER_ERROR
        self.on_event(
            StageFinished(
                run_id=run_id,
                pipeline=run.pipeline.name,
                stage=stage,
                instance=instance,
                attempt=attempt,
                task_run_id=trid,
                status=status,
                at=self._clock(),
                outputs=dict(outputs or {}),
                error=None if error is None else str(error),
                error_type=error_type,
                exception=exception,
                will_retry=will_retry,
            )
        )

    # --- event handlers -------------------------------------------------------------------

    def _info(self, pipeline: Pipeline) -> _PipelineInfo:
        cached = self._infos.get(id(pipeline))
        if cached is not None and cached[0] is pipeline:
            return cached[1]
        info = _pipeline_info(pipeline, recorded.definition_attributes(pipeline, self.capture))
        if len(self._infos) > 256:  # definitions are few; a reloading server must not leak
            self._infos.clear()
        self._infos[id(pipeline)] = (pipeline, info)
        return info

    def _allocate(self, pipeline: Pipeline, at: float) -> str | None:
        with self._lock:
            span = self._start_run_span(pipeline, at)
            span_context = span.get_span_context()
            if not span_context.is_valid:
                return None
            run_id = format_trace_id(span_context.trace_id)
            self._allocated[run_id] = _Allocated(span, at)
        return run_id

    def _start_run_span(self, pipeline: Pipeline, at: float) -> Span:
        """The run span, started with the definition's attributes: what the run is must be
        known from its start (samplers and the span store read start attributes)."""
        return self._tracer.start_span(
            t.run_span_name(pipeline.name),
            context=_ROOT,
            kind=SpanKind.SERVER,
            start_time=_ns(at),
            attributes=self._info(pipeline).run_attributes,
        )

    @staticmethod
    def _ignore(event: EngineEvent) -> None:
        return None

    def _run_started(self, event: RunStarted) -> None:
        pipeline = event.pipeline
        info = self._info(pipeline)
        allocated = self._allocated.pop(event.run_id, None)
        if allocated is not None:
            span = allocated.span
        else:
            span = self._start_run_span(pipeline, event.at)
            span_context = span.get_span_context()
            if (
                span_context.is_valid
                and format_trace_id(span_context.trace_id) != event.run_id
                and not self._warned_foreign_id
            ):
                self._warned_foreign_id = True
                _logger.warning(
                    "run %s was not named by this monitor: its trace id differs from its run id",
                    event.run_id,
                )
        if span.is_recording():
            attributes: dict[str, Any] = {}  # the definition's are set at the span's start
            attributes[t.CICD_PIPELINE_RUN_ID] = event.run_id
            attributes[t.PIPELINE_STARTED_BY] = event.started_by
            if event.replay_of is not None:
                attributes[t.PIPELINE_REPLAY_OF] = event.replay_of
            if self.capture.enabled and event.request:
                attributes.update(recorded.request_attributes(self.capture, event.request))
            if self.span_hook is not None:
                self.span_hook.run_started(event, attributes)
            span.set_attributes(attributes)
            parent = None
            if event.parent_traceparent:
                parent = _parse_traceparent(event.parent_traceparent)
            else:
                current = trace.get_current_span().get_span_context()
                parent = current if current.is_valid else None
            if parent is not None:
                span.add_link(parent, {t.LINK_RELATION: t.LINK_PARENT})
            if event.replay_of is not None:
                original = _replay_context(event.replay_of)
                if original is not None:
                    span.add_link(
                        original,
                        {t.LINK_RELATION: t.LINK_REPLAY_OF, t.LINK_SPAN_ID_DERIVED: True},
                    )
        self._runs[event.run_id] = _Run(
            run_id=event.run_id,
            pipeline=pipeline,
            info=info,
            span=span,
            context=trace.set_span_in_context(span, _ROOT),
            started_at=event.at,
        )
        self.metrics.run_started(pipeline.name)
        self._aggregates.run_started(pipeline.name)

    def _stage_static(
        self, run: _Run, stage: str, loop: str
    ) -> tuple[_StageInfo, Mapping[str, Any]]:
        info = run.info.stages.get(stage) or _unknown_stage(run.pipeline.name, stage, loop)
        static = run.stage_static.get(stage)
        if static is None:
            static = dict(info.static)
            static[t.CICD_PIPELINE_RUN_ID] = run.run_id
            run.stage_static[stage] = static
        return info, static

    def _link_to(self, run: _Run, ref: TaskRunRef) -> SpanContext | None:
        ended = run.ended.get(ref.task_run_id)
        if ended is not None:
            return ended
        execution = run.open.get(ref.task_run_id)
        return execution.span.get_span_context() if execution is not None else None

    def _stage_started(self, event: StageStarted) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        info, static = self._stage_static(run, event.stage, event.loop)
        links = []
        for ref in event.fired_by:
            linked = self._link_to(run, ref)
            if linked is not None:
                links.append(Link(linked, {t.LINK_RELATION: t.LINK_TRIGGERED_BY}))
        if event.previous_attempt is not None:
            linked = self._link_to(run, event.previous_attempt)
            if linked is not None:
                links.append(Link(linked, {t.LINK_RELATION: t.LINK_PREVIOUS_ATTEMPT}))
        queue_time = max(0.0, event.at - event.queued_at - event.paused)
        trigger_wait = max(0.0, event.queued_at - event.considered_at)
        attributes = dict(static)
        attributes[t.CICD_TASK_RUN_ID] = event.task_run_id
        attributes[t.STAGE_ATTEMPT] = event.attempt
        attributes[t.STAGE_INSTANCE] = event.instance
        attributes[t.STAGE_QUEUE_TIME] = queue_time
        attributes[t.STAGE_TRIGGER_WAIT] = trigger_wait
        attributes[t.STAGE_QUEUED_AT] = _ns(event.queued_at)
        attributes[t.STAGE_CONSIDERED_AT] = _ns(event.considered_at)
        if event.triggers:
            attributes[t.STAGE_FIRED_TRIGGERS] = list(event.triggers)
        if event.event is not None:
            event_type = event.event.get("type")
            attributes[t.STAGE_EVENT_TYPE] = (
                event_type if isinstance(event_type, str) else info.event_type or ""
            )
        if self.span_hook is not None:
            self.span_hook.stage_started(event, attributes, links)
        span = self._tracer.start_span(
            t.stage_span_name(event.stage),
            context=run.context,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
            start_time=_ns(event.at),
        )
        if event.paused or self._debug.pending:
            self._debug.stage_started(span, event)
        if self.capture.enabled and span.is_recording():
            span.add_event(
                t.EVENT_STAGE_INPUT,
                recorded.payload_attributes(self.capture, event.inputs),
                timestamp=_ns(event.at),
            )
        cpu_start = None if info.is_command else time.process_time()  # one clock read, two uses
        run.open[event.task_run_id] = _Execution(
            span=span,
            stage=event.stage,
            instance=event.instance,
            attempt=event.attempt,
            started_at=event.at,
            queue_time=queue_time,
            is_command=info.is_command,
            cpu_start=cpu_start or 0.0,
        )
        run.ran.add(event.stage)
        key = (event.stage, event.instance)
        if run.attempts.get(key, 0) < event.attempt:
            run.attempts[key] = event.attempt
        self.metrics.stage_started(
            run.pipeline.name,
            event.stage,
            queue_time,
            trigger_wait if event.attempt == 1 else None,
        )
        self.sampler.stage_started(
            (run.run_id, event.task_run_id),
            run.pipeline.name,
            event.stage,
            is_command=info.is_command,
            cpu=cpu_start,
        )

    def _debug_record(self, event: BreakpointHit | BreakpointResumed | InputOverridden) -> None:
        run = self._runs.get(event.run_id)
        if run is not None:
            self._debug.record(run.span, event)

    def _stage_process(self, event: StageProcess) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        execution = run.open.get(event.task_run_id)
        if execution is not None:
            execution.is_command = True
            if execution.span.is_recording():
                execution.span.set_attribute(t.STAGE_PID, event.pid)
        self.sampler.set_process((run.run_id, event.task_run_id), event.pid)

    def _stage_finished(self, event: StageFinished) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        execution = run.open.pop(event.task_run_id, None)
        if execution is None:
            return
        self._end_execution(run, execution, event)

    def _end_execution(self, run: _Run, execution: _Execution, event: StageFinished) -> None:
        span = execution.span
        status = event.status
        end = _ns(event.at)
        if span.is_recording():
            attributes: dict[str, Any] = {
                t.CICD_TASK_RUN_RESULT: stage_result(status),
                t.STAGE_STATUS: str(status),
            }
            cpu = event.cpu_seconds
            if cpu is None and not execution.is_command:
                cpu = max(0.0, time.process_time() - execution.cpu_start)
            if cpu is not None:
                attributes[t.STAGE_CPU_TIME] = cpu
            if event.peak_memory_bytes is not None:
                attributes[t.STAGE_PEAK_MEMORY] = event.peak_memory_bytes
            if event.will_retry:
                attributes[t.STAGE_WILL_RETRY] = True
            if status in FAILED_STAGE_STATUSES:
                error_type = failure_error_type(status, event.exception, event.error_type)
                attributes[t.ERROR_TYPE] = error_type
                description = event.error or error_type
                attributes[t.STAGE_ERROR_MESSAGE] = description
                if event.exception is not None:
                    span.record_exception(event.exception, timestamp=end)
                else:
                    span.add_event(
                        "exception",
                        {"exception.type": error_type, "exception.message": description},
                        timestamp=end,
                    )
                span.set_status(Status(StatusCode.ERROR, description))
            elif event.exception is not None:  # cancelled: keep the cause, not an error
                span.record_exception(event.exception, timestamp=end)
            _set_cancel_cause(attributes, event.cancel_reason, event.cancel_cause)
            if self.capture.enabled and status is StageStatus.SUCCESS:
                span.add_event(
                    t.EVENT_STAGE_OUTPUT,
                    recorded.payload_attributes(self.capture, event.outputs),
                    timestamp=end,
                )
            if self.span_hook is not None:
                self.span_hook.stage_finished(event, attributes)
            span.set_attributes(attributes)
        span.end(end_time=end)
        run.ended[event.task_run_id] = span.get_span_context()
        run.last_status[(execution.stage, execution.instance)] = status
        if status is StageStatus.SUCCESS:
            run.last_success[execution.stage] = TaskRunRef(
                execution.stage, execution.instance, execution.attempt
            )
        duration = max(0.0, event.at - execution.started_at)
        self.metrics.stage_finished(run.pipeline.name, execution.stage, str(status), duration)
        self._aggregates.stage_finished(
            run.pipeline.name, execution.stage, str(status), duration, execution.queue_time
        )
        self.sampler.stage_finished((run.run_id, event.task_run_id))

    def _open_span_of(self, run: _Run, stage: str) -> Span | None:
        found = None
        for execution in run.open.values():
            if execution.stage == stage:
                found = execution.span  # the latest started wins
        return found

    def _trigger_evaluated(self, event: TriggerEvaluated) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        self.metrics.trigger_evaluated(run.pipeline.name, event.stage, event.trigger_type)
        span = self._open_span_of(run, event.stage) or run.span
        if span.is_recording():
            span.add_event(
                t.EVENT_TRIGGER_EVALUATED,
                {
                    t.CICD_TASK_NAME: event.stage,
                    t.TRIGGER_INDEX: event.trigger_index,
                    t.TRIGGER_TYPE: event.trigger_type,
                    t.TRIGGER_DESCRIPTION: event.description,
                    t.TRIGGER_SATISFIED: event.satisfied,
                    t.TRIGGER_STAGE_READY: event.stage_ready,
                    t.TRIGGER_DETAIL: event.detail,
                },
                timestamp=_ns(event.at),
            )

    def _approval_requested(self, event: ApprovalRequested) -> None:
        run = self._runs.get(event.run_id)
        if run is None or not run.span.is_recording():
            return
        attributes: dict[str, Any] = {t.CICD_TASK_NAME: event.stage}
        if event.timeout is not None:
            attributes[t.APPROVAL_TIMEOUT] = float(event.timeout)
        run.span.add_event(t.EVENT_APPROVAL_REQUESTED, attributes, timestamp=_ns(event.at))

    def _approval_resolved(self, event: ApprovalResolved) -> None:
        run = self._runs.get(event.run_id)
        if run is None or not run.span.is_recording():
            return
        run.span.add_event(
            t.EVENT_APPROVAL_RESOLVED,
            {
                t.CICD_TASK_NAME: event.stage,
                t.APPROVAL_APPROVED: event.approved,
                t.APPROVAL_BY: event.by,
                t.APPROVAL_TIMED_OUT: event.timed_out,
            },
            timestamp=_ns(event.at),
        )

    def _stage_retrying(self, event: StageRetrying) -> None:
        run = self._runs.get(event.run_id)
        if run is None or not run.span.is_recording():
            return
        run.span.add_event(
            t.EVENT_STAGE_RETRYING,
            {
                t.CICD_TASK_NAME: event.stage,
                t.CICD_TASK_RUN_ID: event.task_run_id,
                t.RETRY_DELAY: float(event.delay),
                t.ERROR_TYPE: event.error_type,
            },
            timestamp=_ns(event.at),
        )

    def _stage_skipped(self, event: StageSkipped) -> None:
        run = self._runs.get(event.run_id)
        if run is not None and event.stage not in run.ran:
            run.skipped.setdefault(event.stage, event)

    def _event_published(self, event: EventPublished) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        span = run.span
        if event.source is not None:
            execution = run.open.get(event.source.task_run_id)
            if execution is not None:
                span = execution.span
        if not span.is_recording():
            return
        attributes: dict[str, Any] = {
            t.PUBLISHED_EVENT_TYPE: event.event_type,
            t.PUBLISHED_EVENT_ID: event.event_id,
        }
        if event.source is not None:
            attributes[t.PUBLISHED_EVENT_SOURCE] = event.source.task_run_id
        if self.capture.enabled:
            attributes.update(recorded.payload_attributes(self.capture, event.payload))
        span.add_event(t.EVENT_PUBLISHED, attributes, timestamp=_ns(event.at))

    def _run_finished(self, event: RunFinished) -> None:
        run = self._runs.pop(event.run_id, None)
        if run is None:
            return
        if self._debug.pending:
            self._debug.run_finished(run.run_id)
        for trid, execution in list(run.open.items()):
            del run.open[trid]
            self._end_execution(
                run,
                execution,
                StageFinished(
                    run_id=run.run_id,
                    pipeline=run.pipeline.name,
                    stage=execution.stage,
                    instance=execution.instance,
                    attempt=execution.attempt,
                    task_run_id=trid,
                    status=StageStatus.CANCELLED,
                    at=event.at,
                    error="run ended while the stage ran",
                ),
            )
        self._emit_skip_spans(run, event)
        status = RunStatus(event.status)
        result = run_result(status)
        error_type = None
        span = run.span
        if status is RunStatus.FAILURE:
            error_type = event.error_type or _OTHER_ERROR
        if span.is_recording():
            attributes: dict[str, Any] = {t.CICD_PIPELINE_RESULT: result}
            if error_type is not None:
                attributes[t.ERROR_TYPE] = error_type
                span.set_status(Status(StatusCode.ERROR, event.error or error_type))
            span.set_attributes(attributes)
        span.end(end_time=_ns(event.at))
        duration = max(0.0, event.at - run.started_at)
        self.metrics.run_finished(run.pipeline.name, str(status), result, duration, error_type)
        self._aggregates.run_finished(run.pipeline.name, str(status), duration)

    def _emit_skip_spans(self, run: _Run, event: RunFinished) -> None:
        for stage in run.pipeline.stages:
            if stage.name in run.ran:
                continue
            skip = run.skipped.get(stage.name)
            reason = skip.reason if skip else not_reached_reason(str(event.status))
            at = skip.at if skip else event.at
            _, static = self._stage_static(run, stage.name, stage.loop)
            attributes = dict(static)
            attributes[t.CICD_TASK_RUN_ID] = task_run_id(stage.name, 0, 0)
            attributes[t.CICD_TASK_RUN_RESULT] = t.RESULT_SKIP
            attributes[t.STAGE_STATUS] = str(StageStatus.SKIPPED)
            attributes[t.STAGE_SKIP_REASON] = reason
            if skip is not None:
                _set_cancel_cause(attributes, skip.cancel_reason, skip.cancel_cause)
            attributes[t.STAGE_ATTEMPT] = 0
            attributes[t.STAGE_INSTANCE] = 0
            span = self._tracer.start_span(
                t.stage_span_name(stage.name),
                context=run.context,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                start_time=_ns(at),
            )
            span.end(end_time=_ns(at))


def _set_cancel_cause(attributes: dict[str, Any], reason: str | None, cause: str | None) -> None:
    """Record why a stop of the run cancelled or skipped a stage, when one did."""
    if reason:
        attributes[t.STAGE_CANCEL_REASON] = reason
    if cause:
        attributes[t.STAGE_CANCEL_CAUSE] = cause
