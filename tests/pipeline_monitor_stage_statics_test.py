"""``monitor._books.pipeline_info``'s per-stage static attributes: their keys in order and their
values, for stages of no, one and several triggers."""

from __future__ import annotations

from typing import Any

from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, OnEvent, Pipeline, Stage
from taskdaemon.pipeline.monitor._books import pipeline_info

PIPELINE = Pipeline(
    name="p",
    stages=(
        Stage("a", "python", (Manual(approval_required=False),), handler="m:f"),
        Stage("b", "command", (), command="true"),
        Stage(
            "c",
            "python",
            (OnCompletion(stage="a"), OnEvent(type="e", filter="x"), OnCondition("request.x == 1")),
            handler="m:f",
        ),
        Stage("d", "python", (OnCompletion(stage="c", success_only=False),), handler="m:f"),
    ),
)


def _static(
    name: str, loop: str, upstream: list[str], triggers: list[str], specs: list[str]
) -> Any:
    return [
        ("cicd.pipeline.name", "p"),
        ("cicd.pipeline.task.name", name),
        ("taskdaemon.stage.loop", loop),
        ("taskdaemon.stage.upstream", upstream),
        ("taskdaemon.stage.triggers", triggers),
        ("taskdaemon.stage.trigger_specs", specs),
        ("taskdaemon.stage.trigger_mode", "any"),
    ]


EXPECTED = {
    "a": _static("a", "python", [], ["on run start"], ['["manual",false,null]']),
    "b": _static("b", "command", [], [], []),
    "c": _static(
        "c",
        "python",
        ["a"],
        ["on completion of a", "on event e if x", "on condition request.x == 1"],
        ['["on_completion","a",true]', '["on_event","e","x"]', '["on_condition","request.x == 1"]'],
    ),
    "d": _static(
        "d", "python", ["c"], ["on completion of c (any result)"], ['["on_completion","c",false]']
    ),
}


def test_each_stage_s_static_attributes_in_order() -> None:
    info = pipeline_info(PIPELINE)
    assert list(info.stages) == ["a", "b", "c", "d"]
    for name, stage in info.stages.items():
        assert list(stage.static.items()) == EXPECTED[name], name
        assert list(stage.redacted_static.items()) == EXPECTED[name], name
        for value in stage.static.values():
            assert type(value) in (str, list), name
    found = {name: (s.loop, s.is_command, s.event_type) for name, s in info.stages.items()}
    assert found == {
        "a": ("python", False, None),
        "b": ("command", True, None),
        "c": ("python", False, "e"),
        "d": ("python", False, None),
    }
