"""``config_text.read_toml``'s guard against dotted keys too long to nest, at its edge and in
each of TOML's spellings of a dotted key, and the issues of a file TOML refuses; the issues of a
JSON file ``read_json`` refuses, its depth limit among them."""

from __future__ import annotations

import pytest

from taskdaemon.pipeline.config_text import read_json, read_toml
from taskdaemon.pipeline.errors import ValidationIssue
from taskdaemon.pipeline.yamlsafe import MAX_YAML_DEPTH

TOO_DEEP = ValidationIssue("", f"nested deeper than {MAX_YAML_DEPTH} levels", file="f.toml")


def _dotted(parts: int, dot: str = ".") -> str:
    """A dotted key of ``parts`` bare parts, joined by ``dot``."""
    return dot.join(f"k{index}" for index in range(parts))


def _issues(text: str) -> list[ValidationIssue]:
    return read_toml(text, "f.toml")[1]


def test_a_key_of_as_many_parts_as_the_depth_limit_is_read() -> None:
    """A key of 100 parts nests 100 tables, as deep as a value may: it is read whole."""
    value, issues = read_toml(_dotted(MAX_YAML_DEPTH) + " = 1", "f.toml")
    depth = 0
    while isinstance(value, dict):
        ((_, value),) = value.items()
        depth += 1
    assert (MAX_YAML_DEPTH, 1, []) == (depth, value, issues)


@pytest.mark.parametrize(
    "text",
    [
        _dotted(MAX_YAML_DEPTH + 1) + " = 1",  # bare parts
        _dotted(MAX_YAML_DEPTH + 1, " . ") + " = 1",  # blanks around the dots
        _dotted(MAX_YAML_DEPTH + 1, "\t.") + " = 1",
        "[" + _dotted(MAX_YAML_DEPTH + 1) + "]",  # a table header
        "x = {" + _dotted(MAX_YAML_DEPTH + 1) + " = 1}",  # an inline table
        '"q".' * MAX_YAML_DEPTH + "z = 1",  # quoted parts
        "'q'." * MAX_YAML_DEPTH + "z = 1",
        "a-b_9." * MAX_YAML_DEPTH + "z = 1",
    ],
)
def test_a_key_of_one_part_more_is_refused_before_it_is_read(text: str) -> None:
    """One part more than the depth limit, however the key is spelt, is the one issue that
    the file nests too deeply."""
    assert (None, [TOO_DEEP]) == (read_toml(text, "f.toml")[0], _issues(text))


@pytest.mark.parametrize(
    "text",
    [
        'x = "see ' + _dotted(MAX_YAML_DEPTH + 1) + '"',
        "x = 'see " + ".".join(['"q"'] * (MAX_YAML_DEPTH + 1)) + "'",
    ],
)
def test_the_guard_reads_the_text_so_a_string_of_as_many_dotted_words_is_refused(
    text: str,
) -> None:
    """The dotted runs are looked for in the text before TOML reads it (that is what keeps
    tomllib from building every prefix of a long key): a string holding a run of 101 dotted
    words, bare or quoted, is refused alike, the price of not parsing first."""
    assert [TOO_DEEP] == _issues(text)


@pytest.mark.parametrize("inner", [MAX_YAML_DEPTH // 2, MAX_YAML_DEPTH // 2 + 1])
def test_a_table_and_a_key_nesting_too_deep_together_are_measured_once_read(inner: int) -> None:
    """A table header of 50 parts holding a key of 50 parts nests 100 levels and is read; a
    key of 51 parts there nests 101, which no single key spells: the read value's depth is
    what refuses it."""
    text = f"[{_dotted(MAX_YAML_DEPTH // 2)}]\n{_dotted(inner)} = 1\n"
    expected = [] if MAX_YAML_DEPTH // 2 + inner <= MAX_YAML_DEPTH else [TOO_DEEP]
    assert expected == _issues(text)


def test_a_syntax_error_names_its_line_and_the_reason_in_lower_case() -> None:
    """TOML's own message, lower-cased, with the line it names and its column."""
    expected = ValidationIssue(
        "", "invalid toml: invalid value at column 15", file="f.toml", line=3
    )
    assert [expected] == _issues('name = "demo"\n\nconcurrency = = 4\n')


def test_a_syntax_error_at_the_end_of_the_file_is_on_its_last_line() -> None:
    """TOML's message for an error at the end of the text names no line; it had none."""
    expected = ValidationIssue(
        "",
        "invalid toml: unterminated string at the end of the file (column 9)",
        file="f.toml",
        line=2,
    )
    assert [expected] == _issues('a = 1\nx = "abc')


def test_an_integer_too_long_to_convert_is_its_first_line() -> None:
    """Python's refusal of a 5,000-digit integer is kept to its first line, lower-cased."""
    (issue,) = _issues(f"n = {'9' * 5000}\n")
    assert ("", "f.toml", None, True, 1) == (
        issue.path,
        issue.file,
        issue.line,
        issue.message.startswith("invalid toml: exceeds the limit (4300 digits)"),
        len(issue.message.splitlines()),
    )


@pytest.mark.parametrize(
    ("text", "issue"),
    [
        (" \n", ValidationIssue("", "the file is empty", file="f.json", line=1)),
        (
            "[" * 101 + "]" * 101,
            ValidationIssue("", "nested deeper than 100 levels", file="f.json"),
        ),
        ("[" * 100_000, ValidationIssue("", "nested deeper than 100 levels", file="f.json")),
        (
            '{\n"a": }',
            ValidationIssue("", "invalid json: expecting value at column 6", file="f.json", line=2),
        ),
        ('{"a": 1, "a": 2}', ValidationIssue("a", "duplicate key", file="f.json", line=1)),
        (
            f'{{"{"k" * 100}": 1,\n "{"k" * 100}": 2}}',
            ValidationIssue("k" * 100, "duplicate key", file="f.json", line=2),
        ),
        ("[NaN]", ValidationIssue("", "invalid json: NaN is not JSON", file="f.json")),
    ],
)
def test_a_json_file_refused_is_one_issue_of_the_whole_file(
    text: str, issue: ValidationIssue
) -> None:
    """Empty, nested past the depth limit (past Python's recursion too), not JSON, a key
    given twice, NaN: no value, and one issue naming the file (and the line JSON names; a key
    given twice is named by its path and line, as in YAML, read as YAML for them)."""
    value, _, issues = read_json(text, "f.json")
    assert (None, [issue]) == (value, issues)


def test_a_json_file_as_deep_as_the_limit_is_read() -> None:
    """Lists nested 100 deep are as deep as a value may be: read, without an issue."""
    value, _, issues = read_json("[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH, "f.json")
    depth = 0
    while value:
        (value,) = value
        depth += 1
    assert (MAX_YAML_DEPTH - 1, [], []) == (depth, value, issues)
