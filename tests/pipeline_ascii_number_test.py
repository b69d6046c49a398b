"""``ascii_number``: the one rule by which text is read as a number. Each caller's own message
is held by its own tests (options, settings, retention, source limits, path indices)."""

from __future__ import annotations

import pytest

from taskdaemon.pipeline.ascii_number import ascii_digits, ascii_only


@pytest.mark.parametrize("text", ["9090", "1.5", " 7 ", "-3", ""])
def test_ascii_text_is_handed_back_as_it_is(text: str) -> None:
    """ASCII text passes unchanged: what ``int`` or ``float`` then refuses is theirs to say."""
    assert text == ascii_only(text)


@pytest.mark.parametrize("text", ["９０９０", "١٢", "5\u00a0", "²"])
def test_any_other_script_is_refused_though_int_would_take_some(text: str) -> None:
    """Fullwidth and Arabic-Indic digits and a no-break space, all of which ``int`` or
    ``float`` would read, and a superscript, are refused with the text as the error."""
    with pytest.raises(ValueError, match="^" + text + "$"):
        ascii_only(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", True),
        ("0123456789", True),
        ("", False),
        ("+1", False),
        ("1_0", False),
        (" 1", False),
        ("1.0", False),
        ("２", False),
        ("²", False),
        ("٣", False),
    ],
)
def test_digits_are_ascii_zero_to_nine_only(text: str, expected: bool) -> None:
    """Only 0-9, at least one: no sign, underscore, space, point, or another script's digit
    (``"²".isdigit()`` is true, and ``int("²")`` a ValueError)."""
    assert expected is ascii_digits(text)
