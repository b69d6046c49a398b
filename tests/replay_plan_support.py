"""What the replay plan's tests share: a recorded run built by hand from executions, values
(whole or cut on the way), events, and the plan's fed outputs and missing values as plain data."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline_replay_support import FLOW
from taskdaemon.pipeline.definition import sha256_text
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.replay.plan import (
    MissingValue,
)
from taskdaemon.pipeline.replay.record import (
    RecordedEvent,
    RecordedExecution,
    RecordedRun,
    RecordedValue,
)

RUN = "a" * 32
REDACTED = "[REDACTED]"


def recorded_value(value: Any) -> RecordedValue:
    return RecordedValue(json.dumps(value))


def cut_value(value: Any) -> RecordedValue:
    """``value`` as a backend that cut its text recorded it: the hash is the whole value's."""
    text = json.dumps(value)
    return RecordedValue(text[:5], size=len(text), sha256=sha256_text(text))


def recorded_event(event_type: str, event_id: int, payload: RecordedValue) -> RecordedEvent:
    return RecordedEvent(event_type, event_id, None, payload, 0)


def ran(
    name: str,
    status: str = "success",
    *,
    instance: int = 0,
    attempt: int = 1,
    outputs: RecordedValue | str | None = "default",
    events: Sequence[RecordedEvent] = (),
) -> RecordedExecution:
    """An execution of ``name``; its outputs ``{NAME_out: instance}`` unless given (None: the
    span recorded none)."""
    return RecordedExecution(
        name,
        instance,
        attempt,
        status,
        "s" * 16,
        0,
        1,
        None,
        recorded_value({f"{name}_out": instance}) if isinstance(outputs, str) else outputs,
        tuple(events),
        None,
    )


def recorded_run(
    *executions: RecordedExecution,
    flow: Pipeline = FLOW,
    definition: RecordedValue | str | None = "recorded",
    request: RecordedValue | None = None,
) -> RecordedRun:
    by_stage: dict[str, tuple[RecordedExecution, ...]] = {}
    for execution in executions:
        by_stage[execution.stage] = (*by_stage.get(execution.stage, ()), execution)
    if definition == "recorded":
        text = flow.canonical_json
        definition = RecordedValue(text, size=len(text), sha256=sha256_text(text))
    assert not isinstance(definition, str)
    return RecordedRun(
        run_id=RUN,
        pipeline=flow.name,
        schema_version=3,
        status="failure",
        definition=definition,
        definition_hash=flow.definition_hash,
        request=request if request is not None else recorded_value({"goal": "g"}),
        executions=by_stage,
    )


def fed_outputs(plan_fed: Mapping[str, Mapping[int, Any]]) -> dict[str, dict[int, Any]]:
    return {
        name: {instance: dict(fed.outputs) for instance, fed in instances.items()}
        for name, instances in plan_fed.items()
    }


def missing_rows(*missing: MissingValue) -> list[tuple[str, str, str]]:
    return [(m.what, m.problem, m.supply) for m in missing]
