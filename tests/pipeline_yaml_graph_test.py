"""yaml_graph: a file with aliases or ``<<`` merge keys read from the parser's events gives
the converter's value and lines, or gives up where the converter would word an issue."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from taskdaemon.pipeline.config_issues import ancestors
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
    "two merge keys of other keys": "a: &a {x: 1}\nb: &b {y: 2}\nt: {<<: *a, <<: *b}\n",
    "aliases of a small list after many nodes": (
        "p: [" + ", ".join(["x"] * 2000) + "]\na: &a [x]\nb: [*a, *a, *a, *a, *a]\n"
    ),
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


def _words(issues: list[Any]) -> list[tuple[str, str, str | None, int | None]]:
    return [(issue.path, issue.message, issue.file, issue.line) for issue in issues]


WORDED = {
    "duplicate key after a merge": "a: &a {x: 1}\nt:\n  <<: *a\n  y: 1\n  y: 2\n",
    "duplicate key before a merge": "a: &a {x: 1}\nt:\n  y: 1\n  y: [*a]\n  <<: *a\n",
    "bad values": "a: &a {x: 1}\nt: [*a, 2020-02-30, {y: 2021-02-29}]\n",
    "keys not strings": "a: &a {x: 1}\nt: {1: *a, !!int q: 2, [l]: 3, {m: 1}: 4, ok: 5}\n",
    "anchors in a duplicate's value": "t: {x: 1, x: &b [1]}\nu: *b\nv: {y: !!int z}\n",
    "many issues": "a: &a {x: 1}\nt: [*a" + ", 2020-02-30" * 1005 + "]\n",
    "an anchored key after a mistake": "t: {x: 1, x: 2}\n&k name: x\nu: [*k]\n",
    "a collection as the first key": "a: &a {x: 1}\nt: {[l]: 3, u: *a}\n",
    "a merge of a list after a mistake": (
        "a: &a {x: 1}\nb: &b {y: 2}\nt: {x: 1, x: 2}\nu: {<<: [*a, *b]}\n"
    ),
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
    "a mistake after an anchor in an anchored node": (
        "t: {x: 1, x: 2}\na: &a {b: &b 1, c: !!int z}\nu: *a\n"
    ),
    "a mistake after a merge in an anchored node": (
        "t: {x: 1, x: 2}\na: &a {<<: {b: 1}, c: !!int z}\nu: *a\n"
    ),
    "a non-specific tag after a mistake": "t: {x: 1, x: 2}\nu: ! 1\n",
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
    "a key's anchor anchored again": "&k a: 1\nb: &k 2\n",
    "two documents": "a: &a 1\nb: *a\n---\nc: 1\n",
    "syntax error": "a: &a 1\nb: [*a\n",
    "empty": "# *\n",
}


@pytest.mark.parametrize("text", GIVEN_UP.values(), ids=GIVEN_UP.keys())
def test_what_the_converter_words_or_the_composer_refuses_is_given_up(text: str) -> None:
    """A file the converter reports an issue of (or PyYAML refuses) is left to them."""
    assert NOT_PLAIN is graph_tree(text)


REFUSED_AFTER_A_MISTAKE = {
    "a name anchored twice": "t: {x: 1, x: 2}\na: &a 1\nb: &a 2\n",
    "two documents": "t: {x: 1, x: 2}\n---\nc: 1\n",
}


@pytest.mark.parametrize(
    "text", REFUSED_AFTER_A_MISTAKE.values(), ids=REFUSED_AFTER_A_MISTAKE.keys()
)
def test_what_pyyaml_refuses_after_a_mistake_is_left_to_the_composer(text: str) -> None:
    """The issues' read gives up at what PyYAML refuses, after the mistake that started it."""
    with pytest.raises(yaml.YAMLError):
        compose_bounded(text)
    assert None is graph_read(text, "f")


def _after_a_mistake(anchored: str, aliases: str) -> str:
    """A duplicate key first, where the value's read stops, then ``anchored`` and its
    ``aliases``: only the issues' read meets them."""
    return f"t: {{x: 1, x: 2}}\na: &a {anchored}\nb: [{aliases}]\n"


def _flood(aliases: int) -> str:
    """``aliases`` aliases of a list of 200 scalars, after a mistake (211 own nodes)."""
    return _after_a_mistake("[" + ", ".join(["x"] * 200) + "]", ", ".join(["*a"] * aliases))


