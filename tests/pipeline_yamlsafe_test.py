"""yamlsafe: the alias budget and the depth, counted exactly; the composing loader's remembered
scalar tags and its lifetime."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import yaml

from cli_support import ROOT, taskdaemon
from taskdaemon.pipeline import yamlsafe
from taskdaemon.pipeline.yamlsafe import (
    ALIAS_BUDGET,
    MAX_YAML_BYTES,
    YamlLimitError,
    compose_bounded,
    load_bounded,
    syntax_problem,
)

TEXT = """\
a: true
b: "true"
c: true
d: 12
e: '12'
f: 12
g: [true, 'true', null, "null", 1.5, '1.5']
"""


def _tags(node: yaml.Node) -> list[str]:
    """The tags of every node, depth first, keys and values."""
    if isinstance(node, yaml.MappingNode):
        return [node.tag] + [t for pair in node.value for part in pair for t in _tags(part)]
    if isinstance(node, yaml.SequenceNode):
        return [node.tag] + [t for item in node.value for t in _tags(item)]
    return [node.tag]


def test_a_repeated_scalar_keeps_the_tag_its_quoting_gives() -> None:
    """The same text plain and quoted resolves to two tags, as PyYAML's own loader says."""
    node = compose_bounded(TEXT)
    assert node is not None
    expected = yaml.compose(TEXT, Loader=yaml.SafeLoader)
    assert _tags(node) == _tags(expected)
    values = {key.value: value.tag for key, value in node.value}
    assert values["a"] == values["c"] == "tag:yaml.org,2002:bool"
    assert values["b"] == "tag:yaml.org,2002:str"
    assert values["d"] == values["f"] == "tag:yaml.org,2002:int"
    assert values["e"] == "tag:yaml.org,2002:str"


def test_a_composing_loader_is_freed_without_the_cyclic_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tag memo refers to its loader; ``dispose`` drops it, so the loader (and its parser's
    buffers) goes when ``compose`` returns, not at the next collection."""
    loaders: list[weakref.ref[yamlsafe._ComposingLoader]] = []
    original = yamlsafe._ComposingLoader.__init__

    def remembering(self: yamlsafe._ComposingLoader, stream: str) -> None:
        original(self, stream)
        loaders.append(weakref.ref(self))

    monkeypatch.setattr(yamlsafe._ComposingLoader, "__init__", remembering)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        node = compose_bounded(TEXT)
        assert node is not None
        assert [ref() for ref in loaders] == [None]
    finally:
        if was_enabled:
            gc.enable()


def _expanded(node: yaml.Node) -> int:
    """The nodes a walk that follows every alias visits (keys and values): the oracle that
    ``compose_bounded``'s memoised count must equal."""
    if isinstance(node, yaml.MappingNode):
        return 1 + sum(_expanded(part) for pair in node.value for part in pair)
    if isinstance(node, yaml.SequenceNode):
        return 1 + sum(_expanded(item) for item in node.value)
    return 1


def _shared(aliases: int) -> str:
    """A ten-node list and a list of ``aliases`` references to it: 14 nodes of its own (the
    root, two keys, two lists, nine numbers), and 14 + 10 x ``aliases`` expanded."""
    return "base: &b [1, 2, 3, 4, 5, 6, 7, 8, 9]\nrefs: [" + ", ".join(["*b"] * aliases) + "]\n"


