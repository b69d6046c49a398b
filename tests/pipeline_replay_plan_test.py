"""Replay plans: which stages run again and which are fed from the record, the definition and
the request a replay uses, every value it misses and how to supply it, and the values a replay
is given instead of recorded ones (``--stage-output``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pipeline_engine_support import after, pipeline, stage
from pipeline_replay_support import FLOW
from taskdaemon.pipeline.definition import sha256_text
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.replay.plan import (
    TEMPO_HINT,
    MissingValue,
    ReplayError,
    build_plan,
    load_stage_output,
)
from taskdaemon.pipeline.replay.record import (
    RecordedEvent,
    RecordedExecution,
    RecordedRun,
    RecordedValue,
)
from taskdaemon.pipeline.tracking.spans import SpanRecord

RUN = "a" * 32
REDACTED = "[REDACTED]"
#: a → b → c, and a → side: ``side`` is neither upstream nor downstream of ``b``.
FORK: Pipeline = pipeline(
    stage("a"), stage("b", *after("a")), stage("c", *after("b")), stage("side", *after("a"))
)


def _value(value: Any) -> RecordedValue:
    return RecordedValue(json.dumps(value))


def _cut(value: Any) -> RecordedValue:
    """``value`` as a backend that cut its text recorded it: the hash is the whole value's."""
    text = json.dumps(value)
    return RecordedValue(text[:5], size=len(text), sha256=sha256_text(text))


def _event(event_type: str, event_id: int, payload: RecordedValue) -> RecordedEvent:
    return RecordedEvent(event_type, event_id, None, payload, 0)


def _ran(
    name: str,
    status: str = "success",
    *,
    instance: int = 0,
    attempt: int = 1,
    outputs: RecordedValue | str | None = "default",
    events: Sequence[RecordedEvent] = (),
) -> RecordedExecution:
    """An execution of ``name``; its outputs ``{NAME_out: instance}`` unless given (None: the
    span recorded none)."""
    return RecordedExecution(
        name,
        instance,
        attempt,
        status,
        "s" * 16,
        0,
        1,
        None,
        _value({f"{name}_out": instance}) if isinstance(outputs, str) else outputs,
        tuple(events),
        None,
    )


def _recorded(
    *executions: RecordedExecution,
    flow: Pipeline = FLOW,
    definition: RecordedValue | str | None = "recorded",
    request: RecordedValue | None = None,
) -> RecordedRun:
    by_stage: dict[str, tuple[RecordedExecution, ...]] = {}
    for execution in executions:
        by_stage[execution.stage] = (*by_stage.get(execution.stage, ()), execution)
    if definition == "recorded":
        text = flow.canonical_json
        definition = RecordedValue(text, size=len(text), sha256=sha256_text(text))
    assert not isinstance(definition, str)
    return RecordedRun(
        run_id=RUN,
        pipeline=flow.name,
        schema_version=3,
        status="failure",
        definition=definition,
        definition_hash=flow.definition_hash,
        request=request if request is not None else _value({"goal": "g"}),
        executions=by_stage,
    )


def _fed_outputs(plan_fed: Mapping[str, Mapping[int, Any]]) -> dict[str, dict[int, Any]]:
    return {
        name: {instance: dict(fed.outputs) for instance, fed in instances.items()}
        for name, instances in plan_fed.items()
    }


def _missing(*missing: MissingValue) -> list[tuple[str, str, str]]:
    return [(m.what, m.problem, m.supply) for m in missing]


# -- which stages run again --------------------------------------------------------------------


def test_without_from_stage_every_stage_runs_again() -> None:
    """A plain replay runs every stage of the definition again and feeds none."""
    plan = build_plan(_recorded(_ran("plan"), _ran("build")))
    assert (("plan", "build", "check", "release"), {}) == (plan.rerun, plan.fed)


def test_from_stage_feeds_the_stages_upstream_and_runs_it_and_downstream_again() -> None:
    """From ``check`` (the plan says so), its upstream stages are fed their recorded outputs
    and ``check`` and everything after it run again."""
    recorded = _recorded(_ran("plan"), _ran("build"), _ran("check"), _ran("release"))
    plan = build_plan(recorded, from_stage="check")
    assert (
        "check",
        ("check", "release"),
        {"plan": {0: {"plan_out": 0}}, "build": {0: {"build_out": 0}}},
    ) == (
        plan.from_stage,
        plan.rerun,
        _fed_outputs(plan.fed),
    )


