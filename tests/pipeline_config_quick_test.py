"""The loader's quick paths give what its thorough ones give: the same values, issues and lines.

``yaml_values.plain_tree`` reads an alias-free file without paths or lines (``config_text``
finds the lines again only for an issue), ``trigger_values.quick_trigger`` reads a right
trigger with a few type tests, and ``config_reader.ConfigReader.stage`` takes a field of the
right type without a ``field`` call; ``validation._Validator`` builds a field's path only for an
issue. Each must give way to the thorough path whenever that one would say something.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.config_reader import ConfigReader
from taskdaemon.pipeline.errors import ConfigError
from taskdaemon.pipeline.frozen import FrozenRecordError
from taskdaemon.pipeline.model import (
    InputMapping,
    Manual,
    OnCompletion,
    OnEvent,
    OutputMapping,
    RetryPolicy,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.record_fields import fields
from taskdaemon.pipeline.trigger_values import quick_trigger
from taskdaemon.pipeline.yaml_values import NOT_PLAIN, NodeConverter, plain_tree
from taskdaemon.pipeline.yamlsafe import compose_bounded

ROOT = Path(__file__).resolve().parent.parent
YAML_FILES = sorted(
    [*(ROOT / "tests" / "pipelines").rglob("*.yaml"), *(ROOT / "examples").rglob("*.yaml")]
)


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_pipeline(text, registered_loops=())
    return str(caught.value)


def _composes(path: Path) -> bool:
    """Whether ``path`` composes to a node (the invalid-file fixtures include broken YAML and
    an empty file, which neither reader ever sees)."""
    try:
        return compose_bounded(path.read_text()) is not None
    except yaml.YAMLError:
        return False


COMPOSED = [path for path in YAML_FILES if _composes(path)]


def test_the_files_compared_are_most_of_the_repository_s() -> None:
    """The comparison below leaves out only the few fixtures that are not YAML at all."""
    assert len(YAML_FILES) - 5 <= len(COMPOSED) < len(YAML_FILES)


@pytest.mark.parametrize("path", COMPOSED, ids=lambda path: path.name)
def test_plain_tree_reads_what_the_converter_reads(path: Path) -> None:
    """Every YAML file of the repository: the same value, or NOT_PLAIN where the converter has
    an issue to report."""
    node = compose_bounded(path.read_text())
    assert node is not None
    converter = NodeConverter("f")
    expected = converter.value(node, "", None)
    found = plain_tree(node)
    if converter.issues:
        assert found is NOT_PLAIN
    else:
        assert found == expected


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",  # a duplicate key
        "a: &x {b: 1}\nc:\n  <<: *x\n",  # a merge
        "1: a\n",  # a key that is not a string
        "[a]: b\n",  # a collection as a key
        'a: !!binary "a==="\n',  # a scalar the safe constructor refuses
        "a: !custom b\n",  # an unknown tag
        "a: " + "[" * 100 + "]" * 100 + "\n",  # collections 100 deep
    ],
)
def test_plain_tree_gives_way_to_the_converter(text: str) -> None:
    node = compose_bounded(text)
    assert node is not None
    assert plain_tree(node) is NOT_PLAIN


def test_plain_tree_reads_collections_just_under_the_depth_limit() -> None:
    node = compose_bounded("a: " + "[" * 99 + "]" * 99 + "\n")
    assert node is not None
    converter = NodeConverter("f")
    expected = converter.value(node, "", None)
    assert not converter.issues
    assert plain_tree(node) == expected


def test_a_stage_of_wrong_types_reports_each_field_on_its_line() -> None:
    text = (
        "name: demo\n"
        "stages:\n"
        "  - name: 5\n"
        "    loop: [x]\n"
        "    handler: 1\n"
        "    command: true\n"
        "    triggers: nope\n"
    )
    assert _error(text) == (
        "<string>:3: stages[0].name: expected a string, got integer\n"
        "<string>:4: stages[0].loop: expected a string, got list\n"
        "<string>:5: stages[0].handler: expected a string, got integer\n"
        "<string>:6: stages[0].command: expected a string, got boolean (quote it: YAML reads "
        "a bare yes, no, on, off, true or false as a boolean)\n"
        "<string>:7: stages[0].triggers: expected a list, got string (a list of one-key "
        "mappings: triggers: [{manual: {}}])"
    )


def test_null_required_fields_are_reported_on_their_lines() -> None:
    text = "name: demo\nstages:\n  - name: ~\n    loop:\n    handler: 'a:b'\n    triggers:\n"
    assert _error(text) == (
        "<string>:3: stages[0].name: expected a string, got null\n"
        "<string>:4: stages[0].loop: expected a string, got null\n"
        "<string>:6: stages[0].triggers: expected a list, got null"
    )


def test_issues_of_a_file_read_quickly_keep_their_lines() -> None:
    """No alias and no mistake the converter sees: the lines come from composing again."""
    text = (
        "name: demo\n"
        "stages:\n"
        "  - name: a\n"
        "    command: x\n"
        "    triggers:\n"
        "      - manual: {approval_required: false}\n"
        "  - name: b\n"
        "    command: y\n"
        "    triggers:\n"
        '      - on_completion: {stage: a, success_only: "yes"}\n'
        '      - on_event: {type: ""}\n'
        "      - on_condition: {expression: 3}\n"
        "    timeout: 0\n"
    )
    assert _error(text) == (
        "<string>:10: stages[1].triggers[0].on_completion.success_only: expected a boolean, "
        "got string 'yes' (write true without quotes)\n"
        "<string>:11: stages[1].triggers[1].on_event.type: must not be empty\n"
        "<string>:12: stages[1].triggers[2].on_condition.expression: expected a string, "
        "got integer\n"
        "<string>:13: stages[1].timeout: must be > 0, got 0"
    )


def test_a_star_that_is_no_alias_takes_the_converter_and_keeps_lines() -> None:
    text = (
        "name: demo\n"
        "stages:\n"
        "  - name: list\n"
        '    command: "ls *.txt"\n'
        "    triggers:\n"
        "      - manual: {}\n"
        "  - name: bad\n"
        "    command: x\n"
        "    triggerz: []\n"
    )
    assert _error(text) == "<string>:9: stages[1].triggerz: unknown key (did you mean 'triggers'?)"


def test_mistakes_of_a_flow_list_over_lines_are_each_on_their_own_line() -> None:
    """A file of mistakes only, its list written over three lines: each stage's issue is on
    the line its item starts on."""
    assert _error("name: w\nstages: [a,\n  b,\n  3]\n").splitlines() == [
        "<string>:2: stages[0]: expected a mapping, got string",
        "<string>:3: stages[1]: expected a mapping, got string",
        "<string>:4: stages[2]: expected a mapping, got integer",
    ]


def test_the_last_issue_shown_of_many_mistakes_is_on_its_line() -> None:
    """Of 1,005 wrong stages, one a line, the thousandth issue shown is on its item's line."""
    lines = _error("name: w\nstages:\n" + "  - a\n" * 1005).splitlines()
    assert "<string>:1002: stages[999]: expected a mapping, got string" == lines[999]


