"""What of a value told to be secret could not be masked by value (``secret_values.unmaskable``,
which the debugger's ``set --secret`` refuses with), and whether a key is a secret one by the
patterns in use (``secret_key``, which its prompt asks): in this process, at each bound.
``pipeline_debug_ops_secret_parts_test.py`` checks the refusal through ``taskdaemon debug``
processes, which mutation testing cannot credit."""

from __future__ import annotations

from typing import Any

import pytest

from taskdaemon.pipeline.secret_values import (
    MASK_MAX_CHARS,
    MASK_MAX_DECLARED,
    MASK_MAX_PARTS,
    MASK_MIN_CHARS,
    secret_key,
    unmaskable,
    use_secret_key_patterns,
)

TOO_MANY = (
    f"more than {MASK_MAX_PARTS} texts and numbers (each is kept masked until the run ends, and "
    f"the open runs keep {MASK_MAX_DECLARED} at most)"
)
NUMBER = "a whole number of too few or too many digits"


@pytest.mark.parametrize(
    "value",
    [
        "x" * MASK_MIN_CHARS,
        "x" * MASK_MAX_CHARS,
        10 ** (MASK_MIN_CHARS - 1),
        -(10 ** (MASK_MIN_CHARS - 1)),
        10**MASK_MAX_CHARS - 1,
        None,
        True,
        "",
        {"x" * 3: "y" * MASK_MIN_CHARS},  # keys hold no secret
        ["a1b2c3d4e5", ("f6g7h8i9j0", {"k": [12345678]})],
        [True, False, None, ""] * MASK_MAX_PARTS,  # none of them counts
        ["y" * MASK_MIN_CHARS] * MASK_MAX_PARTS,
        [10**MASK_MIN_CHARS] * MASK_MAX_PARTS,
    ],
)
def test_a_value_masked_whole_is_not_refused(value: Any) -> None:
    assert unmaskable(value) is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("x" * (MASK_MIN_CHARS - 1), f"a text of {MASK_MIN_CHARS - 1} characters"),
        ("x" * (MASK_MAX_CHARS + 1), f"a text of {MASK_MAX_CHARS + 1} characters"),
        (10 ** (MASK_MIN_CHARS - 1) - 1, NUMBER),
        (-(10 ** (MASK_MIN_CHARS - 1)) + 1, NUMBER),
        (10**MASK_MAX_CHARS, NUMBER),
        (0, NUMBER),
        (12345678.0, "a number with a fraction or an exponent"),
        ({"k": "short"}, "a text of 5 characters"),
        (["y" * MASK_MIN_CHARS, ("z" * MASK_MIN_CHARS, 7)], NUMBER),
        (["y" * MASK_MIN_CHARS] * (MASK_MAX_PARTS + 1), TOO_MANY),
        ([10**MASK_MIN_CHARS] * (MASK_MAX_PARTS + 1), TOO_MANY),
        ({"a": ["y" * MASK_MIN_CHARS] * MASK_MAX_PARTS, "b": 10**MASK_MIN_CHARS}, TOO_MANY),
    ],
)
def test_what_cannot_be_masked_is_said(value: Any, why: str) -> None:
    assert why == unmaskable(value)


def test_too_many_parts_is_said_before_a_later_part_is_looked_at() -> None:
    """The walk stops at the part past the bound: what comes after it is not read."""
    value = [3] + ["y" * MASK_MIN_CHARS] * (MASK_MAX_PARTS + 1)  # the list is walked from its end
    assert TOO_MANY == unmaskable(value)


def test_a_secret_key_follows_the_patterns_in_use() -> None:
    assert secret_key("api_token") is True
    assert secret_key("colour") is False
    before = use_secret_key_patterns(("colour",))
    try:
        assert secret_key("colour") is True
        assert secret_key("api_token") is False
    finally:
        use_secret_key_patterns(before)
    assert secret_key("api_token") is True
