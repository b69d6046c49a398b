"""A stage execution's span at its end (``monitor/_stage_spans``): a failed, timed-out or
cancelled end and a success's, their attributes in order, exception event, status and output
event, with and without a span hook; no payload events without capture, a capture of its own
kind; end attributes set as the SDK sets them."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.trace import StatusCode

from pipeline_monitor_stage_spans_support import (
    RecordingHook,
    end_stage,
    execution_spans,
    payload_attributes,
    shapes_pipeline,
    start_stage,
    to_ns,
)
from pipeline_monitor_support import Feed, Telemetry, end_attributes
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.monitor import _stage_spans
from taskdaemon.pipeline.payloads import REDACTED, PayloadCapture
from taskdaemon.pipeline.span_redaction import RedactingSpan
from taskdaemon.pipeline.state import RunStatus, StageStatus


def test_no_payload_events_without_capture(tel: Telemetry) -> None:
    """With payload capture off, a stage span has no input or output event, on the prepared
    and on the general way of its end."""
    feed = Feed(tel, shapes_pipeline(), capture=PayloadCapture(enabled=False))
    feed.start_run()
    plain = start_stage(feed, "plan", inputs={"goal": "go"})
    end_stage(feed, plain, outputs={"plan": 1})
    retried = start_stage(feed, "build", inputs={"x": 1})
    end_stage(feed, retried, outputs={"y": 2}, will_retry=True)
    feed.finish_run(RunStatus.SUCCESS)
    spans = execution_spans(tel)
    assert [(span.name, list(span.events)) for span in spans] == [("plan", []), ("build", [])]
    assert dict(spans[1].attributes or {})[t.STAGE_WILL_RETRY] is True


@pytest.mark.parametrize("hooked", [False, True])
@pytest.mark.parametrize(
    ("status", "fields", "attributes", "exception", "code"),
    [
        (
            StageStatus.FAILURE,
            {"error": "token=abc123", "error_type": "ValueError"},
            {
                t.CICD_TASK_RUN_RESULT: "failure",
                t.STAGE_STATUS: "failure",
                t.ERROR_TYPE: "ValueError",
                t.STAGE_ERROR_MESSAGE: f"token={REDACTED}",
            },
            {"exception.type": "ValueError", "exception.message": f"token={REDACTED}"},
            ("ERROR", f"token={REDACTED}"),
        ),
        (
            StageStatus.FAILURE,
            {"error_type": "KeyError"},
            {
                t.CICD_TASK_RUN_RESULT: "failure",
                t.STAGE_STATUS: "failure",
                t.ERROR_TYPE: "KeyError",
                t.STAGE_ERROR_MESSAGE: "KeyError",
            },
            {"exception.type": "KeyError", "exception.message": "KeyError"},
            ("ERROR", "KeyError"),
        ),
        (
            StageStatus.TIMEOUT,
            {"error": "timed out after 1s", "peak_memory_bytes": 10},
            {
                t.CICD_TASK_RUN_RESULT: "timeout",
                t.STAGE_STATUS: "timeout",
                t.STAGE_PEAK_MEMORY: 10,
                t.ERROR_TYPE: "timeout",
                t.STAGE_ERROR_MESSAGE: "timed out after 1s",
            },
            {"exception.type": "timeout", "exception.message": "timed out after 1s"},
            ("ERROR", "timed out after 1s"),
        ),
        (
            StageStatus.FAILURE,
            {"error": "it broke", "exception": LookupError("it broke"), "cpu_seconds": 1.5},
            {
                t.CICD_TASK_RUN_RESULT: "failure",
                t.STAGE_STATUS: "failure",
                t.STAGE_CPU_TIME: 1.5,
                t.ERROR_TYPE: "LookupError",
                t.STAGE_ERROR_MESSAGE: "it broke",
            },
            {"exception.type": "LookupError", "exception.message": "it broke"},
            ("ERROR", "it broke"),
        ),
        (
            StageStatus.CANCELLED,
            {
                "exception": InterruptedError("stopped"),
                "cancel_reason": "run cancelled",
                "cancel_cause": "build",
            },
            {
                t.CICD_TASK_RUN_RESULT: "cancellation",
                t.STAGE_STATUS: "cancelled",
                t.STAGE_CANCEL_REASON: "run cancelled",
                t.STAGE_CANCEL_CAUSE: "build",
            },
            {"exception.type": "InterruptedError", "exception.message": "stopped"},
            ("UNSET", None),
        ),
        (
            StageStatus.CANCELLED,
            {"cancel_reason": "run cancelled"},
            {
                t.CICD_TASK_RUN_RESULT: "cancellation",
                t.STAGE_STATUS: "cancelled",
                t.STAGE_CANCEL_REASON: "run cancelled",
            },
            None,
            ("UNSET", None),
        ),
    ],
)
def test_an_unsuccessful_end(
    tel: Telemetry,
    *,
    hooked: bool,
    status: StageStatus,
    fields: dict[str, Any],
    attributes: dict[str, Any],
    exception: dict[str, Any] | None,
    code: tuple[str, str | None],
) -> None:
    """A failed, timed-out or cancelled end: its attributes in order, one ``exception`` event
    at the end (the recorded exception, else one made of the error type and message; none for
    a cancel without an exception), status ERROR with the message on a failure or timeout
    (UNSET on a cancel), and no output event (only a success has one)."""
    hook = RecordingHook() if hooked else None
    feed = Feed(tel, shapes_pipeline())
    if hook is not None:
        feed.monitor.span_hook = hook
    feed.start_run()
    started = start_stage(feed, "plan", inputs={"goal": "go"})
    finished = end_stage(feed, started, status=status, outputs={"x": 1}, **fields)
    feed.finish_run(RunStatus.FAILURE)
    [span] = execution_spans(tel)
    assert end_attributes(span) == list(attributes.items())
    events = [(e.name, e.timestamp) for e in span.events]
    if exception is None:
        assert events == [(t.EVENT_STAGE_INPUT, to_ns(started.at))]
    else:
        assert events == [
            (t.EVENT_STAGE_INPUT, to_ns(started.at)),
            ("exception", to_ns(finished.at)),
        ]
        recorded = dict(span.events[1].attributes or {})
        assert {k: recorded[k] for k in exception} == exception
        assert ("exception.stacktrace" in recorded) is ("exception" in fields)
    assert (span.status.status_code.name, span.status.description) == code
    assert span.end_time == to_ns(finished.at)
    if hook is not None:
        assert [trid for trid, _ in hook.finished] == [started.task_run_id]


class EmptyAsNull(PayloadCapture):
    """A capture of its own kind: it writes every empty mapping as ``null``."""

    def capture_flagged(self, value: Any) -> Any:
        """``null`` for an empty mapping, else the base class's capture."""
        return super().capture_flagged(None if value == {} else value)


