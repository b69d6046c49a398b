"""Span building: the run and skip spans and the span events, from engine records.

Each function writes what docs/architecture.md, "Telemetry schema", says one record means on
one span (names in ``telemetry.py``; the monitor's module docstring sums it up). They keep no
state: the worker (``_worker.Recorder``) decides which span a record belongs to and keeps the
books. Work that only feeds a span (attributes, payload JSON, events) is skipped when the span
is not recording. A stage's own span (started and ended) is ``_stage_spans``'.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
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
from taskdaemon.pipeline.durations import epoch_ns as ns
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    EventPublished,
    RunFinished,
    RunStarted,
    StageRetrying,
    TriggerEvaluated,
    task_run_id,
)
from taskdaemon.pipeline.metrics import sdk_checked
from taskdaemon.pipeline.monitor._books import Run, StageInfo, stage_static
from taskdaemon.pipeline.monitor._shared_events import SharedEventAttributes
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.redaction import CLEAN_TEXTS, redact_text
from taskdaemon.pipeline.span_redaction import RedactingSpan, RedactingTracer, redact_attributes
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.status_rules import not_reached_reason

__all__ = [
    "ROOT",
    "SPAN_PAYLOAD_BYTES",
    "STAGE_CLOSING_EVENTS",
    "add_approval_requested",
    "add_approval_resolved",
    "add_event_published",
    "add_stage_retrying",
    "add_trigger_evaluated",
    "count_if_full",
    "describe_run_start",
    "emit_skip_spans",
    "end_run_span",
    "name_no_secret",
    "ns",
    "set_cancel_cause",
    "start_run_span",
    "subprocess_environment",
    "traceparent_of",
]

_PROPAGATOR = TraceContextTextMapPropagator()
ROOT = Context()  # an empty context: spans started in it are roots


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


def set_cancel_cause(attributes: dict[str, Any], reason: str | None, cause: str | None) -> None:
    """Record why a stop of the run cancelled or skipped a stage, when one did."""
    if reason:
        attributes[t.STAGE_CANCEL_REASON] = reason
    if cause:
        attributes[t.STAGE_CANCEL_CAUSE] = cause


def name_no_secret(keys: tuple[str, ...]) -> bool:
    """Whether redaction leaves a mapping with these keys (and values it leaves alone) as is:
    for attributes built already redacted, whose constant keys are checked once this way
    rather than assumed clean."""
    mapping = dict.fromkeys(keys, 0)
    return redact_attributes(mapping) is mapping


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
    span: Span,
    event: RunStarted,
    capture: PayloadCapture,
    span_hook: Any,
    current: SpanContext | None = None,
) -> None:
    """What ``RunStarted`` adds to the run span: the run id, who started it, the request, and
    the links to an external parent and to a replayed run. ``current``: the span current
    where the run was named, read there (``Recorder.allocate``), the parent when the event
    names none; None to read it now, on this thread."""
    if not span.is_recording():
        return
    attributes: dict[str, Any] = {}  # the definition's are set at the span's start
    attributes[t.CICD_PIPELINE_RUN_ID] = event.run_id
    attributes[t.PIPELINE_STARTED_BY] = event.started_by
    if event.replay_of is not None:
        attributes[t.PIPELINE_REPLAY_OF] = event.replay_of
    if event.scheduled_at is not None:
        attributes[t.PIPELINE_SCHEDULED_AT] = ns(event.scheduled_at)
    if capture.enabled and event.request:
        attributes.update(recorded.request_attributes(capture, event.request))
    if span_hook is not None:
        span_hook.run_started(event, attributes)
    span.set_attributes(attributes)
    parent = None
    if event.parent_traceparent:
        parent = _parse_traceparent(event.parent_traceparent)
    else:
        if current is None:
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
    """End the run span with its result (and status ERROR with ``error_type`` on failure).

    A cancelled run's reason, which names who cancelled it, goes in
    ``taskdaemon.stage.cancel_reason``, as on the attempts and skip spans that cancel ended:
    its status stays UNSET (cancelling is not an error), and a status description is for
    ERROR alone."""
    if span.is_recording():
        attributes: dict[str, Any] = {t.CICD_PIPELINE_RESULT: result}
        if error_type is not None:
            attributes[t.ERROR_TYPE] = error_type
            span.set_status(Status(StatusCode.ERROR, event.error or error_type))
        elif result == t.RESULT_CANCELLATION and event.error:
            attributes[t.STAGE_CANCEL_REASON] = event.error
        span.set_attributes(attributes)
    span.end(end_time=ns(event.at))


# --- skip spans -------------------------------------------------------------------------------


def emit_skip_spans(tracer: RedactingTracer, run: Run, event: RunFinished) -> None:
    """A zero-length ``skip`` span for each stage of the run that never ran, so the whole DAG
    is in the trace: at its ``StageSkipped`` (with its reason), else at the run's end.

    A run whose every stage ran, the usual end, has none: that is asked of the set of the
    stages that ran at once (in C) rather than stage by stage, a Python step a stage of the
    DAG at each run's end, which is handled on the event loop's thread."""
    if run.ran.issuperset(run.pipeline.stage_map):
        return
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
            set_cancel_cause(attributes, skip.cancel_reason, skip.cancel_cause)
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
    walked (their mapping shared with earlier events of equal values: ``_shared_events``).
    Exact: the keys are constants that name no secret (checked once,
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
    # Recorded as they are on the span the wrapper records on (what ``add_redacted_event``
    # does), sharing the attribute mapping of an earlier event with the same values.
    _TRIGGER_EVENTS.add(
        span.wrapped,
        (
            name,
            index,
            kind if kind in CLEAN_TEXTS else redact_text(kind),
            description,
            event.satisfied,
            event.stage_ready,
            detail if detail in CLEAN_TEXTS else redact_text(detail),
        ),
        at,
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
    return name_no_secret(_TRIGGER_KEYS)


_TRIGGER_KEYS = (
    t.CICD_TASK_NAME,
    t.TRIGGER_INDEX,
    t.TRIGGER_TYPE,
    t.TRIGGER_DESCRIPTION,
    t.TRIGGER_SATISFIED,
    t.TRIGGER_STAGE_READY,
    t.TRIGGER_DETAIL,
)
#: ``trigger.evaluated`` events' attribute mappings, shared by events with equal values.
_TRIGGER_EVENTS = SharedEventAttributes(t.EVENT_TRIGGER_EVALUATED, _TRIGGER_KEYS)


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


#: The payload JSON (bytes) one span keeps across its ``pipeline.event.published`` events:
#: past it, a payload is recorded cut as if at capture (its size and sha256 still those of the
#: whole, ``taskdaemon.payload.truncated`` true), the event itself kept. The count limit alone
#: let one span hold ``WRITTEN_SPAN_ITEMS`` payloads of ``TASKDAEMON_CAPTURE_MAX_BYTES`` until
#: it ended, and its stored row as much (docs/span-store.md, "A byte budget a span").
SPAN_PAYLOAD_BYTES: Final = 16 * 2**20


#: The events a stage's span still gets once the stage has run: its ``stage.output`` or its
#: ``exception``, never both. A published event never takes their room (``count_if_full``).
STAGE_CLOSING_EVENTS: Final = 1


def count_if_full(span: Span, closing: int) -> int:
    """0 when ``span`` has room for one more event besides ``closing`` still to come; else the
    event is not to be recorded and is counted instead, among the events the SDK dropped from
    the span (its ``dropped_events``), and the count after it is returned.

    The SDK drops a span's *oldest* event past its event limit: a stage publishing as many
    events as the limit lost its ``stage.input``, and one more its first published events,
    while the stage's later events still came. Counted here, the published events past the
    room are the ones lost, and the loss reaches everything that reads the SDK's count (the
    store, OTLP's ``droppedEventsCount``, ``runs show``, replay's note) as any span limit's.
    0 (record it) for a span this cannot look into: not the SDK's own, an SDK version not
    checked against (the span's private ``_limits`` and ``_events`` are read)."""
    sdk: Any = getattr(span, "wrapped", span)
    held: Any = getattr(sdk, "_events", None)
    if type(held) is not _event_list():
        return 0
    limit = sdk._limits.max_events
    with held._lock:
        if limit is None or len(held) < limit - closing:
            return 0
        held.dropped += 1
        return int(held.dropped)


@cache
def _event_list() -> Any:
    """The SDK's ``BoundedList``, a span's events, when ``count_if_full`` may count on it."""
    if not sdk_checked():
        return None
    try:
        from opentelemetry.sdk.util import BoundedList  # noqa: PLC0415
    except ImportError:
        return None
    return BoundedList


def add_event_published(
    span: Span, event: EventPublished, capture: PayloadCapture, kept: int = 0
) -> int:
    """``pipeline.event.published`` on the publishing execution's span (else the run span),
    which holds ``kept`` bytes of published payload already; the bytes it holds after.

    The payload is cut to what is left of ``SPAN_PAYLOAD_BYTES``, when that is less than the
    capture's own cap."""
    if not span.is_recording():
        return kept
    attributes: dict[str, Any] = {
        t.PUBLISHED_EVENT_TYPE: event.event_type,
        t.PUBLISHED_EVENT_ID: event.event_id,
    }
    if event.source is not None:
        attributes[t.PUBLISHED_EVENT_SOURCE] = event.source.task_run_id
    if capture.enabled:
        left = max(SPAN_PAYLOAD_BYTES - kept, 0)
        if left < capture.max_bytes:
            capture = replace(capture, max_bytes=left)
        captured, redacted = capture.capture_flagged(event.payload)
        attributes.update(recorded.captured_attributes(captured, redacted))
        kept += min(captured.size, capture.max_bytes)
    span.add_event(t.EVENT_PUBLISHED, attributes, timestamp=ns(event.at))
    return kept
