"""``yaml_quick.quick_tree`` reads what the composer reads, or gives up.

Whatever it returns must be the value ``plain_tree(compose_bounded(text))`` gives, key order and
value types included; anything outside its part of YAML (or that the composer or the converter
would refuse or word as an issue) must give up, so the loader composes the file as before.
"""

from __future__ import annotations

import math
import random
import re
import string
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from yaml.nodes import ScalarNode

from taskdaemon.pipeline import yaml_quick, yamlsafe
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.errors import ConfigError
from taskdaemon.pipeline.yaml_graph import graph_tree
from taskdaemon.pipeline.yaml_quick import quick_tree
from taskdaemon.pipeline.yaml_values import NOT_PLAIN, NodeConverter, plain_tree
from taskdaemon.pipeline.yamlsafe import ALIAS_BUDGET, compose_bounded, is_tree

ROOT = Path(__file__).resolve().parent.parent
YAML_FILES = sorted(
    [*(ROOT / "tests" / "pipelines").rglob("*.yaml"), *(ROOT / "examples").rglob("*.yaml")]
)


def _chain(stages: int) -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from per_stage import chain
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return chain("async", stages)  # type: ignore[no-any-return]


def _composed(text: str) -> Any:
    """What the loader reads from ``text`` the thorough way: a value, or NOT_PLAIN when it
    would report anything (a syntax error, a limit, an issue of the converter, no document)."""
    try:
        node = compose_bounded(text)
    except (yaml.YAMLError, yamlsafe.YamlLimitError):
        return NOT_PLAIN
    if node is None:
        return NOT_PLAIN
    if is_tree(text):
        return plain_tree(node)
    converter = NodeConverter("f")
    value = converter.value(node, "", None)
    return NOT_PLAIN if converter.issues else value


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types, with the same key order, all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _agrees(text: str) -> bool:
    quick = quick_tree(text)
    return quick is NOT_PLAIN or _same(quick, _composed(text))


def test_the_resolver_tables_are_the_composing_loader_s() -> None:
    # quick_tree resolves a word with the tables of yaml.resolver.Resolver: they must be
    # those the loader of compose_bounded resolves with.
    loader = yamlsafe._Loader
    assert loader.yaml_implicit_resolvers is yaml.resolver.Resolver.yaml_implicit_resolvers
    assert not loader.yaml_path_resolvers


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: path.name)
def test_a_file_of_the_repository_reads_as_composed(path: Path) -> None:
    assert _agrees(path.read_text())


