"""The engine's record makers: the protocols type checkers see are the makers' real
parameters, and a maker with positional fields builds the record its class builds."""

from __future__ import annotations

import inspect

import pytest

from taskdaemon.pipeline.engine import _makers
from taskdaemon.pipeline.events import StageFinished, StageStarted, TaskRunRef
from taskdaemon.pipeline.state import StageStatus


def _shape(function: object, skip_self: bool) -> list[tuple[str, object, bool]]:
    parameters = list(inspect.signature(function).parameters.values())  # type: ignore[arg-type]
    if skip_self:
        parameters = parameters[1:]
    return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in parameters]


@pytest.mark.parametrize(
    ("protocol", "made", "record"),
    [
        (_makers.MakeStageStarted, _makers.stage_started, StageStarted),
        (_makers.MakeStageFinished, _makers.stage_finished, StageFinished),
    ],
)
def test_a_makers_protocol_has_its_real_parameters(
    protocol: type, made: object, record: type
) -> None:
    assert _shape(protocol.__call__, skip_self=True) == _shape(made, skip_self=False)
    names = [name for name, _kind, _required in _shape(made, skip_self=False)]
    assert names == [f.name for f in record.__record_fields__]  # type: ignore[attr-defined]


def test_the_positional_makers_build_the_records_their_classes_build() -> None:
    ref = TaskRunRef("a", 0, 1)
    started = _makers.stage_started(
        "r", "p", stage="s", instance=1, attempt=2, task_run_id="s.1.2", loop="python",
        at=3.0, queued_at=2.0, considered_at=1.0, inputs={"x": 1}, fired_by=(ref,),
        previous_attempt=TaskRunRef("s", 1, 1), triggers=("t",), event={"e": 1}, paused=0.5,
    )  # fmt: skip
    assert type(started) is StageStarted
    assert started == StageStarted(
        run_id="r", pipeline="p", stage="s", instance=1, attempt=2, task_run_id="s.1.2",
        loop="python", at=3.0, queued_at=2.0, considered_at=1.0, inputs={"x": 1},
        fired_by=(ref,), previous_attempt=TaskRunRef("s", 1, 1), triggers=("t",),
        event={"e": 1}, paused=0.5,
    )  # fmt: skip
    finished = _makers.stage_finished(
        "r", "p", "s", 1, attempt=2, task_run_id="s.1.2", status=StageStatus.FAILURE, at=4.0
    )
    assert finished == StageFinished(
        run_id="r", pipeline="p", stage="s", instance=1, attempt=2, task_run_id="s.1.2",
        status=StageStatus.FAILURE, at=4.0,
    )  # fmt: skip
    assert finished.outputs == {}
    assert (
        finished.outputs
        is not _makers.stage_finished(
            "r", "p", "s", 1, attempt=2, task_run_id="s.1.2", status=StageStatus.FAILURE, at=4.0
        ).outputs
    )  # the default factory runs for each record
    with pytest.raises(TypeError):
        _makers.stage_finished(run_id="r", pipeline="p", stage="s", instance=1)  # type: ignore[call-arg]
