"""An issue whose field a YAML alias (``*name``, or a ``<<: *name`` merge) gives its value is
reported on the alias's line and column, and names the line its anchor writes that value on
(docs/validation.md). Before, it was on its key's line, or, for a list's item or a merged
field, on the anchor's: a reader saw a line that did not hold the path named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import validated
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.errors import ConfigError
from taskdaemon.pipeline.validation_warnings import ValidationWarning

#: Lines 1-5: a valid entry stage whose values carry anchors: a string, a list, a mapping.
_BASE = (
    "name: p\n"
    "stages:\n"
    "  - name: build\n"
    "    command: &word 'true'\n"
    "    triggers: &entry [&manual {manual: {}}]\n"
)
#: Lines 6-7: a second stage's start, valid.
_SECOND = "  - name: test\n    command: make\n"


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_pipeline(text, source="p.yaml", registered_loops=())
    return str(caught.value).splitlines()


def test_a_plain_alias_of_a_mapping_where_a_string_goes() -> None:
    """``name: *manual``, a mapping where a string goes: on the alias, naming the anchor's
    line."""
    text = _BASE + "  - name: *manual\n    command: make\n    triggers: *entry\n"
    assert [
        "p.yaml:6:11: stages[1].name: expected a string, got mapping "
        "(via '*manual', defined at line 5)"
    ] == _errors(text)


def test_a_merge_key_bringing_a_bad_field() -> None:
    """``<<: *base`` merges a field wrong in the stage it lands in: on the merge's alias,
    naming the line of the field itself in the anchored mapping (where it is reported for
    its own stage too)."""
    text = (
        "name: p\n"
        "stages:\n"
        "  - &base\n"
        "    name: build\n"
        "    command: make\n"
        "    triggers: [manual: {}]\n"
        "    timeout: 0\n"
        "  - <<: *base\n"
        "    name: test\n"
    )
    assert [
        "p.yaml:7: stages[0].timeout: must be > 0, got 0",
        "p.yaml:8:9: stages[1].timeout: must be > 0, got 0 (via '*base', defined at line 7)",
    ] == _errors(text)


def test_aliases_inside_a_flow_sequence() -> None:
    """An alias as an item of a flow sequence, of a scalar (read as a tree) and of a mapping
    (read from the events): each on its own column of the line, naming its anchor's line;
    the items written there on their own, as before."""
    scalar = (
        _BASE + _SECOND + "    triggers: [manual: {}]\n    ignore_warnings: [own-status, *word]\n"
    )
    assert [
        "p.yaml:9:35: stages[1].ignore_warnings[1]: unknown warning code 'true' (expected "
        "unknown-output, unknown-stage-field, own-status, constant-condition, secret-literal, "
        "unknown-status, unused-ignore) (via '*word', defined at line 4)"
    ] == _errors(scalar)
    mapping = _BASE + _SECOND + "    triggers: [{manual: {}}, *word, *manual]\n"
    assert [
        "p.yaml:8:30: stages[1].triggers[1]: expected a mapping with one of on_completion, "
        "on_event, on_condition or manual, got string (via '*word', defined at line 4)"
    ] == _errors(mapping)


def test_an_alias_on_its_own_line() -> None:
    """A field's value written as an alias on the line below its key: on the alias's line,
    not the key's."""
    scalar = _BASE + _SECOND + "    triggers: *entry\n    timeout:\n      *word\n"
    assert [
        "p.yaml:10:7: stages[1].timeout: invalid duration 'true' (expected seconds or 500ms, "
        "30s, 10m, 2h) (via '*word', defined at line 4)"
    ] == _errors(scalar)
    mapping = _BASE + "  - name: test\n    triggers: *entry\n    command:\n      *manual\n"
    assert [
        "p.yaml:9:7: stages[1].command: expected a string, got mapping "
        "(via '*manual', defined at line 5)"
    ] == _errors(mapping)


def test_an_issue_deep_inside_an_aliased_collection_names_its_own_line() -> None:
    """A stage given whole by an alias: each of its issues on the alias, naming the line of
    its own field in the anchored stage."""
    text = (
        "name: p\n"
        "stages:\n"
        "  - &build\n"
        "    name: build\n"
        "    command: make\n"
        "    triggers: [manual: {}]\n"
        "    retry: {max_attempts: 0}\n"
        "  - *build\n"
    )
    assert [
        "p.yaml:7: stages[0].retry.max_attempts: must be >= 1, got 0",
        "p.yaml:8:5: stages[1].name: duplicate stage name 'build' (first at stages[0]: rename "
        "one) (via '*build', defined at line 4)",
        "p.yaml:8:5: stages[1].retry.max_attempts: must be >= 1, got 0 "
        "(via '*build', defined at line 7)",
    ] == _errors(text)


@pytest.mark.slow
def test_validate_says_the_alias_s_place(home: Path, tmp_path: Path) -> None:
    """``validate``'s one line for an alias, ``FILE:LINE:COLUMN:`` as compilers write it."""
    text = _BASE + _SECOND + "    triggers: *entry\n    timeout:\n      *word\n"
    assert (
        2,
        [
            "p.yaml:10:7: stages[1].timeout: invalid duration 'true' (expected seconds or "
            "500ms, 30s, 10m, 2h) (via '*word', defined at line 4)"
        ],
        "",
    ) == validated(home, tmp_path / "p.yaml", text, "\n")


def test_a_warning_stays_on_the_anchor_s_line_where_its_comment_goes() -> None:
    """A warning of a value given by an alias stays where the anchor writes it: one
    ``# taskdaemon: ignore`` comment there suppresses it for every alias."""
    text = _BASE + (
        "  - name: test\n"
        "    command: make\n"
        "    triggers: [&never {on_condition: {expression: '1 > 2'}}]\n"
        "  - name: again\n"
        "    command: make\n"
        "    triggers: [*never]\n"
    )
    found: list[ValidationWarning] = []
    parse_pipeline(text, source="p.yaml", registered_loops=(), warnings=found)
    assert [(8, "stages[1]"), (8, "stages[2]")] == [(w.line, w.path[:9]) for w in found]
    commented = text.replace("'1 > 2'}}]\n", "'1 > 2'}}]  # taskdaemon: ignore\n")
    found.clear()
    parse_pipeline(commented, source="p.yaml", registered_loops=(), warnings=found)
    assert [] == found
