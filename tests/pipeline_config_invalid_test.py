"""Loading pipeline files that are wrong: one exact message per mistake in each file under
``pipelines/invalid``, every issue collected with its file, path and line, and a value of the
wrong shape anywhere an issue, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon
from config_support import INVALID, TESTS, load_error, parse_error
from taskdaemon.pipeline.errors import ValidationIssue

#: What an ``on_event`` type no stage emits gets: where to declare it.
_EMIT_HINT = (
    " (add it to the emits of the stage that publishes it, or write external_events: "
    "['spec.ready'] for one published from outside the run)"
)
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
        "'tools.build.run' (expected module:function: write 'tools.build:run')"
    ),
    "bad_pipeline_name.yaml": (
        "pipelines/invalid/bad_pipeline_name.yaml:1: name: invalid name 'Feature Delivery' "
        "(expected [a-z0-9][a-z0-9_.-]*: write 'feature-delivery')"
    ),
    "bad_stage_name.yaml": (
        "pipelines/invalid/bad_stage_name.yaml:3: stages[0].name: invalid name 'Build_All' "
        "(expected [a-z0-9][a-z0-9_.-]*: write 'build_all')"
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
        "pipelines/invalid/cel_syntax.yaml:6:52: stages[0].triggers[0].on_condition.expression: "
        "syntax error at column 17: the expression ends at '==', with nothing after it"
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
        "-> b -> c -> a (none of them can start: 'a' waits for 'c' here; remove this trigger)"
    ),
    "duplicate_key.yaml": (
        "pipelines/invalid/duplicate_key.yaml:7: stages[0].command: duplicate key"
    ),
    "duplicate_stage.yaml": (
        "pipelines/invalid/duplicate_stage.yaml:7: stages[1].name: duplicate stage name "
        "'build' (first at stages[0]: rename one)"
    ),
    "empty_file.yaml": ("pipelines/invalid/empty_file.yaml:1: the file is empty"),
    "empty_stages.yaml": ("pipelines/invalid/empty_stages.yaml:2: stages: must not be empty"),
    "event_cycle.yaml": (
        "pipelines/invalid/event_cycle.yaml:12: stages[1].triggers[0].on_event.type: cycle: "
        "worker -> checker -> worker (none of them can start: 'worker' waits for 'checker' "
        "here; remove this trigger)"
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
        "upstream stages and a manual, on_condition or external on_event trigger: give the "
        "first stage triggers: [{manual: {}}])"
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
    "plural_stage_key.yaml": (
        "pipelines/invalid/plural_stage_key.yaml:5: stages[0].retries: unknown key (write "
        "retry: {max_attempts: 3}, the first attempt included)"
    ),
    "python_without_handler.yaml": (
        "pipelines/invalid/python_without_handler.yaml:3: stages[0].handler: required for loop "
        "'python'"
    ),
    "self_completion.yaml": (
        "pipelines/invalid/self_completion.yaml:11: stages[1].triggers[1].on_completion.stage: "
        "cycle: again -> again (none of them can start: 'again' waits for itself here; remove "
        "this trigger)"
    ),
    "several_problems.yaml": (
        "pipelines/invalid/several_problems.yaml:3: concurrency: must be >= 1, got -1\n"
        "pipelines/invalid/several_problems.yaml:4: timeout: invalid duration 'soon' (expected "
        "seconds or 500ms, 30s, 10m, 2h)\n"
        "pipelines/invalid/several_problems.yaml:7: stages[0].loop: unknown loop type 'plann' "
        "(known: command, python)\n"
        "pipelines/invalid/several_problems.yaml:9: "
        "stages[0].triggers[0].manual.approval_required: expected a boolean, got string 'no' "
        "(write false without quotes)\n"
        "pipelines/invalid/several_problems.yaml:12: stages[1].paralel_instances: unknown key "
        "(did you mean 'parallel_instances'?)\n"
        "pipelines/invalid/several_problems.yaml:14: "
        "stages[1].triggers[0].on_completion.stage: unknown stage 'planing' (did you mean "
        "'planning'?)\n"
        "pipelines/invalid/several_problems.yaml:16: stages[1].inputs.plan.from: syntax error "
        "at column 31: the expression ends at '+', with nothing after it\n"
        "pipelines/invalid/several_problems.yaml:17: stages[2].name: duplicate stage name "
        "'planning' (first at stages[0]: rename one)\n"
        "pipelines/invalid/several_problems.yaml:20: stages[2].triggers[0].on_event.type: no "
        "stage emits 'spec.redy' and it is not in external_events (add it to the emits of the "
        "stage that publishes it, or write external_events: ['spec.redy'] for one published "
        "from outside the run)"
    ),
    "stage_without_loop.yaml": (
        "pipelines/invalid/stage_without_loop.yaml:3: stages[0].loop: missing required field "
        "(or exactly one of handler and command)"
    ),
    "stages_not_list.yaml": (
        "pipelines/invalid/stages_not_list.yaml:2: stages: expected a list, got integer"
    ),
    "string_for_bool.yaml": (
        "pipelines/invalid/string_for_bool.yaml:10: "
        "stages[1].triggers[0].on_completion.success_only: expected a boolean, got string "
        "'no' (write false without quotes)"
    ),
    "top_level_list.yaml": (
        "pipelines/invalid/top_level_list.yaml:1: expected a mapping at the top level, got list"
    ),
    "trigger_string.yaml": (
        "pipelines/invalid/trigger_string.yaml:6: stages[0].triggers[0]: expected a mapping "
        "with one of on_completion, on_event, on_condition or manual, got string "
        "(write {manual: {}})"
    ),
    "two_triggers_in_one_item.yaml": (
        "pipelines/invalid/two_triggers_in_one_item.yaml:10: stages[1].triggers[0]: expected "
        "one trigger per list item, got manual and on_completion"
    ),
    "unemitted_event.yaml": (
        "pipelines/invalid/unemitted_event.yaml:10: stages[1].triggers[0].on_event.type: no "
        f"stage emits 'spec.ready' and it is not in external_events{_EMIT_HINT}"
    ),
    "unknown_completion_stage.yaml": (
        "pipelines/invalid/unknown_completion_stage.yaml:10: "
        "stages[1].triggers[0].on_completion.stage: unknown stage 'planing' (did you mean "
        "'planning'?)"
    ),
    "unknown_key.toml": (
        "pipelines/invalid/unknown_key.toml:2: concurency: unknown key (did you mean "
        "'concurrency'?)"
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
        "unknown key (write on_completion: {stage: 'start', success_only: false})"
    ),
    "yaml_syntax.yaml": (
        "pipelines/invalid/yaml_syntax.yaml:5: invalid yaml: a ':' at column 14 where a value "
        "goes on: quote a value that holds ': ', or check the line's indentation"
    ),
    "zero_duration.yaml": (
        "pipelines/invalid/zero_duration.yaml:5: stages[0].timeout: must be > 0, got 0"
    ),
}


def test_at_least_25_invalid_files_have_an_expected_message() -> None:
    """Every invalid file has an entry in the table, and there are at least 25 of them."""
    files = sorted(path.name for path in INVALID.iterdir())
    assert sorted(EXPECTED) == files
    assert len(files) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_file_reports_exact_message(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each invalid file fails with exactly the expected issues, file and line included."""
    monkeypatch.chdir(TESTS)
    error = load_error(f"pipelines/invalid/{name}", registered_loops=())
    assert EXPECTED[name] == str(error)