def test_an_upstream_stage_is_fed_whatever_its_recorded_status() -> None:
    """A stage upstream of ``from_stage`` is fed even when it failed in the original, with no
    outputs and nothing missing."""
    recorded = _recorded(_ran("a", "failure"), _ran("b"), _ran("c"), _ran("side"), flow=FORK)
    plan = build_plan(recorded, from_stage="b")
    assert (("b", "c"), {"a": {0: {}}, "side": {0: {"side_out": 0}}}, []) == (
        plan.rerun,
        _fed_outputs(plan.fed),
        plan.missing,
    )


def test_a_stage_beside_from_stage_runs_again_when_it_did_not_succeed() -> None:
    """A stage neither upstream nor downstream of ``from_stage`` is fed only when it succeeded
    in the original; a failed one runs again."""
    recorded = _recorded(_ran("a"), _ran("b"), _ran("c"), _ran("side", "failure"), flow=FORK)
    plan = build_plan(recorded, from_stage="c")
    assert (("c", "side"), ["a", "b"]) == (plan.rerun, list(plan.fed))


def test_a_stage_that_never_ran_runs_again() -> None:
    """A stage with no recorded execution is never fed, even upstream of ``from_stage``."""
    recorded = _recorded(_ran("a"), _ran("c"), _ran("side"), flow=FORK)
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
    recorded = _recorded(*(_ran(name) for name in "abcde"), flow=diamond)
    plan = build_plan(recorded, from_stage="a")
    assert (("a", "b", "c", "d", "e"), {}) == (plan.rerun, plan.fed)


def test_from_stage_upstream_reaches_every_earlier_stage() -> None:
    """Every stage ``from_stage`` depends on, however far back, is fed even when it failed."""
    chain = pipeline(
        stage("a"), stage("b", *after("a")), stage("c", *after("b")), stage("d", *after("c"))
    )
    recorded = _recorded(*(_ran(name, "failure") for name in "abcd"), flow=chain)
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
        build_plan(_recorded(_ran("plan")), **options)
    assert "no stage 'nope' in the definition (stages: plan, build, check, release)" == str(
        refused.value
    )


# -- what fed stages hand over -----------------------------------------------------------------


