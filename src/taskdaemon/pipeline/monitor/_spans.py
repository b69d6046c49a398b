"""Span building: the run, stage and skip spans and the span events, from engine records.

Each function writes what docs/architecture.md, "Telemetry schema", says one record means on
one span (names in ``telemetry.py``; the monitor's module docstring sums it up). They keep no
state: the worker (``_worker.Recorder``) decides which span a record belongs to and keeps the
books. Work that only feeds a span (attributes, payload JSON, events) is skipped when the span
is not recording.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from taskdaemon.pipeline import recorded
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    EventPublished,
    RunFinished,
    RunStarted,
    StageFinished,
    StageRetrying,
    StageStarted,
    TriggerEvaluated,
    task_run_id,
)
from taskdaemon.pipeline.monitor._books import Execution, Run, StageInfo, stage_static
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.redaction import CLEAN_TEXTS, redact_text
from taskdaemon.pipeline.run_state import (
    FAILED_STAGE_STATUSES,
    failure_error_type,
    not_reached_reason,
)
from taskdaemon.pipeline.span_redaction import RedactingSpan, RedactingTracer, redact_attributes
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.telemetry_codec import stage_result

__all__ = [
    "OTHER_ERROR",
    "ROOT",
    "add_approval_requested",
    "add_approval_resolved",
    "add_event_published",
    "add_stage_retrying",
    "add_trigger_evaluated",
    "describe_run_start",
    "emit_skip_spans",
    "end_run_span",
    "end_stage_span",
    "ns",
    "start_run_span",
    "start_stage_span",
    "subprocess_environment",
    "traceparent_of",
]

_PROPAGATOR = TraceContextTextMapPropagator()
ROOT = Context()  # an empty context: spans started in it are roots
OTHER_ERROR = "_OTHER"  # semconv's fallback for error.type


def ns(seconds: float) -> int:
    """Epoch seconds as integer nanoseconds, exact to the nanosecond."""
    # Whole and fractional parts apart: ``seconds * 1e9`` on an epoch float loses nanoseconds
    # (61 significant bits do not fit a double), which would skew exact time attributes.
    whole = int(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


def traceparent_of(context: Context) -> str | None:
    """The W3C ``traceparent`` of ``context``'s current span, if any."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context)
    return carrier.get("traceparent")


