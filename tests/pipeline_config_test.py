"""Loading pipeline files: the canonical form, its defaults, and one exact message per mistake."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from taskdaemon.pipeline.config import (
    LOOP_ENTRY_POINT_GROUP,
    load_pipeline,
    parse_pipeline,
    registered_loop_types,
)
from taskdaemon.pipeline.errors import ConfigError, ValidationIssue
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

TESTS = Path(__file__).parent
VALID = TESTS / "pipelines" / "valid"
INVALID = TESTS / "pipelines" / "invalid"

#: file name -> the exact text of ``str(ConfigError)`` when loading it from ``tests/``.
EXPECTED = {
    "backoff_factor.yaml": (
        "pipelines/invalid/backoff_factor.yaml:5: retry.backoff.factor: must be >= 1, got 0.5"
    ),
    "bad_duration.yaml": (
        "pipelines/invalid/bad_duration.yaml:2: timeout: invalid duration '10 minutes' "
        "(expected seconds or 500ms, 30s, 10m, 2h)"
    ),
    "bad_error_strategy.yaml": (
        "pipelines/invalid/bad_error_strategy.yaml:2: error_strategy: unknown error strategy "
        "'retyr' (did you mean 'retry'?)"
    ),
    "bad_handler.yaml": (
        "pipelines/invalid/bad_handler.yaml:4: stages[0].handler: invalid handler "
        "'tools.build.run' (expected module:function)"
    ),
    "bad_pipeline_name.yaml": (
        "pipelines/invalid/bad_pipeline_name.yaml:1: name: invalid name 'Feature Delivery' "
        "(expected [a-z0-9][a-z0-9_.-]*)"
    ),
    "bad_stage_name.yaml": (
        "pipelines/invalid/bad_stage_name.yaml:3: stages[0].name: invalid name 'Build_All' "
        "(expected [a-z0-9][a-z0-9_.-]*)"
    ),
    "bool_for_int.yaml": (
        "pipelines/invalid/bool_for_int.yaml:2: concurrency: expected an integer, got boolean"
    ),
    "cel_dashed_stage.yaml": (
        "pipelines/invalid/cel_dashed_stage.yaml:10: "
        "stages[1].triggers[0].on_condition.expression: stages.release-gate is a subtraction "
        'in CEL (write stages["release-gate"])'
    ),
    "cel_event_in_condition.yaml": (
        "pipelines/invalid/cel_event_in_condition.yaml:6: "
        "stages[0].triggers[0].on_condition.expression: unknown variable 'event' (available: "
        "request, stages)"
    ),
    "cel_result_in_input.yaml": (
        "pipelines/invalid/cel_result_in_input.yaml:8: stages[0].inputs.code.from: unknown "
        "variable 'result' (available: request, stages)"
    ),
    "cel_syntax.yaml": (
        "pipelines/invalid/cel_syntax.yaml:6: stages[0].triggers[0].on_condition.expression: "
        "syntax error at column 17: mismatched input '<EOF>'"
    ),
    "cel_unknown_stage.yaml": (
        "pipelines/invalid/cel_unknown_stage.yaml:12: stages[1].inputs.plan.from: reads "
        "unknown stage 'planing' (did you mean 'planning'?)"
    ),
    "cel_unknown_variable.yaml": (
        "pipelines/invalid/cel_unknown_variable.yaml:8: stages[0].inputs.goal.from: unknown "
        "variable 'reqest' (available: request, stages)"
    ),
    "command_without_command.yaml": (
        "pipelines/invalid/command_without_command.yaml:3: stages[0].command: required for "
        "loop 'command'"
    ),
    "concurrency_zero.yaml": (
        "pipelines/invalid/concurrency_zero.yaml:2: concurrency: must be >= 1, got 0"
    ),
    "cycle.yaml": (
        "pipelines/invalid/cycle.yaml:11: stages[1].triggers[1].on_completion.stage: cycle: a "
        "-> b -> c -> a"
    ),
    "duplicate_key.yaml": (
        "pipelines/invalid/duplicate_key.yaml:7: stages[0].command: duplicate key"
    ),
    "duplicate_stage.yaml": (
        "pipelines/invalid/duplicate_stage.yaml:7: stages[1].name: duplicate stage name "
        "'build' (first at stages[0])"
    ),
    "empty_file.yaml": ("pipelines/invalid/empty_file.yaml:1: the file is empty"),
    "empty_stages.yaml": ("pipelines/invalid/empty_stages.yaml:2: stages: must not be empty"),
    "event_cycle.yaml": (
        "pipelines/invalid/event_cycle.yaml:12: stages[1].triggers[0].on_event.type: cycle: "
        "worker -> checker -> worker"
    ),
    "loop_handler_and_command.yaml": (
        "pipelines/invalid/loop_handler_and_command.yaml:3: loops.lint: expected exactly one "
        "of 'handler' or 'command'"
    ),
    "manual_timeout_without_approval.yaml": (
        "pipelines/invalid/manual_timeout_without_approval.yaml:6: "
        "stages[0].triggers[0].manual.timeout: only used when approval_required is true"
    ),
    "max_attempts_zero.yaml": (
        "pipelines/invalid/max_attempts_zero.yaml:5: stages[0].retry.max_attempts: must be >= "
        "1, got 0"
    ),
    "missing_stage_name.yaml": (
        "pipelines/invalid/missing_stage_name.yaml:3: stages[0].name: missing required field"
    ),
    "no_entry_stage.yaml": (
        "pipelines/invalid/no_entry_stage.yaml:2: stages: no entry stage (a stage with no "
        "upstream stages and a manual, on_condition or external on_event trigger)"
    ),
    "parallel_instances_zero.yaml": (
        "pipelines/invalid/parallel_instances_zero.yaml:5: stages[0].parallel_instances: must "
        "be >= 1, got 0"
    ),
    "parallel_instances_without_on_event.yaml": (
        "pipelines/invalid/parallel_instances_without_on_event.yaml:9: "
        "stages[1].parallel_instances: caps concurrent on_event instances, and this stage has "
        "no on_event trigger"
    ),
    "python_without_handler.yaml": (
        "pipelines/invalid/python_without_handler.yaml:3: stages[0].handler: required for loop "
        "'python'"
    ),
    "self_completion.yaml": (
        "pipelines/invalid/self_completion.yaml:11: stages[1].triggers[1].on_completion.stage: "
        "cycle: again -> again"
    ),
    "several_problems.yaml": (
        "pipelines/invalid/several_problems.yaml:3: concurrency: must be >= 1, got -1\n"
        "pipelines/invalid/several_problems.yaml:4: timeout: invalid duration 'soon' (expected "
        "seconds or 500ms, 30s, 10m, 2h)\n"
        "pipelines/invalid/several_problems.yaml:7: stages[0].loop: unknown loop type 'plann' "
        "(known: command, python)\n"
        "pipelines/invalid/several_problems.yaml:9: "
        "stages[0].triggers[0].manual.approval_required: expected a boolean, got string\n"
        "pipelines/invalid/several_problems.yaml:12: stages[1].paralel_instances: unknown key "
        "(did you mean 'parallel_instances'?)\n"
        "pipelines/invalid/several_problems.yaml:14: "
        "stages[1].triggers[0].on_completion.stage: unknown stage 'planing' (did you mean "
        "'planning'?)\n"
        "pipelines/invalid/several_problems.yaml:16: stages[1].inputs.plan.from: syntax error "
        "at column 31: mismatched input '<EOF>'\n"
        "pipelines/invalid/several_problems.yaml:17: stages[2].name: duplicate stage name "
        "'planning' (first at stages[0])\n"
        "pipelines/invalid/several_problems.yaml:20: stages[2].triggers[0].on_event.type: no "
        "stage emits 'spec.redy' and it is not in external_events"
    ),
    "stages_not_list.yaml": (
        "pipelines/invalid/stages_not_list.yaml:2: stages: expected a list, got integer"
    ),
    "string_for_bool.yaml": (
        "pipelines/invalid/string_for_bool.yaml:10: "
        "stages[1].triggers[0].on_completion.success_only: expected a boolean, got string"
    ),
    "top_level_list.yaml": (
        "pipelines/invalid/top_level_list.yaml:1: expected a mapping at the top level, got list"
    ),
    "trigger_string.yaml": (
        "pipelines/invalid/trigger_string.yaml:6: stages[0].triggers[0]: expected a mapping "
        "with one of on_completion, on_event, on_condition or manual, got string"
    ),
    "two_triggers_in_one_item.yaml": (
        "pipelines/invalid/two_triggers_in_one_item.yaml:10: stages[1].triggers[0]: expected "
        "one trigger per list item, got manual and on_completion"
    ),
    "unemitted_event.yaml": (
        "pipelines/invalid/unemitted_event.yaml:10: stages[1].triggers[0].on_event.type: no "
        "stage emits 'spec.ready' and it is not in external_events"
    ),
    "unknown_completion_stage.yaml": (
        "pipelines/invalid/unknown_completion_stage.yaml:10: "
        "stages[1].triggers[0].on_completion.stage: unknown stage 'planing' (did you mean "
        "'planning'?)"
    ),
    "unknown_key.toml": (
        "pipelines/invalid/unknown_key.toml: concurency: unknown key (did you mean 'concurrency'?)"
    ),
    "unknown_loop.yaml": (
        "pipelines/invalid/unknown_loop.yaml:6: stages[0].loop: unknown loop type 'plann' (did "
        "you mean 'plan'?)"
    ),
    "unknown_stage_key.yaml": (
        "pipelines/invalid/unknown_stage_key.yaml:5: stages[0].descripton: unknown key (did "
        "you mean 'description'?)"
    ),
    "unknown_top_key.yaml": (
        "pipelines/invalid/unknown_top_key.yaml:2: concurency: unknown key (did you mean "
        "'concurrency'?)"
    ),
    "unknown_trigger_kind.yaml": (
        "pipelines/invalid/unknown_trigger_kind.yaml:10: stages[1].triggers[0].on_complete: "
        "unknown key (did you mean 'on_completion'?)"
    ),
    "yaml_syntax.yaml": (
        "pipelines/invalid/yaml_syntax.yaml:5: invalid yaml: mapping values are not allowed here"
    ),
    "zero_duration.yaml": (
        "pipelines/invalid/zero_duration.yaml:5: stages[0].timeout: must be > 0, got 0"
    ),
}


def _load_error(path: str | Path, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, **kwargs)  # type: ignore[arg-type]
    return caught.value


def _parse_error(text: str, fmt: str = "yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        parse_pipeline(textwrap.dedent(text), fmt=fmt)  # type: ignore[arg-type]
    return str(caught.value)


def _parse(text: str, **kwargs: object) -> Pipeline:
    return parse_pipeline(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]


def _one_stage(stage_fields: str, top: str = "") -> str:
    """A pipeline text with one command stage (entry by manual trigger) plus extra fields."""
    body = textwrap.indent(textwrap.dedent(stage_fields).strip(), "    ") if stage_fields else ""
    return (
        "name: demo\n"
        + textwrap.dedent(top)
        + "stages:\n  - name: build\n    command: make\n    triggers:\n      - manual: {}\n"
        + (body + "\n" if body else "")
    )


# --- invalid files -----------------------------------------------------------------------------


def test_at_least_25_invalid_files_have_an_expected_message() -> None:
    """Every invalid file has an entry in the table, and there are at least 25 of them."""
    files = sorted(path.name for path in INVALID.iterdir())
    assert sorted(EXPECTED) == files
    assert len(files) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_file_reports_exact_message(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each invalid file fails with exactly the expected issues, file and line included."""
    monkeypatch.chdir(TESTS)
    error = _load_error(f"pipelines/invalid/{name}", registered_loops=())
    assert EXPECTED[name] == str(error)