def test_each_instance_is_fed_its_last_attempts_outputs_and_events() -> None:
    """A fed stage hands over, per instance, its last attempt's outputs and published events
    (type and payload, in order; a payload that is not an object, or not recorded, as {})."""
    events = [
        _event("part", 1, _value({"name": "p1"})),
        _event("part", 2, _value([1, 2])),
        _event("done", 3, RecordedValue(None)),
    ]
    recorded = _recorded(
        _ran("plan"),
        _ran("build", attempt=1, outputs=_value({"old": True})),
        _ran("build", attempt=2, events=events),
        _ran("check"),
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
    recorded = _recorded(_ran("plan", outputs=_value([1, 2])), _ran("build"))
    plan = build_plan(recorded, from_stage="build")
    assert {"value": [1, 2]} == plan.fed["plan"][0].outputs


def test_supplied_outputs_replace_the_recorded_ones() -> None:
    """``--stage-output`` outputs are fed instead of the recorded ones, for every instance."""
    recorded = _recorded(
        _ran("plan", outputs=RecordedValue(None)),
        _ran("plan", instance=1, outputs=RecordedValue(None)),
        _ran("build"),
    )
    plan = build_plan(recorded, from_stage="build", stage_outputs={"plan": {"steps": ["s"]}})
    assert ({"plan": {0: {"steps": ["s"]}, 1: {"steps": ["s"]}}}, []) == (
        _fed_outputs(plan.fed),
        plan.missing,
    )


def test_supplied_instances_are_fed_one_per_instance() -> None:
    """``{"instances": [...]}`` supplies each instance its own outputs; an instance past the
    list gets none."""
    recorded = _recorded(
        _ran("plan"), _ran("plan", instance=1), _ran("plan", instance=2), _ran("build")
    )
    supplied = {"plan": {"instances": [{"n": 0}, {"n": 1}]}}
    plan = build_plan(recorded, from_stage="build", stage_outputs=supplied)
    assert {"plan": {0: {"n": 0}, 1: {"n": 1}, 2: {}}} == _fed_outputs(plan.fed)


def test_supplied_outputs_that_are_not_an_object_are_fed_as_value() -> None:
    """A supplied JSON value that is not an object is fed as ``{"value": ...}``."""
    recorded = _recorded(_ran("plan"), _ran("build"))
    plan = build_plan(recorded, from_stage="build", stage_outputs={"plan": "text"})
    assert {"value": "text"} == plan.fed["plan"][0].outputs


def test_supplied_outputs_of_a_stage_that_runs_again_are_noted() -> None:
    """A ``--stage-output`` for a stage that runs again is not used, and a note says so."""
    plan = build_plan(_recorded(_ran("plan")), stage_outputs={"plan": {"x": 1}})
    assert ["--stage-output plan: the stage runs again; the file is not used"] == plan.notes


def test_supplied_outputs_of_a_fed_stage_leave_no_note() -> None:
    """A ``--stage-output`` that is used adds no note."""
    recorded = _recorded(_ran("plan"), _ran("build"))
    plan = build_plan(recorded, from_stage="build", stage_outputs={"plan": {"x": 1}})
    assert [] == plan.notes


# -- what is missing ---------------------------------------------------------------------------


@pytest.mark.parametrize("outputs", [None, RecordedValue(None)])
def test_fed_outputs_not_recorded_are_missing(outputs: RecordedValue | None) -> None:
    """A fed stage that succeeded without recorded outputs (no attribute, or no text) is
    missing them, to be supplied with ``--stage-output``."""
    recorded = _recorded(_ran("plan", outputs=outputs), _ran("build"))
    plan = build_plan(recorded, from_stage="build")
    assert _missing(
        MissingValue("outputs of plan.0.1", "not recorded", "--stage-output plan=FILE.json")
    ) == _missing(*plan.missing)


def test_fed_outputs_cut_on_the_way_are_missing_with_the_backend_hint() -> None:
    """Outputs a backend cut are missing, and the problem says which limit to raise."""
    recorded = _recorded(_ran("plan", outputs=_cut({"steps": "x" * 20})), _ran("build"))
    plan = build_plan(recorded, from_stage="build")
    assert [f"cut on the way to the span source (5 of 33 bytes kept): {TEMPO_HINT}"] == [
        m.problem for m in plan.missing
    ]


def test_a_fed_event_whose_payload_was_cut_is_missing_and_left_out() -> None:
    """A fed stage's event whose recorded payload is not exact is missing (to be run again or
    recorded with a larger cap) and is not handed over."""
    events = [_event("part", 7, RecordedValue('{"na', truncated=True)), _event("ok", 8, _value({}))]
    recorded = _recorded(_ran("plan"), _ran("build", events=events), _ran("check"))
    plan = build_plan(recorded, from_stage="check")
    expected = MissingValue(
        "event part #7 of build.0.1",
        "truncated (4 bytes kept)",
        "--from build (run the stage again) or a larger capture cap",
    )
    assert (_missing(expected), (("ok", {}),)) == (
        _missing(*plan.missing),
        plan.fed["build"][0].events,
    )


def test_a_cut_event_payload_is_missing_with_the_backend_hint() -> None:
    """An event payload a backend cut names the limit to raise."""
    events = [_event("part", 7, _cut({"name": "x" * 20}))]
    recorded = _recorded(_ran("plan"), _ran("build", events=events), _ran("check"))
    plan = build_plan(recorded, from_stage="check")
    assert [f"cut on the way to the span source (5 of 32 bytes kept): {TEMPO_HINT}"] == [
        m.problem for m in plan.missing
    ]


def test_the_request_with_inputs_on_top() -> None:
    """The replay's request is the recorded one with ``--input`` values on top."""
    recorded = _recorded(_ran("plan"), request=_value({"goal": "g", "keep": 1}))
    plan = build_plan(recorded, inputs={"goal": "h"})
    assert ({"goal": "h", "keep": 1}, []) == (plan.request, plan.missing)


def test_a_request_that_is_not_an_object_is_only_the_inputs() -> None:
    """A recorded request that is JSON but not an object gives an empty request, the
    ``--input`` values on top."""
    recorded = _recorded(_ran("plan"), request=_value(["g"]))
    plan = build_plan(recorded, inputs={"goal": "h"})
    assert ({"goal": "h"}, []) == (plan.request, plan.missing)


def test_a_redacted_request_is_missing_each_redacted_field() -> None:
    """A request with redacted fields is missing them, named by path, each top-level field
    to be supplied with ``--input`` once."""
    request = {"token": REDACTED, "auth": {"user": REDACTED, "pass": REDACTED}, "goal": "g"}
    plan = build_plan(_recorded(_ran("plan"), request=_value(request)))
    expected = MissingValue(
        "the request",
        "redacted (token, auth.user, auth.pass)",
        "--input token=VALUE --input auth=VALUE",
    )
    assert (_missing(expected), request) == (_missing(*plan.missing), plan.request)


def test_inputs_for_every_redacted_field_leave_nothing_missing() -> None:
    """``--input`` values for the redacted fields complete the request."""
    recorded = _recorded(_ran("plan"), request=_value({"token": REDACTED, "goal": "g"}))
    plan = build_plan(recorded, inputs={"token": "t"})
    assert ({"token": "t", "goal": "g"}, []) == (plan.request, plan.missing)


def test_a_redacted_request_list_item_is_named_by_index() -> None:
    """A redacted item of a list in the request is named ``field[i]``, supplied by its field."""
    recorded = _recorded(_ran("plan"), request=_value({"keys": ["k", REDACTED]}))
    plan = build_plan(recorded)
    assert [("redacted (keys[1])", "--input keys=VALUE")] == [
        (m.problem, m.supply) for m in plan.missing
    ]


def test_a_request_cut_on_the_way_is_missing_with_the_backend_hint() -> None:
    """A request a backend cut, with no ``--input``, is missing whole with the limit to raise."""
    plan = build_plan(_recorded(_ran("plan"), request=_cut({"goal": "g" * 20})))
    expected = MissingValue(
        "the request",
        f"cut on the way to the span source (5 of 32 bytes kept): {TEMPO_HINT}",
        "--input KEY=VALUE for every request field",
    )
    assert (_missing(expected), {}) == (_missing(*plan.missing), plan.request)


def test_a_request_not_recorded_is_missing() -> None:
    """A run span without a request is missing it, with no hint."""
    recorded = _recorded(_ran("plan"))
    recorded = RecordedRun(**{**recorded.__dict__, "request": None})
    plan = build_plan(recorded)
    assert [("the request", "not recorded", "--input KEY=VALUE for every request field")] == (
        _missing(*plan.missing)
    )


def test_inputs_replace_a_cut_request_whole() -> None:
    """With a cut request, the ``--input`` values are the whole request (a cut request is not
    trusted in part)."""
    plan = build_plan(_recorded(_ran("plan"), request=_cut({"goal": "g"})), inputs={"x": 1})
    assert ({"x": 1}, []) == (plan.request, plan.missing)


# -- the definition ----------------------------------------------------------------------------


def test_the_recorded_definition_is_the_pipeline() -> None:
    """Without a file, the plan runs the recorded definition, read back as it was."""
    plan = build_plan(_recorded(_ran("plan")))
    assert (FLOW, None, []) == (plan.pipeline, plan.changes, plan.missing)


def test_a_file_that_is_the_recorded_definition_is_used() -> None:
    """A pipeline file with the recorded definition's hash is run, with no changes."""
    plan = build_plan(_recorded(_ran("plan")), pipeline_file=FLOW)
    assert (FLOW, None, []) == (plan.pipeline, plan.changes, plan.missing)


def test_a_different_file_is_refused_without_use_file() -> None:
    """A pipeline file that differs from the recorded definition is missing the definition,
    saying what differs, unless ``use_file``."""
    changed = pipeline(*FLOW.stages[:3], name="flow")
    plan = build_plan(_recorded(_ran("plan")), pipeline_file=changed)
    expected = MissingValue(
        "the definition",
        "the file differs from the recorded one (stages removed: release)",
        "--use-file to run the file instead",
    )
    assert (None, ("release",), _missing(expected)) == (
        plan.pipeline,
        plan.changes.removed if plan.changes else None,
        _missing(*plan.missing),
    )


def test_a_different_file_is_run_with_use_file() -> None:
    """With ``use_file`` a differing file is run, and the plan says how it differs."""
    changed = pipeline(*FLOW.stages[:3], name="flow")
    plan = build_plan(_recorded(_ran("plan")), pipeline_file=changed, use_file=True)
    assert (changed, ("release",), [], ("plan", "build", "check")) == (
        plan.pipeline,
        plan.changes.removed if plan.changes else None,
        plan.missing,
        plan.rerun,
    )


def test_a_definition_not_recorded_is_missing() -> None:
    """Spans of schema 1 hold no definition: the pipeline file must be given."""
    plan = build_plan(_recorded(_ran("plan"), definition=None))
    expected = MissingValue(
        "the definition",
        "not recorded (span schema 1)",
        "the pipeline file: taskdaemon replay RUN FILE",
    )
    assert (None, _missing(expected), ()) == (plan.pipeline, _missing(*plan.missing), plan.rerun)


def test_a_definition_cut_on_the_way_is_missing_with_the_backend_hint() -> None:
    """A definition a backend cut is missing, and the problem names the limit to raise."""
    text = FLOW.canonical_json
    cut = RecordedValue(text[:10], size=len(text), sha256=sha256_text(text))
    plan = build_plan(_recorded(_ran("plan"), definition=cut))
    expected = f"cut on the way to the span source (10 of {len(text)} bytes kept): {TEMPO_HINT}"
    assert [expected] == [m.problem for m in plan.missing]


def test_a_file_other_than_an_unreadable_definition_needs_use_file() -> None:
    """When the recorded definition cannot be read, a file that is not it is run only with
    ``use_file``; without it the definition is missing."""
    changed = pipeline(*FLOW.stages[:3], name="flow")
    recorded = _recorded(_ran("plan"), definition=None)
    refused = build_plan(recorded, pipeline_file=changed)
    used = build_plan(recorded, pipeline_file=changed, use_file=True)
    expected = MissingValue(
        "the definition",
        "not recorded (span schema 1), and the file given is not the recorded definition",
        "--use-file to run the file anyway",
    )
    assert (None, _missing(expected), changed, []) == (
        refused.pipeline,
        _missing(*refused.missing),
        used.pipeline,
        used.missing,
    )


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"name": "flow"}, "KeyError('stages')"),
        ([1], "TypeError('list indices must be integers or slices, not str')"),
    ],
)
def test_a_recorded_definition_that_does_not_read_back_is_missing(
    document: Any, reason: str
) -> None:
    """A recorded definition whose JSON is not a pipeline is missing, with the reason."""
    text = json.dumps(document)
    bad = RecordedValue(text, size=len(text), sha256=sha256_text(text))
    plan = build_plan(_recorded(_ran("plan"), definition=bad))
    expected = MissingValue(
        "the definition",
        f"the recorded definition is not a taskdaemon definition ({reason})",
        "the pipeline file: taskdaemon replay RUN FILE",
    )
    assert _missing(expected) == _missing(*plan.missing)


