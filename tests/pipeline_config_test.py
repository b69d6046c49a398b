"""Loading pipeline files: the canonical form, its defaults, and one exact message per mistake.

The files under ``pipelines/invalid`` and values of the wrong shape are
``pipeline_config_invalid_test.py``; scale and fuzzing, ``pipeline_config_robustness_test.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config_support import VALID, load_error, one_stage, parse_error, parse_text
from taskdaemon.pipeline.config import (
    LOOP_ENTRY_POINT_GROUP,
    load_pipeline,
    parse_pipeline,
    registered_loop_types,
)
from taskdaemon.pipeline.errors import ConfigError
from taskdaemon.pipeline.model import (
    Backoff,
    ErrorStrategy,
    InputMapping,
    LoopDef,
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    OutputMapping,
    Pipeline,
    RetryPolicy,
    Stage,
    TriggerMode,
)

# --- valid files -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(path.name for path in VALID.iterdir()))
def test_every_valid_file_loads(name: str) -> None:
    """Each file under pipelines/valid loads, orders and hashes without an error."""
    pipeline = load_pipeline(VALID / name, registered_loops=())
    assert len(pipeline.stages) == len(pipeline.topological_order)
    assert re.fullmatch("[0-9a-f]{64}", pipeline.definition_hash)


def test_design_example_loads_without_issues() -> None:
    """The canonical example pipeline (with its loop types declared) is valid."""
    pipeline = load_pipeline(VALID / "design_example.yaml", registered_loops=())
    assert tuple(stage.name for stage in pipeline.stages) == (
        "planning",
        "specification",
        "implementation",
        "release",
    )
    expected_release = Stage(
        name="release",
        loop="command",
        command="python -c 'print(42)'",
        trigger_mode=TriggerMode.ALL,
        triggers=(
            OnCompletion("implementation"),
            OnCondition("size(stages.specification.outputs.specs) > 0"),
            Manual(approval_required=True, timeout=3600.0),
        ),
    )
    assert expected_release == pipeline.stage("release")


def test_design_example_top_level_fields() -> None:
    """The design example's top-level fields load with durations in seconds."""
    pipeline = load_pipeline(VALID / "design_example.yaml", registered_loops=())
    expected = (
        "feature-delivery",
        4,
        600.0,
        ErrorStrategy.RETRY,
        RetryPolicy(3, Backoff(initial=1.0, factor=2.0, max=30.0)),
        LoopDef("lint", command="ruff check ."),
    )
    actual = (
        pipeline.name,
        pipeline.concurrency,
        pipeline.timeout,
        pipeline.error_strategy,
        pipeline.retry,
        pipeline.loops["lint"],
    )
    assert expected == actual


def test_yaml_and_toml_twins_load_to_equal_pipelines() -> None:
    """The same structure in YAML and in TOML loads to equal Pipelines with equal hashes."""
    from_yaml = load_pipeline(VALID / "release.yaml")
    from_toml = load_pipeline(VALID / "release.toml")
    assert from_yaml == from_toml
    assert from_yaml.definition_hash == from_toml.definition_hash


def test_twin_keeps_its_source() -> None:
    """Each loaded pipeline remembers its file, which is not part of equality."""
    pipeline = load_pipeline(VALID / "release.toml")
    assert str(VALID / "release.toml") == pipeline.source


def test_release_file_loads_every_field() -> None:
    """The richest valid file loads each field into the model."""
    test = load_pipeline(VALID / "release.yaml").stage("test")
    expected = Stage(
        name="test",
        loop="python",
        handler="examples.loops:test",
        parallel_instances=4,
        retry=RetryPolicy(max_attempts=5),
        triggers=(OnEvent("suite.ready"),),
        inputs=(InputMapping("suite", "event.suite"),),
        outputs=(
            OutputMapping("passed", "result.passed"),
            OutputMapping("log", "result.log", required=False),
        ),
    )
    assert expected == test


def test_json_files_load(tmp_path: Path) -> None:
    """A .json pipeline file loads."""
    path = tmp_path / "p.json"
    path.write_text(
        '{"name": "j", "stages": [{"name": "a", "command": "true", "triggers": [{"manual": {}}]}]}'
    )
    assert load_pipeline(path).topological_order == ("a",)


def test_json_numbers_follow_json_not_yaml(tmp_path: Path) -> None:
    """``1e-1`` and ``2.5e0`` in a .json file are numbers, as JSON says (YAML 1.1 reads both
    as strings, which made them a bad duration and "expected a number")."""
    path = tmp_path / "p.json"
    path.write_text(
        '{"name": "j", "retry": {"backoff": {"initial": 1e-1, "factor": 2.5e0}}, "stages":'
        ' [{"name": "a", "command": "true", "triggers": [{"manual": {}}]}]}'
    )
    backoff = load_pipeline(path).retry.backoff
    assert (0.1, 2.5) == (backoff.initial, backoff.factor)


