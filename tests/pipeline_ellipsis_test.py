"""The one rule for cutting text with an ellipsis (``pipeline.ellipsis``)."""

from __future__ import annotations

import pytest

from taskdaemon.pipeline import redaction
from taskdaemon.pipeline.ellipsis import (
    QUOTED,
    REDACTED_WINDOW,
    cut,
    cut_line,
    cut_start,
    quote,
    quote_value,
)
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.secret_values import remember_secrets


def test_text_of_exactly_the_limit_is_kept_whole() -> None:
    """Text as long as the limit is not cut."""
    assert "abcde" == cut("abcde", 5)


def test_text_over_the_limit_ends_in_an_ellipsis_within_the_limit() -> None:
    """Text one character over the limit keeps limit - 1 characters and an ellipsis."""
    assert "abcd…" == cut("abcdef", 5)


def test_a_line_cut_joins_whitespace_runs_before_it_counts() -> None:
    """Line breaks and runs of blanks become one space before the length is measured."""
    assert "a b c" == cut_line("a\n\n b\t\tc", 5)


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


def test_a_cut_from_the_start_keeps_the_end_within_the_limit() -> None:
    """``cut_start`` keeps a text of the limit whole; a longer one loses its start to ``…``,
    its end (a path's folder) kept, within the limit."""
    assert ("/a/b", "…/c/home") == (cut_start("/a/b", 4), cut_start("/a/b/c/home", 8))


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
