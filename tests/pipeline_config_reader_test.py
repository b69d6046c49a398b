"""The reader's issues for fields of the wrong type or missing, each at its own path (the
validator's checks come after and never report the same field twice), and the defaults it
gives fields a file leaves out. Found missing by mutation testing (docs/mutation.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from config_support import one_stage, parse_error, parse_text
from taskdaemon.pipeline.model import Backoff, OutputMapping, RetryPolicy
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.validation import MAX_NAME_LENGTH

_DURATION = "(expected seconds or 500ms, 30s, 10m, 2h)"


def _trigger(text: str) -> str:
    """``one_stage``'s pipeline with ``text`` in place of its one manual trigger."""
    return one_stage("").replace("- manual: {}", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", ["<string>:1: expected a mapping at the top level, got list"]),
        (
            one_stage("", "description: 5\n"),
            ["<string>:2: description: expected a string, got integer"],
        ),
        (
            one_stage("", "error_strategy: 5\n"),
            ["<string>:2: error_strategy: expected a string, got integer"],
        ),
        (
            one_stage("", "loops:\n  a: 5\n  b: {handler: 5, command: 6, hadler: x}\n"),
            [
                "<string>:3: loops.a: expected a mapping, got integer",
                "<string>:4: loops.b.hadler: unknown key (did you mean 'handler'?)",
                "<string>:4: loops.b.handler: expected a string, got integer",
                "<string>:4: loops.b.command: expected a string, got integer",
            ],
        ),
        (
            one_stage("", "external_events: 5\n"),
            ["<string>:2: external_events: expected a list, got integer"],
        ),
        (
            one_stage("", "retry: {max_attempts: x, backoff: {intial: 1, initial: x, max: y}}\n"),
            [
                "<string>:2: retry.max_attempts: expected an integer, got string",
                "<string>:2: retry.backoff.intial: unknown key (did you mean 'initial'?)",
                f"<string>:2: retry.backoff.initial: invalid duration 'x' {_DURATION}",
                f"<string>:2: retry.backoff.max: invalid duration 'y' {_DURATION}",
            ],
        ),
        (
            "stages:\n  - name: build\n    command: make\n    triggers:\n      - manual: {}\n",
            ["<string>:1: name: missing required field"],
        ),
        ("name: demo\n", ["<string>:1: stages: missing required field"]),
        (
            one_stage("trigger_mode: nope\n"),
            [
                "<string>:7: stages[0].trigger_mode: unknown trigger mode 'nope' "
                "(expected any or all)"
            ],
        ),
        (
            _trigger("- {}"),
            [
                "<string>:6: stages[0].triggers[0]: expected one of on_completion, on_event, "
                "on_condition or manual, got an empty mapping"
            ],
        ),
        (
            _trigger("- on_condition: {expression: 'true', zzz: 1}"),
            [
                "<string>:6: stages[0].triggers[0].on_condition.zzz: unknown key "
                "(expected expression)"
            ],
        ),
        (
            _trigger("- on_completion: {}"),
            ["<string>:6: stages[0].triggers[0].on_completion.stage: missing required field"],
        ),
        (
            _trigger("- on_event: {fitler: x, filter: 5}"),
            [
                "<string>:6: stages[0].triggers[0].on_event.fitler: unknown key "
                "(did you mean 'filter'?)",
                "<string>:6: stages[0].triggers[0].on_event.type: missing required field",
                "<string>:6: stages[0].triggers[0].on_event.filter: expected a string, got integer",
            ],
        ),
        (
            _trigger("- on_condition: {}"),
            ["<string>:6: stages[0].triggers[0].on_condition.expression: missing required field"],
        ),
        (
            _trigger("- manual: {timeout: x}"),
            [f"<string>:6: stages[0].triggers[0].manual.timeout: invalid duration 'x' {_DURATION}"],
        ),
        (
            _trigger("- manual: {}\n      - on_completion: {stage: ''}"),
            ["<string>:7: stages[0].triggers[1].on_completion.stage: must not be empty"],
        ),
        (
            one_stage("outputs: 5\n"),
            ["<string>:7: stages[0].outputs: expected a mapping, got integer"],
        ),
        (
            one_stage("inputs: {a: 5, b: {from: 5, required: x, form: y}, c: {required: true}}\n"),
            [
                "<string>:7: stages[0].inputs.a: expected a CEL string or a mapping with 'from', "
                "got integer",
                "<string>:7: stages[0].inputs.b.form: unknown key (did you mean 'from'?)",
                "<string>:7: stages[0].inputs.b.from: expected a string, got integer",
                "<string>:7: stages[0].inputs.b.required: expected a boolean, got string",
                "<string>:7: stages[0].inputs.c.from: missing required field",
            ],
        ),
    ],
)
def test_each_wrong_or_missing_field_is_one_issue_at_its_path(
    text: str, expected: list[str]
) -> None:
    assert parse_error(text).splitlines() == expected