def test_every_issue_of_a_file_is_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file with several problems reports each one as its own issue, in line order."""
    monkeypatch.chdir(TESTS)
    error = _load_error("pipelines/invalid/several_problems.yaml", registered_loops=())
    assert [issue.line for issue in error.issues] == [3, 4, 7, 9, 12, 14, 16, 17, 20]


def test_issue_carries_file_path_line_and_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ValidationIssue names the file, the canonical field path, the line and the reason."""
    monkeypatch.chdir(TESTS)
    error = _load_error("pipelines/invalid/unemitted_event.yaml")
    expected = ValidationIssue(
        path="stages[1].triggers[0].on_event.type",
        message="no stage emits 'spec.ready' and it is not in external_events",
        file="pipelines/invalid/unemitted_event.yaml",
        line=10,
    )
    assert (expected,) == error.issues


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing file becomes a ConfigError naming it, not an OSError."""
    path = tmp_path / "missing.yaml"
    error = _load_error(path)
    assert f"{path}: cannot read the file: no such file or directory" == str(error)


def test_unknown_suffix_is_a_config_error(tmp_path: Path) -> None:
    """A file that is neither YAML nor TOML is refused by its suffix."""
    path = tmp_path / "pipeline.ini"
    path.write_text("name = demo\n")
    expected = f"{path}: unknown file type '.ini' (expected .yaml, .yml, .json or .toml)"
    assert expected == str(_load_error(path))


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    """A file that is not UTF-8 text is reported with the offending byte."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    assert f"{path}: not utf-8 text (byte 9)" == str(_load_error(path))