def test_the_recorded_definition_names_the_run_as_its_source() -> None:
    """The pipeline read back from a run's spans says it came from that run (messages about
    it name the run, not a file)."""
    plan = build_plan(_recorded(_ran("plan")))
    assert f"run {RUN}" == (plan.pipeline.source if plan.pipeline else None)


# -- the plan ----------------------------------------------------------------------------------


def test_check_names_every_missing_value() -> None:
    """``check`` refuses a plan with missing values, one line per value under the run's id."""
    recorded = _recorded(_ran("plan", outputs=RecordedValue(None)), _ran("build"))
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
    assert FLOW == build_plan(_recorded(_ran("plan"))).check()


def test_check_refuses_a_plan_without_a_pipeline() -> None:
    """A plan with no pipeline is refused even when nothing is listed as missing."""
    plan = build_plan(_recorded(_ran("plan")))
    plan.pipeline = None
    with pytest.raises(ReplayError) as refused:
        plan.check()
    assert f"cannot replay run {RUN}:" == str(refused.value)


def test_describe_says_what_happens_to_each_stage() -> None:
    """The dry run lists each stage in definition order: fed ones with their instances,
    statuses and events, the others as run."""
    events = [_event("part", 1, _value({})), _event("part", 2, _value({}))]
    recorded = _recorded(
        _ran("plan", "failure"),
        _ran("plan", instance=1),
        _ran("build", events=events),
        _ran("check"),
    )
    plan = build_plan(recorded, from_stage="check")
    expected = [
        "feed  plan: recorded outputs of 2 instances (failure/success), 0 events",
        "feed  build: recorded outputs of 1 instance (success), 2 events",
        "run   check",
        "run   release",
    ]
    assert expected == plan.describe()