READ = [
    "a: b\n",
    "a: b",
    "# c\n\na: b  # c\n  # indented comment\nc:   d   \n",
    "a:\n  b: 1\n  c:\n    - x\n    - y: 2\n      z: [p, q]\n  d: {}\ne: []\n",
    "a:\n- 1\n- b: 2\n  c: 3\n- {x: y}\nd: 4\n",  # indentless sequences
    "a:\n  - b:\n    - 1\n    c: 2\n",  # an indentless sequence in a mapping of a sequence
    "a:\nb:\n  # c\nc: d\n",  # nulls
    "a:    \n  b: c\n",
    "a: x-\n",
    "n: 12\nf: 1.5\nx: 0x1f\no: 017\nt: true\nF: False\nnull_: null\nd: 2020-01-02\n",
    "s: 1_000\ninf: .inf\nnan: .NaN\nsexa: 190:20:30\nts: 2001-12-14t21:59:43.10-05:00\n",
    "h: bench_handlers:async_noop\nu: http://x/y.z\ncmd: ls -la ./x (y) a=b $HOME 50%\n",
    "q: \"a # b: c, {d} [e] 'f' !g &h *i\"\nr: 'x \"y\" # z'\ne: ''\nd: \"\"\n",
    "m: {a: b, c: 1, d: true , e: x y}\ns: [ a, 2 ,x y ]\n",
    'm: {a: "b, c: d}", c: \'e, ]\', d: ""}\ns: ["a, b", \'c\', -2, ""]\n',
    "n: -1\nf: -1.5e+3\nl:\n  - -3\n  - {a: -0x1f}\n",
    "a:\n  -   b: 1\n      c: 2\n",
    "a:\n   - 1\n   - 2\nb: 3\n",
    "stages:\n  - name: s0\n    triggers:\n      - manual: {approval_required: false}\n",
    _chain(7),  # the benchmarks' chain
    # Equal lines read once, each in its own place: in other blocks, at the end without a line
    # feed, blank and comment lines repeated.
    "a:\n  - x: 1\n    y: 2\n  - x: 1\n    y: 2\nb:\n  x: 1\n  c:\n  - x: 1\n    y: 2\n",
    "a:\n  - 1\n  - 1\n\n\n# c\n# c\nb:\n  - 1\n\n  - 1",
    # Words of every first letter, upper and lower case.
    "".join(f"{letter}k: {letter}v\n" for letter in string.ascii_letters),
    # Nested flow collections, on one line.
    "a: {b: [c]}\n",
    "a: [b, {c: d}]\n",
    "a: [{b: c},{d: e}]  # c\n",
    "a: [[], {}, [[x]], {b: {}}]\n",
    "a: [ {b: c d , e: [1, -2.5, true, null, 2020-01-02]} ]  \n",
    'a: [{b: "x, ]}", c: \'{y\'}, "[z"]\n',
    "a:\n  - {name: s1, triggers: [{on_completion: {stage: s0}}]}\n  - [x, [y]]\n",
    "a: " + "[" * 32 + "]" * 32 + "\n",
    # Quoted keys in a nested one, as JSON writes them; a flow mapping that is the document.
    'a: [{"b": c, \'d\': e, "f":"g", "h":-1, "i":[1,2]}]\n',
    "{a: b}\n",
    'a: [{b: c}, {"d" : e}]\n',
    "# c\n{a: [b, {c: d}]}  # e\n\n# f\n",
    '{"name": "p", "stages": [{"name": "s0", "triggers": [{"manual": {}}]}]}',
    # Anchored scalars and their aliases.
    "a: &x b\nc: *x\n",
    "a: &x-1_Y 12  # c\nb:\n  - *x-1_Y\n  - &q 'c d'\n  - c: *q # c\nd: *q\n",
    'a: &d 2020-01-02\nb: &s "x: y"\nc: [1]\ne: *d\nf: *s\n',
]


@pytest.mark.parametrize("text", READ)
def test_each_shape_it_reads_is_the_composed_value(text: str) -> None:
    quick = quick_tree(text)
    assert quick is not NOT_PLAIN
    assert _same(quick, _composed(text))


