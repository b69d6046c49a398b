"""A TOML value spread over lines is reported where what is wrong is: an array's item on the
line it begins on (past comments and blank lines between items), a CEL expression's error in
a multi-line string on the file's line of it, as TOML makes the string's value (its first line
break left out, a ``\\`` ending a line joining the next, ``\\n`` a line of the value on the same
line of the file), in a file of ``\\n`` or ``\\r\\n`` lines (docs/validation.md). Before, each
was on its key's line: a bad item on the third line of ``ignore_warnings = [`` was reported on
the first."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from cli_support import validated
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.toml_lines import toml_lines, toml_value_lines
from taskdaemon.pipeline.validation_warnings import ValidationWarning

#: Lines 1-10: a valid entry stage, then a second stage whose triggers each case writes.
_BASE = (
    'name = "p"\n\n[[stages]]\nname = "build"\ncommand = "true"\ntriggers = [{manual = {}}]\n\n'
    '[[stages]]\nname = "test"\ncommand = "true"\n'
)
_CODES = (
    "unknown-output, unknown-stage-field, own-status, constant-condition, secret-literal, "
    "unknown-status, unused-ignore"
)
_EQUALS = "'=' (CEL compares with ==)"
_EXPRESSION = "stages[1].triggers[0].on_condition.expression"
#: Each case: what follows ``_BASE`` (from line 11), and ``validate``'s one line.
_CASES = {
    "array": (
        'triggers = [{on_completion = {stage = "build"}}]\n'
        'ignore_warnings = [\n  "own-status",\n  "bogus",\n]\n',
        f"p.toml:14: stages[1].ignore_warnings[1]: unknown warning code 'bogus' (expected "
        f"{_CODES})",
    ),
    "comments between items": (
        "triggers = [\n"
        "  # after the build\n"
        '  {on_completion = {stage = "build"}},\n'
        "\n"
        "  # [and] by hand, {no} 'quote'\n"
        '  {manual = {}}, {on_stage = {stage = "build"}},  # no such trigger\n'
        "]\n",
        "p.toml:16: stages[1].triggers[2].on_stage: unknown key (expected on_completion, "
        "on_event, on_condition or manual)",
    ),
    "basic string": (
        'triggers = [{on_condition = {expression = """\n'
        "stages.build.status == 'success' &&\n"
        "  stages.build.outputs.x = 1\n"
        '"""}}]\n',
        f"p.toml:13:26: {_EXPRESSION}: syntax error at line 2, column 26: {_EQUALS}",
    ),
    "line continuation": (
        'triggers = [{on_condition = {expression = """\\\n'
        "    stages.build.status == 'success' && \\\n"
        '    stages.build.outputs.x = 1"""}}]\n',
        f"p.toml:13:28: {_EXPRESSION}: syntax error at column 60: {_EQUALS}",
    ),
    "literal string": (
        "triggers = [{on_condition = {expression = '''stages.build.status == 'success'\n"
        "  && true\n"
        "  && stages.build.outputs.x = 1'''}}]\n",
        f"p.toml:13:29: {_EXPRESSION}: syntax error at line 3, column 29: {_EQUALS}",
    ),
    "escaped line break": (
        "triggers = [\n"
        "  {manual = {}},\n"
        '  {on_condition = {expression = "true &&\\n stages.build.outputs.x = 1"}},\n'
        "]\n",
        "p.toml:13:67: stages[1].triggers[1].on_condition.expression: syntax error at line 2, "
        f"column 25: {_EQUALS}",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("case", _CASES)
def test_validate_puts_an_error_inside_a_value_on_its_line(
    home: Path, tmp_path: Path, case: str, newline: str
) -> None:
    tail, expected = _CASES[case]
    assert (2, [expected], "") == validated(home, tmp_path / "p.toml", _BASE + tail, newline)


def test_a_warning_on_an_item_s_line_and_its_comment_there() -> None:
    """A warning inside an array's item is on the item's line, at its key's column; a
    ``# taskdaemon: ignore`` comment on that line suppresses it, one on the array's key line
    no longer does (it is reported unused)."""
    tail = (
        "triggers = [\n"
        '  {on_completion = {stage = "build"}},\n'
        '  {on_condition = {expression = "1 > 2"}},\n'
        "]\n"
    )
    found: list[ValidationWarning] = []
    parse_pipeline(_BASE + tail, fmt="toml", source="p.toml", warnings=found)
    assert [(13, 20, "constant-condition")] == [(w.line, w.column, w.code) for w in found]
    commented = tail.replace('2"}},\n', '2"}},  # taskdaemon: ignore[constant-condition]\n')
    found.clear()
    parse_pipeline(_BASE + commented, fmt="toml", source="p.toml", warnings=found)
    assert [] == found
    on_key = tail.replace("[\n", "[  # taskdaemon: ignore[constant-condition]\n", 1)
    parse_pipeline(_BASE + on_key, fmt="toml", source="p.toml", warnings=found)
    assert [(11, "unused-ignore"), (13, "constant-condition")] == sorted(
        (w.line or 0, w.code) for w in found
    )


def test_nested_arrays_and_inline_tables_number_their_items() -> None:
    """An item of an array inside an item, and a dotted key of an inline table, each on its
    line; a key of a value on one line is its line; what the file does not write has none."""
    text = "a = [\n  [1, 2],\n  [\n    3,\n    {b.c = 4, d = '''x\ny'''},\n  ],\n]\ne = 5\n"
    wanted = ["a", "a[0]", "a[0][1]", "a[1]", "a[1][0]", "a[1][1].b.c", "a[1][1].d", "a[2]", "e"]
    assert {
        "a": 1,
        "a[0]": 2,
        "a[0][1]": 2,
        "a[1]": 3,
        "a[1][0]": 4,
        "a[1][1].b.c": 5,
        "a[1][1].d": 5,
        "e": 9,
    } == toml_lines(text, wanted)


def test_a_place_in_a_string_s_value_is_on_its_file_line() -> None:
    """``(path, line, column)`` of a string's value to the file's line and column: the first line
    break after the opening quotes left out, a joined line's characters on the line they are written
    on, the unicode escape of a line break a line of the value, a place past the value's end on its
    last line; a path whose value is no string has none."""
    text = (
        'a = """\nx\\u000Ay\\\n   z\\\\w\n"""\n'  # value: "x\ny" + "z\\w\n"
        "b = '''\r\nu\r\nv'''\r\n"
        "c = 1\n"
    )
    wanted = [("a", 1, 1), ("a", 2, 1), ("a", 2, 2), ("a", 2, 4), ("a", 9, 1)]
    wanted += [("b", 2, 1), ("b", 5, 1), ("c", 1, 1)]
    assert {
        ("a", 1, 1): (2, 1),
        ("a", 2, 1): (2, 8),  # past the escape ``\u000A``
        ("a", 2, 2): (3, 4),  # the joined line's first character, past its blanks
        ("a", 2, 4): (3, 7),  # past the escape ``\\``
        ("a", 9, 1): (4, 1),
        ("b", 2, 1): (7, 1),
        ("b", 5, 1): (7, 1),
    } == toml_value_lines(text, wanted)


def test_long_values_spread_over_lines_are_placed_in_bounded_memory() -> None:
    """An array of 50,000 items over as many lines, and a string of 1.2 MB whose value has
    100,001 lines on two of the file's: its last item, and a place on the string's last line,
    are placed by one walk of each value, without ``re`` keeping an entry per character."""
    items = "".join(f'  "x{index}",\n' for index in range(50_000))
    long = "x" * 1_000_000 + "\\\n   " + "y\\n" * 100_000
    text = f'a = [\n{items}]\nb = """{long}z"""\n'
    tracemalloc.start()
    try:
        lines = toml_lines(text, ["a", "a[49999]"])
        places = toml_value_lines(text, [("b", 100_001, 1), ("b", 1, 1_000_000)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert {"a": 1, "a[49999]": 50_001} == lines
    assert {("b", 100_001, 1): (50_004, 300_004), ("b", 1, 1_000_000): (50_003, 1_000_007)} == (
        places
    )
    assert peak < 5_000_000, peak


def test_a_text_changed_since_it_loaded_is_walked_without_raising() -> None:
    """``config.field_lines`` reads the file again, which may have changed: a value never
    closed, an inline table without its key, a string never closed and a stray closing
    bracket end the walk where they are, with the lines found until then."""
    text = "a = [\n  1,\n  {x\nb = '''never\nc = ]\n"
    assert {"a": 1, "a[1]": 3} == toml_lines(text, ["a", "a[1]", "b", "c"])
    assert {"b": 1} == toml_lines("b = ]\nc = 1\n", ["b"])
    # ``"""`` never closed reads as ``""``, an empty string: the walk ends past it.
    assert {("d", 2, 1): (1, 7)} == toml_value_lines('d = """x\\\ny', [("d", 2, 1)])


def test_a_string_s_first_line_and_a_literal_s_backslash_are_the_value_s() -> None:
    """The first character after a multi-line string's left-out line break is the value's
    (``b`` of ``ab\\`` is on that line, ``c`` joined after it on the next); a ``\\`` ending a
    line of a literal string is a character of its value, whose line goes on to the next
    line of the file (not a join: ``x\\`` is the value's line 1, ``y`` its line 2)."""
    basic = 'a = """\nab\\\n   cd"""\n'
    literal = "c = '''\nx\\\ny'''\n"
    assert {("a", 1, 2): (2, 2), ("a", 1, 3): (3, 4)} == toml_value_lines(
        basic, [("a", 1, 2), ("a", 1, 3)]
    )
    assert {("c", 1, 2): (2, 2), ("c", 2, 1): (3, 1)} == toml_value_lines(
        literal, [("c", 1, 2), ("c", 2, 1)]
    )


def test_an_escape_is_one_character_of_its_line() -> None:
    """An escape (``\\t``) is one character of the value's line, whatever its length in the
    file: the character after it, joined from the next line, is on that line."""
    text = 'a = """\nx\\tb\\\n  c"""\nd = """\n\\t\\\n  e"""\n'
    assert {("a", 1, 3): (2, 4), ("d", 1, 2): (6, 3)} == toml_value_lines(
        text, [("a", 1, 3), ("d", 1, 2)]
    )


def test_items_after_an_inline_table_s_keys_and_a_string_s_lines() -> None:
    """The walk goes on past an inline table's second key, a multi-line string's line breaks
    (counted) and a key written without blanks around its ``=``; an inline table's trailing
    comma (a text changed since it loaded) ends it without raising."""
    text = "a = [{b = 1, c = 2},\n  3]\ne = [\n  '''x\ny''',\n  2,\n]\nf = [{g=[1,\n  2]}]\n"
    assert {"a[1]": 2, "e[1]": 6, "f[0].g[1]": 9} == toml_lines(text, ["a[1]", "e[1]", "f[0].g[1]"])
    assert {"a": 1, "c": 2} == toml_lines("a = {b = 1, }\nc = 2\n", ["a", "c"])
