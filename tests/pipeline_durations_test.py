"""Ages and points in time as people type them: the bounds that keep them storable."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from taskdaemon.pipeline.durations import log_time, parse_age, parse_when

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


@pytest.mark.parametrize("parse", [parse_age, lambda text: parse_when(text, clock=lambda: NOW)])
def test_a_bare_number_is_refused_asking_its_unit(parse: Callable[[str], float]) -> None:
    """An age without a unit (``7``, meant as days as often as seconds) is refused, asking
    which unit, where it was read as seconds: ``report --since 7`` then found no runs."""
    with pytest.raises(ValueError, match="what") as refused:
        parse("7")
    assert "not a duration: '7' (7 what? write 7s, 7m, 7h or 7d)" == str(refused.value)


def test_a_bare_zero_and_a_bare_setting_are_seconds() -> None:
    """Zero is the same in every unit; ``bare_seconds`` (``TASKDAEMON_RETENTION_MAX_AGE``,
    documented as seconds) reads a bare number as seconds."""
    assert 0.0 == parse_age("0")
    assert 90.0 == parse_age("90", bare_seconds=True)


def test_an_age_one_second_past_a_hundred_years_is_refused() -> None:
    """The limit is exactly 36500 days: one second more is refused."""
    with pytest.raises(ValueError, match="at most 36500d"):
        parse_age(f"{36500 * 86400 + 1}s")


def test_text_that_is_no_duration_is_one_line_naming_it() -> None:
    """A word that is no duration is a ValueError that quotes it and shows the forms."""
    with pytest.raises(ValueError, match="not a duration") as refused:
        parse_age("ten minutes")
    expected = "not a duration: 'ten minutes' (use e.g. 30s, 10m, 2h, 30d)"
    assert expected == str(refused.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1900-01-01T00:00Z", -2208988800.0), ("2200-01-01T00:00Z", 7258118400.0)],
)
def test_the_first_and_last_instants_of_the_range_are_accepted(text: str, expected: float) -> None:
    """1900-01-01 and 2200-01-01 at midnight UTC, the bounds themselves, are points in time."""
    assert expected == parse_when(text, clock=lambda: NOW)


def test_a_time_with_a_lowercase_z_is_not_iso_8601() -> None:
    """ISO 8601 writes UTC as ``Z``: a lowercase ``z`` is refused as not a time, in one line."""
    with pytest.raises(ValueError, match="not a time") as refused:
        parse_when("2025-01-31T12:00z", clock=lambda: NOW)
    expected = (
        "not a time: '2025-01-31T12:00z' (use an age such as 1h or 30d, or ISO 8601 such as "
        "2025-01-31T12:00)"
    )
    assert expected == str(refused.value)


@pytest.mark.parametrize("text", ["３０d", "1\u0663s", "\u2003" + "5m"])
def test_an_age_is_written_in_ascii(text: str) -> None:
    """Digits and spaces of other scripts (full-width, Arabic-Indic, an em space) were read as
    their ASCII twins, as ``float`` reads them; an age is now ASCII, as a setting is."""
    with pytest.raises(ValueError, match="not a duration"):
        parse_age(text)


def test_a_log_time_is_cut_to_its_millisecond_never_rounded_into_the_next_second() -> None:
    """The last nanosecond of a second stays in it: the seconds were read from the time as a
    float, which rounds up there, and the milliseconds from the integer, so ``logs`` printed
    such a record a second late (``…:56.999Z``)."""
    last = 1_796_485_135_999_999_999
    assert ("2026-12-05T15:38:55.999Z", "1970-01-01T00:00:00.000Z") == (log_time(last), log_time(0))
