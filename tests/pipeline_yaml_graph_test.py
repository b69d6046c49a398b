"""yaml_graph: a file with aliases or ``<<`` merge keys read from the parser's events gives
the converter's value and lines, or gives up where the converter would word an issue."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from taskdaemon.pipeline.config_reader import _ancestors
from taskdaemon.pipeline.yaml_graph import graph_read, graph_tree
from taskdaemon.pipeline.yaml_lines import graph_lines
from taskdaemon.pipeline.yaml_values import NOT_PLAIN, NodeConverter
from taskdaemon.pipeline.yamlsafe import YamlLimitError, compose_bounded

ROOT = Path(__file__).resolve().parent.parent


def _converted(text: str) -> tuple[Any, list[Any], dict[str, int]]:
    """The converter's value, issues and lines of ``text``."""
    node = compose_bounded(text)
    converter = NodeConverter("f")
    return converter.value(node, "", None), converter.issues, converter.lines


def _typed(value: Any) -> Any:
    """``value`` with each scalar's type and each mapping's key order kept, for comparing."""
    if isinstance(value, dict):
        return ("mapping", [(key, _typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    return (type(value).__name__, value)


READ = {
    "merge first": "b: &b {x: 1, y: [2]}\nt:\n  <<: *b\n  y: 3\n",
    "merge after own keys": "b: &b {x: 1, y: 2}\nt:\n  y: 3\n  z: 4\n  <<: *b\n",
    "merge of a list, first wins": "a: &a {x: 1}\nb: &b {x: 2, y: 2}\nt: {<<: [*a, *b]}\n",
    "two merge keys, later wins": "a: &a {x: 1}\nb: &b {x: 2}\nt: {<<: *a, <<: *b}\n",
    "merge of a merge": "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nt:\n  <<: *b\n  z: 3\n",
    "merge of an inline mapping": "t:\n  <<: {x: 1, y: [a]}\n  y: 2\n",
    "alias of a list of mappings": "a: &a [{x: 1}, {y: 2}]\nt: *a\nu: [*a, *a]\n",
    "alias of a list as a merge": "a: &a [{x: 1}, {x: 2, y: 3}]\nt: {<<: *a}\n",
    "anchored key": "&k name: x\nt: [*k]\n",
    "quoted merge key": 'a: &a {x: 1}\nt: {"<<": *a}\n',
    "resolved scalars": "a: &a {i: 1, f: 1.5, b: true, n: ~, d: 2020-01-01, e: }\nt: [*a]\n",
    "block scalar": "a: &a |\n  two\n  lines\nt: *a\n",
}


@pytest.mark.parametrize("text", READ.values(), ids=READ.keys())
def test_each_case_reads_as_the_converter_does(text: str) -> None:
    """The value (scalar types and key order too) is the converter's."""
    value, issues, _ = _converted(text)
    assert ([], _typed(value)) == (issues, _typed(graph_tree(text)))


def _words(issues: list[Any]) -> list[tuple[str, str, int | None]]:
    return [(issue.path, issue.message, issue.line) for issue in issues]


WORDED = {
    "duplicate key after a merge": "a: &a {x: 1}\nt:\n  <<: *a\n  y: 1\n  y: 2\n",
    "duplicate key before a merge": "a: &a {x: 1}\nt:\n  y: 1\n  y: [*a]\n  <<: *a\n",
    "bad values": "a: &a {x: 1}\nt: [*a, 2020-02-30, {y: 2021-02-29}]\n",
    "keys not strings": "a: &a {x: 1}\nt: {1: *a, !!int q: 2, [l]: 3, {m: 1}: 4, ok: 5}\n",
    "anchors in a duplicate's value": "t: {x: 1, x: &b [1]}\nu: *b\nv: {y: !!int z}\n",
    "many issues": "a: &a {x: 1}\nt: [*a" + ", 2020-02-30" * 1005 + "]\n",
}


@pytest.mark.parametrize("text", WORDED.values(), ids=WORDED.keys())
def test_the_converter_s_issues_are_worded_in_its_order(text: str) -> None:
    """A mistake outside anchored nodes and merge sources: the converter's issues, in its
    order and words, on its lines."""
    found = graph_read(text, "f")
    assert found is not None
    assert _words(_converted(text)[1]) == _words(found[1])


LEFT = {
    "a mistake in an anchored node": "a: &a {x: !!int z}\nt: *a\n",
    "a mistake in a merge source": "a: &a {x: 1}\nt: {<<: {x: 2020-02-30}, y: *a}\n",
    "a merge of a scalar": "a: &a 1\nt: {<<: *a, y: 1, y: 2}\n",
    "an alias as a key": "a: &a x\nt: {*a : 1, y: 1, y: 2}\n",
}


@pytest.mark.parametrize("text", LEFT.values(), ids=LEFT.keys())
def test_what_the_converter_words_in_context_is_left_to_it(text: str) -> None:
    """A mistake the converter words again at each alias or merge, and the mistakes of an
    alias key or a merge of a scalar, are left to it."""
    assert (True, None) == (bool(_converted(text)[1]), graph_read(text, "f"))


GIVEN_UP = {
    "duplicate key": "a: &a {x: 1}\nt: {<<: *a, y: 1, y: 2}\n",
    "bad int": "a: &a {x: !!int z}\nt: *a\n",
    "tag": "a: &a {x: !!str 1}\nt: *a\n",
    "key not a string": "a: &a {1: x}\nt: *a\n",
    "collection as a key": "a: &a x\n? [b]\n: c\n",
    "alias as a key": "a: &a x\n*a : c\n",
    "recursive alias": "a: &a [*a]\n",
    "merge of a scalar": "a: &a 1\nt: {<<: *a}\n",
    "merge of a list of scalars": "a: &a {x: 1}\nt: {<<: [*a, 1]}\n",
    "undefined alias": "t: *a\n",
    "anchored twice": "a: &a 1\nb: &a 2\nc: *a\n",
    "two documents": "a: &a 1\nb: *a\n---\nc: 1\n",
    "syntax error": "a: &a 1\nb: [*a\n",
    "empty": "# *\n",
}


@pytest.mark.parametrize("text", GIVEN_UP.values(), ids=GIVEN_UP.keys())
def test_what_the_converter_words_or_the_composer_refuses_is_given_up(text: str) -> None:
    """A file the converter reports an issue of (or PyYAML refuses) is left to them."""
    assert NOT_PLAIN is graph_tree(text)


def _nested(depth: int) -> str:
    return "a: &a " + "[" * depth + "]" * depth + "\nb: *a\n"


def test_collections_nested_64_deep_through_an_alias_give_up() -> None:
    """63 nested collections under the document's mapping are read, 64 give up."""
    assert (False, True) == (
        graph_tree(_nested(62)) is NOT_PLAIN,
        graph_tree(_nested(63)) is NOT_PLAIN,
    )


def test_aliases_past_the_budget_early_in_the_text_are_left_to_the_composer() -> None:
    """Aliases past the budget of the nodes before them, in the text's first third: given up,
    and the composer refuses the file."""
    text = "a: &a [" + ", ".join(["x"] * 10) + "]\nb: [" + ", ".join(["*a"] * 9100) + "]\n"
    with pytest.raises(YamlLimitError):
        compose_bounded(text)
    assert NOT_PLAIN is graph_tree(text)


_FLOOD = ", ".join(["*a"] * 60_000)
LATE = {
    "aliases of a scalar": "a: &a x\nb: ["
    + ", ".join(["x"] * 10_000)
    + "]\nc: ["
    + _FLOOD
    + ", "
    + _FLOOD
    + "]\n",
    "an anchored mapping open": (
        "a: &a x\nz: &z\n  b: [" + ", ".join(["x"] * 10_000) + "]\n  c: [" + _FLOOD + "]\n"
        "d: &d [" + ", ".join(["*a"] * 100) + "]\ne: [*z, *z, *d]\n"
    ),
}


@pytest.mark.parametrize("text", LATE.values(), ids=LATE.keys())
def test_aliases_past_the_budget_late_in_the_text_are_refused_as_the_composer_does(
    text: str,
) -> None:
    """Aliases past the budget of the nodes before them, past the text's first third: the rest
    is counted, and the text refused with the composer's message."""
    with pytest.raises(YamlLimitError) as composed:
        compose_bounded(text)
    with pytest.raises(YamlLimitError) as read:
        graph_tree(text)
    assert (str(composed.value), composed.value.line) == (str(read.value), read.value.line)


def test_aliases_past_four_times_the_nodes_so_far_are_left_even_within_the_budget() -> None:
    """Aliases adding more than four times the nodes read before them and a thousand are left
    to the composer, even within ``ALIAS_BUDGET`` (which it reads)."""
    text = "a: &a [" + ", ".join(["x"] * 200) + "]\nb: [" + ", ".join(["*a"] * 10) + "]\n"
    assert (True, NOT_PLAIN) == (compose_bounded(text) is not None, graph_tree(text))


def _early_aliases() -> str:
    """Aliases past four times the nodes read before them, within a thousand more."""
    return "a: &a [" + ", ".join(["x"] * 200) + "]\nb: [" + ", ".join(["*a"] * 8) + "]\n"


def test_aliases_copied_once_the_budget_is_known_read_as_the_converter_does() -> None:
    """Aliases past four times the nodes read before them are copied at the end, to the
    converter's value."""
    text = _early_aliases()
    assert _typed(_converted(text)[0]) == _typed(graph_tree(text))


def test_each_alias_of_a_collection_is_a_copy_of_its_own() -> None:
    """Aliases of one list, copied at once or at the end, are distinct lists (the converter
    builds one for each)."""
    value = graph_tree(_early_aliases())
    copies = [value["b"][0], value["b"][7], value["a"]]
    assert 3 == len({id(copy) for copy in copies})


_BASE = "b: &b\n  x: 1\n  r: {p: 1, q: 2}\n"
LINES = {
    "own key after the merge wins": _BASE + "t:\n  <<: *b\n  r:\n    p: 3\n",
    "own key before the merge wins": _BASE + "t:\n  r:\n    p: 3\n  <<: *b\n",
    "alias in a list": "a: &a\n  - x: 1\n  - [y]\nt:\n  - *a\n  - z\n  - *a\n",
    "merge of a list": "a: &a {x: 1}\nb: &b\n  x: 2\n  y: 3\nt:\n  <<: [*a, *b]\n  z: 1\n",
    "inline merge source": "t:\n  <<: {x: 1,\n    y: 2}\n  y: 3\n",
    "dotted key beside a merge": "a: &a {b: {c: 1}}\nt:\n  b.c: 2\n  <<: *a\n",
    "anchor where nothing is asked": "u:\n  v: &a {w: [1,\n    2]}\nt: *a\n",
}


@pytest.mark.parametrize("text", LINES.values(), ids=LINES.keys())
def test_every_path_has_the_converter_s_line(text: str) -> None:
    """Asked for every path, the lines are those the converter records."""
    lines = _converted(text)[2]
    assert lines == graph_lines(text, set(lines))


def test_a_path_and_its_ancestors_asked_for_have_the_converter_s_lines() -> None:
    """Asked for one path under a merge (and its ancestors), those lines alone are given."""
    text = LINES["own key after the merge wins"]
    wanted = {"t.r.q", *_ancestors("t.r.q")}
    lines = _converted(text)[2]
    assert {path: lines[path] for path in wanted} == graph_lines(text, wanted)


class _Files:
    """Random YAML texts of anchors, aliases and merges, in block and flow style."""

    KEYS: ClassVar = ["a", "b", "c", "name", "x.y", "d", "e", "f", "'q'", '"<<"', "1"]
    SCALARS: ClassVar = [
        "1",
        "x",
        "true",
        "null",
        "",
        "'s'",
        '"d"',
        "2020-01-01",
        "1.5",
        "foo bar",
        "y",
    ]

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.names: list[str] = []
        self.mappings: list[str] = []

    def anchor(self) -> str:
        if self.random.random() < 0.25:
            self.names.append(f"n{len(self.names)}")
            return f"&{self.names[-1]} "
        return ""

    def alias(self, mapping: bool = False) -> str:
        pool = self.mappings if mapping and self.mappings else self.names
        return "*" + self.random.choice(pool[-3:]) if pool else "{}"

    def merge(self) -> str:
        if self.random.random() < 0.7:
            return self.alias(mapping=True)
        return "[" + ", ".join(self.alias(mapping=True) for _ in range(2)) + "]"

    def flow(self, depth: int) -> str:
        roll = self.random.random()
        if depth > 3 or roll < 0.45:
            return self.alias() if roll < 0.1 else self.anchor() + self.random.choice(self.SCALARS)
        anchor = self.anchor()
        if roll < 0.7:
            parts = [
                f"<<: {self.merge()}"
                if self.random.random() < 0.15
                else f"{self.random.choice(self.KEYS)}: {self.flow(depth + 1)}"
                for _ in range(self.random.randint(0, 3))
            ]
            if anchor:
                self.mappings.append(anchor[1:-1])
            separator = ",\n  " if self.random.random() < 0.3 else ", "
            return anchor + "{" + separator.join(parts) + "}"
        items = [self.flow(depth + 1) for _ in range(self.random.randint(0, 3))]
        return anchor + "[" + ", ".join(items) + "]"

    def mapping(self, indent: int, depth: int) -> str:
        lines = []
        for _ in range(self.random.randint(1, 4)):
            spaces, roll = " " * indent, self.random.random()
            if roll < 0.15:
                lines.append(f"{spaces}<<: {self.merge()}")
                continue
            key = self.random.choice(self.KEYS)
            if depth > 3 or roll < 0.6:
                lines.append(f"{spaces}{key}: {self.flow(depth + 1)}")
            else:
                anchor = self.anchor()
                lines.append(f"{spaces}{key}: {anchor}".rstrip())
                lines.append(self.mapping(indent + 2, depth + 1))
                if anchor:
                    self.mappings.append(anchor[1:-1])
        return "\n".join(lines)

    def text(self) -> str:
        return self.mapping(0, 0) + "\n"


TEXTS = [_Files(seed).text() for seed in range(400)]


def test_most_generated_texts_are_read() -> None:
    """The comparisons below read a good part of the generated texts (the rest give up)."""
    assert sum(graph_tree(text) is not NOT_PLAIN for text in TEXTS) > 100


@pytest.mark.parametrize("seed", range(len(TEXTS)))
def test_a_generated_text_read_has_the_converter_s_value_and_lines(seed: int) -> None:
    """A generated text read gives the converter's value, with no issue, and every path's
    line; a text not read has an issue, or does not compose."""
    text = TEXTS[seed]
    read = graph_tree(text)
    try:
        value, issues, lines = _converted(text)
    except (yaml.YAMLError, RecursionError):  # undefined aliases and the like; a merge cycle
        assert NOT_PLAIN is read
        return
    if read is NOT_PLAIN:
        worded = graph_read(text, "f")
        assert (True, True) == (bool(issues), worded is None or _words(issues) == _words(worded[1]))
        return
    assert ([], _typed(value), lines) == (issues, _typed(read), graph_lines(text, set(lines)))


def test_many_generated_texts_with_a_mistake_are_worded() -> None:
    """The comparison above words the issues of a good part of the generated texts with a
    mistake (the rest are left to the converter)."""
    assert sum(bool((graph_read(text, "f") or (0, []))[1]) for text in TEXTS) > 20


def _big_pipeline(shape: str, size: int) -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from big_pipeline_memory import pipeline
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return pipeline(shape, size)[0]  # type: ignore[no-any-return]


def test_the_benchmark_s_merges_file_reads_as_the_converter_does() -> None:
    """The benchmark's ``merges`` shape (200,000 characters) gives the converter's value."""
    text = _big_pipeline("merges", 200_000)
    assert _typed(_converted(text)[0]) == _typed(graph_tree(text))
