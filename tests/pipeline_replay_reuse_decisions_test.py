"""``InstanceReuse`` in this process (``replay/reuse.py``): a candidate is reused only when the
sha256 of its item and of its inputs are the recorded ones, each other candidate runs again
with the reason said, and a decision, once made, stands. ``pipeline_replay_reuse_test.py``
checks the same through ``taskdaemon`` processes, which mutation testing cannot credit, and
``pipeline_replay_reuse_triggers_test.py`` an instance no event made."""

from __future__ import annotations

from typing import Any

import pytest

from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.events import RunStarted, StageStarted
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.replay.plan import FedExecution, ReplayPlan
from taskdaemon.pipeline.replay.record import RecordedExecution, RecordedRun, RecordedValue
from taskdaemon.pipeline.replay.reuse import InstanceReuse

PIPELINE = parse_pipeline(
    "name: p\nstages:\n"
    "  - {name: c, handler: 'm:f', triggers: [{manual: {approval_required: false}}]}\n"
)
ITEM = {"n": 1}
INPUTS = {"scale": 2}


def _trusted(named: str) -> str:
    """The note that ends the replay when it reused the instances ``named``."""
    return (
        f"reused {named} from run old on their item and inputs alone: the files they read were "
        "not compared (--rerun-all runs them again)"
    )


def _sha(value: Any) -> str:
    return PayloadCapture().capture(value).sha256


#: The hashes the record keeps of ``ITEM`` and ``INPUTS``.
ITEM_SHA = _sha(ITEM)
INPUTS_RECORDED = RecordedValue(text=None, sha256=_sha(INPUTS))


def _fed(
    stage: str,
    instance: int,
    *,
    item: str | None = ITEM_SHA,
    inputs: RecordedValue | None = INPUTS_RECORDED,
) -> FedExecution:
    original = RecordedExecution(
        stage=stage,
        instance=instance,
        attempt=1,
        status="success",
        span_id="0" * 16,
        start_ns=0,
        end_ns=1,
        inputs=inputs,
        outputs=None,
        events=(),
        error=None,
        event_sha256=item,
    )
    return FedExecution(original=original, outputs={}, events=())


def _reuse(*fed: FedExecution) -> InstanceReuse:
    candidates: dict[str, dict[int, FedExecution]] = {}
    for one in fed:
        candidates.setdefault(one.original.stage, {})[one.original.instance] = one
    recorded = RecordedRun(
        run_id="old",
        pipeline="p",
        schema_version=1,
        status="failure",
        definition=None,
        definition_hash=None,
        request=None,
        executions={},
    )
    plan = ReplayPlan(
        recorded=recorded,
        pipeline=PIPELINE,
        request={},
        from_stage="c",
        rerun=("c",),
        fed={},
        reused=candidates,
    )
    return InstanceReuse(plan)


def _started(run_id: str, stage: str, instance: int, inputs: Any, event: Any) -> StageStarted:
    return StageStarted(
        run_id=run_id,
        pipeline="p",
        stage=stage,
        instance=instance,
        attempt=1,
        task_run_id=f"{stage}.{instance}.1",
        loop="main",
        at=0.0,
        queued_at=0.0,
        considered_at=0.0,
        inputs=inputs,
        event=event,
    )


def test_the_same_item_and_inputs_reuse_the_recorded_execution() -> None:
    fed = _fed("c", 0)
    reuse = _reuse(fed)
    assert fed is reuse.decide("c", 0, dict(INPUTS), dict(ITEM))
    assert ("c", 0) in reuse
    assert ("c", 1) not in reuse
    assert [("c", 0)] == list(reuse)
    assert 1 == len(reuse)
    assert {"c": {0}} == reuse.by_stage()
    assert {} == reuse.declined
    assert [_trusted("c#0")] == reuse.notes()


@pytest.mark.parametrize(
    ("fed", "inputs", "event", "why"),
    [
        (_fed("c", 0), INPUTS, {"n": 2}, "its item differs from the recorded one"),
        (_fed("c", 0), INPUTS, None, "no event made it here, and one did in the original"),
        (
            _fed("c", 0, item=None),
            INPUTS,
            ITEM,
            "an event made it here, and none did in the original",
        ),
        (_fed("c", 0), {"scale": 3}, ITEM, "its inputs differ from the recorded ones"),
        (_fed("c", 0, inputs=None), INPUTS, ITEM, "the record has no hash of its inputs"),
        (
            _fed("c", 0, inputs=RecordedValue(text="{}")),
            INPUTS,
            ITEM,
            "the record has no hash of its inputs",
        ),
    ],
)
def test_a_candidate_that_gets_something_else_runs_again_and_says_why(
    fed: FedExecution, inputs: Any, event: Any, why: str
) -> None:
    reuse = _reuse(fed)
    assert reuse.decide("c", 0, inputs, event) is None
    assert {("c", 0): why} == reuse.declined
    assert [f"c#0 ran again: {why}"] == reuse.notes()
    assert 0 == len(reuse)
    assert {} == reuse.by_stage()