def test_an_issue_of_a_merged_field_is_on_its_merge_s_alias_line() -> None:
    """A file with an alias: a field merged by ``<<`` is placed on the merge's alias, which
    names the line where the anchor wrote it."""
    text = (
        "name: demo\n"
        "stages:\n"
        "  - &base {name: a, command: make, timeout: 0,\n"
        "           triggers: [manual: {}]}\n"
        "  - <<: *base\n"
        "    name: b\n"
    )
    assert _error(text).splitlines() == [
        "<string>:3: stages[0].timeout: must be > 0, got 0",
        "<string>:5:9: stages[1].timeout: must be > 0, got 0 (via '*base', defined at line 3)",
    ]


def test_an_issue_inside_an_aliased_list_is_on_the_alias_s_line() -> None:
    """A file with an alias of a list: its item's mistake is reported under each path, on
    the line the anchored list wrote it, and on the alias's line, naming that one."""
    text = (
        "name: demo\n"
        "stages:\n"
        "  - name: a\n"
        "    command: make\n"
        "    triggers: &t [{on_completion: {stage: nope}}]\n"
        "  - name: b\n"
        "    command: make\n"
        "    triggers: *t\n"
    )
    assert _error(text).splitlines()[1:] == [
        "<string>:5: stages[0].triggers[0].on_completion.stage: unknown stage 'nope' (the "
        "stages: 'a', 'b')",
        "<string>:8:15: stages[1].triggers[0].on_completion.stage: unknown stage 'nope' (the "
        "stages: 'a', 'b') (via '*t', defined at line 5)",
    ]