def test_fields_left_out_take_the_models_defaults() -> None:
    # An empty retry and backoff are the model's own; an output without ``required`` is required.
    pipeline = parse_text(
        one_stage("outputs: {x: {from: '1'}}\nretry: {backoff: {}}\n", "retry: {}\n")
    )
    assert pipeline.retry == RetryPolicy()
    assert pipeline.stages[0].retry == RetryPolicy(backoff=Backoff())
    assert pipeline.stages[0].outputs == (OutputMapping("x", "1", required=True),)


def test_an_event_after_a_dropped_one_keeps_its_index_in_the_file() -> None:
    # The reader drops the empty name; the validator's issue about the long one is numbered as
    # in the file, not as in the list left, where it would fall inside the first issue's path.
    long = "x" * (MAX_NAME_LENGTH + 1)
    assert parse_error(one_stage("", f"external_events: ['', {long}]\n")).splitlines() == [
        "<string>:2: external_events[0]: must not be empty",
        f"<string>:2: external_events[1]: event type {quote(long)} is {len(long)} characters "
        f"long (the limit is {MAX_NAME_LENGTH})",
    ]


def test_validate_shows_a_newcomer_how_a_stage_follows_another(home: Path, tmp_path: Path) -> None:
    """The ways other tools order steps, written here, each get the line to write instead:
    ``depends_on`` listed the stage keys (and the missing triggers said to make the stage an
    entry stage, the opposite of what was meant), a trigger written with its one value
    (``on_completion: fetch``) and a list of stages said only what type was expected."""
    entry = "triggers: [{manual: {approval_required: false}}]"
    path = write(
        tmp_path / "first.yaml",
        f"""\
        name: first
        stages:
          - {{name: fetch, command: "true", {entry}}}
          - {{name: a, command: "true", depends_on: [fetch]}}
          - {{name: b, command: "true", triggers: [{{on_completion: fetch}}]}}
          - {{name: c, command: "true", triggers: [{{on_completion: {{stage: [fetch, b]}}}}]}}
          - {{name: d, command: "true", triggers: [{{on_condition: stages.fetch.outputs.ok}}]}}
        """,
    )
    done = taskdaemon(home, "validate", str(path))
    assert (
        2,
        [
            f"{path}:4: stages[1].depends_on: unknown key (write triggers: [{{on_completion: "
            "{stage: 'fetch'}}])",
            f"{path}:4: stages[1].triggers: missing required field",
            f"{path}:5: stages[2].triggers[0].on_completion: expected a mapping, got string "
            "(write on_completion: {stage: 'fetch'})",
            f"{path}:6: stages[3].triggers[0].on_completion.stage: expected a string, got list "
            "(one stage per trigger: triggers: [{on_completion: {stage: a}}, {on_completion: "
            "{stage: b}}], with trigger_mode: all to wait for both)",
            f"{path}:7: stages[4].triggers[0].on_condition: expected a mapping, got string "
            "(write on_condition: {expression: 'stages.fetch.outputs.ok'})",
        ],
    ) == (done.returncode, done.stdout.splitlines())