def test_a_file_exactly_at_its_alias_budget_composes() -> None:
    """Aliases adding exactly ``ALIAS_BUDGET`` nodes are allowed, and the count is exact."""
    node = compose_bounded(_shared(ALIAS_BUDGET // 10))
    assert node is not None
    assert 14 + ALIAS_BUDGET == _expanded(node)


def test_one_alias_past_the_budget_is_refused_with_the_exact_count() -> None:
    """One more reference is refused, naming the file's own nodes, the expanded count and the
    limit, all three exact."""
    with pytest.raises(YamlLimitError) as refused:
        compose_bounded(_shared(ALIAS_BUDGET // 10 + 1))
    limit = 14 + ALIAS_BUDGET
    expected = (
        f"aliases and merge keys expand 14 nodes to {limit + 10} "
        f"(the limit is {limit}: is this an alias bomb?)",
        1,
    )
    assert expected == (str(refused.value), refused.value.line)


def test_a_large_file_may_expand_to_five_times_its_own_nodes() -> None:
    """Past ``ALIAS_BUDGET / 4`` own nodes, the budget is four times the file's own nodes."""
    own_numbers = ALIAS_BUDGET // 2  # own: root, 3 keys, 3 lists, the numbers and the 9
    own = 7 + own_numbers + 9
    text = "data: [" + ", ".join(["0"] * own_numbers) + "]\n" + _shared(4 * own // 10)
    node = compose_bounded(text)
    assert node is not None
    assert own + 10 * (4 * own // 10) == _expanded(node) <= 5 * own
    with pytest.raises(YamlLimitError, match="alias bomb"):
        compose_bounded(text.replace("refs: [", "refs: [*b, ", 1))


def _chain(links: int) -> str:
    """``links`` one-item lists, each holding the previous one by alias: the last is nested
    ``links`` deep on line ``links``, though the text itself nests two levels."""
    lines = ["l0: &l0 [0]"]
    lines += [f"l{i}: &l{i} [*l{i - 1}]" for i in range(1, links)]
    return "\n".join(lines) + "\n"


def test_nesting_through_aliases_is_measured() -> None:
    """A chain of aliases 101 lists deep is refused at the line of the list past the limit."""
    with pytest.raises(YamlLimitError) as refused:
        compose_bounded(_chain(101))
    assert ("nested deeper than 100 levels", 101) == (str(refused.value), refused.value.line)


def test_nesting_through_aliases_up_to_the_limit_composes() -> None:
    """99 chained lists under the root mapping make 100 levels: allowed."""
    assert compose_bounded(_chain(99)) is not None


def test_a_recursive_alias_is_counted_once_and_composes() -> None:
    """A list holding itself is measured without looping: the node converter reports it."""
    node = compose_bounded("a: &a [1, *a]\n")
    assert node is not None


def test_a_syntax_error_is_worded_by_the_pure_parser_with_its_line() -> None:
    """libyaml's error is replaced by the pure parser's words and its 1-based line."""
    text = "a: 1\nb: [2\nc: 3\n"
    with pytest.raises(yaml.YAMLError) as caught:
        yaml.compose(text, Loader=yaml.CSafeLoader)
    assert ("expected ',' or ']', but got ':' at column 2", 3) == syntax_problem(text, caught.value)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (yaml.MarkedYAMLError(problem="bad\nindent"), ("bad indent", None)),
        (yaml.MarkedYAMLError(context="while scanning"), ("while scanning", None)),
        (yaml.MarkedYAMLError(), ("syntax error", None)),
        (yaml.YAMLError("first line\nsecond line"), ("first line", None)),
        (yaml.YAMLError(), ("syntax error", None)),
    ],
)
def test_an_error_without_marks_or_words_is_still_one_line(
    error: yaml.YAMLError, expected: tuple[str, None]
) -> None:
    """Without a mark there is no line; without a problem the context or a default names it."""
    assert expected == syntax_problem("", error)


def test_a_text_at_the_size_limit_composes_and_one_character_more_is_refused() -> None:
    """16 MiB of comment is read (an empty document); one character more is refused unread."""
    assert compose_bounded("#" * MAX_YAML_BYTES) is None
    with pytest.raises(YamlLimitError) as refused:
        compose_bounded("#" * (MAX_YAML_BYTES + 1))
    assert ("larger than 16 MiB", 1) == (str(refused.value), refused.value.line)


def test_an_empty_document_with_a_star_in_a_comment_composes_to_none() -> None:
    """A ``*`` makes the graph measured, but an empty document has no graph to measure."""
    assert compose_bounded("# a *starred* comment\n") is None


def test_the_callers_depth_limit_bounds_nesting_through_aliases() -> None:
    """``max_depth`` reaches the measure: a chain of aliases four lists deep is refused at 3."""
    with pytest.raises(YamlLimitError, match="nested deeper than 3 levels"):
        compose_bounded(_chain(4), max_depth=3)


def test_load_bounded_gives_the_value_with_aliases_shared() -> None:
    """An input file's anchors and aliases load as the values they name."""
    assert {"a": [1, 2], "b": [1, 2]} == load_bounded("a: &x [1, 2]\nb: *x\n")


def test_load_bounded_refuses_a_tree_nested_past_the_limit() -> None:
    """A file without aliases is not measured when composed; its value's depth is checked."""
    with pytest.raises(YamlLimitError) as refused:
        load_bounded("a: " + "[" * 100 + "]" * 100 + "\n")
    assert ("nested deeper than 100 levels", 1) == (str(refused.value), refused.value.line)


def test_load_bounded_of_an_empty_document_is_none() -> None:
    """No document, no value."""
    assert load_bounded("# nothing here\n") is None


@pytest.mark.parametrize("text", ["a: [[1]]\n", "a: &x [[1]]\nb: *x\n"])
def test_load_bounded_applies_the_callers_depth(text: str) -> None:
    """``max_depth`` bounds a tree's value and an aliased graph's measure alike."""
    with pytest.raises(YamlLimitError, match="nested deeper than 2 levels"):
        load_bounded(text, max_depth=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # a stage's key one level too far out: at the list's column
            "stages:\n  - name: a\n  loop: b\n",
            ("a key at column 3 does not fit the list begun on line 2 at column 3", 3),
        ),
        (  # a list item one column too far in
            "stages:\n  - name: a\n   - name: b\n",
            ("a list item at column 4 does not fit the list begun on line 2 at column 3", 3),
        ),
        (  # a key between two levels of a mapping
            "a:\n  b: 1\n c: 2\n",
            ("a key at column 2 does not fit the mapping begun on line 1 at column 1", 3),
        ),
    ],
)
def test_a_misindented_line_is_worded_without_the_parser_tokens(
    text: str, expected: tuple[str, int]
) -> None:
    """The parser's ``expected <block end>, but found '?'`` is said in a pipeline's words."""
    with pytest.raises(yaml.YAMLError) as caught:
        yaml.compose(text, Loader=yaml.SafeLoader)
    assert (f"{expected[0]}: check the line's indentation", expected[1]) == syntax_problem(
        text, caught.value
    )


def test_validate_says_where_a_misindented_line_of_the_example_goes_wrong(
    home: Path, tmp_path: Path
) -> None:
    """The example pipeline with one stage's ``inputs:`` moved out to the list's column, as a
    slip of the editor does: ``validate`` names the line and the list, in one line."""
    lines = (ROOT / "examples" / "feature_delivery.yaml").read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if i > 30 and line == "    inputs:\n")
    lines[at] = "  inputs:\n"
    path = tmp_path / "pipeline.yaml"
    path.write_text("".join(lines))
    done = taskdaemon(home, "validate", str(path))
    assert 2 == done.returncode, done.stderr
    assert done.stdout.startswith(f"{path}:{at + 1}: invalid yaml: a key at column 3 does not ")
    assert done.stdout.endswith("check the line's indentation\n")
    assert 1 == len(done.stdout.splitlines())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # an editor that indents with a tab
            "name: first\nstages:\n\t- name: a\n",
            "3: invalid yaml: a tab at column 1: YAML indents with spaces, not tabs",
        ),
        (  # a quote never closed: the parser said "end of stream" on the line after the last
            'name: first\nstages:\n  - name: a\n    command: "make all\n    loop: command\n',
            "4: invalid yaml: the quoted string begun at column 14 is never closed",
        ),
        (  # a command holding ': ', not quoted
            "name: first\nstages:\n  - name: a\n    command: echo: hi\n",
            "4: invalid yaml: a ':' at column 18 where a value goes on: quote a value that "
            "holds ': ', or check the line's indentation",
        ),
        (  # a flow mapping left open
            "name: first\nstages: [{name: a]\n",
            "2: invalid yaml: expected ',' or '}', but got ']' at column 18",
        ),
    ],
)
def test_validate_says_what_a_newcomer_s_yaml_slip_is_and_where(
    home: Path, tmp_path: Path, text: str, expected: str
) -> None:
    """The YAML slips of a first pipeline are one line with the line a reader must fix, the
    column, and what to do: the parser's own words named a token ("found character '\\t' that
    cannot start any token", "mapping values are not allowed here") or, for a quote never
    closed, the line after the file's last."""
    path = tmp_path / "first.yaml"
    path.write_text(text)
    done = taskdaemon(home, "validate", str(path))
    assert (2, f"{path}:{expected}\n") == (done.returncode, done.stdout), done.stderr
