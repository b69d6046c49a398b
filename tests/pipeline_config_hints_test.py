"""What a newcomer's slip in a pipeline file is told to write instead (``config_hints``), in
the file's syntax, loaded in-process: a number or boolean quoted, a command as a list, a bare
YAML boolean, a trigger written as its kind or with its one field as value, several stages in
one ``on_completion``, one stage where the list belongs, a stage with no trigger. The same
slips through ``taskdaemon validate`` are in ``pipeline_config_newcomer_test.py`` and
``pipeline_hint_syntax_test.py``."""

from __future__ import annotations

import json

import pytest
import yaml

from config_support import parse_error, parse_text

_SLIPS = """\
name: slips
stages:
  - name: a
    command: [echo, "a b"]
    triggers: [{manual: {approval_required: " No "}}]
  - name: b
    command: yes
    triggers: [{on_completion: [a, c]}]
  - name: c
    command: "true"
    triggers: [{on_completion: a}, on_event, manual, {on_condition: [x]}, on_condition]
  - name: d
    command: "true"
  - name: e
    command: "true"
    triggers: [{on_completion: {stage: [a, b]}}]
    retry: {max_attempts: " 12345678901234567890 "}
    parallel_instances: "123456789012345678901"
"""

_YAML_ISSUES = [
    "4: stages[0].command: expected a string, got list (write it as one string, as a shell "
    "reads it: \"echo 'a b'\")",
    "5: stages[0].triggers[0].manual.approval_required: expected a boolean, got string ' No ' "
    "(write false without quotes)",
    "7: stages[1].command: expected a string, got boolean (quote it: YAML reads a bare yes, "
    "no, on, off, true or false as a boolean)",
    "8: stages[1].triggers[0].on_completion: expected a mapping, got list (write "
    "on_completion: {stage: ...}, one per trigger)",
    "11: stages[2].triggers[0].on_completion: expected a mapping, got string (write "
    "on_completion: {stage: 'a'})",
    "11: stages[2].triggers[1]: expected a mapping with one of on_completion, on_event, "
    "on_condition or manual, got string (write {on_event: {type: TYPE}})",
    "11: stages[2].triggers[2]: expected a mapping with one of on_completion, on_event, "
    "on_condition or manual, got string (write {manual: {}})",
    "11: stages[2].triggers[3].on_condition: expected a mapping, got list (write "
    "on_condition: {expression: ...}, one per trigger)",
    "11: stages[2].triggers[4]: expected a mapping with one of on_completion, on_event, "
    "on_condition or manual, got string (write {on_condition: {expression: CEL}})",
    "12: stages[3].triggers: missing required field (an entry stage has triggers: [{manual: "
    "{approval_required: false}}])",
    "16: stages[4].triggers[0].on_completion.stage: expected a string, got list (one stage per "
    "trigger: triggers: [{on_completion: {stage: a}}, {on_completion: {stage: b}}], with "
    "trigger_mode: all to wait for both)",
    "17: stages[4].retry.max_attempts: expected an integer, got string ' 12345678901234567890 ' "
    "(write 12345678901234567890 without quotes)",
    "18: stages[4].parallel_instances: expected an integer, got string '123456789012345678901' "
    "(write N without quotes)",
]


def _lines(text: str, fmt: str) -> list[str]:
    return [line.removeprefix("<string>:") for line in parse_error(text, fmt).splitlines()]


def test_each_slip_of_a_yaml_file_says_what_to_write() -> None:
    """Each issue quotes what the file holds and says what to write, in YAML's flow syntax; a
    number of up to 20 characters is echoed, stripped, a longer one is not."""
    assert _YAML_ISSUES == _lines(_SLIPS, "yaml")


