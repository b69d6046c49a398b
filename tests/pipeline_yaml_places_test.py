"""A CEL expression's syntax error inside a YAML scalar spread over lines is reported on the
file's line of it, as YAML makes the value: a ``|`` block's lines less its indentation (found,
or given by its header, past a comment there), a ``>`` block's lines folded into one, a plain
or quoted scalar folded at its line breaks, with ``''`` and escapes (``\\n`` a line of the
value on the same line of the file, a ``\\`` ending a line joining the next), an item of a
flow sequence past comments, in a file of ``\\n`` or ``\\r\\n`` lines (docs/validation.md).
Before, each was on its key's line, as the TOML side was before toml58."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import validated
from taskdaemon.pipeline.config import ConfigError, parse_pipeline
from taskdaemon.pipeline.yaml_places import scalar_place
from yaml_places_support import scalar_event

#: Lines 1-8: a valid entry stage, then a second stage whose triggers each case writes.
_BASE = (
    "name: p\nstages:\n  - name: build\n    command: 'true'\n    triggers: [{manual: {}}]\n\n"
    "  - name: test\n    command: 'true'\n"
)
_CODES = (
    "unknown-output, unknown-stage-field, own-status, constant-condition, secret-literal, "
    "unknown-status, unused-ignore"
)
_WRONG = "stages.build.outputs.x = 1"
_EQUALS = "'=' (CEL compares with ==)"
_EXPRESSION = "stages[1].triggers[0].on_condition.expression"
_CONDITION = "    triggers:\n      - on_condition:\n          expression: "
#: Each case: what follows ``_BASE`` (from line 9), and ``validate``'s one line.
_CASES = {
    "array": (
        "    triggers: [{on_completion: {stage: build}}]\n"
        "    ignore_warnings: [\n      own-status,\n      bogus,\n    ]\n",
        f"p.yaml:12: stages[1].ignore_warnings[1]: unknown warning code 'bogus' (expected "
        f"{_CODES})",
    ),
    "flow sequence with comments between items": (
        "    triggers: [\n"
        "      {manual: {}},\n"
        "      # after the build, [and] {by} 'hand'\n"
        '      {on_condition: {expression: "true &&\n'
        f'        {_WRONG}"}}}},\n'
        "    ]\n",
        "p.yaml:13:32: stages[1].triggers[1].on_condition.expression: syntax error at column 32: "
        f"{_EQUALS}",
    ),
    "literal": (
        f"{_CONDITION}|\n            stages.build.status == 'success' &&\n              {_WRONG}\n",
        f"p.yaml:13:38: {_EXPRESSION}: syntax error at line 2, column 26: {_EQUALS}",
    ),
    "literal with indentation, chomping and a comment": (
        f"{_CONDITION}|2-  # the block's own indentation\n\n"
        f"              stages.build.status == 'success' &&\n            {_WRONG}\n",
        f"p.yaml:14:36: {_EXPRESSION}: syntax error at line 3, column 24: {_EQUALS}",
    ),
    "folded": (
        f"{_CONDITION}>\n            stages.build.status == 'success'\n"
        f"            && true\n            && {_WRONG}\n",
        f"p.yaml:14:39: {_EXPRESSION}: syntax error at column 68: {_EQUALS}",
    ),
    "plain": (
        f"{_CONDITION}stages.build.status == 'success'\n            && true\n\n"
        f"            && {_WRONG}\n",
        f"p.yaml:14:39: {_EXPRESSION}: syntax error at line 2, column 27: {_EQUALS}",
    ),
    "single quoted": (
        f"{_CONDITION}'stages.build.status == ''success''\n            && {_WRONG}'\n",
        f"p.yaml:12:39: {_EXPRESSION}: syntax error at column 60: {_EQUALS}",
    ),
    "double quoted, escaped line breaks": (
        f'{_CONDITION}"stages.build.status == \\"success\\" \\\n'
        f'            && true\\n && {_WRONG}"\n',
        f"p.yaml:12:49: {_EXPRESSION}: syntax error at line 2, column 28: {_EQUALS}",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize(("tail", "expected"), _CASES.values(), ids=list(_CASES))
def test_validate_names_the_line_of_an_error_inside_ascalar_event(
    home: Path, tmp_path: Path, tail: str, expected: str, newline: str
) -> None:
    """``validate``'s one line, for each case, with ``\\n`` and ``\\r\\n`` line ends."""
    file = tmp_path / "p.yaml"
    assert (2, [expected], "") == validated(home, file, _BASE + tail, newline, "--no-resolve")


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nk: |\n  one\n\n    two\n  three\nb: 2\n",
        "a: 1\nk: |2-  # c\n\n    one\n  two\nb: 2\n",
        "a: 1\nk: |2\n      \n    one\n  \n     \n  two\nb: 2\n",
        "a: 1\nk: >+\n\n  one\n  two\n\n  three\n    more\n  four\n\nb: 2\n",
        "a: 1\nk: one two\n   three\n\n   four  \n   five\nb: 2\n",
        "a: 1\nk: ' one ''x''\n   three  \n\n   four '\nb: 2\n",
        'a: é€𝄞\nk: " one \\"x\\" \\t\n   three \\\n\n   four\\n fiveé six\n\n  seven "\nb: 2\n',
        'a: 1\nk: &x !!str\n  # a comment between\n  "abc\n  def"\nb: 2\n',
    ],
    ids=[
        "literal",
        "literal header",
        "blanks past the indentation",
        "folded",
        "plain",
        "single",
        "double",
        "properties",
    ],
)
def test_each_character_of_the_value_is_placed_on_its_own(text: str, newline: str) -> None:
    """Every character of the value (the parser's marks count characters: ``é€𝄞`` before the
    double-quoted one is three), but the spaces folding makes (at the end of the line
    before) and the escapes (on their ``\\``), is placed on the file's line and column where
    it is written; a column past its line's end on the line's last character, a line past the
    value's end on the value's last."""
    text = text.replace("\n", newline)
    event = scalar_event(text, "k")
    lines = text.replace("\r\n", "\n").split("\n")
    written = [
        (ch, lines[at[0] - 1][at[1] - 1 : at[1]])
        for number, line in enumerate(event.value.split("\n"), 1)
        for column, ch in enumerate(line, 1)
        if (at := scalar_place(text, event, number, column)) is not None
    ]
    assert len(written) == len(event.value) - event.value.count("\n")
    assert [] == [
        pair for pair in written if pair[0] != pair[1] and pair[1] != "\\" and pair[0] != " "
    ]
    last = event.value.rstrip("\n").split("\n")
    end = scalar_place(text, event, len(last), len(last[-1]) + 5)
    beyond = scalar_place(text, event, len(last) + 3, 1)
    assert end == beyond
    assert end is not None
    assert lines[end[0] - 1][end[1] - 1] == event.value.rstrip("\n")[-1]


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize(
    "text",
    [
        'a: 1\nk: "one  two\n\n\n   three  "\nb: 2\n',
        "a: 1\nk: 'one  two\n  \n\n   three  '\nb: 2\n",
        "a: 1\nk: one  two\n\n\n   three\nb: 2\n",
        "a: 1\nk: |\n  one  two\n\n\n  three\n    four\nb: 2\n",
        "a: 1\nk: >\n  one  two\n\n\n  three\n  X y\n\n    more\n  z\nb: 2\n",
        'a: 1\nk: " one \\"x\\" \\t\n   three \\\n\n   four\\n five \\\n  six"\nb: 2\n',
        'a: 1\nk: &x "one  two\n\n   three"\nb: 2\n',
        'a: 1\nk: !!str "one  two\n\n   three"\nb: 2\n',
    ],
    ids=["double", "single", "plain", "literal", "folded", "escapes", "anchor", "tag"],
)
def test_blanks_and_line_breaks_are_placed_in_order(text: str, newline: str) -> None:
    """Every character of a value with blanks inside and several empty lines in a row,
    line breaks too, has a place: the characters of one line of the value each further on
    in the file than the one before (each blank on its own), and each line break on the
    file's line of the last character before it (a fold's empty lines all where its first
    line break is, a block's line break at the end of its line); a column past a line's end
    is its line break's place. An anchor alone, or a tag alone, is passed over too."""
    text = text.replace("\n", newline)
    event = scalar_event(text, "k")
    value = event.value.rstrip("\n")  # the line breaks chomping keeps are not walked
    places = []
    for index in range(len(value)):
        start = value.rfind("\n", 0, index) + 1
        place = scalar_place(text, event, value.count("\n", 0, index) + 1, index - start + 1)
        assert place is not None, index
        places.append(place)
    lines_of_value = [
        places[start:end]
        for start, end in zip(
            [0, *(i + 1 for i, ch in enumerate(value) if ch == "\n")],
            [*(i + 1 for i, ch in enumerate(value) if ch == "\n"), len(value)],
            strict=True,
        )
    ]
    assert [] == [line for line in lines_of_value if line != sorted(set(line))]
    past_ends = [
        scalar_place(text, event, number, len(line) + 5)
        for number, line in enumerate(value.split("\n")[:-1], 1)
    ]
    assert [line[-1] for line in lines_of_value[:-1]] == past_ends
    first = len(value) - len(value.lstrip("\n"))
    assert [] == [
        (index, places[index], places[index - 1])
        for index in range(first + 1, len(value))
        if value[index] == "\n" and places[index][0] != places[index - 1][0]
    ]


