"""Replay plans that reuse the instances that succeeded of a stage run again
(``plan._reused``): which stages get them, which instances, what each hands on, and what
``describe`` says. ``pipeline_cli_replay_reuse_test.py`` replays a real fan-out through
``taskdaemon replay`` processes, which mutation testing cannot credit."""

from __future__ import annotations

from dataclasses import replace

from pipeline_engine_support import after, pipeline, stage
from replay_plan_support import (
    cut_value,
    fed_outputs,
    missing_rows,
    ran,
    recorded_event,
    recorded_run,
    recorded_value,
)
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.replay.plan import build_plan
from taskdaemon.pipeline.replay.record import RecordedRun

#: ``a`` feeds ``c``, a fan-out; ``d`` follows ``c``.
FAN: Pipeline = pipeline(stage("a"), stage("c", *after("a")), stage("d", *after("c")))


def fan_run(*statuses: str) -> RecordedRun:
    """A record of :data:`FAN`: ``a`` succeeded, ``c``'s instances ended with ``statuses``
    (listed last first, as a store may hand them), ``d`` failed."""
    instances = [ran("c", status, instance=i) for i, status in enumerate(statuses)]
    return recorded_run(ran("a"), *reversed(instances), ran("d", "failure"), flow=FAN)


def test_the_instances_that_succeeded_are_reused_in_order() -> None:
    event = recorded_event("part", 7, recorded_value({"n": 2}))
    recorded = recorded_run(
        ran("a"),
        ran("c", instance=2, events=[event]),
        ran("c", "failure", instance=1),
        ran("c", instance=0, attempt=1, outputs=recorded_value({"old": 1})),
        ran("c", instance=0, attempt=2),
        ran("d", "failure"),
        flow=FAN,
    )
    plan = build_plan(recorded, from_stage="c")
    assert (plan.rerun, fed_outputs(plan.fed)) == (("c", "d"), {"a": {0: {"a_out": 0}}})
    assert fed_outputs(plan.reused) == {"c": {0: {"c_out": 0}, 2: {"c_out": 2}}}
    assert list(plan.reused["c"]) == [0, 2]
    assert plan.reused["c"][0].original.attempt == 2
    assert plan.reused["c"][2].events == (("part", {"n": 2}),)
    assert (plan.missing, plan.check()) == ([], FAN)
    assert plan.describe() == [
        "feed  a: recorded outputs of 1 instance (success), 0 events",
        "run   c: the instances that did not succeed; reuse the recorded outputs of 2 "
        "instances that did (0, 2)",
        "run   d",
    ]


def test_one_instance_reused_is_said_in_the_singular() -> None:
    plan = build_plan(fan_run("failure", "success"), from_stage="c")
    assert plan.describe()[1] == (
        "run   c: the instances that did not succeed; reuse the recorded outputs of 1 "
        "instance that did (1)"
    )


def test_rerun_all_reuses_nothing() -> None:
    plan = build_plan(fan_run("success", "failure"), from_stage="c", rerun_all=True)
    assert (plan.rerun, plan.reused) == (("c", "d"), {})
    assert plan.describe()[1:] == ["run   c", "run   d"]


def test_a_stage_all_of_whose_instances_succeeded_or_failed_is_run_whole() -> None:
    """All succeeded: ``--from`` asked for them again; none: nothing to reuse."""
    assert build_plan(fan_run("success", "success"), from_stage="c").reused == {}
    assert build_plan(fan_run("failure", "skipped"), from_stage="c").reused == {}


def test_a_stage_whose_upstream_runs_again_reuses_nothing() -> None:
    """From ``a``: ``c``'s instances come from events ``a`` publishes again."""
    plan = build_plan(fan_run("success", "failure"), from_stage="a")
    assert (plan.rerun, plan.reused) == (("a", "c", "d"), {})


def test_a_stage_the_file_changed_reuses_nothing_and_an_unchanged_one_does() -> None:
    changed = pipeline(
        stage("a"), stage("c", *after("a"), timeout=5.0), stage("d", *after("c")), name=FAN.name
    )
    recorded = fan_run("success", "failure")
    plan = build_plan(recorded, pipeline_file=changed, use_file=True, from_stage="c")
    assert (plan.changes is not None and plan.changes.changed, plan.reused) == (("c",), {})
    other = pipeline(
        stage("a"), stage("c", *after("a")), stage("d", *after("c"), timeout=5.0), name=FAN.name
    )
    plan = build_plan(recorded, pipeline_file=other, use_file=True, from_stage="c")
    assert list(plan.reused) == ["c"]


def test_an_instance_the_record_lacks_whole_runs_again() -> None:
    """Outputs not recorded, or an event cut on the way: that instance runs again (nothing
    missing: it is run, not fed); with none left, the stage is not listed."""
    recorded = recorded_run(
        ran("a"),
        ran("c", instance=0, outputs=None),
        ran("c", "failure", instance=1),
        ran("c", instance=2, events=[recorded_event("part", 1, cut_value({"n": "x" * 50}))]),
        ran("c", instance=3),
        flow=FAN,
    )
    plan = build_plan(recorded, from_stage="c")
    assert (fed_outputs(plan.reused), plan.missing) == ({"c": {3: {"c_out": 3}}}, [])
    whole = replace(recorded, executions={**recorded.executions})
    whole.executions["c"] = recorded.executions["c"][:3]
    assert build_plan(whole, from_stage="c").reused == {}


def test_a_plain_replay_reuses_nothing() -> None:
    plan = build_plan(fan_run("success", "failure"))
    assert (plan.rerun, plan.fed, plan.reused) == (("a", "c", "d"), {}, {})


def test_the_stages_before_one_to_reuse_do_not_end_the_search() -> None:
    """From ``c``: ``x`` failed whole (nothing to reuse), ``y`` follows ``x`` (run again), and
    ``c`` after them still reuses its instance that succeeded."""
    flow = pipeline(
        stage("a"),
        stage("x", *after("a")),
        stage("y", *after("x")),
        stage("c", *after("a")),
        stage("d", *after("c")),
    )
    recorded = recorded_run(
        ran("a"),
        ran("x", "failure"),
        ran("y", instance=0),
        ran("y", "failure", instance=1),
        ran("c", instance=0),
        ran("c", "failure", instance=1),
        flow=flow,
    )
    plan = build_plan(recorded, from_stage="c")
    assert (plan.rerun, fed_outputs(plan.reused)) == (
        ("x", "y", "c", "d"),
        {"c": {0: {"c_out": 0}}},
    )


def test_a_fed_stage_the_record_saw_no_end_of_is_missing() -> None:
    """The run was still going, or killed, while ``a`` ran: its outcome is missing, and the
    way to supply it is to run it again."""
    running = replace(ran("a"), end_ns=None)
    plan = build_plan(recorded_run(running, ran("c"), flow=FAN), from_stage="c")
    assert missing_rows(*plan.missing) == [
        (
            f"the end of {running.task_run_id}",
            "the record stops while it runs (the run is still going, or it was interrupted)",
            "--from a (run it again)",
        )
    ]