def test_toml_syntax_error_has_its_line() -> None:
    """A TOML syntax error is a ConfigError with the line the parser names."""
    text = 'name = "demo"\nconcurrency = = 4\n'
    assert _parse_error(text, fmt="toml") == "<string>:2: invalid toml: invalid value"


def test_a_toml_integer_too_long_to_convert_is_one_line() -> None:
    """An integer of 5,000 digits, which Python refuses to convert, is a ConfigError line (it
    was a ValueError traceback out of ``validate``)."""
    text = f'name = "demo"\nconcurrency = {"9" * 5000}\n'
    assert _parse_error(text, fmt="toml").startswith("<string>: invalid toml: exceeds the limit")


def test_a_key_holding_a_digit_int_refuses_is_an_issue_with_its_line() -> None:
    """A key like ``x[²]`` reads as an index to the line finder, but ``int`` refuses ``²``
    (``isdigit`` does not): it is an unknown key on its line, not a ValueError traceback."""
    text = 'name: p\nstages:\n  - ~\n"stages[\u00b2]": 1\n"x[\u0663]": 2\n'
    lines = _parse_error(text).splitlines()
    assert "<string>:4: stages[\u00b2]: unknown key (did you mean 'stages'?)" in lines
    assert any(line.startswith("<string>:5: x[\u0663]: unknown key") for line in lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stages: 3", "stages: expected a list, got integer"),
        ("stages: [3]", "stages[0]: expected a mapping, got integer"),
        ("stages: [{triggers: 3}]", "stages[0].triggers: expected a list, got integer"),
        ("stages: [{triggers: [[]]}]", "stages[0].triggers[0]: expected a mapping with one of"),
        ("stages: [{inputs: [a]}]", "stages[0].inputs: expected a mapping, got list"),
        ("stages: [{inputs: {a: 1}}]", "stages[0].inputs.a: expected a CEL string or a mapping"),
        ("loops: [a]", "loops: expected a mapping, got list"),
        ("loops: {a: 1}", "loops.a: expected a mapping, got integer"),
        ("retry: 3", "retry: expected a mapping, got integer"),
        ("retry: {backoff: 2}", "retry.backoff: expected a mapping, got integer"),
        ("external_events: spec", "external_events: expected a list, got string"),
        ("external_events: ['']", "external_events[0]: must not be empty"),
        ("name: 2024-01-01", "name: expected a string, got date"),
        ("timeout: [1]", "timeout: expected a duration, got list"),
        ("timeout: .inf", "timeout: expected a finite number, got inf"),
        ("1: x", "keys must be strings, got integer"),
        ("a: &x [*x]", "a[0]: recursive alias"),
    ],
)
def test_values_of_the_wrong_shape_are_issues_not_crashes(text: str, expected: str) -> None:
    """Values of the wrong type anywhere become issues; the loader never crashes on them."""
    assert expected in _parse_error(text)


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
    assert expected == str(_load_error(path))