def test_the_issues_read_gives_up_at_aliases_past_four_times_the_nodes_so_far() -> None:
    """Aliases within four times the nodes read before them and a thousand: the converter's
    issues; past that (2,010 nodes added to 211), left to the converter, as the value's read
    leaves them."""
    within, past = _flood(5), _flood(10)
    worded = graph_read(within, "f")
    assert worded is not None
    assert _words(_converted(within)[1]) == _words(worded[1])
    assert (True, None) == (bool(_converted(past)[1]), graph_read(past, "f"))


def test_the_issues_read_gives_up_at_collections_nested_64_deep_through_an_alias() -> None:
    """An alias in a list of the document's mapping of 61 nested lists: 63 collections deep,
    worded; of 62: 64 deep, left to the converter (which words it, allowing 100)."""
    texts = [_after_a_mistake("[" * depth + "]" * depth, "*a") for depth in (61, 62)]
    assert [True, True] == [bool(_converted(text)[1]) for text in texts]
    assert (False, True) == tuple(graph_read(text, "f") is None for text in texts)


def test_the_issues_read_gives_up_at_collections_nested_64_deep() -> None:
    """62 nested lists under the document's mapping: worded; 63 (64 collections): left to the
    converter."""
    texts = [f"t: {{x: 1, x: 2}}\nu: {'[' * depth}{']' * depth}\n" for depth in (62, 63)]
    assert [True, True] == [bool(_converted(text)[1]) for text in texts]
    assert (False, True) == tuple(graph_read(text, "f") is None for text in texts)


def _nested(depth: int) -> str:
    return "a: &a " + "[" * depth + "]" * depth + "\nb: *a\n"


def test_collections_nested_64_deep_through_an_alias_give_up() -> None:
    """63 nested collections under the document's mapping are read, 64 give up."""
    assert (False, True) == (
        graph_tree(_nested(62)) is NOT_PLAIN,
        graph_tree(_nested(63)) is NOT_PLAIN,
    )


def test_an_alias_nested_64_deep_gives_up() -> None:
    """An alias in a list of the document's mapping of 61 nested lists is read (63
    collections deep), of 62 given up."""
    texts = [f"a: &a {'[' * n}{']' * n}\nb: [*a]\n" for n in (61, 62)]
    assert _typed(_converted(texts[0])[0]) == _typed(graph_tree(texts[0]))
    assert NOT_PLAIN is graph_tree(texts[1])


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
    "anchors in the rest": (
        "a: &a x\nb: [" + ", ".join(["x"] * 10_000) + "]\nc: [" + _FLOOD + "]\n"
        "d: &d y\nf: &f [z]\ne: [" + ", ".join(["*d", "*f"] * 30_000) + "]\n"
    ),
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
    with pytest.raises(YamlLimitError) as worded:
        graph_read(text, "f")
    assert [(str(composed.value), composed.value.line)] * 2 == [
        (str(found.value), found.value.line) for found in (read, worded)
    ]


def _late(depth: int) -> str:
    """Aliases past the budget of the nodes before them past the text's first third, then an
    alias of ``depth`` nested lists in a list of the document's mapping."""
    nested = "[" * depth + "]" * depth
    return LATE["aliases of a scalar"] + f"d: &d {nested}\ne: [*d]\n"


def test_collections_nested_64_deep_in_the_rest_counted_give_up() -> None:
    """The rest counted holds an alias 63 collections deep: refused as the composer does; 64
    deep: given up, as the read gives up at any depth of 64."""
    with pytest.raises(YamlLimitError) as composed:
        compose_bounded(_late(61))
    with pytest.raises(YamlLimitError) as read:
        graph_tree(_late(61))
    assert (str(composed.value), NOT_PLAIN) == (str(read.value), graph_tree(_late(62)))


def test_aliases_past_four_times_the_nodes_so_far_are_left_even_within_the_budget() -> None:
    """Aliases adding more than four times the nodes read before them and a thousand are left
    to the composer, even within ``ALIAS_BUDGET`` (which it reads)."""
    text = "a: &a [" + ", ".join(["x"] * 200) + "]\nb: [" + ", ".join(["*a"] * 10) + "]\n"
    assert (True, NOT_PLAIN) == (compose_bounded(text) is not None, graph_tree(text))


