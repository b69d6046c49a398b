"""The definition hash's stage payload: the same JSON as ``dataclasses.asdict`` gives."""

from __future__ import annotations

import json

from taskdaemon.pipeline.model import (
    Backoff,
    InputMapping,
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    OutputMapping,
    RetryPolicy,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.record_fields import as_dict
from taskdaemon.pipeline.stage_payload import stage_payload as _stage_payload


def _asdict_payload(stage: Stage) -> dict[str, object]:
    payload = as_dict(stage)
    payload["triggers"] = [{t.kind: as_dict(t)} for t in stage.triggers]
    return payload


def test_stage_payload_matches_asdict_for_every_field_kind() -> None:
    """A stage using every field (nested retry policy, input and output mappings, each trigger
    kind, enums, None) serialises exactly as asdict's payload did, so no hash changes."""
    full = Stage(
        name="build",
        loop="python",
        triggers=(
            Manual(approval_required=True, timeout=60.0),
            OnCompletion(stage="plan", success_only=False),
            OnEvent(type="spec.ready", filter="event.ok"),
            OnCondition(expression="true"),
        ),
        trigger_mode=TriggerMode.ALL,
        inputs=(InputMapping("goal", "request.goal"), InputMapping("n", "1", required=False)),
        outputs=(OutputMapping("out", "result.x"),),
        parallel_instances=3,
        timeout=2.5,
        retry=RetryPolicy(max_attempts=3, backoff=Backoff(initial=0.5, factor=3.0, max=9.0)),
        emits=("done",),
        command=None,
        handler="m:f",
        description="all of it",
    )
    bare = Stage(name="bare", loop="command", triggers=(Manual(),), command="true")
    for stage in (full, bare):
        expected = json.dumps(_asdict_payload(stage), sort_keys=True, default=str)
        assert expected == json.dumps(_stage_payload(stage), sort_keys=True, default=str)
