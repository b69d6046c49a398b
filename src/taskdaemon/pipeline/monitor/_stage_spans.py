"""Stage spans: each execution's span started with its input event and ended with its
result, CPU, memory and output event, from ``StageStarted`` and ``StageFinished``.

Split from ``_spans`` (the run span, skip spans and the other span events), because a stage's
span is where the monitor's per-stage work is: its start attributes, its two payload events
and its end attributes are built already redacted wherever that is exact (each function's
docstring says why), with the general way, a walk by the redacting tracer, for the rest. Like
``_spans`` it keeps no state beyond bounded memos of constants.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from taskdaemon.pipeline import recorded
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import StageFinished, StageStarted
from taskdaemon.pipeline.metrics import sdk_checked
from taskdaemon.pipeline.monitor._books import Execution, Run, StageInfo, stage_static
from taskdaemon.pipeline.monitor._shared_events import SharedMappingEvents, as_cleaned
from taskdaemon.pipeline.monitor._spans import name_no_secret, ns, set_cancel_cause
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.redaction import CLEAN_TEXTS, redact_text
from taskdaemon.pipeline.span_redaction import RedactingSpan, RedactingTracer, redact_attributes
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.status_rules import FAILED_STAGE_STATUSES, failure_error_type
from taskdaemon.pipeline.telemetry_codec import stage_result

__all__ = ["end_stage_span", "start_stage_span"]


def start_stage_span(
    tracer: RedactingTracer,
    run: Run,
    event: StageStarted,
    *,
    info: StageInfo,
    links: list[Link],
    queue_time: float,
    trigger_wait: float | None,
    capture: PayloadCapture,
    span_hook: Any,
) -> RedactingSpan:
    """Start the execution's span (child of the run span) with its input event: for a
    replay's fed execution, the attributes its ``span_hook`` gives (the record's, whose inputs
    are not evaluated again; none when it gives an empty mapping: the record had none).

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
        recorded_input = None if span_hook is None else span_hook.stage_input(event)
        if recorded_input is not None:  # a replay's fed execution: its inputs as recorded
            if recorded_input:
                span.add_redacted_event(
                    t.EVENT_STAGE_INPUT, redact_attributes(recorded_input), timestamp=start
                )
            return span
        attributes = _payload_event(capture, event.inputs)
        if event.event is not None:  # the instance's item, which a replay compares to reuse it
            event_hash = capture.capture(event.event).sha256
            attributes = {**attributes, t.PAYLOAD_EVENT_SHA256: event_hash}
        _add_payload_event(span, t.EVENT_STAGE_INPUT, attributes, start)
    return span


