"""``quoting``: how a message quotes what the user wrote. In single quotes as written when that
is unambiguous, else a JSON string with what a terminal would act on escaped; checked on the
function and on the lines real ``taskdaemon`` commands print. Before, messages quoted with
Python's ``repr``: ``'printf "%s\\\\n"'`` (every backslash doubled) and ``'it\\'s "x"'``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline import redaction
from taskdaemon.pipeline.quoting import QUOTED, REDACTED_WINDOW, quote, quote_value, quoted
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.secret_values import remember_secrets

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


def test_a_quoted_secret_is_redacted_before_the_cut() -> None:
    """A value known as a secret longer than the quote's limit: cut first, its first
    characters would be shown and no longer found; redacted first, none are."""
    secret = "s3cr3t-" + "x" * 60
    remember_secrets({"token": secret})
    assert "'[REDACTED] given'" == quote(f"{secret} given")


def test_a_refused_value_is_quoted_whole_up_to_forty_characters() -> None:
    """An error names what it refused as Python quotes it; forty characters are kept whole,
    one more is cut to thirty-nine and an ellipsis inside the quotes."""
    exactly, over = "a" * QUOTED, "b" * (QUOTED + 1)
    assert (40, "'runing'", f"'{exactly}'", f"'{'b' * 39}…'") == (
        QUOTED,
        quote("runing"),
        quote(exactly),
        quote(over),
    )


def test_a_quote_shows_controls_escaped_and_takes_the_limit_given() -> None:
    """A line break or an escape in the value is shown escaped, never acted on (as a JSON
    string: ``quoting``), and a caller's own limit counts the characters before quoting."""
    assert ('"a\\nb\\u001b"', '"it\'s…"') == (quote("a\nb\x1b"), quote("it's long", 5))


def test_a_huge_refused_text_is_redacted_within_a_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 MiB refused field is redacted no further than ``REDACTED_WINDOW`` characters (its
    cost grows with every character, and the rest is never shown), and a secret that starts
    in the part shown is still found whole."""
    secret = "s3cr3t-" + "y" * 3000
    remember_secrets({"token": secret})
    seen: list[int] = []

    def counting(text: str) -> str:
        seen.append(len(text))
        return redact_text(text)

    monkeypatch.setattr(redaction, "redact_text", counting)
    assert "'[REDACTED] zzzzzzzzzzzzzzzzzzzzzzzzzzzz…'" == quote(f"{secret} " + "z" * (1 << 20))
    assert [REDACTED_WINDOW] == seen


def test_a_refused_value_of_any_type_is_quoted_as_text_else_shown_by_its_repr() -> None:
    """A text is quoted as ``quote`` quotes it; a bool or a number reads as Python writes it,
    unquoted; a long list is cut like a long text, and a secret in it is redacted."""
    secret = "s3cr3t-" + "v" * 60
    remember_secrets({"token": secret})
    assert ("'on'", "True", "-5", f"{repr(list(range(100)))[:39]}…", "['[REDACTED]']") == (
        quote_value("on"),
        quote_value(True),
        quote_value(-5),
        quote_value(list(range(100))),
        quote_value([secret]),
    )


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
