"""Replay plans, where a replay's inputs come from: the recorded definition or a file (and when
a different file needs ``--use-file``), the values given instead of recorded ones
(``--stage-output`` files), and the notes on a record that lacks span events."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline_engine_support import pipeline
from pipeline_replay_support import FLOW
from replay_plan_support import RUN, missing_rows, ran, recorded_run
from taskdaemon.pipeline.definition import sha256_text
from taskdaemon.pipeline.replay.plan import (
    MissingValue,
    build_plan,
)
from taskdaemon.pipeline.replay.plan_values import TEMPO_HINT, load_stage_output
from taskdaemon.pipeline.replay.record import (
    RecordedRun,
    RecordedValue,
)
from taskdaemon.pipeline.tracking.spans import SpanRecord

# -- the definition ----------------------------------------------------------------------------


def test_the_recorded_definition_is_the_pipeline() -> None:
    """Without a file, the plan runs the recorded definition, read back as it was."""
    plan = build_plan(recorded_run(ran("plan")))
    assert (FLOW, None, []) == (plan.pipeline, plan.changes, plan.missing)


def test_a_file_that_is_the_recorded_definition_is_used() -> None:
    """A pipeline file with the recorded definition's hash is run, with no changes."""
    plan = build_plan(recorded_run(ran("plan")), pipeline_file=FLOW)
    assert (FLOW, None, []) == (plan.pipeline, plan.changes, plan.missing)


def test_a_different_file_is_refused_without_use_file() -> None:
    """A pipeline file that differs from the recorded definition is missing the definition,
    saying what differs, unless ``use_file``."""
    changed = pipeline(*FLOW.stages[:3], name="flow")
    plan = build_plan(recorded_run(ran("plan")), pipeline_file=changed)
    expected = MissingValue(
        "the definition",
        "the file differs from the recorded one (stages removed: release)",
        "--use-file to run the file instead",
    )
    assert (None, ("release",), missing_rows(expected)) == (
        plan.pipeline,
        plan.changes.removed if plan.changes else None,
        missing_rows(*plan.missing),
    )


def test_a_different_file_is_run_with_use_file() -> None:
    """With ``use_file`` a differing file is run, and the plan says how it differs."""
    changed = pipeline(*FLOW.stages[:3], name="flow")
    plan = build_plan(recorded_run(ran("plan")), pipeline_file=changed, use_file=True)
    assert (changed, ("release",), [], ("plan", "build", "check")) == (
        plan.pipeline,
        plan.changes.removed if plan.changes else None,
        plan.missing,
        plan.rerun,
    )


def test_a_definition_not_recorded_is_missing() -> None:
    """Spans of schema 1 hold no definition: the pipeline file must be given."""
    plan = build_plan(recorded_run(ran("plan"), definition=None))
    expected = MissingValue(
        "the definition",
        "not recorded (span schema 1)",
        "the pipeline file: taskdaemon replay RUN FILE",
    )
    assert (None, missing_rows(expected), ()) == (
        plan.pipeline,
        missing_rows(*plan.missing),
        plan.rerun,
    )


def test_a_definition_cut_on_the_way_is_missing_with_the_backend_hint() -> None:
    """A definition a backend cut is missing, and the problem names the limit to raise."""
    text = FLOW.canonical_json
    cut = RecordedValue(text[:10], size=len(text), sha256=sha256_text(text))
    plan = build_plan(recorded_run(ran("plan"), definition=cut))
    expected = f"cut on the way to the span source (10 of {len(text)} bytes kept): {TEMPO_HINT}"
    assert [expected] == [m.problem for m in plan.missing]