def test_merges_past_four_times_the_nodes_so_far_are_left_even_within_the_budget() -> None:
    """Merge keys count their source's nodes as aliases do: the seventh merge of a mapping of
    401 nodes adds 2,807 to 419."""
    source = "{" + ", ".join(f"k{n}: x" for n in range(200)) + "}"
    texts = [f"a: &a {source}\nb: [" + ", ".join(["{<<: *a}"] * n) + "]\n" for n in (6, 7)]
    assert [True, True] == [compose_bounded(text) is not None for text in texts]
    assert (False, True) == tuple(graph_tree(text) is NOT_PLAIN for text in texts)


def test_collections_nested_64_deep_through_a_merge_give_up() -> None:
    """A merge in the document's mapping of a mapping of 60 nested lists is read (63
    collections deep), of 61 given up."""
    texts = [f"a: &a {{k: {'[' * n}{']' * n}}}\nb: {{<<: *a}}\n" for n in (60, 61)]
    assert _typed(_converted(texts[0])[0]) == _typed(graph_tree(texts[0]))
    assert NOT_PLAIN is graph_tree(texts[1])


def _counted(aliases: int) -> str:
    """15,000 own nodes, ``aliases`` aliases of a scalar (past the text's first third once
    past four times those nodes), then 15,000 own nodes more."""
    own = ", ".join(["x"] * 15_000)
    flood = ", ".join(["*a"] * aliases)
    return f"a: &a x\nb: [{own}]\nc: [{flood}]\nd: [{own}]\n"


def test_the_rest_counted_is_refused_past_four_times_the_own_nodes() -> None:
    """Past ``ALIAS_BUDGET``, the budget is four times the own nodes (30,009): 135,000 nodes
    added are refused as the composer does, 110,000 are within it (given up)."""
    with pytest.raises(YamlLimitError) as composed:
        compose_bounded(_counted(135_000))
    with pytest.raises(YamlLimitError) as read:
        graph_tree(_counted(135_000))
    assert (str(composed.value), NOT_PLAIN) == (str(read.value), graph_tree(_counted(110_000)))


def _early_aliases() -> str:
    """Aliases past four times the nodes read before them, within a thousand more."""
    return "a: &a [" + ", ".join(["x"] * 200) + "]\nb: [" + ", ".join(["*a"] * 8) + "]\n"


def test_aliases_copied_once_the_budget_is_known_read_as_the_converter_does() -> None:
    """Aliases past four times the nodes read before them are copied at the end, to the
    converter's value."""
    big = "[" + ", ".join(["x"] * 200) + "]"
    texts = [
        _early_aliases(),
        f"a: &a {big}\nb: {{" + ", ".join(f"k{n}: *a" for n in range(8)) + "}\n",
        f"a: &a {{l: {big}}}\nb: [" + ", ".join(["{<<: *a}"] * 5) + "]\n",
    ]
    assert [_typed(_converted(text)[0]) for text in texts] == [
        _typed(graph_tree(text)) for text in texts
    ]


def test_aliases_copied_once_the_budget_is_known_keep_their_place_among_scalars() -> None:
    """Each alias copied at the end takes its own place in its list, between scalars."""
    text = "a: &a [" + ", ".join(["x"] * 200) + "]\nb: [0, 0" + ", *a, 0" * 8 + "]\n"
    assert _typed(_converted(text)[0]) == _typed(graph_tree(text))


def test_each_alias_of_a_collection_is_a_copy_of_its_own() -> None:
    """Aliases of one list, copied at once or at the end, are distinct lists (the converter
    builds one for each)."""
    value = graph_tree(_early_aliases())
    copies = [value["b"][0], value["b"][7], value["a"]]
    assert 3 == len({id(copy) for copy in copies})


def test_the_collections_inside_each_alias_s_copy_are_its_own() -> None:
    """The lists and mappings inside an aliased collection are distinct in each copy too."""
    value = graph_tree("a: &a {m: {l: [[1]]}}\nb: *a\nc: [*a]\nd: {<<: *a}\n")
    copies = [value["a"], value["b"], value["c"][0], value["d"]]
    inner = [(copy["m"], copy["m"]["l"], copy["m"]["l"][0]) for copy in copies]
    assert [4, 4, 4] == [len({id(item[n]) for item in inner}) for n in range(3)]


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
    wanted = {"t.r.q", *ancestors("t.r.q")}
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
