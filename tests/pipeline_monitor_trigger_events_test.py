"""``trigger.evaluated`` events and stage links, built already redacted, record exactly what
redacting them as a whole records (round 15: the worker no longer walks them)."""

from __future__ import annotations

from typing import Any

from pipeline_monitor_support import Feed, Telemetry
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import StageStarted, TaskRunRef, TriggerEvaluated, task_run_id
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, Pipeline, Stage
from taskdaemon.pipeline.monitor._spans import ns
from taskdaemon.pipeline.payloads import REDACTED
from taskdaemon.pipeline.redaction import redact
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.telemetry_codec import encode_trigger

TOKEN = "ghp_" + "T3st" * 9  # a GitHub token's shape, not a real one
#: A valid stage name (lower case, digits, ``_``) that is a GitHub token's shape too.
SECRET_NAME = "ghp_" + "t3st" * 9


def _pipeline() -> Pipeline:
    return Pipeline(
        name="triggers",
        stages=(
            Stage("first", "python", (Manual(approval_required=False),)),
            Stage(
                SECRET_NAME,
                "python",
                (OnCompletion(stage="first"), OnCondition(f'request.key == "{TOKEN}"')),
            ),
        ),
    )


def _raw(event: TriggerEvaluated) -> dict[str, Any]:
    """The event's attributes as the monitor always built them, before redaction."""
    return {
        t.CICD_TASK_NAME: event.stage,
        t.TRIGGER_INDEX: event.trigger_index,
        t.TRIGGER_TYPE: event.trigger_type,
        t.TRIGGER_DESCRIPTION: event.description,
        t.TRIGGER_SATISFIED: event.satisfied,
        t.TRIGGER_STAGE_READY: event.stage_ready,
        t.TRIGGER_DETAIL: event.detail,
    }


def _events(pipeline: Pipeline, run_id: str, at: float) -> list[TriggerEvaluated]:
    described = [trigger.describe() for trigger in pipeline.stage(SECRET_NAME).triggers]
    cases: list[tuple[str, int, str, str, str]] = [
        # (stage, index, type, description, detail)
        ("first", 0, "manual", "manual", "run started"),
        (SECRET_NAME, 0, "on_completion", described[0], "first succeeded"),
        (SECRET_NAME, 1, "on_condition", described[1], f"value: {TOKEN!r}"),
        (SECRET_NAME, 1, "on_condition", f"not the definition's {TOKEN}", "value: False"),
        (SECRET_NAME, 7, "on_condition", described[1], "an index the stage lacks"),
        (SECRET_NAME, -1, "on_condition", described[1], "a negative index"),
        ("first", 0, f"kind {TOKEN}", described[1], f"password={TOKEN}"),
        ("not-defined", 0, "manual", described[0], "a stage the definition lacks"),
        (f"unknown {TOKEN}", 0, "manual", "manual", "Bearer abcdefgh12345678"),
    ]
    return [
        TriggerEvaluated(
            run_id=run_id,
            pipeline=pipeline.name,
            stage=stage,
            trigger_index=index,
            trigger_type=kind,
            description=description,
            satisfied=index % 2 == 0,
            stage_ready=index == 0,
            at=at,
            detail=detail,
        )
        for stage, index, kind, description, detail in cases
    ]


def test_trigger_events_record_their_attributes_redacted_as_a_whole(
    tel: Telemetry,
) -> None:
    """Every ``trigger.evaluated`` event holds ``redact`` of its whole attribute mapping, keys
    in the same order, whether its name and description are the definition's or not: a
    secret-shaped stage name, description, type or detail never reaches the span."""
    pipeline = _pipeline()
    feed = Feed(tel, pipeline)
    run_id = feed.start_run()
    events = _events(pipeline, run_id, feed.now)
    for event in events:
        feed.emit(event)
    feed.finish_run(RunStatus.SUCCESS)
    (run_span,) = tel.by_name(t.run_span_name(pipeline.name))
    recorded = [e for e in run_span.events if e.name == t.EVENT_TRIGGER_EVALUATED]
    assert len(recorded) == len(events)
    for event, span_event in zip(events, recorded, strict=True):
        attributes = dict(span_event.attributes or {})
        expected = redact(_raw(event))
        assert attributes == expected
        assert list(attributes) == list(expected)
        assert TOKEN not in repr(attributes)
        assert SECRET_NAME not in repr(attributes)
    assert recorded[1].attributes is not None
    assert recorded[1].attributes[t.CICD_TASK_NAME] == REDACTED


def test_trigger_events_on_an_open_stage_span_are_redacted(tel: Telemetry) -> None:
    """An evaluation while the stage's span is open goes on that span, redacted as a whole."""
    pipeline = _pipeline()
    feed = Feed(tel, pipeline)
    run_id = feed.start_run()
    feed.start(SECRET_NAME)
    event = _events(pipeline, run_id, feed.now)[2]
    feed.emit(event)
    feed.finish(SECRET_NAME)
    feed.finish_run(RunStatus.SUCCESS)
    (stage_span,) = [s for s in tel.spans() if s.parent is not None and s.events]
    (span_event,) = [e for e in stage_span.events if e.name == t.EVENT_TRIGGER_EVALUATED]
    assert dict(span_event.attributes or {}) == redact(_raw(event))