def test_json_file_issue_names_its_line(tmp_path: Path) -> None:
    """A mistake in a .json file is reported at the line of its field."""
    path = tmp_path / "p.json"
    path.write_text(
        '{"name": "j",\n "stages": [{"name": "a", "command": "true",\n'
        '   "triggers": [{"manual": {}}], "concurrency": 2}]}\n'
    )
    assert str(_load_error(path)).startswith(f"{path}:3: stages[0].concurrency: unknown key")


def test_empty_json_file_is_an_issue(tmp_path: Path) -> None:
    """A .json file of blanks is "the file is empty", as a YAML one is."""
    path = tmp_path / "p.json"
    path.write_text(" \n")
    assert f"{path}:1: the file is empty" == str(_load_error(path))


def test_json_syntax_error_is_reported_as_json(tmp_path: Path) -> None:
    """A .json file with a syntax error is one "invalid json" issue with JSON's line."""
    path = tmp_path / "p.json"
    path.write_text('{"name": "j",\n "stages": []\n "loops": {}}\n')
    expected = f"{path}:3: invalid json: expecting ',' delimiter"
    assert expected == str(_load_error(path))


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
    assert expected == str(_load_error(path))


# --- fields, forms and defaults ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        ("2.5", 2.5),
        ("'45'", 45.0),
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
    pipeline = _parse(_one_stage(f"timeout: {value}"))
    assert seconds == pipeline.stages[0].timeout


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10 min", "invalid duration '10 min'"),
        ("1d", "invalid duration '1d'"),
        ("-5s", "invalid duration '-5s'"),
        ("３０s", "invalid duration '３０s'"),  # float() reads full-width digits; nothing else
        ("'４５'", "invalid duration '４５'"),
        ("true", "expected a duration, got boolean"),
        ("-5", "must be > 0, got -5"),
        ("0ms", "must be > 0, got 0"),
    ],
)
def test_bad_durations_are_refused(value: str, expected: str) -> None:
    """Durations with an unknown unit, in other than ASCII digits, of the wrong type or not
    positive are refused."""
    assert f"stages[0].timeout: {expected}" in _parse_error(_one_stage(f"timeout: {value}"))