def test_a_quoted_scalar_ending_with_a_line_break_is_walked() -> None:
    """A quoted scalar whose last line break folds into its value's last space: a place
    past the value's text is found without raising."""
    text = 'k: "one\n  "\n'
    event = scalar_event(text, "k")
    assert "one " == event.value
    assert None is not scalar_place(text, event, 1, 4)


def test_a_fold_and_an_escape_are_placed_where_they_are_written() -> None:
    """The space a line break folds into is at the end of the line before; an escape at its
    ``\\``; a place in a value the walk does not follow (a ``\\u2028`` line break, which is
    one for YAML and not for CEL) gives up, and the issue stays on its key's line."""
    text = 'k: "ab\n  cd\\tef"\n'
    event = scalar_event(text, "k")
    assert "ab cd\tef" == event.value
    assert (1, 7) == scalar_place(text, event, 1, 3)
    blanks = 'k: "ab  \n  cd"\n'  # the fold where the blanks that end its line begin
    assert (1, 7) == scalar_place(blanks, scalar_event(blanks, "k"), 1, 3)
    assert (2, 5) == scalar_place(text, event, 1, 6)
    assert (2, 7) == scalar_place(text, event, 1, 7)
    odd = 'k: "a\u2028b = 1"\n'
    assert None is scalar_place(odd, scalar_event(odd, "k"), 1, 3)


