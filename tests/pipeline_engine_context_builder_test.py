"""The engine's fast StageContext builder makes ordinary StageContexts (engine/_context_builder)."""

from __future__ import annotations

import dataclasses

import pytest

from taskdaemon.pipeline.engine._context_builder import new_context
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


def test_the_leading_fields_are_taken_by_position() -> None:
    # The engine passes run_id and pipeline by position (engine/_attempt.py).
    fields = _fields()
    built = new_context(fields.pop("run_id"), fields.pop("pipeline"), **fields)
    assert built == StageContext(**_fields())  # type: ignore[arg-type]
    assert (built.run_id, built.pipeline) == ("r" * 32, "p")
