"""Replay plans: which stages run again and which are fed from the record, the request a replay
uses, every value it misses and how to supply it, and what ``check`` and ``describe`` say. Where
its definition and supplied outputs come from, and what the record lacks, are
``pipeline_replay_plan_sources_test.py``."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pipeline_engine_support import after, pipeline, stage
from pipeline_replay_support import FLOW
from replay_plan_support import (
    REDACTED,
    RUN,
    cut_value,
    fed_outputs,
    missing_rows,
    ran,
    recorded_event,
    recorded_run,
    recorded_value,
)
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.replay.plan import (
    MissingValue,
    ReplayError,
    build_plan,
)
from taskdaemon.pipeline.replay.plan_values import TEMPO_HINT
from taskdaemon.pipeline.replay.record import (
    RecordedRun,
    RecordedValue,
)

#: a → b → c, and a → side: ``side`` is neither upstream nor downstream of ``b``.
FORK: Pipeline = pipeline(
    stage("a"), stage("b", *after("a")), stage("c", *after("b")), stage("side", *after("a"))
)


# -- which stages run again --------------------------------------------------------------------


def test_without_from_stage_every_stage_runs_again() -> None:
    """A plain replay runs every stage of the definition again and feeds none."""
    plan = build_plan(recorded_run(ran("plan"), ran("build")))
    assert (("plan", "build", "check", "release"), {}) == (plan.rerun, plan.fed)


def test_from_stage_feeds_the_stages_upstream_and_runs_it_and_downstream_again() -> None:
    """From ``check`` (the plan says so), its upstream stages are fed their recorded outputs
    and ``check`` and everything after it run again."""
    recorded = recorded_run(ran("plan"), ran("build"), ran("check"), ran("release"))
    plan = build_plan(recorded, from_stage="check")
    assert (
        "check",
        ("check", "release"),
        {"plan": {0: {"plan_out": 0}}, "build": {0: {"build_out": 0}}},
    ) == (
        plan.from_stage,
        plan.rerun,
        fed_outputs(plan.fed),
    )


def test_an_upstream_stage_is_fed_whatever_its_recorded_status() -> None:
    """A stage upstream of ``from_stage`` is fed even when it failed in the original, with no
    outputs and nothing missing."""
    recorded = recorded_run(ran("a", "failure"), ran("b"), ran("c"), ran("side"), flow=FORK)
    plan = build_plan(recorded, from_stage="b")
    assert (("b", "c"), {"a": {0: {}}, "side": {0: {"side_out": 0}}}, []) == (
        plan.rerun,
        fed_outputs(plan.fed),
        plan.missing,
    )


def test_a_stage_beside_from_stage_runs_again_when_it_did_not_succeed() -> None:
    """A stage neither upstream nor downstream of ``from_stage`` is fed only when it succeeded
    in the original; a failed one runs again."""
    recorded = recorded_run(ran("a"), ran("b"), ran("c"), ran("side", "failure"), flow=FORK)
    plan = build_plan(recorded, from_stage="c")
    assert (("c", "side"), ["a", "b"]) == (plan.rerun, list(plan.fed))


def test_a_stage_that_never_ran_runs_again() -> None:
    """A stage with no recorded execution is never fed, even upstream of ``from_stage``."""
    recorded = recorded_run(ran("a"), ran("c"), ran("side"), flow=FORK)
    plan = build_plan(recorded, from_stage="c")
    assert (("b", "c"), ["a", "side"]) == (plan.rerun, list(plan.fed))


def test_from_stage_downstream_reaches_every_later_stage() -> None:
    """Everything reachable from ``from_stage``, however far, runs again; a stage downstream
    of it through two paths is listed once."""
    diamond = pipeline(
        stage("a"),
        stage("b", *after("a")),
        stage("c", *after("a")),
        stage("d", *after("b", "c")),
        stage("e", *after("d")),
    )
    recorded = recorded_run(*(ran(name) for name in "abcde"), flow=diamond)
    plan = build_plan(recorded, from_stage="a")
    assert (("a", "b", "c", "d", "e"), {}) == (plan.rerun, plan.fed)


def test_from_stage_upstream_reaches_every_earlier_stage() -> None:
    """Every stage ``from_stage`` depends on, however far back, is fed even when it failed."""
    chain = pipeline(
        stage("a"), stage("b", *after("a")), stage("c", *after("b")), stage("d", *after("c"))
    )
    recorded = recorded_run(*(ran(name, "failure") for name in "abcd"), flow=chain)
    plan = build_plan(recorded, from_stage="d")
    assert (("d",), ["a", "b", "c"]) == (plan.rerun, list(plan.fed))


@pytest.mark.parametrize("option", ["from_stage", "stage_outputs"])
def test_a_stage_the_definition_does_not_have_is_refused(option: str) -> None:
    """``from_stage`` or a ``--stage-output`` naming no stage of the definition is a
    ReplayError listing the stages."""
    options: dict[str, Any] = (
        {"from_stage": "nope"} if option == "from_stage" else {"stage_outputs": {"nope": {}}}
    )
    with pytest.raises(ReplayError) as refused:
        build_plan(recorded_run(ran("plan")), **options)
    assert "no stage 'nope' in the definition (stages: plan, build, check, release)" == str(
        refused.value
    )


def test_from_a_stage_the_file_renamed_says_the_record_had_it() -> None:
    """``--use-file --from b`` where the file renamed ``b`` to ``bb`` since the run: the
    refusal says the recorded run had ``b``, so the file changed shape (before: only the
    file's stages, as if ``b`` were a typo), then the stage it may have become."""
    a, b = stage("a"), stage("b", *after("a"))
    renamed = pipeline(a, stage("bb", *after("a")), name=FLOW.name)
    recorded = recorded_run(ran("a"), ran("b"), flow=pipeline(a, b, name=FLOW.name))
    with pytest.raises(ReplayError) as refused:
        build_plan(recorded, pipeline_file=renamed, use_file=True, from_stage="b")
    assert str(refused.value) == (
        "no stage 'b' in the definition (stages: a, bb); "
        "the recorded run had it: the file removed or renamed it; did you mean 'bb'?"
    )


def test_a_stage_refused_in_a_large_definition_names_twenty_stages() -> None:
    """``--from`` a stage that a 25-stage definition lacks names its first 20 stages and a
    count of the rest, as ``logs --stage`` does (before: every stage, however many)."""
    stages = [stage("s0"), *(stage(f"s{i}", *after(f"s{i - 1}")) for i in range(1, 25))]
    flow = pipeline(*stages, name=FLOW.name)
    with pytest.raises(ReplayError) as refused:
        build_plan(recorded_run(ran("s0"), flow=flow), from_stage="nope")
    named = ", ".join(f"s{i}" for i in range(20))
    assert f"no stage 'nope' in the definition (stages: {named} and 5 more)" == str(refused.value)


def test_a_long_stage_name_refused_is_quoted_cut() -> None:
    """A 100,000-character ``--from`` stage is quoted in the refusal by its first 39
    characters and an ellipsis (``quoting.quote``), not whole."""
    with pytest.raises(ReplayError) as refused:
        build_plan(recorded_run(ran("plan")), from_stage="n" * 100_000)
    assert str(refused.value).startswith(f"no stage '{'n' * 39}…' in the definition")


# -- what fed stages hand over -----------------------------------------------------------------


def test_each_instance_is_fed_its_last_attempts_outputs_and_events() -> None:
    """A fed stage hands over, per instance, its last attempt's outputs and published events
    (type and payload, in order; a payload that is not an object, or not recorded, as {})."""
    events = [
        recorded_event("part", 1, recorded_value({"name": "p1"})),
        recorded_event("part", 2, recorded_value([1, 2])),
        recorded_event("done", 3, RecordedValue(None)),
    ]
    recorded = recorded_run(
        ran("plan"),
        ran("build", attempt=1, outputs=recorded_value({"old": True})),
        ran("build", attempt=2, events=events),
        ran("check"),
    )
    plan = build_plan(recorded, from_stage="check")
    fed = plan.fed["build"][0]
    expected: tuple[tuple[str, dict[str, Any]], ...] = (
        ("part", {"name": "p1"}),
        ("part", {}),
        ("done", {}),
    )
    assert (2, {"build_out": 0}, expected) == (fed.original.attempt, fed.outputs, fed.events)


def test_outputs_that_are_not_an_object_are_fed_as_value() -> None:
    """Recorded outputs that are not a JSON object are handed over as ``{"value": ...}``."""
    recorded = recorded_run(ran("plan", outputs=recorded_value([1, 2])), ran("build"))
    plan = build_plan(recorded, from_stage="build")
    assert {"value": [1, 2]} == plan.fed["plan"][0].outputs


def test_supplied_outputs_replace_the_recorded_ones() -> None:
    """``--stage-output`` outputs are fed instead of the recorded ones, for every instance."""
    recorded = recorded_run(
        ran("plan", outputs=RecordedValue(None)),
        ran("plan", instance=1, outputs=RecordedValue(None)),
        ran("build"),
    )
    plan = build_plan(recorded, from_stage="build", stage_outputs={"plan": {"steps": ["s"]}})
    assert ({"plan": {0: {"steps": ["s"]}, 1: {"steps": ["s"]}}}, []) == (
        fed_outputs(plan.fed),
        plan.missing,
    )


def test_supplied_instances_are_fed_one_per_instance() -> None:
    """``{"instances": [...]}`` supplies each instance its own outputs; an instance past the
    list gets none."""
    recorded = recorded_run(
        ran("plan"), ran("plan", instance=1), ran("plan", instance=2), ran("build")
    )
    supplied = {"plan": {"instances": [{"n": 0}, {"n": 1}]}}
    plan = build_plan(recorded, from_stage="build", stage_outputs=supplied)
    assert {"plan": {0: {"n": 0}, 1: {"n": 1}, 2: {}}} == fed_outputs(plan.fed)


def test_supplied_outputs_that_are_not_an_object_are_fed_as_value() -> None:
    """A supplied JSON value that is not an object is fed as ``{"value": ...}``."""
    recorded = recorded_run(ran("plan"), ran("build"))
    plan = build_plan(recorded, from_stage="build", stage_outputs={"plan": "text"})
    assert {"value": "text"} == plan.fed["plan"][0].outputs


def test_supplied_outputs_of_a_stage_that_runs_again_are_noted() -> None:
    """A ``--stage-output`` for a stage that runs again is not used, and a note says so."""
    plan = build_plan(recorded_run(ran("plan")), stage_outputs={"plan": {"x": 1}})
    assert ["--stage-output plan: the stage runs again; the file is not used"] == plan.notes


def test_supplied_outputs_of_a_fed_stage_leave_no_note() -> None:
    """A ``--stage-output`` that is used adds no note."""
    recorded = recorded_run(ran("plan"), ran("build"))
    plan = build_plan(recorded, from_stage="build", stage_outputs={"plan": {"x": 1}})
    assert [] == plan.notes


# -- what is missing ---------------------------------------------------------------------------


@pytest.mark.parametrize("outputs", [None, RecordedValue(None)])
def test_fed_outputs_not_recorded_are_missing(outputs: RecordedValue | None) -> None:
    """A fed stage that succeeded without recorded outputs (no attribute, or no text) is
    missing them, to be supplied with ``--stage-output``."""
    recorded = recorded_run(ran("plan", outputs=outputs), ran("build"))
    plan = build_plan(recorded, from_stage="build")
    assert missing_rows(
        MissingValue("outputs of plan.0.1", "not recorded", "--stage-output plan=FILE.json")
    ) == missing_rows(*plan.missing)


def test_fed_outputs_cut_on_the_way_are_missing_with_the_backend_hint() -> None:
    """Outputs a backend cut are missing, and the problem says which limit to raise."""
    recorded = recorded_run(ran("plan", outputs=cut_value({"steps": "x" * 20})), ran("build"))
    plan = build_plan(recorded, from_stage="build")
    assert [f"cut on the way to the span source (5 of 33 bytes kept): {TEMPO_HINT}"] == [
        m.problem for m in plan.missing
    ]


def test_a_fed_event_whose_payload_was_cut_is_missing_and_left_out() -> None:
    """A fed stage's event whose recorded payload is not exact is missing (to be run again or
    recorded with a larger cap) and is not handed over."""
    events = [
        recorded_event("part", 7, RecordedValue('{"na', truncated=True)),
        recorded_event("ok", 8, recorded_value({})),
    ]
    recorded = recorded_run(ran("plan"), ran("build", events=events), ran("check"))
    plan = build_plan(recorded, from_stage="check")
    expected = MissingValue(
        "event part #7 of build.0.1",
        "truncated (4 bytes kept)",
        "--from build (run the stage again) or a larger capture cap",
    )
    assert (missing_rows(expected), (("ok", {}),)) == (
        missing_rows(*plan.missing),
        plan.fed["build"][0].events,
    )


def test_a_cut_event_payload_is_missing_with_the_backend_hint() -> None:
    """An event payload a backend cut names the limit to raise."""
    events = [recorded_event("part", 7, cut_value({"name": "x" * 20}))]
    recorded = recorded_run(ran("plan"), ran("build", events=events), ran("check"))
    plan = build_plan(recorded, from_stage="check")
    assert [f"cut on the way to the span source (5 of 32 bytes kept): {TEMPO_HINT}"] == [
        m.problem for m in plan.missing
    ]


def test_the_request_with_inputs_on_top() -> None:
    """The replay's request is the recorded one with ``--input`` values on top."""
    recorded = recorded_run(ran("plan"), request=recorded_value({"goal": "g", "keep": 1}))
    plan = build_plan(recorded, inputs={"goal": "h"})
    assert ({"goal": "h", "keep": 1}, []) == (plan.request, plan.missing)


def test_a_request_that_is_not_an_object_is_only_the_inputs() -> None:
    """A recorded request that is JSON but not an object gives an empty request, the
    ``--input`` values on top."""
    recorded = recorded_run(ran("plan"), request=recorded_value(["g"]))
    plan = build_plan(recorded, inputs={"goal": "h"})
    assert ({"goal": "h"}, []) == (plan.request, plan.missing)


def test_a_redacted_request_is_missing_each_redacted_field() -> None:
    """A request with redacted fields is missing them, named by path, each top-level field
    to be supplied with ``--input`` once."""
    request = {"token": REDACTED, "auth": {"user": REDACTED, "pass": REDACTED}, "goal": "g"}
    plan = build_plan(recorded_run(ran("plan"), request=recorded_value(request)))
    expected = MissingValue(
        "the request",
        "redacted (token, auth.user, auth.pass)",
        "--input token=VALUE --input auth=VALUE",
    )
    assert (missing_rows(expected), request) == (missing_rows(*plan.missing), plan.request)


def test_inputs_for_every_redacted_field_leave_nothing_missing() -> None:
    """``--input`` values for the redacted fields complete the request."""
    recorded = recorded_run(ran("plan"), request=recorded_value({"token": REDACTED, "goal": "g"}))
    plan = build_plan(recorded, inputs={"token": "t"})
    assert ({"token": "t", "goal": "g"}, []) == (plan.request, plan.missing)


def test_a_redacted_request_list_item_is_named_by_index() -> None:
    """A redacted item of a list in the request is named ``field[i]``, supplied by its field."""
    recorded = recorded_run(ran("plan"), request=recorded_value({"keys": ["k", REDACTED]}))
    plan = build_plan(recorded)
    assert [("redacted (keys[1])", "--input keys=VALUE")] == [
        (m.problem, m.supply) for m in plan.missing
    ]


def test_a_request_cut_on_the_way_is_missing_with_the_backend_hint() -> None:
    """A request a backend cut, with no ``--input``, is missing whole with the limit to raise."""
    plan = build_plan(recorded_run(ran("plan"), request=cut_value({"goal": "g" * 20})))
    expected = MissingValue(
        "the request",
        f"cut on the way to the span source (5 of 32 bytes kept): {TEMPO_HINT}",
        "--input KEY=VALUE for every request field",
    )
    assert (missing_rows(expected), {}) == (missing_rows(*plan.missing), plan.request)


def test_a_request_not_recorded_is_missing() -> None:
    """A run span without a request is missing it, with no hint."""
    recorded = recorded_run(ran("plan"))
    recorded = RecordedRun(**{**recorded.__dict__, "request": None})
    plan = build_plan(recorded)
    assert [("the request", "not recorded", "--input KEY=VALUE for every request field")] == (
        missing_rows(*plan.missing)
    )


def test_inputs_replace_a_cut_request_whole() -> None:
    """With a cut request, the ``--input`` values are the whole request (a cut request is not
    trusted in part)."""
    plan = build_plan(recorded_run(ran("plan"), request=cut_value({"goal": "g"})), inputs={"x": 1})
    assert ({"x": 1}, []) == (plan.request, plan.missing)


# -- the plan ----------------------------------------------------------------------------------


def test_check_names_every_missing_value() -> None:
    """``check`` refuses a plan with missing values, one line per value under the run's id."""
    recorded = recorded_run(ran("plan", outputs=RecordedValue(None)), ran("build"))
    recorded = RecordedRun(**{**recorded.__dict__, "request": None})
    plan = build_plan(recorded, from_stage="build")
    with pytest.raises(ReplayError) as refused:
        plan.check()
    expected = [
        f"cannot replay run {RUN}:",
        "  the request: not recorded; supply it with --input KEY=VALUE for every request field",
        "  outputs of plan.0.1: not recorded; supply it with --stage-output plan=FILE.json",
    ]
    assert expected == str(refused.value).split("\n")


def test_check_answers_the_pipeline_when_nothing_is_missing() -> None:
    """A complete plan's ``check`` is the pipeline to run."""
    assert FLOW == build_plan(recorded_run(ran("plan"))).check()


def test_check_refuses_a_plan_without_a_pipeline() -> None:
    """A plan with no pipeline is refused even when nothing is listed as missing."""
    plan = build_plan(recorded_run(ran("plan")))
    plan.pipeline = None
    with pytest.raises(ReplayError) as refused:
        plan.check()
    assert f"cannot replay run {RUN}:" == str(refused.value)


def test_describe_says_what_happens_to_each_stage() -> None:
    """The dry run lists each stage in definition order: fed ones with their instances,
    statuses and events, the others as run."""
    events = [
        recorded_event("part", 1, recorded_value({})),
        recorded_event("part", 2, recorded_value({})),
    ]
    recorded = recorded_run(
        ran("plan", "failure"),
        ran("plan", instance=1),
        ran("build", events=events),
        ran("check"),
    )
    plan = build_plan(recorded, from_stage="check")
    expected = [
        "feed  plan: recorded outputs of 2 instances (failure/success), 0 events",
        "feed  build: recorded outputs of 1 instance (success), 2 events",
        "run   check",
        "run   release",
        # What feeding trusts: the files the fed stages read are not read again.
        "a fed stage is not run: the files it read are not read again, nor compared, so a "
        "change to them since is not seen (--from an earlier stage runs it again)",
    ]
    assert expected == plan.describe()


def test_describe_without_a_pipeline_lists_the_fed_stages() -> None:
    """Without a pipeline the dry run lists only what is fed."""
    plan = build_plan(recorded_run(ran("plan"), ran("build")), from_stage="build")
    plan.pipeline = None
    assert [
        "feed  plan: recorded outputs of 1 instance (success), 0 events",
        "a fed stage is not run: the files it read are not read again, nor compared, so a "
        "change to them since is not seen (--from an earlier stage runs it again)",
    ] == plan.describe()


def test_a_fed_stage_the_record_saw_no_end_of_is_missing() -> None:
    """The run was still going, or killed, while ``plan`` ran: its outcome is missing, and the
    way to supply it is to run it again."""
    running = dataclasses.replace(ran("plan"), end_ns=None)
    built = build_plan(recorded_run(running, ran("build")), from_stage="build")
    assert missing_rows(*built.missing) == [
        (
            f"the end of {running.task_run_id}",
            "the record stops while it runs (the run is still going, or it was interrupted)",
            "--from plan (run it again)",
        )
    ]