def test_stage_links_keep_their_relations_and_order(tel: Telemetry) -> None:
    """A retried stage fired by another links to its trigger, then to its previous attempt,
    each link with its relation (one redacted mapping serves every link)."""
    pipeline = _pipeline()
    feed = Feed(tel, pipeline)
    feed.start_run()
    feed.start("first")
    feed.finish("first")
    fired_by = [TaskRunRef("first", 0, 1)]
    feed.start(SECRET_NAME, fired_by=fired_by)
    feed.finish(SECRET_NAME, status=StageStatus.FAILURE, will_retry=True)
    feed.start(SECRET_NAME, attempt=2, fired_by=fired_by)
    feed.finish(SECRET_NAME, attempt=2)
    feed.finish_run(RunStatus.SUCCESS)
    linked = [span for span in tel.spans() if span.links]
    assert len(linked) == 2
    first = next(s for s in tel.spans() if s.name == t.stage_span_name("first"))
    once, twice = sorted(linked, key=lambda span: span.start_time or 0)
    relation = {t.LINK_RELATION: t.LINK_TRIGGERED_BY}
    assert [(link.context.span_id, dict(link.attributes or {})) for link in once.links] == [
        (first.context.span_id, relation)
    ]
    assert [(link.context.span_id, dict(link.attributes or {})) for link in twice.links] == [
        (first.context.span_id, relation),
        (once.context.span_id, {t.LINK_RELATION: t.LINK_PREVIOUS_ATTEMPT}),
    ]


def _started(
    feed: Feed, stage: str, instance: int, triggers: tuple[str, ...], event: Any
) -> StageStarted:
    return StageStarted(
        run_id=feed.run_id,
        pipeline=feed.pipeline.name,
        stage=stage,
        instance=instance,
        attempt=1,
        task_run_id=task_run_id(stage, instance, 1),
        loop="python",
        at=feed.now + 0.25,
        queued_at=feed.now,
        considered_at=feed.now - 0.5,
        inputs={},
        triggers=triggers,
        event=event,
    )


def test_stage_span_start_attributes_are_the_whole_mapping_redacted(
    tel: Telemetry,
) -> None:
    """A stage span's name and start attributes are ``redact`` of what they always were, in
    the same order: a secret-shaped stage name, fired trigger (the definition's or not) or
    event type never reaches the span."""
    pipeline = _pipeline()
    feed = Feed(tel, pipeline)
    run_id = feed.start_run()
    static = pipeline.stage(SECRET_NAME)
    described = tuple(trigger.describe() for trigger in static.triggers)
    cases = [
        (SECRET_NAME, described, None),
        (SECRET_NAME, (described[1], f"not the definition's {TOKEN}"), {"type": f"t.{TOKEN}"}),
        (SECRET_NAME + "0", (f"fired {TOKEN}",), {"type": 7}),
    ]
    started = [
        _started(feed, stage, instance, fired, event)
        for instance, (stage, fired, event) in enumerate(cases)
    ]
    for event in started:
        feed.emit(event)
    feed.finish_run(RunStatus.SUCCESS)
    spans = {s.attributes[t.CICD_TASK_RUN_ID]: s for s in tel.spans() if s.parent}
    for event in started:
        definition = pipeline.stage(event.stage) if event.stage == SECRET_NAME else None
        raw: dict[str, Any] = {
            t.CICD_PIPELINE_NAME: pipeline.name,
            t.CICD_TASK_NAME: event.stage,
            t.STAGE_LOOP: "python",
            t.STAGE_UPSTREAM: list(pipeline.upstream.get(event.stage, ())),
            t.STAGE_TRIGGERS: list(described) if definition else [],
            t.STAGE_TRIGGER_SPECS: (
                [encode_trigger(trigger) for trigger in definition.triggers] if definition else []
            ),
            t.STAGE_TRIGGER_MODE: str(definition.trigger_mode) if definition else "any",
            t.CICD_PIPELINE_RUN_ID: run_id,
            t.CICD_TASK_RUN_ID: event.task_run_id,
            t.STAGE_ATTEMPT: 1,
            t.STAGE_INSTANCE: event.instance,
            t.STAGE_QUEUE_TIME: 0.25,
            t.STAGE_TRIGGER_WAIT: 0.5,
            t.STAGE_QUEUED_AT: ns(event.queued_at),
            t.STAGE_CONSIDERED_AT: ns(event.considered_at),
            t.STAGE_FIRED_TRIGGERS: list(event.triggers),
        }
        if event.event is not None:
            kind = event.event["type"]
            raw[t.STAGE_EVENT_TYPE] = kind if isinstance(kind, str) else ""
        # The SDK keeps a sequence as a tuple.
        expected = {k: tuple(v) if type(v) is list else v for k, v in redact(raw).items()}
        span = spans[redact(event.task_run_id)]
        attributes = dict(span.attributes or {})
        assert list(attributes)[: len(expected)] == list(expected)
        assert {key: attributes[key] for key in expected} == expected
        assert span.name == redact(event.stage)
        assert TOKEN not in repr(attributes)
        assert SECRET_NAME not in repr(attributes) + span.name
