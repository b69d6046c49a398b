"""``# taskdaemon: ignore[CODE]`` in a TOML pipeline file, read as in YAML (docs/validation.md,
"Suppressing a warning"): on a warning's key line it suppresses that warning, on a stage's
``[[stages]]`` line every warning of its code in the stage; one that hid nothing is an
``unused-ignore`` warning at its line and column, one naming no warning an error, and a
directive in a string is the string's. ``validate`` and ``run`` end to end, subprocesses of the
console script. Before, every such comment was the error "a comment suppresses no warning in a
TOML file"."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.ignore_comments import ignore_comments
from taskdaemon.pipeline.toml_scan import key_parts, toml_comments, toml_scan
from taskdaemon.pipeline.validation_warnings import ValidationWarning

#: A run that succeeds: ``later`` and ``never`` suppressed, ``shown``'s comment on the wrong
#: line (its ``command``'s), so its warning shows and the comment is unused. The description
#: holds a U+2028, a line break to ``str.splitlines`` and none to TOML.
_FILE = (
    'name = "parked"\n'
    'description = "a line separator \u2028 and # taskdaemon: ignore[bogus]"\n'
    "\n"
    "[[stages]]\n"
    'name = "build"\n'
    "command = \"echo '# taskdaemon: ignore[own-status]'\"\n"
    "triggers = [{manual = {}}]\n"
    "\n"
    "[[stages]]  # taskdaemon: ignore[constant-condition]\n"
    'name = "later"\n'
    'command = "true"\n'
    'triggers = [{on_condition = {expression = "1 > 2"}}]\n'
    "\n"
    "[[stages]]\n"
    'name = "never"\n'
    'command = "true"\n'
    'triggers = [{on_condition = {expression = "2 > 3"}}]'
    "  # taskdaemon: ignore[constant-condition]\n"
    "\n"
    "[[stages]]\n"
    'name = "shown"\n'
    'command = "true"  # taskdaemon: ignore[constant-condition]\n'
    'triggers = [{on_condition = {expression = "3 > 4"}}]\n'
)
_SHOWN = [
    "p.toml:22:30: warning: stages[3].triggers[0].on_condition.expression: '3 > 4' reads no "
    "variable and is never true: the stage never starts [constant-condition]",
    "p.toml:21:19: warning: ignore comment: constant-condition suppresses nothing on this line "
    "or its stage (remove it) [unused-ignore]",
]


@pytest.mark.slow
def test_validate_and_run_read_a_toml_file_s_comments(home: Path, tmp_path: Path) -> None:
    """``validate`` prints the warning left and the unused comment, each at its line and
    column, then OK; ``run`` prints the same lines on stderr and runs (its stdout is the
    run's own)."""
    (tmp_path / "p.toml").write_text(_FILE, encoding="utf-8")
    done = taskdaemon(home, "validate", "p.toml", cwd=tmp_path)
    assert (0, [*_SHOWN, "OK p.toml (4 stages, 2 warnings)"], "") == (
        done.returncode,
        done.stdout.splitlines(),
        done.stderr,
    )
    run = taskdaemon(home, "run", "-q", "p.toml", cwd=tmp_path)
    assert (0, _SHOWN) == (run.returncode, run.stderr.splitlines()[:2])
    assert not any(line.startswith("p.toml") for line in run.stderr.splitlines()[2:])


@pytest.mark.slow
def test_a_toml_comment_naming_no_warning_stops_validate_and_run(
    home: Path, tmp_path: Path
) -> None:
    """A misspelt code in a TOML comment is one line with a "did you mean", on the comment's
    line (after a CRLF line, counted as TOML counts it); ``run`` refuses to start."""
    text = _FILE.replace("\n", "\r\n", 3).replace(
        "[[stages]]  # taskdaemon: ignore[constant-condition]",
        "[[stages]]  # taskdaemon: ignore[constant-conditon]",
    )
    (tmp_path / "p.toml").write_text(text, encoding="utf-8", newline="")
    expected = [
        "p.toml:9: ignore comment: unknown warning code 'constant-conditon' "
        "(did you mean 'constant-condition'?)"
    ]
    done = taskdaemon(home, "validate", "p.toml", cwd=tmp_path)
    assert (2, expected) == (done.returncode, done.stdout.splitlines())
    run = taskdaemon(home, "run", "p.toml", cwd=tmp_path)
    assert (2, expected) == (run.returncode, run.stderr.splitlines())


def test_toml_comments_are_found_on_toml_s_lines_and_columns() -> None:
    """Lines split at ``\\n`` only (a U+2028 in a string is text, ``\\r\\n`` one break),
    columns in characters; a ``#`` in a string of each form, on a line of a multi-line string
    or array, is text; a comment inside a multi-line array is still a comment."""
    text = (
        'a = "é \u2028 # taskdaemon: ignore[x]"  # taskdaemon: ignore[y, z]\r\n'
        'b = """\n# taskdaemon: ignore[x]\n"""  # taskdaemon: ignore\n'
        "c = [\n  '# taskdaemon: ignore[x]',  # taskdaemon: ignore[w]\n]\n"
    )
    assert [(1, 36, ("y", "z")), (4, 6, None), (6, 31, ("w",))] == [
        tuple(comment) for comment in ignore_comments(text, "toml")
    ]
    tops = [line.number for line in toml_scan(text) if line.top]
    assert ([1, 2, 5, 8], 8) == (tops, len(text.split("\n")))


def test_a_warning_after_a_line_separator_has_its_toml_column() -> None:
    """The column is read on the warning's own line, as TOML counts lines: before, the lines
    were ``str.splitlines``'s, so after a U+2028 in a string the column was read on the line
    above the warning's."""
    found: list[ValidationWarning] = []
    parse_pipeline(_FILE, fmt="toml", source="p.toml", warnings=found)
    assert [(22, 30), (21, 19)] == [(warning.line, warning.column) for warning in found]


def test_a_text_tomllib_refused_is_read_in_bounded_time() -> None:
    """A file read again after it changed (``config.field_lines``) may hold strings never
    closed: each ends its line, so a line of 200,000 escaped quotes after an opening one is
    read once, where each quote looking for its string's end took time with the square of the
    line (minutes). Its lines are still given, each at the top (a multi-line string never
    closed is none)."""
    line = '"' + '\\"' * 200_000
    text = f"a = {line}\nb = '''x\n[c]\n"
    started = time.monotonic()
    tops = [found.number for found in toml_scan(text) if found.top]
    comments = list(toml_comments(text + line))
    assert ([1, 2, 3, 4], [], True) == (tops, comments, time.monotonic() - started < 5)


@pytest.mark.parametrize(
    "text",
    [
        'command = "echo ' + "x" * 2_000_000 + '"\n',
        'command = "' + "\\t" * 1_000_000 + '"\n',
        'command = """' + "x\\\n" * 500_000 + '"""\n',
        'command = """' + 'x"' * 1_000_000 + '"""\n',
        '"""' + "x" * 2_000_000,
    ],
    ids=["basic", "escapes", "multi-line", "lone-quotes", "never-closed"],
)
def test_a_long_string_is_read_in_bounded_memory(text: str) -> None:
    """A string of 2 MB (a pipeline file may hold 16 MiB) is read, its lines and its
    comments, without ``re`` keeping an entry per character: before, a string's characters
    were an alternation repeated per character, which took many times the string's size
    (``validate`` of a file with a long ``command`` held it too). A long quoted key alike."""
    key_line = '"' + "k\\t" * 1_000_000 + '" = 1'
    tracemalloc.start()
    try:
        lines = sum(1 for _ in toml_scan(text))
        comments = list(toml_comments(text))
        key = key_parts(key_line, 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (lines, comments, key is not None) == (text.count("\n") + 1, [], True)
    assert peak < 5_000_000, peak


def test_toml_scan_gives_each_line_s_text_and_whether_it_is_at_the_top() -> None:
    """Each line's ``start`` and ``end`` cut its text out of the file, the last one without a
    line feed too; a line inside a multi-line string or a value spread over lines (nested
    brackets closed one by one) is not at the top; a bracket in a comment opens nothing."""
    text = 'a = """x\ny""" # [\n[t]\nb = [[\n1],\n2]\nc = 1'
    assert [
        (1, 'a = """x', True),
        (2, 'y""" # [', False),
        (3, "[t]", True),
        (4, "b = [[", True),
        (5, "1],", False),
        (6, "2]", False),
        (7, "c = 1", True),
    ] == [(line.number, text[line.start : line.end], line.top) for line in toml_scan(text)]


def test_toml_comments_count_a_line_feed_at_the_text_s_start() -> None:
    """A comment after a first blank line is on line 2, column 1, at its ``#``'s index."""
    assert [(2, 1, 1, 4), (3, 4, 8, 11)] == [
        tuple(comment) for comment in toml_comments("\n# a\na=1# b\n")
    ]


def test_key_parts_reads_a_dotted_key_up_to_its_equals_sign_or_bracket() -> None:
    """Bare and quoted parts, blanks around the dots; a key not followed by ``=`` (or a
    header's ``]``) is none."""
    assert [(["a", "b c"], 12), (["x", "y"], 4), None, None] == [
        key_parts("a . 'b c'   = 1", 0),
        key_parts("[x.y] # c", 1),
        key_parts("a b = 1", 0),
        key_parts("a.b", 0),
    ]


def test_a_key_after_a_multi_line_string_opened_on_a_later_line_has_its_line() -> None:
    """A multi-line string opened past the file's first line: the lines inside it are counted
    from its own opening line, so the key after it, and its warning, are on their lines."""
    text = (
        'name = "p"\n'
        "\n"
        "[[stages]]\n"
        'name = "a"\n'
        'description = """one\ntwo\nthree"""\n'
        'command = "true"\n'
        'triggers = [{on_condition = {expression = "1 > 2"}}]\n'
    )
    found: list[ValidationWarning] = []
    parse_pipeline(text, fmt="toml", source="p.toml", warnings=found)
    assert [(9, 30)] == [(warning.line, warning.column) for warning in found]
    assert [(5, 5, True), (6, 6, False), (7, 7, False), (8, 8, True)] == [
        (line.number, text.count("\n", 0, line.start) + 1, line.top)
        for line in toml_scan(text)
        if 5 <= line.number <= 8
    ]


def test_a_file_without_the_directive_s_word_has_no_directive() -> None:
    """A TOML or YAML text that never writes ``taskdaemon:`` holds no directive, and a TOML
    pipeline without one gives its warnings as any other."""
    assert ([], []) == (
        list(ignore_comments("a = 1  # ignore[x]\n", "toml")),
        list(ignore_comments("a: 1  # ignore[x]\n", "yaml")),
    )
    found: list[ValidationWarning] = []
    text = 'name = "p"\n[[stages]]\nname = "a"\ncommand = "true"\n'
    text += 'triggers = [{on_condition = {expression = "1 > 2"}}]  # 1 > 2\n'
    parse_pipeline(text, fmt="toml", source="p.toml", warnings=found)
    assert ["constant-condition"] == [warning.code for warning in found]


def test_a_directive_in_a_string_after_a_comment_is_the_string_s() -> None:
    """A comment is searched up to its own end: the directive written in a string on a later
    line (ending in a blank, as a directive may) is the string's, not the comment's."""
    text = '# a comment\ncommand = "# taskdaemon: ignore[own-status] "\n'
    assert [] == list(ignore_comments(text, "toml"))
    text += "# taskdaemon: ignore[y]\n"
    assert [(3, 1, ("y",))] == [tuple(comment) for comment in ignore_comments(text, "toml")]
