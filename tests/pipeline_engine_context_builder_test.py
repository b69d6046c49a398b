"""The engine's fast StageContext builder makes ordinary StageContexts (engine/_context_builder)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from taskdaemon.pipeline.engine._context_builder import MakeStageContext, new_context
from taskdaemon.pipeline.stage_context import StageContext


def _fields() -> dict[str, object]:
    return {
        "run_id": "r" * 32,
        "pipeline": "p",
        "stage": "s",
        "loop": "python",
        "instance": 0,
        "attempt": 2,
        "inputs": {"a": 1},
        "publish": print,
        "report_process": print,
        "report_usage": print,
        "report_cpu": print,
        "timeout": 1.5,
        "event": None,
        "environment": {},
        "workspace": "/tmp/w",
        "command": None,
    }


def test_the_twin_builder_is_in_use() -> None:
    assert new_context is not StageContext


def test_a_built_context_is_a_stage_context_equal_to_the_dataclass_one() -> None:
    built = new_context(**_fields())
    assert type(built) is StageContext
    assert built == StageContext(**_fields())  # type: ignore[arg-type]
    assert dataclasses.replace(built, attempt=3).attempt == 3
    assert {f.name: getattr(built, f.name) for f in dataclasses.fields(built)} == _fields()


def test_a_built_context_is_frozen() -> None:
    built = new_context(**_fields())
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.stage = "other"  # type: ignore[misc]


def test_every_field_is_taken_by_position_in_its_order() -> None:
    # The engine passes every field by position (engine/_attempt.py).
    built = new_context(*_fields().values())  # type: ignore[call-arg]
    assert built == StageContext(**_fields())  # type: ignore[arg-type]
    assert {f.name: getattr(built, f.name) for f in dataclasses.fields(built)} == _fields()


def test_the_protocol_has_the_builder_s_parameters() -> None:
    def shape(function: object, skip_self: bool) -> list[tuple[str, object]]:
        found = list(inspect.signature(function).parameters.values())  # type: ignore[arg-type]
        return [(p.name, p.kind) for p in found[1 if skip_self else 0 :]]

    assert shape(MakeStageContext.__call__, True) == shape(new_context, False)
    assert [name for name, _kind in shape(new_context, False)] == list(_fields())