def test_json_nan_is_an_issue(tmp_path: Path) -> None:
    """``NaN`` (which Python's ``json`` accepts) is not JSON: one issue naming it."""
    path = tmp_path / "p.json"
    path.write_text('{"name": "j", "retry": {"backoff": {"factor": NaN}}}')
    expected = f"{path}: invalid json: NaN is not JSON"
    assert expected == str(load_error(path))


def test_json_file_issue_names_its_line(tmp_path: Path) -> None:
    """A mistake in a .json file is reported at the line of its field."""
    path = tmp_path / "p.json"
    path.write_text(
        '{"name": "j",\n "stages": [{"name": "a", "command": "true",\n'
        '   "triggers": [{"manual": {}}], "concurrency": 2}]}\n'
    )
    assert str(load_error(path)).startswith(f"{path}:3: stages[0].concurrency: unknown key")


def test_empty_json_file_is_an_issue(tmp_path: Path) -> None:
    """A .json file of blanks is "the file is empty", as a YAML one is."""
    path = tmp_path / "p.json"
    path.write_text(" \n")
    assert f"{path}:1: the file is empty" == str(load_error(path))


def test_json_syntax_error_is_reported_as_json(tmp_path: Path) -> None:
    """A .json file with a syntax error is one "invalid json" issue with JSON's line."""
    path = tmp_path / "p.json"
    path.write_text('{"name": "j",\n "stages": []\n "loops": {}}\n')
    expected = f"{path}:3: invalid json: expecting ',' delimiter at column 2"
    assert expected == str(load_error(path))


def test_json_file_yaml_cannot_read_loads(tmp_path: Path) -> None:
    """A valid .json file that YAML refuses (a raw DEL character in a string) loads."""
    path = tmp_path / "p.json"
    path.write_text(
        '{"name": "j", "description": "a\x7fb", "stages": [{"name": "a", "command": "true",'
        ' "triggers": [{"manual": {}}]}]}'
    )
    assert "a\x7fb" == load_pipeline(path).description


def test_json_file_with_a_duplicate_key_is_an_issue(tmp_path: Path) -> None:
    """A duplicate key in a .json file that YAML refuses is an issue, not a silent last-wins."""
    path = tmp_path / "p.json"
    path.write_text('{"name": "j", "name": "k", "description": "\x7f"}')
    expected = f"{path}: invalid json: duplicate key 'name'"
    assert expected == str(load_error(path))


# --- fields, forms and defaults ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        ("2.5", 2.5),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1m30s250ms", 90.25),
        ("1.5h", 5400.0),
    ],
)
def test_durations_are_seconds_or_unit_strings(value: str, seconds: float) -> None:
    """A duration is a number of seconds or a string of number+unit parts."""
    pipeline = parse_text(one_stage(f"timeout: {value}"))
    assert seconds == pipeline.stages[0].timeout


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10 min", "invalid duration '10 min'"),
        ("1d", "invalid duration '1d'"),
        ("-5s", "invalid duration '-5s'"),
        ("３０s", "invalid duration '３０s'"),  # float() reads full-width digits; nothing else
        ("'４５'", "invalid duration '４５'"),
        ("'45'", "invalid duration '45' (seconds are a number: write 45 without quotes, or 45s)"),
        ("true", "expected a duration, got boolean"),
        ("-5", "must be > 0, got -5"),
        ("0ms", "must be > 0, got 0"),
    ],
)
def test_bad_durations_are_refused(value: str, expected: str) -> None:
    """Durations with an unknown unit, in other than ASCII digits, of the wrong type (seconds
    as a string) or not positive are refused."""
    assert f"stages[0].timeout: {expected}" in parse_error(one_stage(f"timeout: {value}"))


def test_defaults_of_an_almost_empty_pipeline() -> None:
    """Fields left out take their documented defaults."""
    pipeline = parse_text(one_stage(""))
    expected = Pipeline(
        name="demo",
        stages=(Stage(name="build", loop="command", command="make", triggers=(Manual(),)),),
    )
    assert expected == pipeline
    assert (4, None, ErrorStrategy.FAIL, RetryPolicy(), "") == (
        pipeline.concurrency,
        pipeline.timeout,
        pipeline.error_strategy,
        pipeline.retry,
        pipeline.description,
    )


def test_short_input_form_is_required_from() -> None:
    """`name: "CEL"` is the short form of `name: {from: CEL, required: true}`."""
    short = parse_text(one_stage("inputs:\n  goal: request.goal"))
    long = parse_text(one_stage("inputs:\n  goal: {from: request.goal, required: true}"))
    assert (InputMapping("goal", "request.goal", required=True),) == short.stages[0].inputs
    assert short == long