def subprocess_environment(span: Span) -> dict[str, str]:
    """``TRACEPARENT`` (and ``TRACESTATE`` if any) naming ``span``, for a subprocess."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return {key.upper(): value for key, value in carrier.items() if value}


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


def _set_cancel_cause(attributes: dict[str, Any], reason: str | None, cause: str | None) -> None:
    """Record why a stop of the run cancelled or skipped a stage, when one did."""
    if reason:
        attributes[t.STAGE_CANCEL_REASON] = reason
    if cause:
        attributes[t.STAGE_CANCEL_CAUSE] = cause


# --- run span ---------------------------------------------------------------------------------


def start_run_span(
    tracer: RedactingTracer, pipeline: str, redacted_attributes: Mapping[str, Any], at: float
) -> Span:
    """The run span, started with the definition's attributes: what the run is must be known
    from its start (samplers and the span store read start attributes). They come redacted
    (``PipelineInfo.redacted_run_attributes``, once per definition) and are recorded as
    they are."""
    return tracer.start_span(
        t.run_span_name(pipeline),
        context=ROOT,
        kind=SpanKind.SERVER,
        start_time=ns(at),
        redacted=redacted_attributes,
    )


def describe_run_start(
    span: Span, event: RunStarted, capture: PayloadCapture, span_hook: Any
) -> None:
    """What ``RunStarted`` adds to the run span: the run id, who started it, the request, and
    the links to an external parent and to a replayed run."""
    if not span.is_recording():
        return
    attributes: dict[str, Any] = {}  # the definition's are set at the span's start
    attributes[t.CICD_PIPELINE_RUN_ID] = event.run_id
    attributes[t.PIPELINE_STARTED_BY] = event.started_by
    if event.replay_of is not None:
        attributes[t.PIPELINE_REPLAY_OF] = event.replay_of
    if capture.enabled and event.request:
        attributes.update(recorded.request_attributes(capture, event.request))
    if span_hook is not None:
        span_hook.run_started(event, attributes)
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


def end_run_span(span: Span, event: RunFinished, result: str, error_type: str | None) -> None:
    """End the run span with its result (and status ERROR with ``error_type`` on failure)."""
    if span.is_recording():
        attributes: dict[str, Any] = {t.CICD_PIPELINE_RESULT: result}
        if error_type is not None:
            attributes[t.ERROR_TYPE] = error_type
            span.set_status(Status(StatusCode.ERROR, event.error or error_type))
        span.set_attributes(attributes)
    span.end(end_time=ns(event.at))


# --- stage spans ------------------------------------------------------------------------------


def start_stage_span(
    tracer: RedactingTracer,
    run: Run,
    event: StageStarted,
    *,
    info: StageInfo,
    links: list[Link],
    queue_time: float,
    trigger_wait: float,
    capture: PayloadCapture,
    span_hook: Any,
) -> RedactingSpan:
    """Start the execution's span (child of the run span) with its input event.

    The definition's attributes (``info.static``) go to the span redacted once per definition
    (``info.redacted_static``), not once per span, and ``links``, whose attributes the worker
    redacted once (constants), as they are; with a replay's ``span_hook``, which may change any
    attribute or link, all of them are redacted here."""
    start = ns(event.at)
    prepared = (
        None
        if span_hook is not None
        else _prepared_start(run, event, info, queue_time, trigger_wait)
    )
    if prepared is not None:
        name, recorded = prepared
        span = tracer.start_span(
            name,
            context=run.context,
            kind=SpanKind.INTERNAL,
            start_time=start,
            redacted=recorded,
            redacted_links=links,
            name_redacted=True,
        )
    else:
        span = _start_walked(
            tracer,
            run,
            event,
            info=info,
            links=links,
            queue_time=queue_time,
            trigger_wait=trigger_wait,
            span_hook=span_hook,
        )
    if capture.enabled and span.is_recording():
        span.add_redacted_event(
            t.EVENT_STAGE_INPUT, _payload_event(capture, event.inputs), timestamp=start
        )
    return span


def _start_walked(
    tracer: RedactingTracer,
    run: Run,
    event: StageStarted,
    *,
    info: StageInfo,
    links: list[Link],
    queue_time: float,
    trigger_wait: float,
    span_hook: Any,
) -> RedactingSpan:
    """``start_stage_span``'s general way: the attributes built as they are, then redacted by
    the tracer (with a replay's ``span_hook``, after it has changed them)."""
    redacted: Mapping[str, Any] | None = None
    if span_hook is None:
        attributes: dict[str, Any] = {t.CICD_PIPELINE_RUN_ID: run.run_id}
        redacted = info.redacted_static
    else:
        attributes = dict(stage_static(run, event.stage, event.loop)[1])
    attributes[t.CICD_TASK_RUN_ID] = event.task_run_id
    attributes[t.STAGE_ATTEMPT] = event.attempt
    attributes[t.STAGE_INSTANCE] = event.instance
    attributes[t.STAGE_QUEUE_TIME] = queue_time
    attributes[t.STAGE_TRIGGER_WAIT] = trigger_wait
    attributes[t.STAGE_QUEUED_AT] = ns(event.queued_at)
    attributes[t.STAGE_CONSIDERED_AT] = ns(event.considered_at)
    if event.triggers:
        attributes[t.STAGE_FIRED_TRIGGERS] = list(event.triggers)
    if event.event is not None:
        event_type = event.event.get("type")
        attributes[t.STAGE_EVENT_TYPE] = (
            event_type if isinstance(event_type, str) else info.event_type or ""
        )
    if span_hook is not None:
        span_hook.stage_started(event, attributes, links)
    return tracer.start_span(
        t.stage_span_name(event.stage),
        context=run.context,
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        links=links if span_hook is not None else None,
        start_time=ns(event.at),
        redacted=redacted,
        redacted_links=links if span_hook is None else (),
    )


def _prepared_start(
    run: Run, event: StageStarted, info: StageInfo, queue_time: float, trigger_wait: float
) -> tuple[str, dict[str, Any]] | None:
    """The stage span's name and start attributes as ``start_stage_span``'s general way records
    them (redacted), built already redacted instead of walked; None when a value is not of a
    type this is exact for (then the general way runs).

    Exact: the keys are constants that name no secret (``_start_keys_clean``); the numbers are
    ints and floats, which redaction leaves alone; every text goes through ``redact_text``,
    except the name and fired triggers equal to the definition's stage name and trigger
    descriptions, which take their redacted form from ``info.redacted_static`` (``redact_text``
    of those very strings: redaction is a function of the value alone)."""
    attempt, instance = event.attempt, event.instance
    if type(attempt) is not int or type(instance) is not int or not _start_keys_clean():
        return None
    static, redacted = info.static, info.redacted_static
    name = t.stage_span_name(event.stage)
    if type(name) is not str:
        return None
    name = _redacted_name(info, name)
    recorded = {**redacted}
    # ``redact_text``'s own first test inline (a text it found clean before is returned as
    # it is): the run id is the same text on every stage of the run.
    run_id, task_run = run.run_id, event.task_run_id
    recorded[t.CICD_PIPELINE_RUN_ID] = run_id if run_id in CLEAN_TEXTS else redact_text(run_id)
    recorded[t.CICD_TASK_RUN_ID] = task_run if task_run in CLEAN_TEXTS else redact_text(task_run)
    recorded[t.STAGE_ATTEMPT] = attempt
    recorded[t.STAGE_INSTANCE] = instance
    recorded[t.STAGE_QUEUE_TIME] = queue_time
    recorded[t.STAGE_TRIGGER_WAIT] = trigger_wait
    recorded[t.STAGE_QUEUED_AT] = ns(event.queued_at)
    recorded[t.STAGE_CONSIDERED_AT] = ns(event.considered_at)
    if event.triggers:
        described = static[t.STAGE_TRIGGERS]
        fired = []
        for description in event.triggers:
            if type(description) is not str:
                return None
            if description in described:
                fired.append(redacted[t.STAGE_TRIGGERS][described.index(description)])
            else:
                fired.append(redact_text(description))
        recorded[t.STAGE_FIRED_TRIGGERS] = fired
    if event.event is not None:
        event_type = event.event.get("type")
        if not isinstance(event_type, str):
            event_type = info.event_type or ""
        if type(event_type) is not str:
            return None
        recorded[t.STAGE_EVENT_TYPE] = redact_text(event_type)
    return name, recorded


def _redacted_name(info: StageInfo, name: str) -> str:
    """``redact_text(name)``, taken from ``info.redacted_static`` (which holds it) when ``name``
    is the definition's stage name, as the engine's records always have it."""
    if name == info.static[t.CICD_TASK_NAME]:
        redacted: str = info.redacted_static[t.CICD_TASK_NAME]
        return redacted
    return redact_text(name)


@cache
def _start_keys_clean() -> bool:
    """Whether no key ``_prepared_start`` writes names a secret (constants: checked once)."""
    return _name_no_secret(_START_KEYS)


def _name_no_secret(keys: tuple[str, ...]) -> bool:
    """Whether redaction leaves a mapping with these keys (and values it leaves alone) as is."""
    mapping = dict.fromkeys(keys, 0)
    return redact_attributes(mapping) is mapping


_START_KEYS = (
    t.CICD_PIPELINE_RUN_ID,
    t.CICD_TASK_RUN_ID,
    t.STAGE_ATTEMPT,
    t.STAGE_INSTANCE,
    t.STAGE_QUEUE_TIME,
    t.STAGE_TRIGGER_WAIT,
    t.STAGE_QUEUED_AT,
    t.STAGE_CONSIDERED_AT,
    t.STAGE_FIRED_TRIGGERS,
    t.STAGE_EVENT_TYPE,
)


#: The recorded (redacted) ``stage.input`` / ``stage.output`` attributes of whole short
#: payload texts, by text and redacted flag: most stages take and give the same few payloads
#: (``{}``, ``null``), and building and redacting their five attributes again was two walks a
#: stage. Exact: a whole text fixes its size and hash, and redaction is a function of the
#: values alone. Bounded: emptied when full, texts of at most ``_PAYLOAD_EVENT_MAX_BYTES``.
_payload_events: dict[tuple[str, bool], Mapping[str, Any]] = {}
_PAYLOAD_EVENT_MAX_BYTES = 256
_PAYLOAD_EVENTS_MAX = 1024
#: The types whose empty value a capture writes as ``{}``, unredacted (``_payload_event``).
_EMPTY_MAPPINGS = frozenset({dict, MappingProxyType})
_EMPTY_KEY = ("{}", False)


def _payload_event(capture: PayloadCapture, value: Any) -> Mapping[str, Any]:
    """``value``'s payload event attributes as a redacting span records them.

    An empty dict or mapping proxy (a no-op stage's inputs and outputs, so most payloads)
    takes the remembered attributes of ``{}`` without a capture: its redaction walks nothing
    and returns it as it is (flag False), and its JSON is ``{}`` (a proxy is written as the
    dict it is copied into), kept whole when the cap holds two bytes; which is exactly the
    text and flag the memo's entry was made for. Only for ``PayloadCapture`` itself (a
    subclass may capture otherwise), and only once a capture has made the entry."""
    if (
        type(value) in _EMPTY_MAPPINGS
        and not value
        and type(capture) is PayloadCapture
        and capture.max_bytes >= 2
        and (known := _payload_events.get(_EMPTY_KEY)) is not None
    ):
        return known
    captured, redacted = capture.capture_flagged(value)
    if captured.truncated or captured.size > _PAYLOAD_EVENT_MAX_BYTES:
        whole: Mapping[str, Any] = redact_attributes(
            recorded.captured_attributes(captured, redacted)
        )
        return whole
    key = (captured.json, redacted)
    attributes = _payload_events.get(key)
    if attributes is None:
        attributes = redact_attributes(recorded.captured_attributes(captured, redacted))
        if len(_payload_events) >= _PAYLOAD_EVENTS_MAX:
            _payload_events.clear()
        _payload_events[key] = attributes
    return attributes


def end_stage_span(
    execution: Execution, event: StageFinished, capture: PayloadCapture, span_hook: Any
) -> None:
    """End the execution's span with its result, CPU and memory, error or output event."""
    span = execution.span
    status = event.status
    end = ns(event.at)
    if span.is_recording():
        if span_hook is None and (done := _succeeded(event)) is not None:
            if capture.enabled:
                span.add_redacted_event(
                    t.EVENT_STAGE_OUTPUT, _payload_event(capture, event.outputs), timestamp=end
                )
            span.set_redacted_attributes(done)
            span.end(end_time=end)
            return
        attributes: dict[str, Any] = {
            t.CICD_TASK_RUN_RESULT: stage_result(status),
            t.STAGE_STATUS: str(status),
        }
        cpu = event.cpu_seconds  # the process tree's, else the handler thread's (loops.py)
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
        if capture.enabled and status is StageStatus.SUCCESS:
            span.add_redacted_event(
                t.EVENT_STAGE_OUTPUT, _payload_event(capture, event.outputs), timestamp=end
            )
        if span_hook is not None:
            span_hook.stage_finished(event, attributes)
        span.set_attributes(attributes)
    span.end(end_time=end)


def _succeeded(event: StageFinished) -> dict[str, Any] | None:
    """The end attributes of a plain success (no retry, no exception, no cancel cause),
    built already redacted, as ``end_stage_span``'s general way records them after its walk
    (same keys, same order); None for any other end, which takes that way.

    Exact: the keys are constants that name no secret (``_end_keys_clean``, checked once);
    the result and status are the two texts of a success, redacted once
    (``_success_texts``); the CPU time and peak memory are a float and an int, or absent,
    which redaction leaves alone."""
    if (
        event.status is not StageStatus.SUCCESS
        or event.will_retry
        or event.exception is not None
        or event.cancel_reason
        or event.cancel_cause
        or not _end_keys_clean()
    ):
        return None
    cpu, peak = event.cpu_seconds, event.peak_memory_bytes
    result, status = _success_texts()
    attributes: dict[str, Any] = {t.CICD_TASK_RUN_RESULT: result, t.STAGE_STATUS: status}
    if cpu is not None:
        if type(cpu) is not float:
            return None
        attributes[t.STAGE_CPU_TIME] = cpu
    if peak is not None:
        if type(peak) is not int:
            return None
        attributes[t.STAGE_PEAK_MEMORY] = peak
    return attributes


@cache
def _success_texts() -> tuple[str, str]:
    """A success's ``cicd.pipeline.task.run.result`` and ``taskdaemon.stage.status``,
    redacted (constants: once)."""
    success = StageStatus.SUCCESS
    return redact_text(stage_result(success)), redact_text(str(success))


@cache
def _end_keys_clean() -> bool:
    """Whether no key ``_succeeded`` writes names a secret (constants: checked once)."""
    return _name_no_secret(
        (t.CICD_TASK_RUN_RESULT, t.STAGE_STATUS, t.STAGE_CPU_TIME, t.STAGE_PEAK_MEMORY)
    )


def emit_skip_spans(tracer: RedactingTracer, run: Run, event: RunFinished) -> None:
    """A zero-length ``skip`` span for each stage of the run that never ran, so the whole DAG
    is in the trace: at its ``StageSkipped`` (with its reason), else at the run's end."""
    for stage in run.pipeline.stages:
        if stage.name in run.ran:
            continue
        skip = run.skipped.get(stage.name)
        reason = skip.reason if skip else not_reached_reason(str(event.status))
        at = skip.at if skip else event.at
        _, static = stage_static(run, stage.name, stage.loop)
        attributes = dict(static)
        attributes[t.CICD_TASK_RUN_ID] = task_run_id(stage.name, 0, 0)
        attributes[t.CICD_TASK_RUN_RESULT] = t.RESULT_SKIP
        attributes[t.STAGE_STATUS] = str(StageStatus.SKIPPED)
        attributes[t.STAGE_SKIP_REASON] = reason
        if skip is not None:
            _set_cancel_cause(attributes, skip.cancel_reason, skip.cancel_cause)
        attributes[t.STAGE_ATTEMPT] = 0
        attributes[t.STAGE_INSTANCE] = 0
        span = tracer.start_span(
            t.stage_span_name(stage.name),
            context=run.context,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=ns(at),
        )
        span.end(end_time=ns(at))


# --- span events ------------------------------------------------------------------------------


def add_trigger_evaluated(
    span: Span, event: TriggerEvaluated, info: StageInfo | None = None
) -> None:
    """``trigger.evaluated`` on the stage's open span, else on the run span.

    Two a stage, so with the stage's definition ``info`` and a redacting span the attributes
    are built already redacted and recorded as they are (``add_redacted_event``), never
    walked. Exact: the keys are constants that name no secret (checked once,
    ``_trigger_keys_clean``); the index and the two flags are an int and bools, which redaction
    leaves alone; the stage name and the description, when equal to the definition's (as the
    engine's always are), take their redacted form from ``info.redacted_static``, which holds
    ``redact_text`` of those very strings (redaction is a function of the value alone); the
    type and the detail go through ``redact_text`` here."""
    if not span.is_recording():
        return
    at = ns(event.at)
    if info is None or type(span) is not RedactingSpan or not _trigger_keys_clean():
        span.add_event(t.EVENT_TRIGGER_EVALUATED, _trigger_attributes(event), timestamp=at)
        return
    static, redacted = info.static, info.redacted_static
    name = event.stage  # ``_redacted_name``, inline: two a stage
    name = redacted[t.CICD_TASK_NAME] if name == static[t.CICD_TASK_NAME] else redact_text(name)
    index = event.trigger_index
    described = static[t.STAGE_TRIGGERS]
    description = event.description
    if type(index) is int and 0 <= index < len(described) and described[index] == description:
        description = redacted[t.STAGE_TRIGGERS][index]
    else:
        description = redact_text(description)
    # ``redact_text``'s own first test inline: the type is one of a few texts, found clean
    # before; a detail seen for the first time takes the call.
    kind, detail = event.trigger_type, event.detail
    span.add_redacted_event(
        t.EVENT_TRIGGER_EVALUATED,
        {
            t.CICD_TASK_NAME: name,
            t.TRIGGER_INDEX: index,
            t.TRIGGER_TYPE: kind if kind in CLEAN_TEXTS else redact_text(kind),
            t.TRIGGER_DESCRIPTION: description,
            t.TRIGGER_SATISFIED: event.satisfied,
            t.TRIGGER_STAGE_READY: event.stage_ready,
            t.TRIGGER_DETAIL: detail if detail in CLEAN_TEXTS else redact_text(detail),
        },
        timestamp=at,
    )


def _trigger_attributes(event: TriggerEvaluated) -> dict[str, Any]:
    """The ``trigger.evaluated`` event's attributes, before redaction."""
    return {
        t.CICD_TASK_NAME: event.stage,
        t.TRIGGER_INDEX: event.trigger_index,
        t.TRIGGER_TYPE: event.trigger_type,
        t.TRIGGER_DESCRIPTION: event.description,
        t.TRIGGER_SATISFIED: event.satisfied,
        t.TRIGGER_STAGE_READY: event.stage_ready,
        t.TRIGGER_DETAIL: event.detail,
    }


@cache
def _trigger_keys_clean() -> bool:
    """Whether no key of ``trigger.evaluated`` names a secret (constants, so always true;
    checked once rather than assumed, so a renamed key cannot skip redaction)."""
    return _name_no_secret(_TRIGGER_KEYS)


_TRIGGER_KEYS = (
    t.CICD_TASK_NAME,
    t.TRIGGER_INDEX,
    t.TRIGGER_TYPE,
    t.TRIGGER_DESCRIPTION,
    t.TRIGGER_SATISFIED,
    t.TRIGGER_STAGE_READY,
    t.TRIGGER_DETAIL,
)


def add_approval_requested(run_span: Span, event: ApprovalRequested) -> None:
    """``approval.requested`` on the run span."""
    if not run_span.is_recording():
        return
    attributes: dict[str, Any] = {t.CICD_TASK_NAME: event.stage}
    if event.timeout is not None:
        attributes[t.APPROVAL_TIMEOUT] = float(event.timeout)
    run_span.add_event(t.EVENT_APPROVAL_REQUESTED, attributes, timestamp=ns(event.at))


def add_approval_resolved(run_span: Span, event: ApprovalResolved) -> None:
    """``approval.resolved`` on the run span."""
    if not run_span.is_recording():
        return
    run_span.add_event(
        t.EVENT_APPROVAL_RESOLVED,
        {
            t.CICD_TASK_NAME: event.stage,
            t.APPROVAL_APPROVED: event.approved,
            t.APPROVAL_BY: event.by,
            t.APPROVAL_TIMED_OUT: event.timed_out,
        },
        timestamp=ns(event.at),
    )


def add_stage_retrying(run_span: Span, event: StageRetrying) -> None:
    """``stage.retrying`` on the run span."""
    if not run_span.is_recording():
        return
    run_span.add_event(
        t.EVENT_STAGE_RETRYING,
        {
            t.CICD_TASK_NAME: event.stage,
            t.CICD_TASK_RUN_ID: event.task_run_id,
            t.RETRY_DELAY: float(event.delay),
            t.ERROR_TYPE: event.error_type,
        },
        timestamp=ns(event.at),
    )


def add_event_published(span: Span, event: EventPublished, capture: PayloadCapture) -> None:
    """``pipeline.event.published`` on the publishing execution's span (else the run span)."""
    if not span.is_recording():
        return
    attributes: dict[str, Any] = {
        t.PUBLISHED_EVENT_TYPE: event.event_type,
        t.PUBLISHED_EVENT_ID: event.event_id,
    }
    if event.source is not None:
        attributes[t.PUBLISHED_EVENT_SOURCE] = event.source.task_run_id
    if capture.enabled:
        attributes.update(recorded.payload_attributes(capture, event.payload))
    span.add_event(t.EVENT_PUBLISHED, attributes, timestamp=ns(event.at))
