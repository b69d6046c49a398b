"""``bounded.loads_bounded``'s size and depth limits, at their edges."""

from __future__ import annotations

import pytest

from taskdaemon.pipeline.bounded import BoundedInputError, loads_bounded

#: A JSON string of ten two-byte characters: 12 characters, 22 bytes in UTF-8.
ACCENTS = '"' + "é" * 10 + '"'


def test_a_str_is_measured_in_utf8_bytes_not_characters() -> None:
    """Text of 12 characters but 22 bytes is over a 21-byte limit."""
    with pytest.raises(BoundedInputError, match="larger than 21 bytes"):
        loads_bounded(ACCENTS, max_bytes=21)


def test_a_str_exactly_at_the_limit_is_decoded() -> None:
    """The limit is inclusive: 22 bytes pass a 22-byte limit."""
    assert "é" * 10 == loads_bounded(ACCENTS, max_bytes=22)


def test_bytes_exactly_at_the_limit_are_decoded() -> None:
    """Bytes are measured as they are, and the limit is inclusive for them too."""
    assert [1, 2] == loads_bounded(b"[1, 2]", max_bytes=6)


def test_a_str_with_more_characters_than_the_limit_is_refused() -> None:
    """Past the limit in characters alone, the text is refused."""
    with pytest.raises(BoundedInputError, match="larger than 10 bytes"):
        loads_bounded('"' + "a" * 20 + '"', max_bytes=10)


def test_a_lone_surrogate_is_measured_not_raised() -> None:
    """A str holding a lone surrogate (which JSON's ``\\ud800`` escape also makes) is measured
    without a UnicodeEncodeError, and decoded."""
    assert "\ud800" == loads_bounded('"\ud800"', max_bytes=10)


def test_the_callers_depth_limit_applies() -> None:
    """A document within json's own limits but deeper than ``max_depth`` is refused."""
    with pytest.raises(BoundedInputError, match="nested deeper than 3 levels"):
        loads_bounded('{"a": [[{}]]}', max_depth=3)


def test_a_str_as_long_as_the_limit_in_characters_is_still_encoded() -> None:
    """Twelve characters under a 12-byte limit are measured as their 22 bytes, and refused."""
    with pytest.raises(BoundedInputError, match="larger than 12 bytes"):
        loads_bounded(ACCENTS, max_bytes=12)
