"""The one rule for cutting text with an ellipsis (``pipeline.ellipsis``)."""

from __future__ import annotations

from taskdaemon.pipeline.ellipsis import cut, cut_line, cut_start


def test_text_of_exactly_the_limit_is_kept_whole() -> None:
    """Text as long as the limit is not cut."""
    assert "abcde" == cut("abcde", 5)


def test_text_over_the_limit_ends_in_an_ellipsis_within_the_limit() -> None:
    """Text one character over the limit keeps limit - 1 characters and an ellipsis."""
    assert "abcd…" == cut("abcdef", 5)


def test_a_line_cut_joins_whitespace_runs_before_it_counts() -> None:
    """Line breaks and runs of blanks become one space before the length is measured."""
    assert "a b c" == cut_line("a\n\n b\t\tc", 5)


def test_a_cut_from_the_start_keeps_the_end_within_the_limit() -> None:
    """``cut_start`` keeps a text of the limit whole; a longer one loses its start to ``…``,
    its end (a path's folder) kept, within the limit."""
    assert ("/a/b", "…/c/home") == (cut_start("/a/b", 4), cut_start("/a/b/c/home", 8))
