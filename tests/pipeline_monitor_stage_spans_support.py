"""A stage execution's span made from engine records fed by hand (``pipeline_monitor_support``'s
``Feed``): the records, a pipeline of each trigger shape, a replay-like span hook, and what the
spans hold, shared by the start, end and payload tests of ``monitor/_stage_spans``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link, SpanKind

from pipeline_monitor_support import Feed, Telemetry
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import StageFinished, StageStarted, TaskRunRef, task_run_id
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, OnEvent, Pipeline, Stage

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

    def stage_input(self, event: StageStarted) -> Mapping[str, Any] | None:
        """No recorded inputs to record in place of the execution's own."""
        return None

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


def shapes_pipeline() -> Pipeline:
    """Three stages of every trigger shape the spans describe: a manual one without approval,
    a completion with a condition naming ``TOKEN``, and an event."""
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


def payload_attributes(text: str, redacted: bool = False) -> dict[str, Any]:
    """A payload event's attributes for a whole JSON ``text``."""
    data = text.encode()
    return {
        t.PAYLOAD_JSON: text,
        t.PAYLOAD_SIZE: len(data),
        t.PAYLOAD_SHA256: hashlib.sha256(data).hexdigest(),
        t.PAYLOAD_TRUNCATED: False,
        t.PAYLOAD_REDACTED: redacted,
    }


def start_stage(
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


def to_ns(seconds: float) -> int:
    """``seconds`` as the nanoseconds a span's times are in."""
    whole = int(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


def end_stage(feed: Feed, started: StageStarted, **fields: Any) -> StageFinished:
    """``started``'s execution ends 2 s after its start (``fields``: its status and more)."""
    feed.tick(2.0)
    return feed.finish(started.stage, started.instance, started.attempt, **fields)


def execution_spans(tel: Telemetry) -> list[ReadableSpan]:
    """The executions' spans, in end order (not the skip spans of stages that never ran)."""
    return [
        span
        for span in tel.spans()
        if span.kind is SpanKind.INTERNAL
        and (span.attributes or {}).get(t.CICD_TASK_RUN_RESULT) != t.RESULT_SKIP
    ]
