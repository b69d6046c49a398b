"""A stage execution's span as docs/architecture.md, "Telemetry schema" states it: its name,
kind, parent, times, start attributes (the definition's, the run's, the execution's), links,
payload events and status; the same whether it is built already redacted or walked by the
redacting tracer (with a replay's span hook, or values of other types). Its ends:
``pipeline_monitor_stage_spans_ends_test.py``."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from pipeline_monitor_stage_spans_support import (
    TOKEN,
    RecordingHook,
    end_stage,
    execution_spans,
    payload_attributes,
    shapes_pipeline,
    start_stage,
    to_ns,
)
from pipeline_monitor_support import T0, Feed, Telemetry
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import StageStarted, TaskRunRef
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.payloads import REDACTED
from taskdaemon.pipeline.state import RunStatus, StageStatus


class Attempt(int):
    """An attempt number of a type the already-redacted start is not made for (an ``int``
    subclass): the span is then walked by the tracer, with the same result."""


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
    expected[t.STAGE_QUEUED_AT] = to_ns(started.queued_at)
    expected[t.STAGE_CONSIDERED_AT] = to_ns(started.considered_at)
    expected.update(execution)
    return list(expected.items())


def _one_run(
    tel: Telemetry, hook: RecordingHook | None, attempt: int = 1
) -> tuple[Feed, list[StageStarted]]:
    """One run of ``shapes_pipeline()`` with each start shape: fired triggers of the definition (one
    naming a secret) and one it does not describe, none at all, an event whose type is a text,
    one whose type is not, and an event-less start of an ``on_event`` stage."""
    feed = Feed(tel, shapes_pipeline())
    if hook is not None:
        feed.monitor.span_hook = hook
    feed.start_run()
    a = Attempt(attempt) if attempt != 1 else 1
    starts = [start_stage(feed, "plan", attempt=a, inputs={"goal": "go"})]
    end_stage(feed, starts[-1], outputs={"plan": 1})
    starts.append(
        start_stage(feed, "build", attempt=a, fired_by=[TaskRunRef("plan", 0, attempt)], instance=0)
    )
    end_stage(feed, starts[-1])
    starts.append(
        start_stage(
            feed, "build", attempt=a, instance=1, triggers=["token=abc123", "on completion"]
        )
    )
    end_stage(feed, starts[-1])
    starts.append(start_stage(feed, "build", attempt=a, instance=2, triggers=[]))
    end_stage(feed, starts[-1])
    starts.append(start_stage(feed, "deploy", attempt=a, event={"type": "built", "n": 1}))
    end_stage(feed, starts[-1])
    starts.append(start_stage(feed, "deploy", attempt=a, instance=1, event={"type": 7}))
    end_stage(feed, starts[-1])
    starts.append(start_stage(feed, "plan", attempt=a, instance=1, event={"kind": "x"}))
    end_stage(feed, starts[-1])
    starts.append(start_stage(feed, "deploy", attempt=a, instance=2, event={"type": "rebuilt"}))
    end_stage(feed, starts[-1])
    feed.finish_run(RunStatus.SUCCESS)
    return feed, starts


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
    spans = execution_spans(tel)
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
    spans = execution_spans(tel)
    plan, build = spans[0], spans[1]
    for span, started in zip(spans, starts, strict=True):
        assert span.kind is SpanKind.INTERNAL
        assert span.parent is not None
        assert span.parent.span_id == run_span.context.span_id
        assert span.context.trace_id == run_span.context.trace_id
        assert span.start_time == to_ns(started.at)
        assert span.end_time == to_ns(started.at + 2.0)
    assert [(e.name, e.timestamp, dict(e.attributes or {})) for e in plan.events] == [
        (t.EVENT_STAGE_INPUT, to_ns(starts[0].at), payload_attributes('{"goal":"go"}')),
        (t.EVENT_STAGE_OUTPUT, to_ns(starts[0].at + 2.0), payload_attributes('{"plan":1}')),
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
    feed = Feed(tel, shapes_pipeline())
    feed.monitor.span_hook = hook
    feed.start_run()
    started = start_stage(feed, "build")
    end_stage(feed, started, cpu_seconds=0.5)
    feed.finish_run(RunStatus.SUCCESS)
    [span] = execution_spans(tel)
    attributes = dict(span.attributes or {})
    assert attributes["taskdaemon.test.start"] == f"token={REDACTED}"
    assert attributes["taskdaemon.test.end"] == f"password={REDACTED}"
    [(trid, seen, links)] = hook.started
    assert (trid, links) == (started.task_run_id, 0)
    assert TOKEN in seen[t.STAGE_TRIGGERS][1]  # redacted only when recorded
    assert seen[t.CICD_PIPELINE_RUN_ID] == feed.run_id
    assert seen[t.STAGE_FIRED_TRIGGERS] == [
        tr.describe() for tr in shapes_pipeline().stage("build").triggers
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


def test_a_retry_links_to_its_previous_attempt(tel: Telemetry) -> None:
    """The second attempt's span links to the first's with relation ``previous_attempt``."""
    feed = Feed(tel, shapes_pipeline())
    feed.start_run()
    first = start_stage(feed, "plan")
    end_stage(
        feed,
        first,
        status=StageStatus.FAILURE,
        error="boom",
        error_type="RuntimeError",
        will_retry=True,
    )
    second = start_stage(feed, "plan", attempt=2, previous=TaskRunRef("plan", 0, 1))
    end_stage(feed, second)
    feed.finish_run(RunStatus.SUCCESS)
    one, two = execution_spans(tel)
    [link] = two.links
    assert link.context.span_id == one.context.span_id
    assert dict(link.attributes or {}) == {t.LINK_RELATION: t.LINK_PREVIOUS_ATTEMPT}
    assert one.status.status_code is StatusCode.ERROR
    assert one.status.description == "boom"
    assert two.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("hooked", [False, True])
def test_an_unknown_stage_s_span(tel: Telemetry, hooked: bool) -> None:
    """A start of a stage the definition does not name (the manual API allows it) still gets
    its span, named after it, with its loop, the run's and the execution's attributes."""
    feed = Feed(tel, shapes_pipeline())
    if hooked:
        feed.monitor.span_hook = RecordingHook()
    feed.start_run()
    started = start_stage(feed, "extra", triggers=[])
    end_stage(feed, started)
    feed.finish_run(RunStatus.SUCCESS)
    [span] = execution_spans(tel)
    assert span.name == "extra"
    attributes = dict(span.attributes or {})
    assert attributes[t.CICD_TASK_NAME] == "extra"
    assert attributes[t.STAGE_LOOP] == "python"
    assert attributes[t.CICD_TASK_RUN_ID] == "extra.0.1"
    assert attributes[t.CICD_PIPELINE_RUN_ID] == feed.run_id
    assert span.start_time == to_ns(T0 + 1.0)
