"""A stage execution's span as docs/architecture.md, "Telemetry schema" states it: its name,
kind, parent, times, start attributes (the definition's, the run's, the execution's), links,
payload events, end attributes, exception and status; the same whether it is built already
redacted or walked by the redacting tracer (with a replay's span hook, or values of other
types)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.trace import Link, SpanKind, StatusCode

from pipeline_monitor_support import T0, Feed, Telemetry, end_attributes
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import StageFinished, StageStarted, TaskRunRef, task_run_id
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, OnEvent, Pipeline, Stage
from taskdaemon.pipeline.monitor import _stage_spans
from taskdaemon.pipeline.payloads import REDACTED, PayloadCapture
from taskdaemon.pipeline.span_redaction import RedactingSpan, RedactingTracer
from taskdaemon.pipeline.state import RunStatus, StageStatus

TOKEN = "ghp_" + "S7ag" * 9  # a GitHub token's shape, not a real one


class RecordingHook:
    """A replay-like span hook that feeds nothing: it records what it is given and may add an
    attribute at the start and at the end (the replay's hook adds its own)."""

    def __init__(self, start_extra: Mapping[str, Any] = {}, end_extra: Mapping[str, Any] = {}):
        self.start_extra = dict(start_extra)
        self.end_extra = dict(end_extra)
        self.started: list[tuple[str, dict[str, Any], int]] = []
        self.finished: list[tuple[str, dict[str, Any]]] = []

    def run_started(self, event: Any, attributes: dict[str, Any]) -> None:
        """Nothing to add to the run span."""

    def feeds(self, run_id: str, stage: str, instance: int) -> bool:
        """No execution is fed from a record."""
        return False

    def stage_started(
        self, event: StageStarted, attributes: dict[str, Any], links: list[Link]
    ) -> None:
        """Remember the start attributes and the number of links, then add ``start_extra``."""
        self.started.append((event.task_run_id, dict(attributes), len(links)))
        attributes.update(self.start_extra)

    def stage_finished(self, event: StageFinished, attributes: dict[str, Any]) -> None:
        """Remember the end attributes, then add ``end_extra``."""
        self.finished.append((event.task_run_id, dict(attributes)))
        attributes.update(self.end_extra)


class Attempt(int):
    """An attempt number of a type the already-redacted start is not made for (an ``int``
    subclass): the span is then walked by the tracer, with the same result."""


def _pipeline() -> Pipeline:
    return Pipeline(
        name="shapes",
        stages=(
            Stage("plan", "python", (Manual(approval_required=False),)),
            Stage(
                "build",
                "python",
                (OnCompletion("plan"), OnCondition(f'request.key == "{TOKEN}"')),
                emits=("built",),
            ),
            Stage("deploy", "python", (OnEvent("built"),)),
        ),
    )


def _payload(text: str, redacted: bool = False) -> dict[str, Any]:
    data = text.encode()
    return {
        t.PAYLOAD_JSON: text,
        t.PAYLOAD_SIZE: len(data),
        t.PAYLOAD_SHA256: hashlib.sha256(data).hexdigest(),
        t.PAYLOAD_TRUNCATED: False,
        t.PAYLOAD_REDACTED: redacted,
    }


def _started(
    feed: Feed,
    stage: str,
    *,
    attempt: int = 1,
    instance: int = 0,
    triggers: Sequence[Any] | None = None,
    event: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    fired_by: Sequence[TaskRunRef] = (),
    previous: TaskRunRef | None = None,
) -> StageStarted:
    """StageQueued is not needed for the span: a StageStarted queued 0.25 s and considered
    0.75 s before it starts, with the given fields."""
    feed.tick(1.0)
    return feed.emit(
        StageStarted(
            run_id=feed.run_id,
            pipeline=feed.pipeline.name,
            stage=stage,
            instance=instance,
            attempt=attempt,
            task_run_id=task_run_id(stage, instance, int(attempt)),
            loop="python",
            at=feed.now,
            queued_at=feed.now - 0.25,
            considered_at=feed.now - 1.0,
            inputs=dict(inputs or {}),
            fired_by=tuple(fired_by),
            previous_attempt=previous,
            triggers=tuple(
                triggers
                if triggers is not None
                else (tr.describe() for tr in feed.pipeline.stage(stage).triggers)
            ),
            event=event,
        )
    )


def _ns(seconds: float) -> int:
    whole = int(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


def _static(pipeline: Pipeline, stage: str, run_id: str) -> dict[str, Any]:
    """The definition's attributes of ``stage`` with the run id, redacted, as every one of its
    spans starts with them."""
    triggers = [tr.describe().replace(TOKEN, REDACTED) for tr in pipeline.stage(stage).triggers]
    return {
        t.CICD_PIPELINE_NAME: pipeline.name,
        t.CICD_TASK_NAME: stage,
        t.STAGE_LOOP: "python",
        t.STAGE_UPSTREAM: list(pipeline.upstream.get(stage, ())),
        t.STAGE_TRIGGERS: triggers,
        t.STAGE_TRIGGER_SPECS: None,  # compared apart: the codec's own tests pin them
        t.STAGE_TRIGGER_MODE: "any",
        t.CICD_PIPELINE_RUN_ID: run_id,
    }


def _start_attributes(span: ReadableSpan) -> list[tuple[str, Any]]:
    """The span's attributes as an ordered list (arrays as lists), the trigger specs' value
    left out."""
    return [
        (key, None if key == t.STAGE_TRIGGER_SPECS else _listed(value))
        for key, value in (span.attributes or {}).items()
    ]


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _expected_start(feed: Feed, started: StageStarted, **execution: Any) -> list[tuple[str, Any]]:
    """The start attributes: the definition's and the run's, then the execution's."""
    expected = _static(feed.pipeline, started.stage, feed.run_id)
    expected[t.CICD_TASK_RUN_ID] = started.task_run_id
    expected[t.STAGE_ATTEMPT] = int(started.attempt)
    expected[t.STAGE_INSTANCE] = started.instance
    expected[t.STAGE_QUEUE_TIME] = 0.25
    if started.attempt == 1:  # a retry waited for its backoff, not a trigger: none
        expected[t.STAGE_TRIGGER_WAIT] = 0.75
    expected[t.STAGE_QUEUED_AT] = _ns(started.queued_at)
    expected[t.STAGE_CONSIDERED_AT] = _ns(started.considered_at)
    expected.update(execution)
    return list(expected.items())


def _one_run(
    tel: Telemetry, hook: RecordingHook | None, attempt: int = 1
) -> tuple[Feed, list[StageStarted]]:
    """One run of ``_pipeline()`` with each start shape: fired triggers of the definition (one
    naming a secret) and one it does not describe, none at all, an event whose type is a text,
    one whose type is not, and an event-less start of an ``on_event`` stage."""
    feed = Feed(tel, _pipeline())
    if hook is not None:
        feed.monitor.span_hook = hook
    feed.start_run()
    a = Attempt(attempt) if attempt != 1 else 1
    starts = [_started(feed, "plan", attempt=a, inputs={"goal": "go"})]
    _end(feed, starts[-1], outputs={"plan": 1})
    starts.append(
        _started(feed, "build", attempt=a, fired_by=[TaskRunRef("plan", 0, attempt)], instance=0)
    )
    _end(feed, starts[-1])
    starts.append(
        _started(feed, "build", attempt=a, instance=1, triggers=["token=abc123", "on completion"])
    )
    _end(feed, starts[-1])
    starts.append(_started(feed, "build", attempt=a, instance=2, triggers=[]))
    _end(feed, starts[-1])
    starts.append(_started(feed, "deploy", attempt=a, event={"type": "built", "n": 1}))
    _end(feed, starts[-1])
    starts.append(_started(feed, "deploy", attempt=a, instance=1, event={"type": 7}))
    _end(feed, starts[-1])
    starts.append(_started(feed, "plan", attempt=a, instance=1, event={"kind": "x"}))
    _end(feed, starts[-1])
    starts.append(_started(feed, "deploy", attempt=a, instance=2, event={"type": "rebuilt"}))
    _end(feed, starts[-1])
    feed.finish_run(RunStatus.SUCCESS)
    return feed, starts


def _end(feed: Feed, started: StageStarted, **fields: Any) -> StageFinished:
    """``started``'s execution ends 2 s after its start (``fields``: its status and more)."""
    feed.tick(2.0)
    return feed.finish(started.stage, started.instance, started.attempt, **fields)


def _executions(tel: Telemetry) -> list[ReadableSpan]:
    """The executions' spans, in end order (not the skip spans of stages that never ran)."""
    return [
        span
        for span in tel.spans()
        if span.kind is SpanKind.INTERNAL
        and (span.attributes or {}).get(t.CICD_TASK_RUN_RESULT) != t.RESULT_SKIP
    ]


def _expected_shapes(feed: Feed, starts: list[StageStarted]) -> list[list[tuple[str, Any]]]:
    plan_triggers = [_static(feed.pipeline, "plan", "")[t.STAGE_TRIGGERS][0]]
    build_triggers = _static(feed.pipeline, "build", "")[t.STAGE_TRIGGERS]
    assert REDACTED in build_triggers[1]
    assert TOKEN not in build_triggers[1]
    fired = t.STAGE_FIRED_TRIGGERS
    kind = t.STAGE_EVENT_TYPE
    return [
        _expected_start(feed, starts[0], **{fired: plan_triggers}),
        _expected_start(feed, starts[1], **{fired: build_triggers}),
        _expected_start(feed, starts[2], **{fired: ["token=[REDACTED]", "on completion"]}),
        _expected_start(feed, starts[3]),
        _expected_start(feed, starts[4], **{fired: ["on event built"], kind: "built"}),
        _expected_start(feed, starts[5], **{fired: ["on event built"], kind: "built"}),
        _expected_start(feed, starts[6], **{fired: plan_triggers, kind: ""}),
        _expected_start(feed, starts[7], **{fired: ["on event built"], kind: "rebuilt"}),
    ]


@pytest.mark.parametrize("way", ["prepared", "walked", "hook"])
def test_start_attributes_of_each_start_shape(tel: Telemetry, way: str) -> None:
    """Each start's attributes, key by key in order, the same built already redacted, walked
    for an attempt of another int type, and walked with a span hook: the definition's
    (redacted: the trigger naming a token), the run id, the execution's ids, attempt and
    instance, its queue time and trigger wait with their two instants, the fired triggers
    (the definition's redacted form, or the text redacted), and the event's type (the start
    event's, else the stage's ``on_event`` type, else empty)."""
    hook = RecordingHook() if way == "hook" else None
    feed, starts = _one_run(tel, hook, attempt=2 if way == "walked" else 1)
    spans = _executions(tel)
    expected = _expected_shapes(feed, starts)
    assert [span.name for span in spans] == [s.stage for s in starts]
    got = [[(k, v) for k, v in _start_attributes(span) if k not in _END_KEYS] for span in spans]
    assert got == expected
    assert TOKEN not in repr([span.attributes for span in spans])
    if way == "walked":
        assert {type(span.attributes[t.STAGE_ATTEMPT]) for span in spans} <= {int, Attempt}


_END_KEYS = {t.CICD_TASK_RUN_RESULT, t.STAGE_STATUS}


@pytest.mark.parametrize("way", ["prepared", "walked", "hook"])
def test_start_span_shape_times_parent_and_input_event(tel: Telemetry, way: str) -> None:
    """A stage span is INTERNAL, a child of the run span in its trace, starts at its
    ``StageStarted`` and ends at its ``StageFinished``, carries the input payload event at its
    start and the output one at its end, and links (once) to the execution that fired it."""
    hook = RecordingHook() if way == "hook" else None
    _, starts = _one_run(tel, hook, attempt=2 if way == "walked" else 1)
    [run_span] = [span for span in tel.spans() if span.kind is SpanKind.SERVER]
    spans = _executions(tel)
    plan, build = spans[0], spans[1]
    for span, started in zip(spans, starts, strict=True):
        assert span.kind is SpanKind.INTERNAL
        assert span.parent is not None
        assert span.parent.span_id == run_span.context.span_id
        assert span.context.trace_id == run_span.context.trace_id
        assert span.start_time == _ns(started.at)
        assert span.end_time == _ns(started.at + 2.0)
    assert [(e.name, e.timestamp, dict(e.attributes or {})) for e in plan.events] == [
        (t.EVENT_STAGE_INPUT, _ns(starts[0].at), _payload('{"goal":"go"}')),
        (t.EVENT_STAGE_OUTPUT, _ns(starts[0].at + 2.0), _payload('{"plan":1}')),
    ]
    [link] = build.links
    assert link.context.span_id == plan.context.span_id
    assert dict(link.attributes or {}) == {t.LINK_RELATION: t.LINK_TRIGGERED_BY}
    assert [len(span.links) for span in spans] == [1 if s is starts[1] else 0 for s in starts]
    if hook is not None:
        assert [(trid, n) for trid, _, n in hook.started] == [
            (s.task_run_id, 1 if s is starts[1] else 0) for s in starts
        ]


def test_a_hook_s_start_and_end_attributes_are_recorded_redacted(tel: Telemetry) -> None:
    """A span hook sees the start attributes before they are recorded (the definition's, not
    yet redacted) and the end ones, and what it adds is recorded, redacted."""
    hook = RecordingHook(
        start_extra={"taskdaemon.test.start": f"token={TOKEN}"},
        end_extra={"taskdaemon.test.end": "password=hunter2"},
    )
    feed = Feed(tel, _pipeline())
    feed.monitor.span_hook = hook
    feed.start_run()
    started = _started(feed, "build")
    _end(feed, started, cpu_seconds=0.5)
    feed.finish_run(RunStatus.SUCCESS)
    [span] = _executions(tel)
    attributes = dict(span.attributes or {})
    assert attributes["taskdaemon.test.start"] == f"token={REDACTED}"
    assert attributes["taskdaemon.test.end"] == f"password={REDACTED}"
    [(trid, seen, links)] = hook.started
    assert (trid, links) == (started.task_run_id, 0)
    assert TOKEN in seen[t.STAGE_TRIGGERS][1]  # redacted only when recorded
    assert seen[t.CICD_PIPELINE_RUN_ID] == feed.run_id
    assert seen[t.STAGE_FIRED_TRIGGERS] == [
        tr.describe() for tr in _pipeline().stage("build").triggers
    ]
    assert hook.finished == [
        (
            started.task_run_id,
            {
                t.CICD_TASK_RUN_RESULT: "success",
                t.STAGE_STATUS: "success",
                t.STAGE_CPU_TIME: 0.5,
            },
        )
    ]
    assert attributes[t.STAGE_CPU_TIME] == 0.5
    assert [e.name for e in span.events] == [t.EVENT_STAGE_INPUT, t.EVENT_STAGE_OUTPUT]


def test_no_payload_events_without_capture(tel: Telemetry) -> None:
    """With payload capture off, a stage span has no input or output event, on the prepared
    and on the general way of its end."""
    feed = Feed(tel, _pipeline(), capture=PayloadCapture(enabled=False))
    feed.start_run()
    plain = _started(feed, "plan", inputs={"goal": "go"})
    _end(feed, plain, outputs={"plan": 1})
    retried = _started(feed, "build", inputs={"x": 1})
    _end(feed, retried, outputs={"y": 2}, will_retry=True)
    feed.finish_run(RunStatus.SUCCESS)
    spans = _executions(tel)
    assert [(span.name, list(span.events)) for span in spans] == [("plan", []), ("build", [])]
    assert dict(spans[1].attributes or {})[t.STAGE_WILL_RETRY] is True


def test_a_retry_links_to_its_previous_attempt(tel: Telemetry) -> None:
    """The second attempt's span links to the first's with relation ``previous_attempt``."""
    feed = Feed(tel, _pipeline())
    feed.start_run()
    first = _started(feed, "plan")
    _end(
        feed,
        first,
        status=StageStatus.FAILURE,
        error="boom",
        error_type="RuntimeError",
        will_retry=True,
    )
    second = _started(feed, "plan", attempt=2, previous=TaskRunRef("plan", 0, 1))
    _end(feed, second)
    feed.finish_run(RunStatus.SUCCESS)
    one, two = _executions(tel)
    [link] = two.links
    assert link.context.span_id == one.context.span_id
    assert dict(link.attributes or {}) == {t.LINK_RELATION: t.LINK_PREVIOUS_ATTEMPT}
    assert one.status.status_code is StatusCode.ERROR
    assert one.status.description == "boom"
    assert two.status.status_code is StatusCode.UNSET


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
    feed = Feed(tel, _pipeline())
    if hook is not None:
        feed.monitor.span_hook = hook
    feed.start_run()
    started = _started(feed, "plan", inputs={"goal": "go"})
    finished = _end(feed, started, status=status, outputs={"x": 1}, **fields)
    feed.finish_run(RunStatus.FAILURE)
    [span] = _executions(tel)
    assert end_attributes(span) == list(attributes.items())
    events = [(e.name, e.timestamp) for e in span.events]
    if exception is None:
        assert events == [(t.EVENT_STAGE_INPUT, _ns(started.at))]
    else:
        assert events == [(t.EVENT_STAGE_INPUT, _ns(started.at)), ("exception", _ns(finished.at))]
        recorded = dict(span.events[1].attributes or {})
        assert {k: recorded[k] for k in exception} == exception
        assert ("exception.stacktrace" in recorded) is ("exception" in fields)
    assert (span.status.status_code.name, span.status.description) == code
    assert span.end_time == _ns(finished.at)
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
    first = Feed(tel, _pipeline())
    first.start_run()
    _end(first, _started(first, "plan", inputs={}), outputs={})
    first.finish_run(RunStatus.SUCCESS)
    second = Feed(tel, _pipeline(), capture=EmptyAsNull())
    second.start_run()
    _end(second, _started(second, "plan", inputs={}), outputs={})
    second.finish_run(RunStatus.SUCCESS)
    one, two = _executions(tel)
    assert [dict(e.attributes or {}) for e in one.events] == [_payload("{}")] * 2
    assert [dict(e.attributes or {}) for e in two.events] == [_payload("null")] * 2


def test_the_payload_memo_is_bounded_and_keeps_only_short_whole_texts() -> None:
    """The remembered payload events hold short whole texts only (a text over 256 bytes, or
    one cut at the cap, is not kept), at most 1,024 of them: emptied when full."""
    memo = _stage_spans._payload_events
    memo.clear()
    capture = PayloadCapture(max_bytes=300)
    long_text = '{"k":"' + "x" * 250 + '"}'  # 258 bytes
    edge = '{"k":"' + "x" * 248 + '"}'  # 256 bytes: kept
    assert (len(long_text), len(edge)) == (258, 256)
    _stage_spans._payload_event(capture, {"k": "x" * 250})
    _stage_spans._payload_event(PayloadCapture(max_bytes=4), {"k": "y"})
    assert memo == {}
    _stage_spans._payload_event(capture, {"k": "x" * 248})
    assert list(memo) == [(edge, False)]
    for i in range(1, 1024):
        _stage_spans._payload_event(capture, {"i": i})
    assert len(memo) == 1024
    _stage_spans._payload_event(capture, {"i": 1})
    assert len(memo) == 1024  # known: not added
    _stage_spans._payload_event(capture, {"i": 5000})
    assert list(memo) == [('{"i":5000}', False)]
    memo.clear()


@pytest.mark.parametrize("hooked", [False, True])
def test_an_unknown_stage_s_span(tel: Telemetry, hooked: bool) -> None:
    """A start of a stage the definition does not name (the manual API allows it) still gets
    its span, named after it, with its loop, the run's and the execution's attributes."""
    feed = Feed(tel, _pipeline())
    if hooked:
        feed.monitor.span_hook = RecordingHook()
    feed.start_run()
    started = _started(feed, "extra", triggers=[])
    _end(feed, started)
    feed.finish_run(RunStatus.SUCCESS)
    [span] = _executions(tel)
    assert span.name == "extra"
    attributes = dict(span.attributes or {})
    assert attributes[t.CICD_TASK_NAME] == "extra"
    assert attributes[t.STAGE_LOOP] == "python"
    assert attributes[t.CICD_TASK_RUN_ID] == "extra.0.1"
    assert attributes[t.CICD_PIPELINE_RUN_ID] == feed.run_id
    assert span.start_time == _ns(T0 + 1.0)


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
    feed = Feed(tel, _pipeline())
    feed.monitor.span_hook = hook
    feed.start_run()
    started = _started(feed, "plan")
    finished = _end(feed, started, outputs={"ok": True}, cpu_seconds=0.5, **fields)
    feed.finish_run(RunStatus.SUCCESS)
    [span] = _executions(tel)
    end = {
        t.CICD_TASK_RUN_RESULT: "success",
        t.STAGE_STATUS: "success",
        t.STAGE_CPU_TIME: 0.5,
        **extra,
    }
    assert end_attributes(span) == list(end.items())
    at = _ns(finished.at)
    exception = [("exception", at)] if "exception" in fields else []
    assert [(e.name, e.timestamp) for e in span.events][1:] == [
        *exception,
        (t.EVENT_STAGE_OUTPUT, at),
    ]
    assert dict(span.events[-1].attributes or {}) == _payload('{"ok":true}')
    assert span.status.status_code is StatusCode.UNSET
    if hook is not None:
        assert hook.finished == [(started.task_run_id, end)]


@pytest.mark.parametrize(("value", "text"), [([], "[]"), ("", '""'), (None, "null"), (0, "0")])
def test_an_empty_value_that_is_not_a_mapping_is_captured_as_it_is(value: Any, text: str) -> None:
    """Only an empty dict or mapping proxy takes the remembered ``{}`` event: any other empty
    value is captured as its own JSON."""
    capture = PayloadCapture()
    _stage_spans._payload_events.clear()  # the memo as a fresh process has it: no ``{}`` yet
    assert dict(_stage_spans._payload_event(capture, {})) == _payload("{}")  # now it has
    assert dict(_stage_spans._payload_event(capture, value)) == _payload(text)
    assert dict(_stage_spans._payload_event(capture, MappingProxyType({}))) == _payload("{}")


def test_payload_events_share_the_memos_mappings_only() -> None:
    """A short payload's event (the memo keeps its attributes) shares one SDK mapping between
    spans; a long one's (not kept) is built for its own event and not held after."""
    tracer = RedactingTracer(TracerProvider().get_tracer("test"))
    capture = PayloadCapture(max_bytes=4096)
    short, long = {"k": "short"}, {"k": "x" * 400}
    spans = [tracer.start_span(name) for name in ("a", "b")]
    for span in spans:
        for value in (short, long):
            attributes = _stage_spans._payload_event(capture, value)
            _stage_spans._add_payload_event(span, t.EVENT_STAGE_INPUT, attributes, 1)
    (short_a, long_a), (short_b, long_b) = (
        [event.attributes for event in span.wrapped.events]  # type: ignore[attr-defined]
        for span in spans
    )
    assert short_a is short_b
    assert long_a is not long_b
    assert dict(long_a) == dict(long_b)
    kept = [entry[0] for entry in _stage_spans._PAYLOAD_EVENTS._kept.values()]
    assert all("x" * 400 not in str(mapping) for mapping in kept)


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
