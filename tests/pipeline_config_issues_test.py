"""The paths an issue of a pipeline file covers (``config_issues``): the paths above it,
bounded for a hostile key, and an issue inside a field already refused not said twice."""

from __future__ import annotations

from taskdaemon.pipeline.config_issues import FileIssues, ancestors
from taskdaemon.pipeline.config_text import no_lines
from taskdaemon.pipeline.yamlsafe import MAX_YAML_DEPTH


def test_the_paths_above_a_path_are_its_prefixes_nearest_first() -> None:
    """Each prefix before a ``.`` or ``[``, then the root; a one-letter key is a prefix too."""
    assert ["a[0].b", "a[0]", "a", ""] == list(ancestors("a[0].b.c"))
    assert ["s", ""] == list(ancestors("s.x"))
    assert [] == list(ancestors(""))


def test_a_key_of_thousands_of_brackets_has_as_many_ancestors_as_a_file_can_nest() -> None:
    """A hostile key's path is not as many prefixes as it has brackets: the
    ``MAX_YAML_DEPTH + 1`` nearest the root, then the root."""
    path = "k" + "[0]" * 10_000
    found = list(ancestors(path))
    assert MAX_YAML_DEPTH + 2 == len(found)
    assert "k" + "[0]" * MAX_YAML_DEPTH == found[0]
    assert ["k", ""] == found[-2:]


def test_an_issue_covers_the_paths_inside_and_above_it() -> None:
    """The validator's issue inside, at or above a field already refused is not said again;
    one beside it is."""
    issues = FileIssues("p.yaml", lambda paths: {})
    issues.issue("stages[0].retry", "expected a mapping, got integer")
    assert issues.covers("stages[0].retry")
    assert issues.covers("stages[0].retry.max_attempts")
    assert issues.covers("stages[0]")
    assert not issues.covers("stages[0].timeout")
    assert not issues.covers("stages[1].retry")


def test_an_issue_is_placed_on_its_line_else_its_nearest_ancestor_s_else_none() -> None:
    """A field the file's lines do not know (the validator's, a default) takes the line of the
    nearest field above it; with no line known at all (a file not read) it has none."""
    issues = FileIssues("p.yaml", lambda paths: {"stages[0]": 3, "stages[0].retry": 5})
    issues.issue("stages[0].retry.max_attempts", "must be >= 1, got 0")
    issues.issue("stages[0].name", "invalid name")
    issues.issue("name", "missing required field")
    assert [5, 3, None] == [issue.line for issue in issues.placed(issues.issues)]
    unread = FileIssues("p.yaml", no_lines)
    unread.issue("stages[0].retry", "expected a mapping")
    assert [None] == [issue.line for issue in unread.placed(unread.issues)]