def test_describe_without_a_pipeline_lists_the_fed_stages() -> None:
    """Without a pipeline the dry run lists only what is fed."""
    plan = build_plan(_recorded(_ran("plan"), _ran("build")), from_stage="build")
    plan.pipeline = None
    assert ["feed  plan: recorded outputs of 1 instance (success), 0 events"] == (plan.describe())


# -- --stage-output files ----------------------------------------------------------------------


def test_a_stage_output_file_is_read_as_json(tmp_path: Path) -> None:
    """``STAGE=FILE.json`` gives the stage and the file's JSON."""
    path = tmp_path / "out.json"
    path.write_text('{"steps": [1]}')
    assert ("plan", {"steps": [1]}) == load_stage_output(f"plan={path}")


@pytest.mark.parametrize("spec", ["plan", "=out.json", "plan="])
def test_a_stage_output_without_stage_and_file_is_refused(spec: str) -> None:
    """A spec that is not ``STAGE=FILE.json`` is a one-line ValueError."""
    with pytest.raises(ValueError, match="expected") as refused:
        load_stage_output(spec)
    assert f"--stage-output {spec!r}: expected STAGE=FILE.json" == str(refused.value)


def test_a_stage_output_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    """A file that cannot be opened is a one-line ValueError with the system's reason."""
    spec = f"plan={tmp_path / 'none.json'}"
    with pytest.raises(ValueError, match="No such") as refused:
        load_stage_output(spec)
    assert f"--stage-output {spec}: No such file or directory" == str(refused.value)