def test_optional_input_keeps_required_false() -> None:
    """The long input form carries `required: false` through."""
    pipeline = parse_text(one_stage("inputs:\n  goal: {from: request.goal, required: false}"))
    assert (InputMapping("goal", "request.goal", required=False),) == pipeline.stages[0].inputs


def test_outputs_are_none_unless_declared() -> None:
    """Without `outputs:` a stage's outputs are None (the handler's result is the outputs)."""
    assert None is parse_text(one_stage("")).stages[0].outputs


def test_outputs_may_read_result() -> None:
    """Output mappings read `result`, in short or long form."""
    text = one_stage("outputs:\n  code: result.code\n  log: {from: result.log, required: false}")
    expected = (OutputMapping("code", "result.code"), OutputMapping("log", "result.log", False))
    assert expected == parse_text(text).stages[0].outputs


def test_effective_timeout_falls_back_to_the_pipeline() -> None:
    """A stage's effective timeout is its own, else the pipeline's."""
    text = """\
        name: demo
        timeout: 5m
        stages:
          - {name: own, command: a, timeout: 30s, triggers: [manual: {}]}
          - {name: inherited, command: b, triggers: [manual: {}]}
        """
    pipeline = parse_text(text)
    actual = [pipeline.effective_timeout(stage) for stage in pipeline.stages]
    assert actual == [30.0, 300.0]


def test_effective_timeout_is_none_without_any() -> None:
    """Without a stage or pipeline timeout a stage has no timeout."""
    pipeline = parse_text(one_stage(""))
    assert None is pipeline.effective_timeout(pipeline.stages[0])


def test_effective_retry_falls_back_to_the_pipeline() -> None:
    """A stage without `retry:` uses the pipeline's retry policy."""
    pipeline = parse_text(one_stage("", top="retry: {max_attempts: 3}\n"))
    assert RetryPolicy(max_attempts=3) == pipeline.effective_retry(pipeline.stages[0])


def test_null_optional_field_means_not_set() -> None:
    """`timeout: ~` is the same as leaving the timeout out."""
    assert parse_text(one_stage("timeout: ~")) == parse_text(one_stage(""))


def test_manual_without_body_is_manual_with_defaults() -> None:
    """`- manual:` with no body is an entry trigger."""
    text = "name: demo\nstages:\n  - name: a\n    command: x\n    triggers:\n      - manual:\n"
    assert (Manual(),) == parse_text(text).stages[0].triggers


def test_loop_is_inferred_from_handler_or_command() -> None:
    """A stage with only `handler:` runs loop python; with only `command:`, loop command."""
    text = """\
        name: demo
        stages:
          - {name: a, handler: "pkg.mod:run", triggers: [manual: {}]}
          - {name: b, command: "make", triggers: [manual: {}]}
        """
    assert [stage.loop for stage in parse_text(text).stages] == ["python", "command"]


def test_yaml_anchors_and_merge_keys_work() -> None:
    """Anchors, aliases and `<<` merge keys are plain YAML and load."""
    text = """\
        name: demo
        stages:
          - &base {name: a, command: make, timeout: 1m, triggers: [manual: {}]}
          - <<: *base
            name: b
        """
    assert [stage.timeout for stage in parse_text(text).stages] == [60.0, 60.0]


def test_merged_keys_may_be_overridden_but_own_keys_not_repeated() -> None:
    """A key merged by `<<` may be set again by the mapping itself, or by a later merge, but
    a key the mapping sets twice itself is a duplicate, reported at its second line."""
    text = """\
        name: demo
        stages:
          - &base {name: a, command: make, triggers: [manual: {}]}
          - <<: [*base, {command: other}]
            name: b
            command: test
          - name: c
            command: one
            triggers: [manual: {}]
            command: two
        """
    message = parse_error(text)
    assert message.splitlines() == ["<string>:10: stages[2].command: duplicate key"]
    valid = text.replace("    command: two\n", "")
    assert [stage.command for stage in parse_text(valid).stages] == ["make", "test", "one"]


def test_integers_are_not_floats_or_strings() -> None:
    """`concurrency: "3"` and `concurrency: 2.5` are refused as non-integers."""
    assert "concurrency: expected an integer, got string" in parse_error(
        one_stage("", top="concurrency: '3'\n")
    )
    assert "concurrency: expected an integer, got number" in parse_error(
        one_stage("", top="concurrency: 2.5\n")
    )


def test_unknown_key_without_close_match_lists_allowed_keys() -> None:
    """An unknown key with no close match lists the keys that are allowed there."""
    text = one_stage("retry: {zzz: 1}")
    expected = "stages[0].retry.zzz: unknown key (expected max_attempts or backoff)"
    assert expected in parse_error(text)