def test_defaults_of_an_almost_empty_pipeline() -> None:
    """Fields left out take their documented defaults."""
    pipeline = _parse(_one_stage(""))
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
    short = _parse(_one_stage("inputs:\n  goal: request.goal"))
    long = _parse(_one_stage("inputs:\n  goal: {from: request.goal, required: true}"))
    assert (InputMapping("goal", "request.goal", required=True),) == short.stages[0].inputs
    assert short == long


def test_optional_input_keeps_required_false() -> None:
    """The long input form carries `required: false` through."""
    pipeline = _parse(_one_stage("inputs:\n  goal: {from: request.goal, required: false}"))
    assert (InputMapping("goal", "request.goal", required=False),) == pipeline.stages[0].inputs


def test_outputs_are_none_unless_declared() -> None:
    """Without `outputs:` a stage's outputs are None (the handler's result is the outputs)."""
    assert None is _parse(_one_stage("")).stages[0].outputs


def test_outputs_may_read_result() -> None:
    """Output mappings read `result`, in short or long form."""
    text = _one_stage("outputs:\n  code: result.code\n  log: {from: result.log, required: false}")
    expected = (OutputMapping("code", "result.code"), OutputMapping("log", "result.log", False))
    assert expected == _parse(text).stages[0].outputs


def test_effective_timeout_falls_back_to_the_pipeline() -> None:
    """A stage's effective timeout is its own, else the pipeline's."""
    text = """\
        name: demo
        timeout: 5m
        stages:
          - {name: own, command: a, timeout: 30s, triggers: [manual: {}]}
          - {name: inherited, command: b, triggers: [manual: {}]}
        """
    pipeline = _parse(text)
    actual = [pipeline.effective_timeout(stage) for stage in pipeline.stages]
    assert actual == [30.0, 300.0]


def test_effective_timeout_is_none_without_any() -> None:
    """Without a stage or pipeline timeout a stage has no timeout."""
    pipeline = _parse(_one_stage(""))
    assert None is pipeline.effective_timeout(pipeline.stages[0])


def test_effective_retry_falls_back_to_the_pipeline() -> None:
    """A stage without `retry:` uses the pipeline's retry policy."""
    pipeline = _parse(_one_stage("", top="retry: {max_attempts: 3}\n"))
    assert RetryPolicy(max_attempts=3) == pipeline.effective_retry(pipeline.stages[0])


def test_null_optional_field_means_not_set() -> None:
    """`timeout: ~` is the same as leaving the timeout out."""
    assert _parse(_one_stage("timeout: ~")) == _parse(_one_stage(""))


def test_manual_without_body_is_manual_with_defaults() -> None:
    """`- manual:` with no body is an entry trigger."""
    text = "name: demo\nstages:\n  - name: a\n    command: x\n    triggers:\n      - manual:\n"
    assert (Manual(),) == _parse(text).stages[0].triggers


def test_loop_is_inferred_from_handler_or_command() -> None:
    """A stage with only `handler:` runs loop python; with only `command:`, loop command."""
    text = """\
        name: demo
        stages:
          - {name: a, handler: "pkg.mod:run", triggers: [manual: {}]}
          - {name: b, command: "make", triggers: [manual: {}]}
        """
    assert [stage.loop for stage in _parse(text).stages] == ["python", "command"]