def test_a_file_other_than_an_unreadable_definition_needs_use_file() -> None:
    """When the recorded definition cannot be read, a file that is not it is run only with
    ``use_file``; without it the definition is missing."""
    changed = pipeline(*FLOW.stages[:3], name="flow")
    recorded = recorded_run(ran("plan"), definition=None)
    refused = build_plan(recorded, pipeline_file=changed)
    used = build_plan(recorded, pipeline_file=changed, use_file=True)
    expected = MissingValue(
        "the definition",
        "not recorded (span schema 1), and the file given is not the recorded definition",
        "--use-file to run the file anyway",
    )
    assert (None, missing_rows(expected), changed, []) == (
        refused.pipeline,
        missing_rows(*refused.missing),
        used.pipeline,
        used.missing,
    )


def test_a_run_killed_before_its_definition_was_stored_takes_a_file_on_use_file() -> None:
    """A run killed before its telemetry loaded has neither its definition nor its hash nor an
    end: the plan says so (not "span schema 1"), and that a file given cannot be checked
    against it (not that the file differs); asked for the file, it is told to add
    ``--use-file``, which alone runs it."""
    changed = pipeline(*FLOW.stages[:3], name="flow")
    recorded = dataclasses.replace(
        recorded_run(ran("plan"), definition=None), definition_hash=None, status="running"
    )
    asked = build_plan(recorded)
    refused = build_plan(recorded, pipeline_file=changed)
    used = build_plan(recorded, pipeline_file=changed, use_file=True)
    expected = (
        MissingValue(
            "the definition",
            "not stored (the run's record stops before its telemetry loaded)",
            "the pipeline file: taskdaemon replay RUN FILE --use-file",
        ),
        MissingValue(
            "the definition",
            "not stored (the run's record stops before its telemetry loaded), and no hash of it "
            "was recorded to check the file given against",
            "--use-file to run the file anyway",
        ),
    )
    assert (missing_rows(*expected), changed, []) == (
        missing_rows(*asked.missing, *refused.missing),
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
    plan = build_plan(recorded_run(ran("plan"), definition=bad))
    expected = MissingValue(
        "the definition",
        f"the recorded definition is not a taskdaemon definition ({reason})",
        "the pipeline file: taskdaemon replay RUN FILE",
    )
    assert missing_rows(expected) == missing_rows(*plan.missing)


def test_a_recorded_definition_with_a_cycle_is_missing() -> None:
    """The recorded text's hash proves nothing (whoever wrote the store wrote it too): a
    definition no run can have had, here plan and build triggering each other, is missing,
    with the first problem, and nothing is planned over it."""
    data = json.loads(FLOW.canonical_json)
    data["stages"][0]["triggers"] = [{"on_completion": {"stage": "build", "success_only": True}}]
    text = json.dumps(data)
    crafted = RecordedValue(text, size=len(text), sha256=sha256_text(text))
    plan = build_plan(recorded_run(ran("plan"), definition=crafted))
    ((what, problem, _),) = missing_rows(*plan.missing)
    assert (None, "the definition") == (plan.pipeline, what)
    assert problem == (
        f"the recorded definition is invalid: run {RUN}: "
        "stages[0].triggers[0].on_completion.stage: cycle: plan -> build -> plan (none of them "
        "can start: 'plan' waits for 'build' here; remove this trigger)"
    )


def test_the_recorded_definition_names_the_run_as_its_source() -> None:
    """The pipeline read back from a run's spans says it came from that run (messages about
    it name the run, not a file)."""
    plan = build_plan(recorded_run(ran("plan")))
    assert f"run {RUN}" == (plan.pipeline.source if plan.pipeline else None)


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


def test_an_endless_stage_output_file_is_refused_at_the_size_limit() -> None:
    """``--stage-output S=/dev/zero`` was read whole, growing until memory ran out: it is
    read up to the limit ``--input-file`` has (16 MiB) and refused in one line."""
    with pytest.raises(ValueError, match="--stage-output") as refused:
        load_stage_output("b=/dev/zero")
    assert "--stage-output b=/dev/zero: larger than 16777216 bytes" == str(refused.value)


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
    recorded = recorded_run(ran("plan"))
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
