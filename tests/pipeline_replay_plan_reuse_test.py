"""The plan's reuse candidates (``replay/plan._reused``) and the dry run's line for them
(``ReplayPlan.describe``), in this process: the succeeded instances of a stage run again that
some did not succeed in, each only when its record holds whole outputs and the hashes
``reuse.py`` compares (one no event made has no item to hash: "with no event"), with what may
give it another item or other inputs, and the note of what reuse trusts.
``pipeline_replay_reuse_test.py`` checks the same through ``taskdaemon`` processes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pipeline_replay_support import FLOW
from replay_plan_support import ran, recorded_run
from taskdaemon.pipeline.definition import sha256_text
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.replay.plan import build_plan
from taskdaemon.pipeline.replay.record import RecordedExecution, RecordedValue

#: The dry run's last line when it may reuse an instance: what reuse trusts.
TRUSTED = (
    "reuse compares an instance's item and inputs, not the files it reads: the workspace "
    "starts as the recorded run's as it ended, files elsewhere are read as they are now "
    "(--rerun-all runs every instance again)"
)
#: Its line after that when it feeds a stage: what feeding trusts.
FED = (
    "a fed stage is not run: the files it read are not read again, nor compared, so a change "
    "to them since is not seen (--from an earlier stage runs it again)"
)


def _hashed(value: Any) -> RecordedValue:
    text = json.dumps(value)
    return RecordedValue(text, size=len(text), sha256=sha256_text(text))


def _check(instance: int, status: str = "success", **changes: Any) -> RecordedExecution:
    """An instance of ``check`` (``on_event: part``) an event made, whose record has both
    hashes."""
    execution = dataclasses.replace(
        ran("check", status, instance=instance),
        inputs=_hashed({}),
        event_sha256=sha256_text(json.dumps({"name": f"g-{instance}"})),
        by_event=True,
    )
    return dataclasses.replace(execution, **changes)


def _recorded(*checks: RecordedExecution) -> Any:
    return recorded_run(ran("plan"), ran("build"), *checks)


def test_the_succeeded_instances_are_candidates_when_every_stage_upstream_is_fed() -> None:
    recorded = _recorded(_check(0), _check(1, "failure"), _check(2))
    plan = build_plan(recorded, from_stage="check")
    assert ("check", "release") == plan.rerun
    assert {"check": [0, 2]} == {name: sorted(kept) for name, kept in plan.reused.items()}
    final = recorded.final["check"]
    assert final[0] is plan.reused["check"][0].original
    assert {"check_out": 2} == dict(plan.reused["check"][2].outputs)
    assert {
        "check": (
            "run 1 instance again (1: failure)",
            "it will: every stage upstream of check is fed",
        )
    } == plan.reuse_reasons
    assert [
        "feed  plan: recorded outputs of 1 instance (success), 0 events",
        "feed  build: recorded outputs of 1 instance (success), 0 events",
        "run   check: run 1 instance again (1: failure); reuse the recorded outputs of "
        "2 instances (0, 2) where each gets the item and inputs it got (it will: every stage "
        "upstream of check is fed)",
        "run   release",
        TRUSTED,
        FED,
    ] == plan.describe()


def test_what_may_change_an_item_or_inputs_is_named_in_the_definitions_order() -> None:
    recorded = _recorded(_check(0), _check(1, "failure"))
    plan = build_plan(recorded, from_stage="build")
    assert ("run 1 instance again (1: failure)", "compared as each starts: build runs again") == (
        plan.reuse_reasons["check"]
    )
    plan = build_plan(
        recorded,
        from_stage="check",
        inputs={"goal": "x", "other": 1},
        stage_outputs={"plan": {"steps": ["s"]}},
    )
    assert (
        "compared as each starts: --input goal, --input other, --stage-output plan"
        == (plan.reuse_reasons["check"][1])
    )
    plan = build_plan(recorded, from_stage="plan")
    assert (
        "compared as each starts: plan runs again, build runs again"
        == (plan.reuse_reasons["check"][1])
    )


def test_an_instance_whose_record_cannot_be_compared_runs_again_and_the_dry_run_says_why() -> None:
    recorded = _recorded(
        _check(0, inputs=None),
        _check(1, "failure"),
        _check(2, event_sha256=None),
        _check(3, inputs=RecordedValue("{}")),
        _check(4, outputs=None),
    )
    plan = build_plan(recorded, from_stage="check")
    why = (
        "run 5 instances again (1: failure; 0: its record has no hash of its inputs; "
        "2: its record has no hash of its item; 3: its record has no hash of its inputs; "
        "4: its record is not whole)"
    )
    assert {} == plan.reused
    assert {"check": (why, "")} == plan.reuse_reasons
    assert f"run   check: {why}" == plan.describe()[2]
    assert TRUSTED not in plan.describe()  # nothing reused, nothing trusted


def test_an_instance_no_event_made_is_a_candidate_said_with_no_event() -> None:
    """Its stage's other trigger made it: no item to hash, so it is reused when it again starts
    with no event and the same inputs (``reuse.py``); with no hash of its inputs it runs."""
    plan = build_plan(
        _recorded(
            _check(0, event_sha256=None, by_event=False),
            _check(1, "failure"),
            _check(2),
            _check(3, event_sha256=None, by_event=False, inputs=None),
        ),
        from_stage="check",
    )
    assert [0, 2] == sorted(plan.reused["check"])
    assert [
        "run   check: run 2 instances again (1: failure; 3: its record has no hash of its "
        "inputs); reuse the recorded outputs of 2 instances (0 with no event, 2) where each "
        "gets the item and inputs it got (it will: every stage upstream of check is fed)",
        "run   release",
        TRUSTED,
        FED,
    ] == plan.describe()[2:]


def test_one_instance_kept_of_several_is_said_in_the_singular() -> None:
    plan = build_plan(
        _recorded(_check(0, event_sha256=None), _check(1, "failure"), _check(2)),
        from_stage="check",
    )
    assert (
        "run   check: run 2 instances again (1: failure; 0: its record has no hash of its "
        "item); reuse the recorded outputs of 1 instance (2) where each gets the item and "
        "inputs it got (it will: every stage upstream of check is fed)"
    ) == plan.describe()[2]


def test_no_candidate_when_all_or_none_succeeded_or_every_instance_is_asked_again() -> None:
    for checks in ((_check(0), _check(1)), (_check(0, "failure"), _check(1, "timeout"))):
        plan = build_plan(_recorded(*checks), from_stage="check")
        assert ({}, {}) == (plan.reused, plan.reuse_reasons)
        assert "run   check" == plan.describe()[2]
    recorded = _recorded(_check(0), _check(1, "failure"))
    plan = build_plan(recorded, from_stage="check", rerun_all=True)
    assert ({}, {}) == (plan.reused, plan.reuse_reasons)


def test_the_last_attempt_of_an_instance_decides() -> None:
    """Instance 1 failed, then succeeded on a retry: nothing failed, so nothing is reused;
    instance 0 succeeded, then failed on a retry: it runs again."""
    retried = _recorded(_check(0), _check(1, "failure"), _check(1, attempt=2))
    assert {} == build_plan(retried, from_stage="check").reused
    worse = _recorded(_check(0), _check(0, "failure", attempt=2), _check(1))
    plan = build_plan(worse, from_stage="check")
    assert [1] == sorted(plan.reused["check"])
    assert "run 1 instance again (0: failure)" == plan.reuse_reasons["check"][0]


def test_a_stage_the_definition_file_changed_reuses_nothing() -> None:
    """Its code may differ: every instance runs again, with no reuse line."""
    stages = tuple(replace(s, loop="changed") if s.name == "check" else s for s in FLOW.stages)
    changed = replace(FLOW, stages=stages)
    recorded = _recorded(_check(0), _check(1, "failure"))
    plan = build_plan(recorded, from_stage="check", pipeline_file=changed, use_file=True)
    assert ({}, {}) == (plan.reused, plan.reuse_reasons)
    # A stage after it that the file did not change still keeps its own.
    recorded = _recorded(_check(0), _check(1, "failure"), _release(0), _release(1, "failure"))
    plan = build_plan(recorded, from_stage="check", pipeline_file=changed, use_file=True)
    assert ["release"] == list(plan.reused)
    same = build_plan(recorded, from_stage="check", pipeline_file=FLOW, use_file=True)
    assert [0] == sorted(same.reused["check"])


def _release(instance: int, status: str = "success") -> RecordedExecution:
    """An instance of ``release`` (``on_completion``: no event makes it) with its inputs' hash."""
    return dataclasses.replace(ran("release", status, instance=instance), inputs=_hashed({}))


def test_each_stage_run_again_is_decided_after_one_with_no_candidate() -> None:
    """``check`` reuses nothing (all succeeded, or its only success has no hash of its inputs);
    ``release``, after it, still keeps its own; and a stage no event triggers never says "with
    no event": none of its instances has an item."""
    releases = (_release(0), _release(1, "failure"))
    line = (
        "run   release: run 1 instance again (1: failure); reuse the recorded outputs of "
        "1 instance (0) where each gets the item and inputs it got (compared as each starts: "
        "check runs again)"
    )
    for checks in ((_check(0), _check(1)), (_check(0, inputs=None), _check(1, "failure"))):
        plan = build_plan(_recorded(*checks, *releases), from_stage="check")
        assert {"release": [0]} == {name: sorted(kept) for name, kept in plan.reused.items()}
        assert [line, TRUSTED, FED] == plan.describe()[3:]