def test_a_capture_subclass_captures_empty_payloads_its_own_way(tel: Telemetry) -> None:
    """The remembered events of an empty payload are only for ``PayloadCapture`` itself: a
    subclass's capture writes them as it captures them."""
    first = Feed(tel, shapes_pipeline())
    first.start_run()
    end_stage(first, start_stage(first, "plan", inputs={}), outputs={})
    first.finish_run(RunStatus.SUCCESS)
    second = Feed(tel, shapes_pipeline(), capture=EmptyAsNull())
    second.start_run()
    end_stage(second, start_stage(second, "plan", inputs={}), outputs={})
    second.finish_run(RunStatus.SUCCESS)
    one, two = execution_spans(tel)
    assert [dict(e.attributes or {}) for e in one.events] == [payload_attributes("{}")] * 2
    assert [dict(e.attributes or {}) for e in two.events] == [payload_attributes("null")] * 2


@pytest.mark.parametrize("hooked", [False, True])
@pytest.mark.parametrize(
    ("fields", "extra"),
    [
        ({"peak_memory_bytes": 64}, {t.STAGE_PEAK_MEMORY: 64}),
        ({"cancel_reason": "run cancelled"}, {t.STAGE_CANCEL_REASON: "run cancelled"}),
        ({"cancel_cause": "build"}, {t.STAGE_CANCEL_CAUSE: "build"}),
        ({"exception": LookupError("kept")}, {}),
        ({"will_retry": True}, {t.STAGE_WILL_RETRY: True}),
    ],
)
def test_a_success_s_end(
    tel: Telemetry, *, hooked: bool, fields: dict[str, Any], extra: dict[str, Any]
) -> None:
    """A success's end: result, status, CPU, and what else it carries (peak memory, a cancel
    reason or cause, an exception as an event, a retry flag), the output event at the end,
    no error status; with a span hook, the same, given to the hook before it is recorded."""
    hook = RecordingHook() if hooked else None
    feed = Feed(tel, shapes_pipeline())
    feed.monitor.span_hook = hook
    feed.start_run()
    started = start_stage(feed, "plan")
    finished = end_stage(feed, started, outputs={"ok": True}, cpu_seconds=0.5, **fields)
    feed.finish_run(RunStatus.SUCCESS)
    [span] = execution_spans(tel)
    end = {
        t.CICD_TASK_RUN_RESULT: "success",
        t.STAGE_STATUS: "success",
        t.STAGE_CPU_TIME: 0.5,
        **extra,
    }
    assert end_attributes(span) == list(end.items())
    at = to_ns(finished.at)
    exception = [("exception", at)] if "exception" in fields else []
    assert [(e.name, e.timestamp) for e in span.events][1:] == [
        *exception,
        (t.EVENT_STAGE_OUTPUT, at),
    ]
    assert dict(span.events[-1].attributes or {}) == payload_attributes('{"ok":true}')
    assert span.status.status_code is StatusCode.UNSET
    if hook is not None:
        assert hook.finished == [(started.task_run_id, end)]