GIVE_UP = [
    "",
    "# only a comment\n",
    "- a\n",  # not a mapping at the top
    "  a: b\n",  # not at column 0
    "a: b\na: c\n",  # a duplicate key
    "on: b\n",  # a key that resolves to a boolean
    "1: b\n",
    "a: 2020-02-30\n",  # a date the constructor refuses
    "a: b\n  c\n",  # a plain scalar continued on the next line
    "a:\n  b\n",  # a plain scalar on the next line
    "a: b\n  c: d\n",
    "a:\n    b: 1\n  c: 2\n",  # a dedent to no open block
    "a: b: c\n",
    "a: b:\n",
    "&x a: b\n",  # an anchor on a key
    "a: *x\n",  # an alias of no anchor
    "a: &x b\nc: &x d\n",  # a name anchored twice
    "a: &x [b]\nc: *x\n",  # an anchored collection
    "a: &x\n  b: c\nd: *x\n",
    "a: &x b\nc: [*x]\n",  # an alias in a flow collection
    "a: &x b\nc: *x d\n",
    "a: !!str 1\n",
    "a: |\n  text\n",
    "a: >\n  text\n",
    'a: ">"\nb: |-\n  text\n',  # a block scalar after lines it reads
    'a: "x: | y"\n',  # a block scalar's look in a quoted string: composed, as any other
    "---\na: b\n",
    "a: b\n...\n",
    "%YAML 1.1\n---\na: b\n",
    "a:\tb\n",
    "a: b\r\n",
    "a: caf\u00e9\n",
    "a: b\x85c\n",
    "a: b\u2028c\n",
    "\ufeffa: b\n",
    "a: {b: c, b: d}\n",
    "a: {b: c,}\n",
    "a: {b: c\n  }\n",
    'a: "b\\nc"\n',
    "a: 'b''c'\n",
    "a: b#c\n",
    "a: b #c\nd:#e\n",
    "? a\n: b\n",
    '"a": b\n',
    "a : b\n",
    "<<: {a: b}\n",
    "a: =\n",
    "a: -\n",
    "a: -x\n",
    "a: [-]\n",
    'a: {b: "c\\""}\n',
    "a:\n  - \n",
    "a:\n  -\n",
    "a:\n  - - b\n",
    "a: [b\n",
    "a: b\n- c\n",
    "a:\n- b\nc: d\n- e\n",
    "a: 1\nb:\n  c: 1\na: 1\n",  # a duplicate key on an equal line
    "a:\n  b: 1\n c: 1\n  b: 1\n",  # an equal line after one it does not read
    "a: " + "x" * 10 + "\n" + "k" * 300 + ": v\n",
    "".join(f"{'  ' * i}k{i}:\n" for i in range(70)) + "  " * 70 + "v: 1\n",
    # Nested flow collections it does not read.
    "a: [{b: }]\n",  # a key without a value
    "a: [{b}]\n",  # a value without a key
    "a: [b: c, {d: e}]\n",  # a pair in a sequence
    "a: [{b: c}, ]\n",  # a trailing comma
    "a: [{b: c},, {d: e}]\n",
    "a: [, {b: c}]\n",
    "a: [{b: c} d]\n",  # two values without a comma
    "a: [{b: c}]]\n",  # a token after the end
    "a: [{b: c}]}\n",
    "a: [{b: c}\n",  # unclosed
    "a: [{b: c]}\n",  # crossed
    "a: [{b: c, b: d}]\n",  # a duplicate key
    "a: [{on: c}]\n",  # a key that is not a string
    "a: [{b: c}]#c\n",
    "a: [{b:c}]\n",
    "a: [{ b : c }]\n",
    "a: [{b: c: d}]\n",
    "a: [&x {b: c}]\n",
    "a: [*x, [y]]\n",
    "a: [!!str {b: c}]\n",
    "a: [{? b: c}]\n",
    'a: [{b: c}, {"d": e}]: f\n',  # a flow collection as a key
    'a: [{b: "c\\"d"}]\n',
    "a: [{b: 2020-02-30}]\n",
    "a: " + "[" * 33 + "]" * 33 + "\n",  # nested past its depth
    # A flow collection as the document, not alone or not a mapping.
    "{a: b}\nc: d\n",
    "{a: [b]}\n- c\n",
    "{a: [b]}\n{c: d}\n",
    "  {a: b}\n",
    "[a, {b: c}]\n",
    '{"a": b, "a": c}\n',
    '{"a": [b]}x\n',
]


@pytest.mark.parametrize("text", GIVE_UP)
def test_it_gives_up_outside_its_part_of_yaml(text: str) -> None:
    assert quick_tree(text) is NOT_PLAIN


def _mutants(seed: int, count: int) -> list[str]:
    """Texts a few random edits away from the repository's files and the chain: most are
    outside the quick part or wrong YAML, which is what this looks for."""
    texts = [path.read_text() for path in YAML_FILES] + [_chain(3), *READ]
    pieces = [*" \n-:#{}[],'\"abcz09._/&*!|>?%@`\t~=<(", "  ", "\n  ", ": ", "- ", " #"]
    pieces += ["yes", "on", "null", "1.5", "0x1f", "2020-02-30", "<<", "...", "---", "''"]
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            choice = rng.random()
            if choice < 0.45:
                text = text[:at] + rng.choice(pieces) + text[at:]
            elif choice < 0.75:
                text = text[:at] + text[at + rng.randint(1, 3) :]
            else:
                lines = text.split("\n")
                row = rng.randrange(len(lines))
                lines[row] = " " * rng.randint(0, 6) + lines[row].lstrip()
                text = "\n".join(lines)
        found.append(text)
    return found


