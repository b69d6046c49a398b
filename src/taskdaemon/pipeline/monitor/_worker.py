"""The monitor's worker: handles each engine record, in order, on whatever thread settles it.

``Recorder.handle`` is what the record queue (``_record_queue.RecordQueue``) calls, on its worker
thread or on the caller's thread, always under the queue's lock. It dispatches a record by type,
keeps the books (``_books``), has ``_spans`` and ``_stage_spans`` build the spans, records the
metrics, the in-process aggregates and the resource sampler's bookkeeping, and then calls the
event hooks with the span the record belongs to. It never raises: a failure is logged and the record
dropped, since monitoring must never stop a pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import nullcontext, suppress
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, format_trace_id

from taskdaemon.pipeline import recorded
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline._record_queue import turn as _turn
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
    TriggerEvaluated,
)
from taskdaemon.pipeline.masked_values import MASKED
from taskdaemon.pipeline.metrics import PipelineMetrics, ResourceSampler, RunAggregates
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.monitor import _spans, _stage_spans
from taskdaemon.pipeline.monitor._books import (
    Execution,
    PipelineInfo,
    Run,
    link_to,
    open_span_of,
    pipeline_info,
    stage_info,
)
from taskdaemon.pipeline.monitor._debug import DebugSpans
from taskdaemon.pipeline.monitor._span_ids import STARTED, ChosenSpanIds, span_id_chosen
from taskdaemon.pipeline.monitor._spans import ROOT
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.span_redaction import RedactingSpan, RedactingTracer, redact_attributes
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.status_rules import OTHER_ERROR_TYPE
from taskdaemon.pipeline.telemetry_codec import run_result

__all__ = ["EventHook", "Recorder"]

# The facade's logger: what fails here is reported as the monitor's failure.
_logger = logging.getLogger("taskdaemon.pipeline.monitor")

#: Records whose span is made by handling them.
_OPENING = frozenset({RunStarted, StageStarted})

#: ``hook(event, span_context)``, called after each record is handled (see ``add_event_hook``).
EventHook = Callable[[EngineEvent, SpanContext | None], None]


def _takes(hook: EventHook, kind: type) -> bool:
    """Whether ``hook`` takes records of type ``kind`` (``Recorder.handle``)."""
    takes = getattr(hook, "takes", None)
    return takes is None or bool(takes(kind))


class Recorder:
    """Turns records into spans and metric records and keeps the per-run books.

    Every method is called under the record queue's lock, so the books need no lock of their
    own.
    """

    def __init__(
        self,
        *,
        tracer: RedactingTracer,
        capture: PayloadCapture,
        metrics: PipelineMetrics,
        sampler: ResourceSampler,
        aggregates: RunAggregates,
    ) -> None:
        self.tracer = tracer
        self.capture = capture
        self.metrics = metrics
        self.sampler = sampler
        # The sampler's books are read only by the metrics' two resource gauges: with no meter
        # to report them (``taskdaemon run`` without a metric reader) or sampling off, keeping
        # them is work nobody reads (a record and two locked calls a stage).
        self._sampling = metrics.recording and metrics.resource_sampling
        self.aggregates = aggregates
        self.runs: dict[str, Run] = {}
        #: Run spans ``allocate`` started before their ``RunStarted`` arrives, by run id, with
        #: ``MASKED.generation`` read before and the span current where the run was named.
        self._allocated: dict[str, tuple[Span, int, SpanContext]] = {}
        self._infos: dict[int, tuple[Pipeline, PipelineInfo]] = {}
        #: Stage span ids a command's environment chose before the span started (``_span_ids``).
        self._chosen = ChosenSpanIds()
        self._warned_foreign_id = False
        #: Replay's hook (``replay.run.ReplaySpanHook``): marks the spans of stages fed from
        #: a recorded run. None outside a replay.
        self.span_hook: Any = None
        #: What the composition root records on a run span as it ends, by run id
        #: (``PipelineMonitor.run_end_attributes``). None: nothing.
        self.run_end_attributes: Callable[[str], Mapping[str, Any]] | None = None
        self.hooks: tuple[EventHook, ...] = ()
        # The hooks that take each record type, asked once per turn of the record queue:
        # (turn token, hooks, {type: the hooks that take it}); see ``handle``.
        self._taking: tuple[object, tuple[EventHook, ...], dict[type, tuple[EventHook, ...]]] = (
            None,
            (),
            {},
        )
        self._debug = DebugSpans(capture)
        # The constant attributes of a stage span's links, redacted once here (the SDK copies a
        # link's attributes, so one mapping serves every link): ``_stage_spans.start_stage_span``
        # records them as they are, without a redaction walk per link.
        self._triggered_by = redact_attributes({t.LINK_RELATION: t.LINK_TRIGGERED_BY})
        self._previous_attempt = redact_attributes({t.LINK_RELATION: t.LINK_PREVIOUS_ATTEMPT})
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

    def handle(self, event: EngineEvent) -> None:
        """Handle one record, then call the hooks that take its type with its span. Never
        raises.

        A hook with a ``takes(kind)`` method is called only for the types it answers True for
        (``run_log.RunLog``: nothing to write at its loggers' levels for a trigger evaluation
        at INFO), and then the record's span is not looked up either. The answers are asked
        once per type and turn of the record queue (``_record_queue.turn``), as the run log
        asks where its rows go (its module doc says why a logging change may wait for the next
        turn); outside a turn, for every record."""
        try:
            kind = type(event)
            hooks = self.hooks
            if hooks:
                token = _turn.token
                taking = self._taking
                if token is None or taking[0] is not token or taking[1] is not hooks:
                    taking = self._taking = (token, hooks, {})
                found = taking[2].get(kind)
                if found is None:
                    found = taking[2][kind] = tuple(h for h in hooks if _takes(h, kind))
                hooks = found
            # The span of a record that opens one exists only once the record is handled.
            span = None if not hooks or kind in _OPENING else self._span_context_of(event)
            handler = self._handlers.get(kind)
            if handler is not None:
                handler(event)
            for hook in hooks:
                hook(event, span if span is not None else self._span_context_of(event))
        except Exception:
            with suppress(Exception):  # a logging handler of stage code's that raises
                _logger.warning("monitor failed on %s", type(event).__name__, exc_info=True)

    def _span_context_of(self, event: EngineEvent) -> SpanContext | None:
        run = self.runs.get(event.run_id)
        if run is None:
            return None
        task_run = getattr(event, "task_run_id", None)
        if task_run is not None:
            execution = run.open.get(task_run)
            if execution is not None:
                return execution.context
            if (ended := run.ended.get(task_run)) is not None:
                return ended
        stage = getattr(event, "stage", None)
        if stage is not None and run.open and (span := open_span_of(run, stage)) is not None:
            return span.get_span_context()
        return run.span_context

    def allocate(self, pipeline: Pipeline, at: float) -> str | None:
        """Start a run span now and answer its trace id (the run id); None if not tracing.

        The caller's current span, the run's parent unless its ``RunStarted`` names one, is
        read here, on the caller's thread and in its context: the engine names a run and
        starts it in one step, and its ``RunStarted`` is then handled on the worker
        (``starts_on_worker``), where that span is not current."""
        masked = MASKED.generation
        span = self._start_run_span(pipeline, at)
        span_context = span.get_span_context()
        if not span_context.is_valid:
            return None
        run_id = format_trace_id(span_context.trace_id)
        current = trace.get_current_span().get_span_context()
        self._allocated[run_id] = (span, masked, current)
        return run_id

    def starts_on_worker(self, event: RunStarted) -> bool:
        """Whether ``event`` may be handled on the worker: its run span was started by
        ``allocate``, which read the caller's span, and no hook takes it. A hook that does (the
        run log's ``run ... started``) is called at once, on the caller's thread, as before: on
        the worker, the record came after those the run's handlers log themselves, no longer
        the run's first. Asked on the caller's thread without the queue's lock: the entry is
        only taken by handling this very record, and a hook's ``takes`` reads only levels."""
        if event.run_id not in self._allocated:
            return False
        hooks = self.hooks
        return not hooks or not any(_takes(hook, RunStarted) for hook in hooks)

    def stage_environment(self, event: StageStarted) -> dict[str, str]:
        """The subprocess variables naming the execution's span ({} if it has none)."""
        run = self.runs.get(event.run_id)
        execution = run.open.get(event.task_run_id) if run is not None else None
        if execution is None or not execution.context.is_valid:
            return {}
        return _spans.subprocess_environment(execution.span)

    def chosen_environment(self, event: StageStarted) -> dict[str, str] | None:
        """The subprocess variables naming the execution's span, its id chosen now when the
        span is not started yet (``_span_ids``); None when the started span must be read (the
        worker got there first) or when it cannot be chosen here (a tracer without an id
        generator, a run this monitor does not know yet). Called on the engine's loop without
        the queue's lock: it reads the books with single dictionary look-ups."""
        generator = getattr(self.tracer.wrapped, "id_generator", None)
        run = self.runs.get(event.run_id)
        allocated = self._allocated.get(event.run_id) if run is None else None
        parent = run.span if run is not None else allocated[0] if allocated is not None else None
        if generator is None or parent is None:
            return None
        context = parent.get_span_context()
        if not context.is_valid:
            return {}
        span_id = generator.generate_span_id()
        if self._chosen.claim(event.run_id, event.task_run_id, span_id) != span_id:
            return None
        chosen = SpanContext(
            context.trace_id, span_id, False, context.trace_flags, context.trace_state
        )
        return _spans.subprocess_environment(NonRecordingSpan(chosen))

    def _info(self, pipeline: Pipeline) -> PipelineInfo:
        cached = self._infos.get(id(pipeline))
        if cached is not None and cached[0] is pipeline and cached[1].masked == MASKED.generation:
            return cached[1]
        info = pipeline_info(pipeline, recorded.definition_attributes(pipeline, self.capture))
        if len(self._infos) > 256:  # definitions are few; a reloading server must not leak
            self._infos.clear()
        self._infos[id(pipeline)] = (pipeline, info)
        return info

    def _fresh_info(self, run: Run) -> PipelineInfo:
        """``run.info``, made again when a value became known as a secret since it was made
        (``PipelineInfo.masked``): a stage span must not record the definition's copy of it.
        The per-stage callers test ``masked`` themselves and call this only when it differs
        (three calls a stage fewer)."""
        if run.info.masked != MASKED.generation:
            run.info = self._info(run.pipeline)
        return run.info

    def _start_run_span(self, pipeline: Pipeline, at: float) -> Span:
        return _spans.start_run_span(
            self.tracer, pipeline.name, self._info(pipeline).redacted_run_attributes, at
        )

    # --- handlers ---------------------------------------------------------------------------

    @staticmethod
    def _ignore(event: EngineEvent) -> None:
        return None

    def _run_started(self, event: RunStarted) -> None:
        pipeline = event.pipeline
        info = self._info(pipeline)
        allocated = self._allocated.pop(event.run_id, None)
        current = None  # read now, by ``describe_run_start``, when the run was named elsewhere
        if allocated is not None:
            span, masked, current = allocated
        else:
            masked = MASKED.generation
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
        _spans.describe_run_start(span, event, self.capture, self.span_hook, current)
        self.runs[event.run_id] = Run(
            run_id=event.run_id,
            pipeline=pipeline,
            info=info,
            span=span,
            # The stage spans' parent: the SDK span itself (``RedactingSpan.wrapped`` says why).
            context=trace.set_span_in_context(
                span.wrapped if type(span) is RedactingSpan else span, ROOT
            ),
            span_context=span.get_span_context(),
            started_at=event.at,
            span_masked=masked,
        )
        self.metrics.run_started(pipeline.name, pipeline.stage_map)
        self.aggregates.run_started(pipeline.name)

    def _stage_started(self, event: StageStarted) -> None:
        run = self.runs.get(event.run_id)
        if run is None:
            return
        infos = run.info
        if infos.masked != MASKED.generation:  # ``_fresh_info``'s test, without its call
            infos = self._fresh_info(run)
        # ``stage_info``, inline: the definition's stages are nearly always all there is.
        info = infos.stages.get(event.stage) or stage_info(run, event.stage, event.loop)
        links = []
        triggered_by = self._triggered_by
        for ref in event.fired_by:
            linked = link_to(run, ref)
            if linked is not None:
                links.append(Link(linked, triggered_by))
        if event.previous_attempt is not None:
            linked = link_to(run, event.previous_attempt)
            if linked is not None:
                links.append(Link(linked, self._previous_attempt))
        # ``max(0.0, x)`` as a comparison, three times a stage without the builtin's call:
        # the same value for every x (0.0 for a negative, zero or NaN x, else x itself).
        queue_time = event.at - event.queued_at - event.paused
        queue_time = queue_time if queue_time > 0.0 else 0.0
        trigger_wait = _trigger_wait(event)
        chosen = self._chosen.claim(event.run_id, event.task_run_id, STARTED)
        with span_id_chosen(self.tracer.wrapped, chosen) if chosen else nullcontext():
            span = _stage_spans.start_stage_span(
                self.tracer,
                run,
                event,
                info=info,
                links=links,
                queue_time=queue_time,
                trigger_wait=trigger_wait,
                capture=self.capture,
                span_hook=self.span_hook,
            )
        if event.paused or self._debug.pending:
            self._debug.stage_started(span, event)
        # A replay's fed execution (``replay.run``) did no work: it records no queue time,
        # trigger wait or duration (``_end_execution``).
        hook = self.span_hook
        fed = hook is not None and hook.feeds(event.run_id, event.stage, event.instance)
        # By position, in the field order (span, context, stage, instance, attempt, started_at,
        # queue_time, fed): keyword matching of eight arguments cost twice the call.
        run.open[event.task_run_id] = Execution(
            span,
            span.get_span_context(),
            event.stage,
            event.instance,
            event.attempt,
            event.at,
            queue_time,
            fed,
        )
        run.ran.add(event.stage)
        key = (event.stage, event.instance)
        if run.attempts.get(key, 0) < event.attempt:
            run.attempts[key] = event.attempt
        metrics = self.metrics
        if metrics.recording and not fed:  # ``recording``: its method's first test (``run -q``)
            metrics.stage_started(
                run.pipeline.name,
                event.stage,
                queue_time,
                trigger_wait,
            )
        if self._sampling:
            self.sampler.stage_started(
                (run.run_id, event.task_run_id),
                run.pipeline.name,
                event.stage,
                is_command=info.is_command,
            )

    def _debug_record(self, event: BreakpointHit | BreakpointResumed | InputOverridden) -> None:
        run = self.runs.get(event.run_id)
        if run is not None:
            self._debug.record(run.span, event)

    def _stage_process(self, event: StageProcess) -> None:
        run = self.runs.get(event.run_id)
        if run is None:
            return
        execution = run.open.get(event.task_run_id)
        if execution is not None and execution.span.is_recording():
            execution.span.set_attribute(t.STAGE_PID, event.pid)
        if self._sampling:
            self.sampler.set_process((run.run_id, event.task_run_id), event.pid)

    def _stage_finished(self, event: StageFinished) -> None:
        run = self.runs.get(event.run_id)
        if run is None:
            return
        execution = run.open.pop(event.task_run_id, None)
        if execution is None:
            return
        self._chosen.drop(event.run_id, event.task_run_id)
        self._end_execution(run, execution, event)

    def _end_execution(self, run: Run, execution: Execution, event: StageFinished) -> None:
        status = event.status
        _stage_spans.end_stage_span(execution, event, self.capture, self.span_hook)
        run.ended[event.task_run_id] = execution.context
        run.last_status[(execution.stage, execution.instance)] = status
        if status is StageStatus.SUCCESS:
            run.last_success[execution.stage] = (
                execution.stage,
                execution.instance,
                execution.attempt,
            )
        duration = event.at - execution.started_at
        duration = duration if duration > 0.0 else 0.0  # max(0.0, ...): ``_stage_started``
        metrics = self.metrics
        if execution.fed:  # counted as ``replayed``, no duration: see ``_stage_started``
            metrics.stage_fed(run.pipeline.name, execution.stage)
        else:
            status_text = str(status)  # once, for the metrics and the aggregates
            if metrics.recording:  # what its method tests first, without the call (``run -q``)
                metrics.stage_finished(run.pipeline.name, execution.stage, status_text, duration)
            self.aggregates.stage_finished(
                run.pipeline.name, execution.stage, status_text, duration, execution.queue_time
            )
        if self._sampling:
            self.sampler.stage_finished((run.run_id, event.task_run_id))

    def _trigger_evaluated(self, event: TriggerEvaluated) -> None:
        run = self.runs.get(event.run_id)
        if run is None:
            return
        metrics = self.metrics
        if metrics.recording:  # what its method tests first, without the call (``run -q``)
            metrics.trigger_evaluated(run.pipeline.name, event.stage, event.trigger_type)
        # No open execution (a chain's next stage is evaluated once the last one ended): the
        # run span, without ``open_span_of``'s call, which would find none.
        open_span = run.open and open_span_of(run, event.stage)
        info = run.info
        if info.masked != MASKED.generation:  # ``_fresh_info``'s test, without its call
            info = self._fresh_info(run)
        if open_span and _full(run, open_span, f"the open span of stage {event.stage}"):
            return
        _spans.add_trigger_evaluated(open_span or run.span, event, info.stages.get(event.stage))

    def _approval_requested(self, event: ApprovalRequested) -> None:
        run = self.runs.get(event.run_id)
        if run is not None:
            _spans.add_approval_requested(run.span, event)

    def _approval_resolved(self, event: ApprovalResolved) -> None:
        run = self.runs.get(event.run_id)
        if run is not None:
            _spans.add_approval_resolved(run.span, event)

    def _stage_retrying(self, event: StageRetrying) -> None:
        run = self.runs.get(event.run_id)
        if run is not None:
            _spans.add_stage_retrying(run.span, event)

    def _stage_skipped(self, event: StageSkipped) -> None:
        run = self.runs.get(event.run_id)
        if run is not None and event.stage not in run.ran:
            run.skipped.setdefault(event.stage, event)

    def _event_published(self, event: EventPublished) -> None:
        run = self.runs.get(event.run_id)
        if run is None:
            return
        books: Run | Execution = run
        where = "the run span"
        if event.source is not None:
            execution = run.open.get(event.source.task_run_id)
            if execution is not None:
                books, where = execution, f"the span of {event.source.task_run_id}"
                if _full(run, execution.span, where):
                    return
        kept = books.published_bytes
        books.published_bytes = _spans.add_event_published(books.span, event, self.capture, kept)
        if kept < _spans.SPAN_PAYLOAD_BYTES <= books.published_bytes:
            _logger.warning(
                "run %s: published events on %s hold %d MiB of payload: later ones are "
                "recorded with their payload cut (its size and sha256 kept)",
                run.run_id,
                where,
                _spans.SPAN_PAYLOAD_BYTES >> 20,
            )

    def _run_finished(self, event: RunFinished) -> None:
        run = self.runs.pop(event.run_id, None)
        if run is None:
            return
        if self._chosen:
            self._chosen.drop_run(event.run_id)
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
        _spans.emit_skip_spans(self.tracer, run, event)
        status = RunStatus(event.status)
        result = run_result(status)
        error_type = None
        if status is RunStatus.FAILURE:
            error_type = event.error_type or OTHER_ERROR_TYPE
        if run.span_masked != MASKED.generation:  # the definition, masked with what is known now
            run.span.set_attributes(run.info.run_attributes)
        if self.run_end_attributes is not None:
            try:
                run.span.set_attributes(self.run_end_attributes(run.run_id))
            except Exception:  # the run span ends all the same
                _logger.exception("recording run %s end attributes failed", run.run_id)
        _spans.end_run_span(run.span, event, result, error_type)
        duration = max(0.0, event.at - run.started_at)
        self.metrics.run_finished(run.pipeline.name, str(status), result, duration, error_type)
        self.aggregates.run_finished(run.pipeline.name, str(status), duration)


def _trigger_wait(event: StageStarted) -> float | None:
    """Seconds the execution's stage instance waited for its triggers, from the first moment it
    could be considered until it was queued (never below 0): on its first attempt only, None
    on a retry. A retry waited for its backoff (``taskdaemon.retry.delay_s``) and its queue
    slot, not for a trigger, and ``considered_at`` is still the first attempt's, so the
    difference would hold every earlier attempt and backoff. The span attribute, the metric
    and what readers rebuild from spans (``dag --run``, ``runs show``) all hold it so."""
    if event.attempt != 1:
        return None
    wait = event.queued_at - event.considered_at
    return wait if wait > 0.0 else 0.0


def _full(run: Run, span: Span, where: str) -> bool:
    """Whether an execution's ``span`` has no room left for a published event or a trigger
    evaluation besides its stage's closing event (``_spans.count_if_full``, which counts the
    event as dropped then); the first one dropped is said in one warning line."""
    dropped = _spans.count_if_full(span, _spans.STAGE_CLOSING_EVENTS)
    if dropped == 1:
        _logger.warning(
            "run %s: %s holds all the events its limit keeps: later published events and "
            "trigger evaluations on it are counted as dropped, not recorded",
            run.run_id,
            where,
        )
    return dropped > 0
