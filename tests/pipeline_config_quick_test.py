"""The loader's quick paths give what its thorough ones give: the same values, issues and lines.

``yaml_values.plain_tree`` reads an alias-free file without paths or lines (``config_text``
finds the lines again only for an issue). It must give way to the thorough path whenever that
one would say something.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.errors import ConfigError
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


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: path.name)
def test_plain_tree_reads_what_the_converter_reads(path: Path) -> None:
    """Every YAML file of the repository: the same value, or NOT_PLAIN where the converter has
    an issue to report."""
    try:
        node = compose_bounded(path.read_text())
    except yaml.YAMLError:
        pytest.skip("not YAML: nothing composed to read")
    if node is None:
        pytest.skip("empty: nothing composed to read")
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
        "got string\n"
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
    assert _error(text) == (
        "<string>:7: stages[1].triggers: missing required field (an entry stage has triggers: "
        "[{manual: {approval_required: false}}])\n"
        "<string>:9: stages[1].triggerz: unknown key (did you mean 'triggers'?)"
    )


def test_the_depth_limit_of_a_file_without_aliases_keeps_its_message() -> None:
    text = "name: demo\nstages: " + "[" * 101 + "]" * 101 + "\n"
    assert _error(text) == "<string>:2: nested deeper than 100 levels"