def test_an_issue_of_a_key_merged_and_set_again_is_on_the_own_key_s_line() -> None:
    """A key both merged by ``<<`` and the mapping's own (before or after the merge) is placed
    on the own key's line."""
    text = (
        "name: demo\n"
        "stages:\n"
        "  - &base\n"
        "    name: a\n"
        "    command: make\n"
        "    timeout: 1m\n"
        "    retry: {max_attempts: 2, backoff: {initial: 1s}}\n"
        "    triggers: [manual: {}]\n"
        "  - name: b\n"
        "    retry: {backoff: {initial: 1s, factor: 0}}\n"
        "    <<: *base\n"
        "    timeout: 0\n"
    )
    assert _error(text).splitlines() == [
        "<string>:10: stages[1].retry.backoff.factor: must be >= 1, got 0",
        "<string>:12: stages[1].timeout: must be > 0, got 0",
    ]


def test_an_issue_after_an_alias_is_on_its_field_s_line() -> None:
    """A file with an alias: a later stage's mistake is on the line of its own field."""
    text = (
        "name: demo\n"
        "stages:\n"
        "  - name: a\n"
        '    handler: &h "x:y"\n'
        "    triggers: [manual: {}]\n"
        "  - name: b\n"
        "    handler: *h\n"
        "    triggers: [{on_completion: {stage: c}}]\n"
    )
    expected = (
        "<string>:8: stages[1].triggers[0].on_completion.stage: unknown stage 'c' (the stages: "
        "'a', 'b')"
    )
    assert expected == _error(text)


def test_the_depth_limit_of_a_file_without_aliases_keeps_its_message() -> None:
    text = "name: demo\nstages: " + "[" * 101 + "]" * 101 + "\n"
    assert _error(text) == "<string>:2: nested deeper than 100 levels"


#: Each trigger kind's body keys (and a misspelt kind), for the exhaustive check below.
_KINDS = {
    "on_completion": ["stage", "success_only"],
    "on_event": ["type", "filter"],
    "on_condition": ["expression"],
    "manual": ["approval_required", "timeout"],
    "on_complete": ["stage"],
}
_ABSENT = object()
_VALUES = [_ABSENT, None, True, False, 0, 1, "", " ", "a", "10m", ["a"]]


def _trigger_items() -> Iterator[Any]:
    """Every body of every kind over ``_VALUES`` (each key absent or one of them, with and
    without an unknown key), plus items of other shapes."""
    for kind, keys in _KINDS.items():
        for values in itertools.product(_VALUES, repeat=len(keys)):
            pairs = zip(keys, values, strict=True)
            body = {key: value for key, value in pairs if value is not _ABSENT}
            yield {kind: body}
            yield {kind: {**body, "bogus": 1}}
            yield {kind: body, "manual": None}
        yield from ({kind: body} for body in (None, "", "a", 1, []))
    yield from (None, "manual", 1, [], {})


def test_quick_trigger_takes_only_what_the_reader_takes_without_an_issue() -> None:
    checked = 0
    for item in _trigger_items():
        reader = ConfigReader("f", dict)
        expected = reader.trigger(item, "stages[0].triggers[0]")
        found = quick_trigger(item)
        if reader.issues or expected is None:
            assert found is None, item
        else:
            assert found is None or found == expected, item
            checked += found is not None
    assert checked > 100  # the quick path took a good share of the right ones


@pytest.mark.parametrize(
    "item",
    [
        {"on_completion": {"stage": "a"}},
        {"on_completion": {"stage": "a", "success_only": False}},
        {"on_event": {"type": "e", "filter": "event.x > 1"}},
        {"on_condition": {"expression": "stages.a.ok"}},
        {"manual": None},
        {"manual": {"approval_required": True}},
    ],
)
def test_quick_trigger_reads_each_kind_of_right_trigger(item: dict[str, Any]) -> None:
    reader = ConfigReader("f", dict)
    assert quick_trigger(item) == reader.trigger(item, "t")
    assert quick_trigger(item) is not None
    assert not reader.issues