def test_a_file_with_an_alias_of_a_collection_places_it_too() -> None:
    """A file with an alias of a collection (read from its events by ``yaml_graph``) places
    the error on its line and column too; where the path's value is an alias (of the scalar,
    or of a collection holding it), on the alias's line and column, naming the line its anchor
    writes the value on: the scalar is written elsewhere, for other paths too."""
    expression = f"{_CONDITION}|\n            true &&\n              {_WRONG}\n"
    text = (
        _BASE.replace("triggers: [{manual: {}}]", "triggers: &manual [{manual: {}}]")
        + expression
        + "  - name: other\n    command: 'true'\n    triggers: *manual\n"
    )
    with pytest.raises(ConfigError) as raised:
        parse_pipeline(text, source="p.yaml", registered_loops=())
    assert [(13, 38, _EXPRESSION)] == [
        (issue.line, issue.column, issue.path) for issue in raised.value.issues
    ]
    aliased = text.replace(expression, f"{_CONDITION}*wrong\n").replace(
        "[{manual: {}}]", f"[{{on_condition: {{expression: &wrong '{_WRONG}'}}}}]", 1
    )
    with pytest.raises(ConfigError) as raised:
        parse_pipeline(aliased, source="p.yaml", registered_loops=())
    assert [
        (5, 83, "stages[0]", ""),
        (11, 23, "stages[1]", " (via '*wrong', defined at line 5)"),
        (14, 15, "stages[2]", " (via '*manual', defined at line 5)"),
    ] == [
        (issue.line, issue.column, issue.path[:9], issue.message.partition(_EQUALS)[2])
        for issue in raised.value.issues
    ]