def test_no_event_in_the_original_nor_in_the_replay_compares_the_inputs() -> None:
    """An instance no event made (its stage's other trigger did) is reused for equal inputs."""
    fed = _fed("c", 0, item=None)
    reuse = _reuse(fed, _fed("c", 1, item=None))
    assert reuse.decide("c", 0, dict(INPUTS), None) is fed
    assert reuse.decide("c", 1, {"scale": 3}, None) is None
    assert {"c": {0}} == reuse.by_stage()
    assert [
        "c#1 ran again: its inputs differ from the recorded ones",
        _trusted("c#0"),
    ] == reuse.notes()


def test_an_event_where_the_original_had_none_runs_again_even_for_equal_inputs() -> None:
    reuse = _reuse(_fed("c", 0, item=None), _fed("c", 1))
    assert reuse.decide("c", 0, INPUTS, ITEM) is None
    assert reuse.decide("c", 1, INPUTS, None) is None
    assert 0 == len(reuse)
    assert [
        "c#0 ran again: an event made it here, and none did in the original",
        "c#1 ran again: no event made it here, and one did in the original",
    ] == reuse.notes()


def test_an_instance_no_candidate_names_runs_with_no_note() -> None:
    reuse = _reuse(_fed("c", 0))
    assert reuse.decide("c", 1, INPUTS, ITEM) is None
    assert reuse.decide("d", 0, INPUTS, ITEM) is None
    assert {} == reuse.declined
    assert 0 == len(reuse)
    # Not remembered as declined: a later question with the candidate's own values is the same.
    assert reuse.decide("c", 0, INPUTS, ITEM) is not None


def test_a_decision_stands_for_every_later_question() -> None:
    reuse = _reuse(_fed("c", 0), _fed("c", 1))
    assert reuse.decide("c", 0, INPUTS, ITEM) is not None
    assert reuse.decide("c", 1, INPUTS, {"n": 9}) is None
    # Asked again with the other's values: each answer is the first one.
    assert reuse.decide("c", 0, INPUTS, {"n": 9}) is not None
    assert reuse.decide("c", 1, INPUTS, ITEM) is None
    assert {("c", 1): "its item differs from the recorded one"} == reuse.declined


def test_the_notes_and_the_stages_come_in_stage_and_instance_order() -> None:
    reuse = _reuse(*(_fed(stage, n) for stage in ("b", "a") for n in (2, 0, 1)))
    for stage in ("b", "a"):
        for n in (2, 0, 1):
            reuse.decide(stage, n, INPUTS, ITEM if n else {"n": 0})
    assert [
        "a#0 ran again: its item differs from the recorded one",
        "b#0 ran again: its item differs from the recorded one",
        _trusted("a#1, a#2, b#1, b#2"),
    ] == reuse.notes()
    assert {"a": {1, 2}, "b": {1, 2}} == reuse.by_stage()
    assert 4 == len(reuse)


def test_the_replays_stage_starts_decide_and_other_runs_are_not_asked() -> None:
    reuse = _reuse(_fed("c", 0), _fed("c", 1), _fed("c", 2))
    reuse.on_event(_started("new", "c", 0, INPUTS, ITEM))  # before the run is known
    assert 0 == len(reuse)
    assert {} == reuse.declined
    reuse.on_event(RunStarted(run_id="new", pipeline=PIPELINE, request={}, at=0.0))
    reuse.on_event(_started("other", "c", 0, INPUTS, ITEM))
    assert 0 == len(reuse)
    assert {} == reuse.declined
    reuse.on_event(_started("new", "c", 0, INPUTS, ITEM))
    reuse.on_event(_started("new", "c", 1, {"scale": 3}, ITEM))
    reuse.on_event(_started("new", "c", 2, INPUTS, None))
    assert [("c", 0)] == list(reuse)
    assert {
        ("c", 1): "its inputs differ from the recorded ones",
        ("c", 2): "no event made it here, and one did in the original",
    } == reuse.declined
    assert reuse.reused("new", "c", 0) is not None
    assert reuse.reused("other", "c", 0) is None
    assert reuse.reused("new", "c", 1) is None


def test_the_hashes_are_made_by_the_capture_given() -> None:
    """The replay's monitor's capture redacts as the record's did: a key it masks is not told
    apart (the module docstring)."""
    fed = _fed("c", 0, inputs=RecordedValue(text=None, sha256=_sha({"password": "[REDACTED]"})))
    reuse = _reuse(fed)
    assert reuse.decide("c", 0, {"password": "other"}, ITEM) is fed