def test_every_issue_of_a_file_is_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file with several problems reports each one as its own issue, in line order."""
    monkeypatch.chdir(TESTS)
    error = load_error("pipelines/invalid/several_problems.yaml", registered_loops=())
    assert [issue.line for issue in error.issues] == [3, 4, 7, 9, 12, 14, 16, 17, 20]


def test_issue_carries_file_path_line_and_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ValidationIssue names the file, the canonical field path, the line and the reason."""
    monkeypatch.chdir(TESTS)
    error = load_error("pipelines/invalid/unemitted_event.yaml")
    expected = ValidationIssue(
        path="stages[1].triggers[0].on_event.type",
        message=f"no stage emits 'spec.ready' and it is not in external_events{_EMIT_HINT}",
        file="pipelines/invalid/unemitted_event.yaml",
        line=10,
    )
    assert (expected,) == error.issues


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing file becomes a ConfigError naming it, not an OSError."""
    path = tmp_path / "missing.yaml"
    error = load_error(path)
    assert f"{path}: cannot read the file: no such file or directory" == str(error)


def test_unknown_suffix_is_a_config_error(tmp_path: Path) -> None:
    """A file that is neither YAML nor TOML is refused by its suffix."""
    path = tmp_path / "pipeline.ini"
    path.write_text("name = demo\n")
    expected = f"{path}: unknown file type '.ini' (expected .yaml, .yml, .json or .toml)"
    assert expected == str(load_error(path))


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    """A file that is not UTF-8 text is reported with the offending byte, on its line (it had
    none), saying what to do."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: p\ndescription: caf\xe9\n")
    expected = f"{path}:2: not utf-8 text (byte 24: save the file as UTF-8)"
    assert expected == str(load_error(path))


