"""``quoting``: how a message quotes what the user wrote. In single quotes as written when that
is unambiguous, else a JSON string with what a terminal would act on escaped; checked on the
function and on the lines real ``taskdaemon`` commands print. Before, messages quoted with
Python's ``repr``: ``'printf "%s\\\\n"'`` (every backslash doubled) and ``'it\\'s "x"'``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline.quoting import quoted

CASES = [
    ("build", "'build'"),
    ('printf "%s\\n" x', "'printf \"%s\\n\" x'"),  # as written: the backslash is the user's
    ("C:\\tmp", "'C:\\tmp'"),
    ("it's", '"it\'s"'),
    ('it\'s "x"', '"it\'s \\"x\\""'),
    ("sed 's/\\s//'", "\"sed 's/\\\\s//'\""),  # a JSON string: its backslash escaped
    ("a\nb\tc", '"a\\nb\\tc"'),
    ("\x1b[2J\x9b", '"\\u001b[2J\\u009b"'),
    ("admin\u202etxt.exe", '"admin\\u202etxt.exe"'),  # bidi: would reorder the line
    ("pass\u200bword", '"pass\\u200bword"'),  # zero-width: would hide in the name
    ("a\u00a0b", '"a\\u00a0b"'),
    ("\U000e0041", '"\\udb40\\udc41"'),  # a tag character: JSON's surrogate pair
    ("\uffff", '"\\uffff"'),  # the last character of the BMP: one escape, no pair
    ("l'été 日本", '"l\'été 日本"'),  # a JSON string keeps what is printable as it is
    ("", "''"),
    ("héllo 日本", "'héllo 日本'"),
]


@pytest.mark.parametrize(("text", "shown"), CASES)
def test_a_text_is_quoted_as_written_or_as_a_json_string(text: str, shown: str) -> None:
    """Each form reads back to the text: single quotes hold it as written, double quotes a
    JSON string; either way one line of printable characters."""
    assert shown == quoted(text)
    back = shown[1:-1] if shown.startswith("'") else json.loads(shown)
    assert (text, True) == (back, shown.isprintable())


@pytest.mark.slow
def test_a_failed_command_is_quoted_as_written(home: Path, tmp_path: Path) -> None:
    """``run``'s error names the command as the file wrote it: its ``\\n`` once, not the
    ``\\\\n`` of ``repr``."""
    path = write(
        tmp_path / "p.yaml",
        """\
        name: p
        stages:
          - name: build
            command: 'printf "%s\\n" x >/dev/null; exit 3'
            triggers: [{manual: {approval_required: false}}]
        """,
    )
    done = taskdaemon(home, "run", str(path))
    said = "error: stage 'build' failure: command 'printf \"%s\\n\" x >/dev/null; exit 3' exited"
    assert (1, True) == (done.returncode, said in done.stdout), done.stdout + done.stderr


@pytest.mark.slow
def test_validate_quotes_a_wrong_name_once(home: Path, tmp_path: Path) -> None:
    """An unknown stage written with both quotes and a backslash is one JSON string, and
    the issue says which stages there are (no name is close to it)."""
    path = write(
        tmp_path / "p.yaml",
        """\
        name: p
        stages:
          - name: build
            command: "true"
            triggers: [{manual: {}}]
          - name: after
            command: "true"
            triggers: [{on_completion: {stage: "it's \\"x\\" C:\\\\tmp"}}]
        """,
    )
    done = taskdaemon(home, "validate", "--no-resolve", str(path))
    line = (
        f"{path}:8: stages[1].triggers[0].on_completion.stage: unknown stage "
        "\"it's \\\"x\\\" C:\\\\tmp\" (the stages: 'build', 'after')"
    )
    assert (2, [line]) == (done.returncode, done.stdout.splitlines())