def test_a_stage_output_file_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    """A file that is not JSON is a one-line ValueError naming the spec."""
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    with pytest.raises(ValueError, match="--stage-output") as refused:
        load_stage_output(f"plan={path}")
    assert str(refused.value).startswith(f"--stage-output plan={path}: ")


def test_a_stage_output_file_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    """``--stage-output S=FILE`` with JSON nested 100,000 deep is a one-line ValueError naming
    the depth limit, not a RecursionError traceback."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested") as refused:
        load_stage_output(f"b={path}")
    assert f"--stage-output b={path}: nested deeper than 100 levels" == str(refused.value)


def test_a_stage_output_file_name_may_hold_an_equals_sign(tmp_path: Path) -> None:
    """Only the first ``=`` ends the stage name: the file's name may hold more."""
    path = tmp_path / "a=b.json"
    path.write_text("[1]")
    assert ("plan", [1]) == load_stage_output(f"plan={path}")


def test_a_stage_output_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    """A file that is not UTF-8 is a one-line ValueError naming the spec and the offset."""
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(ValueError, match="UTF-8") as refused:
        load_stage_output(f"plan={path}")
    assert f"--stage-output plan={path}: not UTF-8 (invalid byte at offset 7)" == str(refused.value)


# -- what the record lacks ---------------------------------------------------------------------


def _span(**counts: int) -> SpanRecord:
    return SpanRecord(RUN, "s" * 16, None, "run", "INTERNAL", 0, 1, **counts)


@pytest.mark.parametrize(
    ("spans", "note"),
    [
        ((_span(), _span()), None),
        (
            (_span(events_dropped_when_written=3), _span(links_dropped_when_written=2)),
            "span events and links: 5 dropped when written",
        ),
        ((_span(dropped_events=4, dropped_links=1),), "span events and links: 5 not read"),
        (
            (_span(events_dropped_when_written=1), _span(dropped_events=2)),
            "span events and links: 1 dropped when written, 2 not read",
        ),
    ],
)
def test_a_record_missing_events_says_so_before_the_replay(
    spans: tuple[SpanRecord, ...], note: str | None
) -> None:
    """Events the SDK dropped or a reader left may have held an approval or an output the
    replay would be fed: the plan's notes say the record is incomplete, and by how much."""
    recorded = _recorded(_ran("plan"))
    recorded = RecordedRun(**{**recorded.__dict__, "spans": spans})
    notes = build_plan(recorded).notes
    expected = (
        []
        if note is None
        else [
            f"the record of run {RUN} is incomplete ({note}): the replay may differ where they "
            "mattered"
        ]
    )
    assert notes == expected