def test_toml_syntax_error_has_its_line() -> None:
    """A TOML syntax error is a ConfigError with the line the parser names."""
    text = 'name = "demo"\nconcurrency = = 4\n'
    expected = "<string>:2: invalid toml: invalid value at column 15"
    assert parse_error(text, fmt="toml") == expected


def test_a_toml_integer_too_long_to_convert_is_one_line() -> None:
    """An integer of 5,000 digits, which Python refuses to convert, is a ConfigError line (it
    was a ValueError traceback out of ``validate``)."""
    text = f'name = "demo"\nconcurrency = {"9" * 5000}\n'
    assert parse_error(text, fmt="toml").startswith("<string>: invalid toml: exceeds the limit")


def test_a_key_holding_a_digit_int_refuses_is_an_issue_with_its_line() -> None:
    """A key like ``x[²]`` reads as an index to the line finder, but ``int`` refuses ``²``
    (``isdigit`` does not): it is an unknown key on its line, not a ValueError traceback."""
    text = 'name: p\nstages:\n  - ~\n"stages[\u00b2]": 1\n"x[\u0663]": 2\n'
    lines = parse_error(text).splitlines()
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
    assert expected in parse_error(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "stages: [{triggers: [on_completion]}]",
            "stages[0].triggers[0]: expected a mapping with one of on_completion, on_event, "
            "on_condition or manual, got string (write {on_completion: {stage: NAME}})",
        ),
        (
            "stages: [{inputs: {who: world}}]",
            "stages[0].inputs.who.from: unknown variable 'world' (available: request, stages; "
            "a text is quoted in CEL: write \"'world'\")",
        ),
        ("retry: 3", "retry: expected a mapping, got integer (write retry: {max_attempts: 3})"),
        (
            "stages: {name: a}",
            "stages: expected a list, got mapping (an item per stage: '- name: ...' in YAML)",
        ),
        (
            "stages: [{name: a, emits: [built]}, {name: b, triggers: [{on_event: {type: biult}}]}]",
            "no stage emits 'biult' and it is not in external_events (did you mean 'built'?)",
        ),
    ],
)
def test_a_first_file_s_slips_get_what_to_write(text: str, expected: str) -> None:
    """A trigger written as its kind alone, an input's word meant as text (which CEL reads as a
    variable), ``retry: 3``, a misspelt event type and one stage's fields where the list goes
    (``[stages]`` in TOML): each issue says what to write. Before, none did."""
    assert expected in parse_error(text)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_directory_given_for_a_file_says_so(home: Path, command: str) -> None:
    """``validate examples`` (a directory where a file goes): one line saying so and how to
    give its files, exit 2. It said "unknown file type '(none)'", and a directory named
    ``x.yaml`` "cannot read the file: is a directory"."""
    named_yaml = home / "pipelines.yaml"
    named_yaml.mkdir()
    for directory in ("examples", str(named_yaml)):
        done = taskdaemon(home, command, directory)
        expected = f"{directory}: a directory, not a pipeline file (give its files: "
        assert (2, [f"{expected}{directory}/*.yaml)"]) == (
            done.returncode,
            (done.stdout + done.stderr).splitlines(),
        )