def test_the_same_slips_in_json_are_told_in_json() -> None:
    """The hints of a JSON file are JSON; a JSON ``true`` is no slip of quoting."""
    lines = _lines(json.dumps(yaml.safe_load(_SLIPS)), "json")
    said = {line.split(": ", 1)[1] for line in lines}
    assert {
        "stages[1].command: expected a string, got boolean",
        "stages[1].triggers[0].on_completion: expected a mapping, got list (write "
        '"on_completion": {"stage": "..."}, one per trigger)',
        "stages[2].triggers[0].on_completion: expected a mapping, got string (write "
        '"on_completion": {"stage": "a"})',
        "stages[2].triggers[1]: expected a mapping with one of on_completion, on_event, "
        'on_condition or manual, got string (write {"on_event": {"type": "TYPE"}})',
        'stages[3].triggers: missing required field (an entry stage has "triggers": [{"manual": '
        '{"approval_required": false}}])',
        "stages[4].triggers[0].on_completion.stage: expected a string, got list (one stage per "
        'trigger: "triggers": [{"on_completion": {"stage": "a"}}, {"on_completion": {"stage": '
        '"b"}}], with "trigger_mode": "all" to wait for both)',
    } <= said


@pytest.mark.parametrize(
    ("fmt", "text", "said"),
    [
        (
            "yaml",
            "name: x\nstages: {name: a, command: 'true'}\n",
            "2: stages: expected a list, got mapping (an item per stage: '- name: ...' in YAML)",
        ),
        (
            "json",
            '{"name": "x", "stages": {"name": "a"}}',
            "1: stages: expected a list, got mapping (a list, an item per stage: "
            '"stages": [{"name": ...}])',
        ),
        (
            "toml",
            'name = "x"\n[stages]\nname = "a"\n',
            "2: stages: expected a list, got mapping (an item per stage: [[stages]], then its "
            "name = ..., in TOML)",
        ),
    ],
)
def test_one_stage_where_the_list_belongs_is_told_the_list_in_the_file_s_syntax(
    fmt: str, text: str, said: str
) -> None:
    assert [said] == _lines(text, fmt)


@pytest.mark.parametrize(
    "command",
    [
        "[]",
        "[echo, 1]",
        "[" + ", ".join(["x"] * 101) + "]",
    ],
)
def test_a_command_list_gets_no_shell_line_when_it_has_none_to_give(command: str) -> None:
    """No words, a word that is no string, or more than 100 words (no hint of any length): the
    issue alone, never a crash."""
    text = f"name: x\nstages:\n  - name: a\n    command: {command}\n    triggers: [manual: {{}}]\n"
    assert ["4: stages[0].command: expected a string, got list"] == _lines(text, "yaml")


@pytest.mark.parametrize(
    ("fmt", "command", "said"),
    [
        ("yaml", "[echo, hi]", "'echo hi'"),
        ("json", "[echo, hi]", '"echo hi"'),
        ("yaml", "[" + ", ".join(["x"] * 100) + "]", "'" + "x " * 39 + "x…'"),
    ],
)
def test_a_command_list_is_told_its_shell_line_in_the_file_s_syntax_cut(
    fmt: str, command: str, said: str
) -> None:
    """The line ``/bin/sh -c`` would read, quoted as the file writes a string; a hundred words
    still get it, cut to 80 characters."""
    text = f"name: x\nstages:\n  - name: a\n    command: {command}\n    triggers: [manual: {{}}]\n"
    if fmt == "json":
        text = json.dumps(yaml.safe_load(text))
    (line,) = _lines(text, fmt)
    assert line.endswith(
        f"stages[0].command: expected a string, got list (write it as one string, as a shell "
        f"reads it: {said})"
    )


def test_a_quoted_word_that_is_no_number_or_boolean_gets_no_hint() -> None:
    """Only a number's or a boolean's text is told to be unquoted."""
    text = (
        "name: x\nconcurrency: three\nstages:\n  - name: a\n    command: 'true'\n"
        "    triggers: [manual: {approval_required: maybe}]\n"
    )
    assert [
        "2: concurrency: expected an integer, got string",
        "6: stages[0].triggers[0].manual.approval_required: expected a boolean, got string",
    ] == _lines(text, "yaml")


def test_a_file_without_slips_loads() -> None:
    """The hints add nothing to a file that is right."""
    pipeline = parse_text(
        "name: x\nstages:\n  - name: a\n    command: echo\n    triggers: [manual: {}]\n"
    )
    assert ["a"] == [stage.name for stage in pipeline.stages]