def _start_walked(
    tracer: RedactingTracer,
    run: Run,
    event: StageStarted,
    *,
    info: StageInfo,
    links: list[Link],
    queue_time: float,
    trigger_wait: float | None,
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
    if trigger_wait is not None:  # a retry's is absent (``_worker._trigger_wait``)
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
    run: Run,
    event: StageStarted,
    info: StageInfo,
    queue_time: float,
    trigger_wait: float | None,
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
    # ``redact_text(name)``, taken from ``info.redacted_static`` (which holds it) when ``name``
    # is the definition's stage name, as the engine's records always have it.
    name = redacted[t.CICD_TASK_NAME] if name == static[t.CICD_TASK_NAME] else redact_text(name)
    recorded = {**redacted}
    # ``redact_text``'s own first test inline (a text it found clean before is returned as
    # it is): the run id is the same text on every stage of the run.
    run_id, task_run = run.run_id, event.task_run_id
    recorded[t.CICD_PIPELINE_RUN_ID] = run_id if run_id in CLEAN_TEXTS else redact_text(run_id)
    recorded[t.CICD_TASK_RUN_ID] = task_run if task_run in CLEAN_TEXTS else redact_text(task_run)
    recorded[t.STAGE_ATTEMPT] = attempt
    recorded[t.STAGE_INSTANCE] = instance
    recorded[t.STAGE_QUEUE_TIME] = queue_time
    if trigger_wait is not None:
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


@cache
def _start_keys_clean() -> bool:
    """Whether no key ``_prepared_start`` writes names a secret (constants: checked once)."""
    return name_no_secret(_START_KEYS)


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
#: The memo's attribute mappings by their ``id`` (cleared with it): the ones a payload event
#: may share the SDK's mapping of (``_add_payload_event``).
_payload_memo: dict[int, Mapping[str, Any]] = {}
_PAYLOAD_EVENTS = SharedMappingEvents()
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
            _payload_memo.clear()
            _PAYLOAD_EVENTS.forget()
        _payload_events[key] = attributes
        _payload_memo[id(attributes)] = attributes
    return attributes


def _add_payload_event(
    span: RedactingSpan, name: str, attributes: Mapping[str, Any], at: int
) -> None:
    """``span.add_redacted_event`` of a payload event's attributes; one the memo keeps shares
    its SDK mapping with earlier events of it (``_shared_events``)."""
    if _payload_memo.get(id(attributes)) is attributes:
        _PAYLOAD_EVENTS.add(span.wrapped, name, attributes, at)
    else:
        span.add_redacted_event(name, attributes, timestamp=at)


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
                payload = _payload_event(capture, event.outputs)
                _add_payload_event(span, t.EVENT_STAGE_OUTPUT, payload, end)
            _set_redacted(span, done)
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
                # A failure's error is its exception's text, redacted and bounded
                # (_attempt._failed): taken once, as a handler's __str__ may return 50 MB.
                message = event.error if status is StageStatus.FAILURE else None
                span.record_exception(event.exception, timestamp=end, message=message)
            else:
                span.add_event(
                    "exception",
                    {"exception.type": error_type, "exception.message": description},
                    timestamp=end,
                )
            span.set_status(Status(StatusCode.ERROR, description))
        elif event.exception is not None:  # cancelled: keep the cause, not an error
            span.record_exception(event.exception, timestamp=end)
        set_cancel_cause(attributes, event.cancel_reason, event.cancel_cause)
        if capture.enabled and status is StageStatus.SUCCESS:
            payload = _payload_event(capture, event.outputs)
            _add_payload_event(span, t.EVENT_STAGE_OUTPUT, payload, end)
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
    return name_no_secret(
        (t.CICD_TASK_RUN_RESULT, t.STAGE_STATUS, t.STAGE_CPU_TIME, t.STAGE_PEAK_MEMORY)
    )


def _set_redacted(span: RedactingSpan, attributes: dict[str, Any]) -> None:
    """``span.set_redacted_attributes(attributes)``, set straight into the SDK span's attribute
    mapping when that is what the SDK's ``set_attributes`` would do.

    A stage's end attributes are a few texts and numbers the SDK's cleaning keeps as they are
    (``as_cleaned``), set on a span not ended yet whose mapping has room for all of them: then
    ``set_attributes`` cleans each value, takes the mapping's lock for each and drops nothing,
    which is the same as setting each key under the span's and the mapping's locks (a key
    already there moves to the end, as ``_setitem_locked`` moves it). Only on the SDK's own
    span class whose ``set_attributes`` is the SDK's (``_settable_span``); any other case
    takes ``set_redacted_attributes``."""
    sdk = span.wrapped
    if type(sdk) is _settable_span():
        held = sdk._attributes  # type: ignore[attr-defined]
        room = held.maxlen
        if as_cleaned(attributes, held.max_value_len):
            with sdk._lock:  # type: ignore[attr-defined]
                if (
                    sdk._end_time is None  # type: ignore[attr-defined]
                    and not held._immutable
                    and (room is None or len(held._dict) + len(attributes) <= room)
                ):
                    with held._lock:
                        values = held._dict
                        for key, value in attributes.items():
                            values.pop(key, None)
                            values[key] = value
                    return
    span.set_redacted_attributes(attributes)


@cache
def _settable_span() -> Any:
    """The SDK's span class when ``_set_redacted`` may set its attributes directly: its
    ``set_attributes`` is the SDK span's own, on an SDK minor version checked against (the
    mapping's private fields are read); else None."""
    if not sdk_checked():
        return None
    try:
        from opentelemetry.sdk import trace as sdk_trace  # noqa: PLC0415
    except ImportError:
        return None
    made = getattr(sdk_trace, "_Span", None)
    if made is None or made.set_attributes is not vars(sdk_trace.Span)["set_attributes"]:
        return None
    return made