def test_texts_near_real_files_read_as_composed_or_give_up() -> None:
    mutants = _mutants(18, 1500)
    read = [text for text in mutants if quick_tree(text) is not NOT_PLAIN]
    assert len(read) > 100  # the check reaches the quick part, not only its refusals
    assert [text for text in read if not _agrees(text)] == []


def test_a_file_read_quickly_keeps_its_issues_and_lines() -> None:
    text = (
        "name: p\nstages:\n  - name: a\n    loop: python\n    handler: m:f\n"
        "    triggers:\n      - manual: {}\n  - name: b\n    loop: python\n"
        "    handler: m:f\n    timeout: 0\n    triggers:\n      - on_completion: {stage: zz}\n"
    )
    assert quick_tree(text) is not NOT_PLAIN
    with pytest.raises(ConfigError) as caught:
        parse_pipeline(text, source="p.yaml", registered_loops=())
    # The same issues, and lines, as the file read through the composer (a comment with a
    # ``*`` makes it take the thorough way).
    with pytest.raises(ConfigError) as thorough:
        parse_pipeline(text + "# *\n", source="p.yaml", registered_loops=())
    assert str(caught.value) == str(thorough.value)
    assert ":11" in str(caught.value) or "line 11" in str(caught.value)


# Words the resolver gives a tag other than str for, and words it leaves str, of many first
# characters: the quick reader's per-first-character patterns must sort them the same way.
WORDS = [
    *["yes", "No", "on", "OFF", "y", "n", "true", "False", "null", "Null", "~", "NULL"],
    *["1", "-1", "+1", "0x1f", "0o17", "017", "0b101", "1_000", "190:20:30", "-0x1f"],
    *["1.5", "-1.5e+3", "1e3", ".inf", "-.Inf", "+.INF", ".NaN", ".5", "1.", "<<", "="],
    *["2020-01-02", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5"],
    *["abc", "x1", "1a", "nul", "yess", "0x", "2020-1-2x", "--1", ".", "+", "Yes!", "<"],
    *["tru", "onion", "nan", "inf", "0o", "1:2:x", "=x", "~x", "2020-01-02x", "0b2"],
]


def test_the_first_character_patterns_match_what_the_resolver_tags_other_than_str() -> None:
    """For each word, the pattern for its first character matches it iff the composing
    loader's resolver gives it a tag other than str (so a word it calls str is one)."""
    patterns = yaml_quick._patterns_by_first()
    resolver = yaml.resolver.Resolver()
    expected = [
        word
        for word in WORDS
        if resolver.resolve(ScalarNode, word, (True, False)) != "tag:yaml.org,2002:str"
    ]
    actual = [
        word
        for word in WORDS
        if (pattern := patterns.get(word[0])) is not None and pattern.match(word) is not None
    ]
    assert expected == actual


def test_the_first_character_patterns_cover_every_first_character_of_the_tables() -> None:
    """There is one pattern for each first character the resolver has patterns for."""
    tables = yaml.resolver.Resolver.yaml_implicit_resolvers
    expected = sorted(first for first in tables if first is not None)
    assert expected == sorted(yaml_quick._patterns_by_first())


def test_a_text_at_the_size_limit_is_read_and_one_character_more_gives_up() -> None:
    """Like the composer, the quick reader takes a text of exactly ``MAX_YAML_BYTES``
    characters and gives up at one more (the loader then words the limit)."""
    value = "x" * (yamlsafe.MAX_YAML_BYTES - len("a: \n"))
    at_limit = quick_tree(f"a: {value}\n")
    past_limit = quick_tree(f"a: {value}x\n")
    assert ({"a": value}, NOT_PLAIN) == (at_limit, past_limit)


def _nesting(value: Any) -> int:
    """How many collections are nested under ``value``, following first members."""
    depth = 0
    while isinstance(value, dict | list) and value:
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
        depth += 1
    return depth - 1 if depth else 0


def _nested_keys(depth: int) -> str:
    """Mappings nested ``depth`` deep under the root, each the value of a key."""
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + "  " * depth + "v: 1\n"


def _nested_entries(depth: int) -> str:
    """Collections nested ``depth`` deep under the root, alternating sequences and mappings
    opened by an entry's key (``- k:``), the deepest one too."""
    lines = ["a:"] if depth % 2 == 0 else ["a:", "  b:"]
    indent = len(lines) - 1
    for i in range(depth // 2):
        end = " 1" if i == depth // 2 - 1 else ""
        lines.append(f"{'  ' * (indent + i)}- k{i}:{end}")
    return "\n".join(lines) + "\n"


def test_mappings_nested_64_deep_are_read_and_65_deep_give_up() -> None:
    """The quick reader reads up to 64 collections nested under the root, each opened by a
    key, and gives up at 65."""
    read = quick_tree(_nested_keys(64))
    assert (64, NOT_PLAIN) == (_nesting(read), quick_tree(_nested_keys(65)))


def test_collections_nested_64_deep_by_entries_are_read_and_65_deep_give_up() -> None:
    """The same depth limit holds when the deepest collection is a mapping opened by a
    sequence entry's key (``- k:``)."""
    read = quick_tree(_nested_entries(64))
    assert (64, NOT_PLAIN) == (_nesting(read), quick_tree(_nested_entries(65)))


def _big_pipeline(shape: str, size: int) -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from big_pipeline_memory import pipeline
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return pipeline(shape, size)[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("shape", ["block", "block-entries", "flow", "oneline", "json", "anchors"])
def test_a_generated_large_file_reads_quickly_as_composed(shape: str) -> None:
    """The benchmark's shapes, over more than one piece of text, read quickly as composed."""
    text = _big_pipeline(shape, 200_000)
    quick = quick_tree(text)
    assert quick is not NOT_PLAIN
    assert _same(quick, _composed(text))


@pytest.mark.parametrize(
    "shape", ["block", "block-entries", "flow", "oneline", "json", "anchors", "merges"]
)
def test_a_generated_large_file_loads_the_definition_the_thorough_way_does(shape: str) -> None:
    """The definition loaded the quick way (a ``.json`` file: by ``json``) equals the one
    loaded through the composer."""
    text = _big_pipeline(shape, 200_000)
    fmt: Literal["yaml", "json"] = "json" if shape == "json" else "yaml"
    # A tag makes the quick reader and the event reader (``yaml_graph``) give up, and a
    # comment with a ``*`` the loader convert every node of the composed file.
    tagged = re.sub(r'("?name"?): ("?big)', r"\1: !!str \2", text, count=1) + "# *\n"
    assert (NOT_PLAIN, NOT_PLAIN) == (quick_tree(tagged), graph_tree(tagged))
    thorough = parse_pipeline(tagged, fmt="yaml", registered_loops=())
    assert thorough == parse_pipeline(text, fmt=fmt, registered_loops=())


@pytest.mark.parametrize("aliases", [ALIAS_BUDGET, ALIAS_BUDGET + 1])
def test_aliases_are_read_within_the_composer_s_budget_only(aliases: int) -> None:
    """A file of a few nodes and as many aliases as the budget lets through is read quickly;
    one more, and the file is given to the composer, which refuses it."""
    text = "a: &x b\nc:\n" + "  - *x\n" * aliases
    try:
        compose_bounded(text)
        refused = False
    except yamlsafe.YamlLimitError:
        refused = True
    over = aliases > ALIAS_BUDGET
    assert (over, over) == (refused, quick_tree(text) is NOT_PLAIN)


def test_rows_dropped_between_pieces_read_the_same_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows kept for repeated lines dropped after every piece of text change no value."""
    text = _big_pipeline("block", 200_000)
    expected = quick_tree(text)
    monkeypatch.setattr(yaml_quick, "_KEPT_ROWS", 1)
    monkeypatch.setattr(yaml_quick, "_PIECE", 1000)
    assert _same(expected, quick_tree(text))
