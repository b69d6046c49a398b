"""What an issue says to write, in the syntax of the file (``hint_syntax``): ``taskdaemon
validate`` end to end, a subprocess of the console script, on TOML and JSON files holding a
newcomer's slips. Before, every hint was YAML's flow syntax whatever the file: a TOML author
told to write ``retry: {max_attempts: 3}`` wrote a line TOML refuses."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline.hint_syntax import Word, setting, syntax_of, written

_TOML = """\
name = "My Pipeline"
retry = 3

[[stages]]
name = "a"
command = "echo a"
triggers = ["manual"]

[[stages]]
name = "b"
command = "echo b"
triggers = [{on_completion = "a"}, {on_success = "a"}]
needs = ["a", "c"]
timeout = "30"
env = {X = "1"}

[[stages]]
name = "c"
command = ["echo", "c"]
triggers = "on_completion"
retries = 2
when = "x > 1"
ignore_warnings = "constant-condition"

[[stages]]
name = "d"
command = "echo d"
triggers = [{on_event = {type = "deploy"}}, {on_failure = "a"}]

[[stages]]
name = "e"
command = "echo e"
"""

_TOML_ISSUES = [
    "1: name: invalid name 'My Pipeline' (expected [a-z0-9][a-z0-9_.-]*: write 'my-pipeline')",
    "2: retry: expected a mapping, got integer (write retry = {max_attempts = 3})",
    "7: stages[0].triggers[0]: expected a mapping with one of on_completion, on_event, "
    "on_condition or manual, got string (write {manual = {}})",
    "12: stages[1].triggers[0].on_completion: expected a mapping, got string (write "
    "on_completion = {stage = 'a'})",
    "12: stages[1].triggers[1].on_success: unknown key (write on_completion = {stage = 'a'})",
    "13: stages[1].needs: unknown key (write triggers = [{on_completion = {stage = 'a'}}, "
    "{on_completion = {stage = 'c'}}], with trigger_mode = \"all\" to wait for all)",
    "14: stages[1].timeout: invalid duration '30' (seconds are a number: write 30 without "
    'quotes, or "30s")',
    "15: stages[1].env: unknown key (a command gets its inputs as TASKDAEMON_INPUT_<NAME> "
    'variables: inputs = {NAME = "CEL"})',
    "19: stages[2].command: expected a string, got list (write it as one string, as a shell "
    "reads it: 'echo c')",
    "20: stages[2].triggers: expected a list, got string (a list of one-key mappings: "
    'triggers = [{on_completion = {stage = "NAME"}}])',
    "21: stages[2].retries: unknown key (write retry = {max_attempts = 3}, the first attempt "
    "included)",
    "22: stages[2].when: unknown key (write triggers = [{on_condition = {expression = 'x > 1'}}])",
    '23: stages[2].ignore_warnings: expected a list, got string (write ["constant-condition"])',
    "28: stages[3].triggers[1].on_failure: unknown key (write on_condition = {expression = "
    '"stages.a.status == \'failure\'"}, with error_strategy = "continue")',
    "28: stages[3].triggers[0].on_event.type: no stage emits 'deploy' and it is not in "
    "external_events (add it to the emits of the stage that publishes it, or write "
    "external_events = ['deploy'] for one published from outside the run)",
    "30: stages[4].triggers: missing required field (an entry stage has triggers = "
    "[{manual = {approval_required = false}}])",
]


def test_a_toml_file_s_hints_are_written_in_toml(home: Path, tmp_path: Path) -> None:
    """Every hint of a TOML file's slips is TOML (``key = value``, inline tables, placeholders
    and bare words quoted), on the line of its key."""
    path = write(tmp_path / "first.toml", _TOML)
    done = taskdaemon(home, "validate", str(path))
    assert (2, [f"{path}:{issue}" for issue in _TOML_ISSUES]) == (
        done.returncode,
        done.stdout.splitlines(),
    )


def test_a_json_file_s_hints_are_written_in_json(home: Path, tmp_path: Path) -> None:
    """The same slips in JSON: the hints' keys and strings in double quotes."""
    path = tmp_path / "first.json"
    path.write_text(json.dumps(tomllib.loads(_TOML), indent=1))
    done = taskdaemon(home, "validate", str(path))
    lines = done.stdout.splitlines()
    assert 2 == done.returncode
    assert (
        f'{path}:3: retry: expected a mapping, got integer (write "retry": {{"max_attempts": 3}})'
    ) in lines
    assert any(
        line.endswith(
            'stages[4].triggers: missing required field (an entry stage has "triggers": '
            '[{"manual": {"approval_required": false}}])'
        )
        for line in lines
    )
    assert any(line.endswith('(write "on_completion": {"stage": "a"})') for line in lines)
    assert not any("'" in line.split("(write ", 1)[-1] for line in lines if "(write {" in line)


@pytest.mark.parametrize(
    ("value", "toml"),
    [
        ({"on_completion": {"stage": "a"}}, "{on_completion = {stage = 'a'}}"),
        ([{"manual": {"approval_required": False}}], "[{manual = {approval_required = false}}]"),
        ({"expression": "it's"}, '{expression = "it\'s"}'),
        ({"stage": Word("NAME")}, '{stage = "NAME"}'),
    ],
)
def test_every_toml_hint_is_a_value_toml_reads(value: object, toml: str) -> None:
    """What a TOML hint says to write is TOML: ``tomllib`` reads it back as the value."""
    assert toml == written(value, "toml")
    plain = json.loads(json.dumps(value))
    assert {"k": plain} == tomllib.loads(setting("k", value, "toml"))
    assert {"k": plain} == json.loads("{" + setting("k", value, "json") + "}")


@pytest.mark.parametrize(
    ("fmt", "syntax"),
    [("toml", "toml"), ("json", "json"), ("yaml", "yaml"), ("yml", "yaml"), ("TOML", "yaml")],
)
def test_a_loader_s_format_names_its_syntax(fmt: str, syntax: str) -> None:
    """TOML and JSON by their loaders' names; any other name (a YAML file's) is YAML."""
    assert syntax_of(fmt) == syntax


def test_json_keeps_a_name_s_own_letters_and_its_booleans_lower_case() -> None:
    """A JSON hint writes a name as the file does (``é``, not ``\\u00e9``), also one that
    holds a quote; booleans are ``true`` and ``false`` in every syntax, items apart by ", "."""
    assert [
        '"é"',
        '"it\'s é"',
        "'é'",
        "[true, false]",
        '{"a": true, "b": [false]}',
        "{a: true, b: [false]}",
    ] == [
        written("é", "json"),
        written("it's é", "json"),
        written("é", "toml"),
        written([True, False], "toml"),
        written({"a": True, "b": [False]}, "json"),
        written({"a": True, "b": [False]}, "yaml"),
    ]


def test_a_long_name_is_cut_to_the_limit_at_every_depth() -> None:
    """``limit`` cuts a string alone, in a list, in a mapping and in a setting alike: a name
    the file gave never makes a hint longer than the limit allows."""
    name = "abcdefghijklmnop"
    assert [
        "'abcdefg…'",
        "['abcdefg…', 'x']",
        "{stage = 'abcdefg…'}",
        "k = {stage = 'abcdefg…'}",
        '"k": "abcdefg…"',
    ] == [
        written(name, "yaml", 8),
        written([name, "x"], "yaml", 8),
        written({"stage": name}, "toml", 8),
        setting("k", {"stage": name}, "toml", 8),
        setting("k", name, "json", 8),
    ]
