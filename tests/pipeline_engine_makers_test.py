"""The engine's record makers: the protocols type checkers see are the makers' real
parameters, and each maker, given every field by position, builds the record its class builds
from the same fields by keyword."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from taskdaemon.pipeline.engine import _makers
from taskdaemon.pipeline.events import (
    StageFinished,
    StageQueued,
    StageStarted,
    StageWaiting,
    TaskRunRef,
    TriggerEvaluated,
)
from taskdaemon.pipeline.state import StageStatus

_MAKERS = [
    (_makers.MakeStageWaiting, _makers.stage_waiting, StageWaiting),
    (_makers.MakeTriggerEvaluated, _makers.trigger_evaluated, TriggerEvaluated),
    (_makers.MakeStageQueued, _makers.stage_queued, StageQueued),
    (_makers.MakeStageStarted, _makers.stage_started, StageStarted),
    (_makers.MakeStageFinished, _makers.stage_finished, StageFinished),
]

# A value for every field of the five records, each one distinct from its neighbours of the
# same type: a maker that stored a field in another's place builds another record.
_VALUES: dict[str, Any] = {
    "run_id": "r" * 32,
    "pipeline": "p",
    "stage": "s",
    "instance": 1,
    "attempt": 2,
    "task_run_id": "s.1.2",
    "loop": "python",
    "at": 4.0,
    "queued_at": 3.0,
    "considered_at": 2.0,
    "inputs": {"x": 1},
    "fired_by": (TaskRunRef("a", 0, 1),),
    "previous_attempt": TaskRunRef("s", 1, 1),
    "triggers": ("t",),
    "event": {"e": 1},
    "paused": 0.5,
    "trigger_index": 3,
    "trigger_type": "on_completion",
    "description": "on_completion a",
    "satisfied": True,
    "stage_ready": False,
    "detail": "a succeeded",
    "values": {"stages": {}},
    "status": StageStatus.FAILURE,
    "outputs": {"y": 2},
    "error": "broke",
    "error_type": "RuntimeError",
    "exception": RuntimeError("broke"),
    "will_retry": True,
    "cpu_seconds": 0.25,
    "peak_memory_bytes": 1024,
    "cancel_reason": "stage 'a' failed",
    "cancel_cause": "a",
}


def _shape(function: object, skip_self: bool) -> list[tuple[str, object, bool]]:
    parameters = list(inspect.signature(function).parameters.values())  # type: ignore[arg-type]
    if skip_self:
        parameters = parameters[1:]
    return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in parameters]


@pytest.mark.parametrize(("protocol", "made", "record"), _MAKERS)
def test_a_makers_protocol_has_its_real_parameters(
    protocol: type, made: object, record: type
) -> None:
    assert _shape(protocol.__call__, skip_self=True) == _shape(made, skip_self=False)
    names = [name for name, _kind, _required in _shape(made, skip_self=False)]
    assert names == [f.name for f in record.__record_fields__]  # type: ignore[attr-defined]
    kinds = {kind for _name, kind, _required in _shape(made, skip_self=False)}
    assert {inspect.Parameter.POSITIONAL_ONLY} == kinds


@pytest.mark.parametrize(("protocol", "made", "record"), _MAKERS)
def test_a_maker_builds_the_record_its_class_builds(
    protocol: type, made: Any, record: type
) -> None:
    names = [f.name for f in record.__record_fields__]  # type: ignore[attr-defined]
    built = made(*(_VALUES[name] for name in names))
    assert type(built) is record
    expected = record(**{name: _VALUES[name] for name in names})
    assert built == expected
    for name in names:  # equality may skip a field (``compare=False``): each one, as stored
        assert getattr(built, name) is getattr(expected, name), name


def test_a_maker_applies_the_records_defaults() -> None:
    finished = _makers.stage_finished("r", "p", "s", 1, 2, "s.1.2", StageStatus.FAILURE, 4.0)
    assert finished == StageFinished(
        run_id="r", pipeline="p", stage="s", instance=1, attempt=2, task_run_id="s.1.2",
        status=StageStatus.FAILURE, at=4.0,
    )  # fmt: skip
    assert finished.outputs == {}
    again = _makers.stage_finished("r", "p", "s", 1, 2, "s.1.2", StageStatus.FAILURE, 4.0)
    assert finished.outputs is not again.outputs  # the default factory runs for each record
    evaluated = _makers.trigger_evaluated("r", "p", "s", 0, "manual", "manual", True, True, 1.0)
    assert ("", None) == (evaluated.detail, evaluated.values)
    with pytest.raises(TypeError):
        _makers.stage_finished(run_id="r", pipeline="p", stage="s", instance=1)  # type: ignore[call-arg]