@pytest.mark.parametrize(
    ("count", "length", "attributes"),
    [
        (None, None, {"result": "success", "cpu": 0.25, "peak": 1024, "done": True}),
        (None, None, {"a": "again", "result": "success"}),  # "a" was set at start: moved last
        (4, None, {"result": "success", "cpu": 0.5}),  # exactly fills the room
        (4, None, {"result": "success", "cpu": 0.5, "peak": 1}),  # past it: the oldest dropped
        (None, 3, {"result": "success"}),  # a text past the length: truncated
        (None, None, {"list": ["a", "b"]}),  # a list: made a tuple
        (None, None, {"": "x", "b": 2}),  # an empty key: dropped
    ],
)
def test_end_attributes_set_as_set_attributes_sets_them(
    count: int | None, length: int | None, attributes: dict[str, Any]
) -> None:
    """``_set_redacted`` leaves a span's attributes as the SDK's ``set_attributes`` does:
    contents in order with their types, dropped count; and sets nothing on an ended span."""
    limits = SpanLimits(max_span_attributes=count, max_attribute_length=length)
    tracer = TracerProvider(span_limits=limits).get_tracer("test")

    def after(setter: Any, *, ended: bool = False) -> Any:
        span = tracer.start_span("s", attributes={"a": "1", "b": 2})
        if ended:
            span.end()
        setter(span, dict(attributes))
        held = span.attributes
        return [(k, v, type(v)) for k, v in held.items()], span.dropped_attributes

    def ours(span: Any, values: dict[str, Any]) -> None:
        _stage_spans._set_redacted(RedactingSpan(span), values)

    def sdk(span: Any, values: dict[str, Any]) -> None:
        span.set_attributes(values)

    assert after(sdk) == after(ours)
    assert after(sdk, ended=True) == after(ours, ended=True)