def test_yaml_anchors_and_merge_keys_work() -> None:
    """Anchors, aliases and `<<` merge keys are plain YAML and load."""
    text = """\
        name: demo
        stages:
          - &base {name: a, command: make, timeout: 1m, triggers: [manual: {}]}
          - <<: *base
            name: b
        """
    assert [stage.timeout for stage in _parse(text).stages] == [60.0, 60.0]


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
    message = _parse_error(text)
    assert message.splitlines() == ["<string>:10: stages[2].command: duplicate key"]
    valid = text.replace("    command: two\n", "")
    assert [stage.command for stage in _parse(valid).stages] == ["make", "test", "one"]


def test_integers_are_not_floats_or_strings() -> None:
    """`concurrency: "3"` and `concurrency: 2.5` are refused as non-integers."""
    assert "concurrency: expected an integer, got string" in _parse_error(
        _one_stage("", top="concurrency: '3'\n")
    )
    assert "concurrency: expected an integer, got number" in _parse_error(
        _one_stage("", top="concurrency: 2.5\n")
    )


def test_unknown_key_without_close_match_lists_allowed_keys() -> None:
    """An unknown key with no close match lists the keys that are allowed there."""
    text = _one_stage("retry: {zzz: 1}")
    expected = "stages[0].retry.zzz: unknown key (expected max_attempts or backoff)"
    assert expected in _parse_error(text)


def test_unknown_loop_without_close_match_lists_known_loops() -> None:
    """An unknown loop type with no close match lists the known ones."""
    text = "name: demo\nstages:\n  - {name: a, loop: zzz, triggers: [manual: {}]}\n"
    assert "stages[0].loop: unknown loop type 'zzz' (known: command, python)" in (
        _parse_error(text)
    )


def test_loops_may_not_shadow_builtins() -> None:
    """Declaring a loop called `python` under `loops:` is refused."""
    text = _one_stage("", top="loops:\n  python: {handler: 'a.b:c'}\n")
    assert "loops.python: shadows the built-in loop type 'python'" in _parse_error(text)


def test_external_event_makes_an_entry_stage() -> None:
    """An on_event stage of a type in external_events can start with the run."""
    text = """\
        name: demo
        external_events: [push]
        stages:
          - {name: a, command: x, triggers: [on_event: {type: push, filter: "event.ok"}]}
        """
    assert _parse(text).external_events == ("push",)


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
    assert (InputMapping("ref", "event.ref"),) == _parse(text).stages[0].inputs


def test_str_of_config_error_is_one_line_per_issue() -> None:
    """str(ConfigError) is one `FILE:LINE: PATH: REASON` line per issue."""
    text = _one_stage("parallel_instances: 0\ntimeout: 0", top="concurrency: 0\n")
    expected = (
        "<string>:2: concurrency: must be >= 1, got 0\n"
        "<string>:8: stages[0].parallel_instances: must be >= 1, got 0\n"
        "<string>:9: stages[0].timeout: must be > 0, got 0"
    )
    assert expected == _parse_error(text)