def test_unknown_loop_without_close_match_lists_known_loops() -> None:
    """An unknown loop type with no close match lists the known ones."""
    text = "name: demo\nstages:\n  - {name: a, loop: zzz, triggers: [manual: {}]}\n"
    assert "stages[0].loop: unknown loop type 'zzz' (known: command, python)" in (parse_error(text))


def test_loops_may_not_shadow_builtins() -> None:
    """Declaring a loop called `python` under `loops:` is refused."""
    text = one_stage("", top="loops:\n  python: {handler: 'a.b:c'}\n")
    assert "loops.python: shadows the built-in loop type 'python'" in parse_error(text)


def test_external_event_makes_an_entry_stage() -> None:
    """An on_event stage of a type in external_events can start with the run."""
    text = """\
        name: demo
        external_events: [push]
        stages:
          - {name: a, command: x, triggers: [on_event: {type: push, filter: "event.ok"}]}
        """
    assert parse_text(text).external_events == ("push",)


def test_event_is_visible_to_inputs_of_event_triggered_stages() -> None:
    """Inputs of an on_event stage may read `event`; the filter may too."""
    text = """\
        name: demo
        external_events: [push]
        stages:
          - name: a
            command: x
            triggers: [on_event: {type: push, filter: "event.branch == 'main'"}]
            inputs: {ref: event.ref}
        """
    assert (InputMapping("ref", "event.ref"),) == parse_text(text).stages[0].inputs


def test_str_of_config_error_is_one_line_per_issue() -> None:
    """str(ConfigError) is one `FILE:LINE: PATH: REASON` line per issue."""
    text = one_stage("parallel_instances: 0\ntimeout: 0", top="concurrency: 0\n")
    expected = (
        "<string>:2: concurrency: must be >= 1, got 0\n"
        "<string>:8: stages[0].parallel_instances: must be >= 1, got 0\n"
        "<string>:9: stages[0].timeout: must be > 0, got 0"
    )
    assert expected == parse_error(text)


def test_every_refused_value_is_quoted_short() -> None:
    """A 3,000-character value in each place a file names one (a handler, a loop type, a
    duration, a stage read by an expression, an event type, a trigger mode, a stage name) is
    named in its issue as ``quoting.quote`` cuts it: no issue line runs past 200 characters
    (they ran past 3,000)."""
    long = "x" * 3000
    text = f"""\
        name: p
        loops:
          l: {{handler: "{long}"}}
        stages:
          - name: s
            loop: {long}
            timeout: {long}
            triggers: [{{on_event: {{type: "{long}"}}}}]
            inputs: {{a: "stages.{long}.outputs.x"}}
          - name: "{long.upper()}"
            loop: l
            triggers: [{{manual: {{}}}}]
            trigger_mode: "{long}"
        """
    lines = parse_error(text).splitlines()
    assert (7, []) == (len(lines), [line[:80] for line in lines if len(line) > 200])
    assert all(f"'{'x' * 39}\u2026'" in line.lower() for line in lines), lines


def test_parse_pipeline_names_its_source() -> None:
    """parse_pipeline's `source` is the file named in issues and kept on the pipeline."""
    with pytest.raises(ConfigError) as caught:
        parse_pipeline("name: demo\nstages: []\n", source="inline.yaml")
    assert str(caught.value) == "inline.yaml:2: stages: must not be empty"


def test_parse_pipeline_refuses_unknown_format() -> None:
    """An unknown `fmt` is a programming error (ValueError), not a config issue."""
    with pytest.raises(ValueError, match="unknown pipeline format 'ini'"):
        parse_pipeline("", fmt="ini")  # type: ignore[arg-type]


# --- loop types registered through entry points -------------------------------------------------


def _install_loop_distribution(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real (tiny) installed distribution that registers loop type `ralph`."""
    info = root / "td_ralph-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: td-ralph\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{LOOP_ENTRY_POINT_GROUP}]\nralph = td_ralph:run\n")
    monkeypatch.syspath_prepend(str(root))


def test_entry_point_loop_types_are_known(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop type registered in the `taskdaemon.loops` entry point group validates."""
    _install_loop_distribution(tmp_path, monkeypatch)
    assert "ralph" in registered_loop_types()
    text = "name: demo\nstages:\n  - {name: a, loop: ralph, triggers: [manual: {}]}\n"
    assert parse_text(text).stages[0].loop == "ralph"


def test_registered_loops_argument_replaces_entry_points() -> None:
    """`registered_loops=` names extra loop types without any entry point look-up."""
    text = "name: demo\nstages:\n  - {name: a, loop: ralph, triggers: [manual: {}]}\n"
    assert parse_text(text, registered_loops={"ralph"}).stages[0].loop == "ralph"
