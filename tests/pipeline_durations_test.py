"""Ages and points in time as people type them: the bounds that keep them storable."""

from __future__ import annotations

import pytest

from taskdaemon.pipeline.durations import parse_age, parse_when

NOW = 1_800_000_000.0


def test_an_age_of_a_hundred_years_is_accepted() -> None:
    """``36500d`` (the longest age) is seconds, as any age."""
    assert 36500 * 86400.0 == parse_age("36500d")


def test_an_age_past_a_hundred_years_is_one_line() -> None:
    """An age past 36500d (which the span store's nanosecond times cannot reach back to) is a
    ValueError naming the limit, not an overflow later."""
    with pytest.raises(ValueError, match="at most") as refused:
        parse_age("99999999999d")
    expected = "not a duration: '99999999999d' (at most 36500d, a hundred years)"
    assert expected == str(refused.value)


def test_a_time_past_2200_is_one_line() -> None:
    """An ISO time after 2200 (past the store's nanosecond range for a window) is refused."""
    with pytest.raises(ValueError, match="out of range") as refused:
        parse_when("9999-12-31", clock=lambda: NOW)
    expected = "not a time: '9999-12-31' (out of range: 1900 to 2200)"
    assert expected == str(refused.value)


def test_an_age_as_a_point_in_time_is_before_now() -> None:
    """``--since 2h`` is two hours before the clock."""
    assert NOW - 7200.0 == parse_when("2h", clock=lambda: NOW)
