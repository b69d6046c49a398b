"""yaml_lines: the lines of the paths asked for, as the converter records them (aliases of
scalars too), with the parts of a file that hold none passed over."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taskdaemon.pipeline.yaml_lines import tree_lines
from taskdaemon.pipeline.yaml_values import NodeConverter
from taskdaemon.pipeline.yamlsafe import compose_bounded, is_tree

ROOT = Path(__file__).resolve().parent.parent
YAML_FILES = sorted([*(ROOT / "tests").rglob("*.yaml"), *(ROOT / "examples").rglob("*.yaml")])


def _composes(path: Path) -> bool:
    try:
        return compose_bounded(path.read_text()) is not None
    except (yaml.YAMLError, ValueError):
        return False


#: The repository's YAML files that compose to a tree (the invalid ones too: most are
#: pipeline mistakes, not YAML ones).
TREES = [path for path in YAML_FILES if is_tree(path.read_text()) and _composes(path)]


def _converter_lines(text: str, max_depth: int = 100) -> dict[str, int]:
    node = compose_bounded(text)
    assert node is not None
    converter = NodeConverter("f", max_depth=max_depth)
    converter.value(node, "", None)
    return converter.lines


def test_the_files_compared_are_many() -> None:
    """The comparison below reads most of the repository's valid YAML files."""
    assert len(TREES) > 20


@pytest.mark.parametrize("path", TREES, ids=lambda path: path.name)
def test_every_path_asked_for_has_the_converter_s_line(path: Path) -> None:
    """Asked for every path of a file, the lines are those the converter records."""
    text = path.read_text()
    expected = _converter_lines(text)
    assert expected == tree_lines(text, set(expected))


def test_only_the_paths_asked_for_are_given() -> None:
    """Paths not asked for have no line in the answer, nor do paths the file does not have."""
    text = "a:\n  b: 1\n  c: 2\nd: [x, y]\n"
    assert {"": 1, "a": 1, "a.c": 3} == tree_lines(text, {"", "a", "a.c", "a.e"})


def test_keys_after_a_list_passed_over_are_still_read() -> None:
    """A list's items past the last one asked for are passed over, and the keys after the
    list keep their lines."""
    text = "stages: [a,\n  [b, c],\n  {d: e}]\nafter:\n  x: 1\n"
    wanted = {"", "stages", "stages[0]", "after", "after.x"}
    assert {"": 1, "stages": 1, "stages[0]": 1, "after": 4, "after.x": 5} == tree_lines(
        text, wanted
    )


def test_a_list_item_holding_a_collection_is_found() -> None:
    """An item asked for inside a collection that is itself a list's item has its line."""
    text = "- a\n- - b\n  - c\n- d\n"
    assert {"": 1, "[1]": 2, "[1][1]": 3} == tree_lines(text, {"", "[1]", "[1][1]"})


def test_an_index_in_digits_other_than_ascii_is_a_key() -> None:
    """``a[²]`` and ``a[٣]`` are keys, not items: only ASCII digits make an index."""
    text = "x: 0\na[\u00b2]: 1\na[\u0663]: 2\n"
    wanted = {"", "a[\u00b2]", "a[\u0663]"}
    assert {"": 1, "a[\u00b2]": 2, "a[\u0663]": 3} == tree_lines(text, wanted)


def test_a_later_duplicate_key_and_what_it_holds_have_no_line() -> None:
    """As the converter reads it: the first of two equal keys gives the lines."""
    text = "a:\n  x: 1\na:\n  x: 2\n  y: 3\n"
    assert _converter_lines(text) == tree_lines(text, {"", "a", "a.x", "a.y"})


def test_a_collection_at_the_depth_limit_has_a_line_but_not_its_fields() -> None:
    """A collection as deep as the converter goes has its line; its fields have none."""
    text = "a:\n  b:\n    c: 1\n"
    assert {"": 1, "a": 1, "a.b": 2} == tree_lines(text, {"", "a", "a.b", "a.b.c"}, max_depth=2)


def test_a_document_of_one_scalar_has_its_line() -> None:
    """A file whose value is one scalar places its path on the scalar's line."""
    assert {"": 3} == tree_lines("\n\nhello\n", {""})


