"""The one rule for cutting text with an ellipsis (``pipeline.ellipsis``)."""

from __future__ import annotations

from taskdaemon.pipeline.ellipsis import QUOTED, cut, cut_line, quote
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
    """A line break or an escape in the value is shown escaped, never acted on, and a
    caller's own limit counts the characters before quoting."""
    assert ("'a\\nb\\x1b'", '"it\'s…"') == (quote("a\nb\x1b"), quote("it's long", 5))