def test_the_validator_names_each_field_it_reports() -> None:
    """The validator joins a field's path only for an issue: each path as it was built before."""
    text = (
        "name: demo\n"
        "timeout: 0\n"
        "retry: {max_attempts: 0, backoff: {factor: 0.5}}\n"
        "loops:\n"
        "  lint: {handler: not-a-handler}\n"
        "stages:\n"
        "  - name: a\n"
        "    command: x\n"
        "    parallel_instances: 0\n"
        "    retry: {backoff: {initial: 0, max: 0}}\n"
        "    triggers:\n"
        "      - manual: {}\n"
        "      - manual: {approval_required: true, timeout: 0}\n"
        "      - on_completion: {stage: nope}\n"
        "  - name: b\n"
        "    loop: lint\n"
        "    triggers: [{on_completion: {stage: a}}]\n"
    )
    assert _error(text).splitlines() == [
        "<string>:2: timeout: must be > 0, got 0",
        "<string>:3: retry.max_attempts: must be >= 1, got 0",
        "<string>:3: retry.backoff.factor: must be >= 1, got 0.5",
        "<string>:5: loops.lint.handler: invalid handler 'not-a-handler' (expected "
        "module:function)",
        "<string>:9: stages[0].parallel_instances: must be >= 1, got 0",
        "<string>:10: stages[0].retry.backoff.initial: must be > 0, got 0",
        "<string>:10: stages[0].retry.backoff.max: must be > 0, got 0",
        "<string>:13: stages[0].triggers[1].manual.timeout: must be > 0, got 0",
        "<string>:14: stages[0].triggers[2].on_completion.stage: unknown stage 'nope' (the "
        "stages: 'a', 'b')",
    ]


def test_a_stage_read_is_the_record_its_class_builds() -> None:
    """The reader builds stages through ``frozen.maker`` (a mutable twin, then ``Stage``): the
    record it gives is a ``Stage`` equal field for field to the class's, and as frozen."""
    text = (
        "name: p\nexternal_events: [t]\nstages:\n"
        "  - {name: a, handler: 'm:f', triggers: [{manual: {approval_required: false}}]}\n"
        "  - name: b\n    loop: command\n    command: 'true'\n    description: d\n"
        "    triggers: [{on_completion: {stage: a}}, {on_event: {type: t}}]\n"
        "    trigger_mode: all\n    parallel_instances: 2\n    timeout: 5s\n"
        "    retry: {max_attempts: 3}\n    emits: [u]\n    inputs: {x: request.x}\n"
        "    outputs: {y: result.y}\n"
    )
    pipeline = parse_pipeline(text, registered_loops=())
    expected = (
        Stage("a", "python", (Manual(False),), handler="m:f"),
        Stage(
            "b",
            "command",
            (OnCompletion("a"), OnEvent("t")),
            TriggerMode.ALL,
            (InputMapping("x", "request.x"),),
            (OutputMapping("y", "result.y"),),
            2,
            5.0,
            RetryPolicy(3),
            ("u",),
            "true",
            None,
            "d",
        ),
    )
    assert pipeline.stages == expected
    for read, built in zip(pipeline.stages, expected, strict=True):
        assert type(read) is Stage
        assert [getattr(read, f.name) for f in fields(Stage)] == [
            getattr(built, f.name) for f in fields(Stage)
        ]
        assert hash(read) == hash(built)
        with pytest.raises(FrozenRecordError):
            read.name = "c"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("triggers", "success_only"),
    [
        ("[{on_completion: {stage: a}}]", (True,)),
        ("[{on_completion: {stage: a, success_only: false}}]", (False,)),
        (
            "[{on_completion: {stage: a}}, {on_completion: {stage: a, success_only: true}}]",
            (True, True),
        ),
    ],
)
def test_a_completion_trigger_read_is_the_record_its_class_builds(
    triggers: str, success_only: tuple[bool, ...]
) -> None:
    """The quick read builds ``on_completion`` triggers through ``frozen.maker``, a stage of one
    trigger without the list's comprehension: each is an ``OnCompletion`` equal to the class's,
    of the same hash, and as frozen."""
    text = (
        "name: p\nstages:\n  - {name: a, handler: 'm:f', triggers: [{manual: {}}]}\n"
        f"  - {{name: b, handler: 'm:f', triggers: {triggers}}}\n"
    )
    read = parse_pipeline(text, registered_loops=()).stages[1].triggers
    expected = tuple(OnCompletion("a", flag) for flag in success_only)
    assert (read, hash(read)) == (expected, hash(expected))
    for trigger in read:
        assert type(trigger) is OnCompletion
        with pytest.raises(FrozenRecordError):
            trigger.stage = "c"  # type: ignore[misc]