def test_an_alias_of_a_scalar_is_placed_as_the_converter_places_it() -> None:
    """A field whose value is an alias is on its key's line, a list's item that is one on
    the line of the scalar it refers to."""
    text = "a: &x 1\nb:\n  - *x\nc: *x\n"
    expected = {"": 1, "a": 1, "b": 2, "b[0]": 1, "c": 4}
    assert (expected, expected) == (_converter_lines(text), tree_lines(text, set(expected)))


def test_an_alias_of_a_scalar_anchored_where_nothing_was_asked_for_is_placed() -> None:
    """A scalar anchored inside a collection passed over still places its aliases."""
    text = "a:\n  b: [c, &x d]\ne:\n  - *x\n"
    assert {"": 1, "e": 3, "e[0]": 2} == tree_lines(text, {"", "e", "e[0]"})


def test_an_alias_of_a_collection_is_refused() -> None:
    """A text with an alias of a collection is no tree: its lines are the converter's."""
    with pytest.raises(ValueError, match="alias of a collection"):
        tree_lines("a: &x [1]\nb: *x\n", {"", "a", "b"})


def test_a_collection_passed_over_deep_inside_keeps_the_walks_depth() -> None:
    """After a collection passed over three collections deep, the fields after it, in its
    mapping and in the mappings around it, keep their lines."""
    text = "a:\n  b:\n    skipped: {x: 1}\n    c: 1\n  d: 2\ne: 3\n"
    wanted = {"", "a", "a.b", "a.b.c", "a.d", "e"}
    expected = {"": 1, "a": 1, "a.b": 2, "a.b.c": 4, "a.d": 5, "e": 6}
    assert expected == tree_lines(text, wanted)


def test_an_alias_of_a_collection_anchored_where_nothing_was_asked_for_is_refused() -> None:
    """A collection anchored inside a part passed over is no scalar: its alias is refused."""
    with pytest.raises(ValueError, match="alias of a collection"):
        tree_lines("a:\n  b: &x [1]\nc: *x\n", {"", "c"})


def test_an_empty_text_has_no_lines() -> None:
    """A text without a document (empty, or only a comment) has no path, the document's
    included."""
    assert [{}, {}] == [tree_lines("", {""}), tree_lines("# nothing\n", {""})]


def test_a_key_that_is_a_collection_is_refused() -> None:
    """A mapping key that is a collection (``? [a]``) is no tree's key."""
    with pytest.raises(ValueError, match=r"^a key that is not a scalar$"):
        tree_lines("? [a]\n: 1\n", {"", "a"})


def test_an_alias_as_a_key_is_refused() -> None:
    """A mapping key that is an alias is refused, even of a scalar."""
    with pytest.raises(ValueError, match=r"^an alias as a key$"):
        tree_lines("a: &x k\n*x : 1\n", {"", "a"})


def test_the_keys_after_a_duplicate_scalar_keep_their_lines() -> None:
    """A later duplicate key holding a scalar is passed over, and the keys after it are read."""
    text = "a: 1\na: 2\nb: 3\n"
    assert {"": 1, "a": 1, "b": 3} == tree_lines(text, {"", "a", "b"})


def test_a_duplicates_collection_is_passed_over_with_what_it_holds() -> None:
    """A later duplicate key holding a mapping is passed over whole: a field inside it named
    like a later key does not take that key's line, and the later key is read."""
    text = "a: {x: 1}\na:\n  b: 2\nb: 4\n"
    assert {"": 1, "a": 1, "b": 4} == tree_lines(text, {"", "a", "b"})


def test_a_document_deeper_than_the_limit_has_only_its_own_line() -> None:
    """With a depth limit of 0, the document's collection has its line and its fields none,
    as the converter records them."""
    text = "a: 1\n"
    expected = _converter_lines(text, max_depth=0)
    assert (expected, expected) == ({"": 1}, tree_lines(text, {"", "a"}, max_depth=0))


def test_a_key_holding_brackets_is_found() -> None:
    """A key that ends in brackets without a number (``a[x]``) is a key like any other."""
    assert {"": 1, "a[x]": 1} == tree_lines("a[x]: 1\n", {"", "a[x]"})


def test_an_alias_passed_over_does_not_place_its_anchor() -> None:
    """An alias of a collection inside a part passed over does not make that collection
    read as a scalar: a later alias of it is still refused."""
    with pytest.raises(ValueError, match="alias of a collection"):
        tree_lines("a: &x [1]\nb:\n  c: *x\nd: *x\n", {"", "d"})