def test_every_refused_value_is_quoted_short() -> None:
    """A 3,000-character value in each place a file names one (a handler, a loop type, a
    duration, a stage read by an expression, an event type, a trigger mode, a stage name) is
    named in its issue as ``ellipsis.quote`` cuts it: no issue line runs past 200 characters
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
    lines = _parse_error(text).splitlines()
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
    assert _parse(text).stages[0].loop == "ralph"


def test_registered_loops_argument_replaces_entry_points() -> None:
    """`registered_loops=` names extra loop types without any entry point look-up."""
    text = "name: demo\nstages:\n  - {name: a, loop: ralph, triggers: [manual: {}]}\n"
    assert _parse(text, registered_loops={"ralph"}).stages[0].loop == "ralph"


# --- speed -------------------------------------------------------------------------------------


def _chain_text(stages: int) -> str:
    lines = ["name: big", "stages:"]
    for i in range(stages):
        trigger = "manual: {}" if i == 0 else f"on_completion: {{stage: s{i - 1}}}"
        lines += [
            f"  - name: s{i}",
            "    command: 'true'",
            "    timeout: 30s",
            f"    triggers: [{trigger}]",
            "    inputs: {x: request.x}",
        ]
    return "\n".join(lines) + "\n"


def _fan_out_text(stages: int) -> str:
    lines = ["name: big", "stages:", "  - {name: s0, command: 'true', triggers: [manual: {}]}"]
    lines += [
        f"  - {{name: s{i}, command: 'true', triggers: [on_completion: {{stage: s0}}]}}"
        for i in range(1, stages)
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("shape", [_chain_text, _fan_out_text], ids=["chain", "fan-out"])
def test_loading_is_linear_in_the_number_of_stages(shape: Callable[[int], str]) -> None:
    """Loading 8x the stages costs about 8x the CPU time, not 64x (no quadratic checks).

    CPU time of this process (not wall time), with the collector off and the best of five, so
    that other processes on a loaded machine do not move the ratio.
    """
    import gc
    import time

    def cost(stages: int) -> float:
        text = shape(stages)
        best = math.inf
        gc.collect()
        gc.disable()
        try:
            for _ in range(5):
                start = time.process_time()
                parse_pipeline(text)
                best = min(best, time.process_time() - start)
        finally:
            gc.enable()
        return best

    # 1,000 against 8,000 stages: linear code measured 8.6-9.3; the list-membership fan-out
    # check this guards against measured 24 (its quadratic term shows from a few thousand).
    small, large = cost(1000), cost(8000)
    assert large / small < 16


# --- robustness --------------------------------------------------------------------------------

_KEYS = sorted(
    {"name", "stages", "triggers", "loop", "command", "handler", "inputs", "outputs", "from"}
    | {"on_completion", "on_event", "on_condition", "manual", "stage", "type", "filter"}
    | {"expression", "retry", "backoff", "timeout", "loops", "emits", "required", "factor"}
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["a", "", "10m", "request.x", "stages.a.outputs", "1 +", "m:f", "x.y"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=6))
@pytest.mark.slow
def test_any_structure_loads_or_raises_config_error(document: dict[str, object]) -> None:
    """Whatever shape a file has, loading returns a Pipeline or raises ConfigError, never more."""
    text = yaml.safe_dump(document)
    issues: tuple[ValidationIssue, ...] = ()
    try:
        parse_pipeline(text, registered_loops=())
    except ConfigError as error:
        issues = error.issues or (ValidationIssue("", "raised without issues"),)
    assert all(issue.file == "<string>" for issue in issues)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2020-02-30", "invalid timestamp value: day is out of range for month"),
        ("!!int x", "invalid int value: invalid literal for int() with base 10: 'x'"),
        ("!!float x", "invalid float value: could not convert string to float: 'x'"),
        ("!!int " + "9" * 5000, "invalid int value: Exceeds the limit (4300 digits)"),
    ],
)
def test_a_scalar_the_constructor_refuses_is_an_issue(value: str, message: str) -> None:
    """A tagged or implicit scalar PyYAML cannot convert (a date that does not exist, ``!!int``
    of a word) is an issue on its line, not a ``ValueError`` escaping the loader."""
    text = _one_stage(f"timeout: {value}")
    error = _parse_error(text)
    assert error.startswith(f"<string>:7: stages[0].timeout: {message}"), error
    assert "\n" not in error


def test_issues_after_a_dropped_list_item_keep_the_file_s_numbering() -> None:
    """A stage or trigger the reader dropped for its own issue is not in the model; what the
    validator then finds in a later item is still reported at that item's index and line in
    the file, not at the index it has in the model."""
    text = """\
        name: demo
        stages:
          - name: a
            command: make
            triggers:
              - manual: {}
          - 5
          - name: b
            command: make
            triggers:
              - on_event: {type: ""}
              - manual: {timeout: 0}
    """
    assert _parse_error(text).splitlines() == [
        "<string>:7: stages[1]: expected a mapping, got integer",
        "<string>:11: stages[2].triggers[0].on_event.type: must not be empty",
        "<string>:12: stages[2].triggers[1].manual.timeout: must be > 0, got 0",
        "<string>:12: stages[2].triggers[1].manual.timeout: "
        "only used when approval_required is true",
    ]


def test_a_file_with_thousands_of_issues_reports_the_first_thousand(tmp_path: Path) -> None:
    """A file of 3,000 wrong stages reports the first 1,000 issues, then one saying more were
    not shown, rather than holding and printing every one."""
    path = tmp_path / "many.yaml"
    path.write_text("name: w\nstages: [" + ",".join(["a"] * 3000) + "]\n")
    issues = _load_error(path).issues
    assert (1001, "stages[999]: expected a mapping, got string") == (
        len(issues),
        f"{issues[999].path}: {issues[999].message}",
    )
    assert f"{path}: more issues not shown (at most 1000 are)" == str(issues[-1])
