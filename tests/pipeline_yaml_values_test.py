"""yaml_values: the converter's issues (their paths, messages and lines), duplicate and
merged keys, keys that are no strings, its depth limit, explicitly tagged collections, and the
YAML word for each kind of value."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from taskdaemon.pipeline.errors import ValidationIssue
from taskdaemon.pipeline.yaml_values import NodeConverter, kind_of, plain_tree
from taskdaemon.pipeline.yamlsafe import compose_bounded


def _convert(text: str, max_depth: int = 100) -> tuple[Any, list[ValidationIssue]]:
    """The converter's value of ``text`` and the issues it reported, file ``f``."""
    node = compose_bounded(text)
    assert node is not None
    converter = NodeConverter("f", max_depth=max_depth)
    return converter.value(node, "", None), converter.issues


def _issues(text: str, max_depth: int = 100) -> list[tuple[str, str, int | None]]:
    """Path, message and line of each issue the converter reports on ``text``."""
    return [(i.path, i.message, i.line) for i in _convert(text, max_depth)[1]]


def test_a_duplicate_key_is_reported_on_its_line() -> None:
    """A key written twice in one mapping is one issue, on the second one's line."""
    assert [("a", "duplicate key", 2)] == _issues("a: 1\na: 2\nb: 3\n")


def test_a_duplicate_key_keeps_the_first_value_and_reads_on() -> None:
    """The first of two equal keys is kept and the keys after them are still read."""
    assert {"a": 1, "b": 3} == _convert("a: 1\na: 2\nb: 3\n")[0]


MERGED = "base: &b {x: 1}\ntop:\n  <<: *b\n  a: 1\n  a: 2\n"


def test_a_duplicate_key_after_a_merge_is_reported() -> None:
    """In a mapping with a merge, a key of its own written twice is still a duplicate."""
    assert [("top.a", "duplicate key", 5)] == _issues(MERGED)


def test_a_mapping_of_a_merge_alone_takes_the_merged_keys() -> None:
    """A mapping whose only key is ``<<`` is the mapping it merges."""
    assert {"base": {"x": 1}, "top": {"x": 1}} == _convert("base: &b {x: 1}\ntop:\n  <<: *b\n")[0]


def test_a_merge_of_a_scalar_is_reported_on_each_mapping_that_merges_it() -> None:
    """``<<`` of a scalar is an issue at the mapping that holds it, and again at each mapping
    that merges that one."""
    expected = [("base", "<< merges mappings only", 1), ("top", "<< merges mappings only", 1)]
    assert expected == _issues("base: &b {<<: 1, x: 1}\ntop: {<<: *b}\n")


def test_a_merge_of_a_scalar_is_reported_at_the_nested_mapping_s_path() -> None:
    """A bad merge in a nested mapping names that mapping's path and the scalar's line."""
    assert [("top.inner", "<< merges mappings only", 3)] == _issues("top:\n  inner:\n    <<: 1\n")


def test_a_key_of_another_type_is_reported_at_its_mapping_s_path() -> None:
    """A number as a key of a nested mapping is an issue naming that mapping and the type."""
    assert [("top", "keys must be strings, got integer", 2)] == _issues("top:\n  1: a\n  b: 2\n")


def test_the_keys_after_a_key_of_another_type_are_read() -> None:
    """A key that is no string is skipped and the keys after it are read."""
    assert {"b": 2} == _convert("1: a\nb: 2\n")[0]


@pytest.mark.parametrize(("key", "kind"), [("[a]", "list"), ("{a: 1}", "mapping")])
def test_a_collection_as_a_key_is_named_by_its_kind(key: str, kind: str) -> None:
    """A list or mapping used as a key is reported as a list or a mapping, not as null."""
    assert [("", f"keys must be strings, got {kind}", 1)] == _issues(f"? {key}\n: 1\n")


def test_an_invalid_key_scalar_is_reported_at_its_mapping_s_path() -> None:
    """A key the safe constructor refuses is reported at its mapping's path, then skipped."""
    expected = [
        ("top", "invalid int value: invalid literal for int() with base 10: 'x'", 2),
        ("top", "keys must be strings, got null", 2),
    ]
    assert expected == _issues("top:\n  !!int x: 1\n  b: 2\n")


def test_an_unknown_tag_is_worded_by_the_constructor_s_problem_alone() -> None:
    """A value the constructor refuses with a YAML error is worded by its problem, on one line,
    without the error's position text."""
    expected = [
        (
            "a",
            "invalid foo value: could not determine a constructor for the tag"
            " 'tag:yaml.org,2002:foo'",
            1,
        )
    ]
    assert expected == _issues("a: !!foo x\n")


def test_collections_nested_to_the_depth_limit_are_read() -> None:
    """Collections nested exactly ``max_depth`` deep are read without an issue."""
    assert ({"a": {"b": 1}}, []) == _convert("a: {b: 1}\n", max_depth=2)


def test_collections_nested_deeper_are_one_issue_on_the_file() -> None:
    """One level more is one issue with no path (the file) and the limit, on its line."""
    assert [("", "nested deeper than 2 levels", 1)] == _issues("a: {b: {c: 1}}\n", max_depth=2)


def test_a_collection_tagged_as_a_string_is_read_as_its_collection_by_the_converter() -> None:
    """``!!str`` on a list does not make it a string: the converter reads the list."""
    assert ({"a": [1, 2]}, []) == _convert("a: !!str [1, 2]\n")


def test_a_collection_tagged_as_a_string_is_read_as_its_collection_by_plain_tree() -> None:
    """``!!str`` on a list does not make it a string: ``plain_tree`` reads the list."""
    node = compose_bounded("a: !!str [1, 2]\n")
    assert node is not None
    assert {"a": [1, 2]} == plain_tree(node)


@pytest.mark.parametrize(
    ("value", "word"),
    [
        (None, "null"),
        (True, "boolean"),
        (1, "integer"),
        (1.5, "number"),
        ("s", "string"),
        ([1], "list"),
        ({"a": 1}, "mapping"),
        (date(2026, 1, 2), "date"),
        (b"x", "bytes"),
    ],
)
def test_kind_of_names_each_kind_of_value_in_yaml_s_words(value: object, word: str) -> None:
    """Each loaded value's type has its YAML word; any other is its Python type's name."""
    assert word == kind_of(value)


def test_the_keys_after_a_collection_key_are_read() -> None:
    """A list used as a key is skipped and the keys after it are read."""
    assert {"b": 2} == _convert("? [a]\n: 1\nb: 2\n")[0]
