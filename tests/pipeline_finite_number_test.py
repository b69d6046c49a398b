"""The one rule for a number that arrives as a value (``finite_number``), and its two readers:
a definition's field (``config_reader``) and a stored trigger's timeout (``telemetry_codec``)."""

from __future__ import annotations

import json
import sys

import pytest

from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.errors import ConfigError
from taskdaemon.pipeline.finite_number import is_finite_number, is_number
from taskdaemon.pipeline.telemetry_codec import decode_trigger

LARGEST = sys.float_info.max
#: The smallest int ``float()`` refuses: past the largest float by more than its rounding.
TOO_LARGE_INT = 2**1024


@pytest.mark.parametrize(
    ("value", "number", "finite"),
    [
        (0, True, True),
        (-3, True, True),
        (2.5, True, True),
        (LARGEST, True, True),
        (-LARGEST, True, True),
        (int(LARGEST), True, True),
        (TOO_LARGE_INT, True, False),
        (-TOO_LARGE_INT, True, False),
        (float("inf"), True, False),
        (float("-inf"), True, False),
        (float("nan"), True, False),
        (True, False, False),
        (False, False, False),
        ("1", False, False),
        (None, False, False),
        ([1], False, False),
    ],
)
def test_a_number_is_an_int_or_float_not_a_bool_and_finite_within_the_largest_float(
    value: object, number: bool, finite: bool
) -> None:
    """Ints and floats are numbers, bools are not; finite means a float holds it."""
    assert (number, finite) == (is_number(value), is_finite_number(value))


def test_float_of_every_finite_number_succeeds_and_of_the_first_int_past_it_raises() -> None:
    """The bound is where ``float()`` stops: the callers convert what the rule accepts."""
    assert LARGEST == float(int(LARGEST))
    with pytest.raises(OverflowError):
        float(TOO_LARGE_INT)


@pytest.mark.parametrize(
    ("factor", "said"),
    [
        ("true", "expected a number, got boolean"),
        ('"2"', "expected a number, got string"),
        (".inf", "expected a finite number, got inf"),
        (".nan", "expected a finite number, got nan"),
        (str(TOO_LARGE_INT), "expected a finite number, got '1797693134862315907"),
    ],
)
def test_a_definitions_number_field_words_each_refusal(factor: str, said: str) -> None:
    """``config_reader`` keeps its two messages over the shared rule, one line each."""
    text = (
        f"name: p\nretry: {{backoff: {{factor: {factor}}}}}\n"
        "stages: [{name: s, command: 'true', triggers: [{manual: {approval_required: false}}]}]\n"
    )
    with pytest.raises(ConfigError) as refused:
        parse_pipeline(text)
    [issue] = refused.value.issues
    assert ("retry.backoff.factor", True) == (issue.path, issue.message.startswith(said)), issue


def test_a_definitions_largest_finite_factor_is_read_as_a_float() -> None:
    """The bound itself is accepted, as an int and converted."""
    text = (
        f"name: p\nretry: {{backoff: {{factor: {int(LARGEST)}}}}}\n"
        "stages: [{name: s, command: 'true', triggers: [{manual: {approval_required: false}}]}]\n"
    )
    assert LARGEST == parse_pipeline(text).retry.backoff.factor


@pytest.mark.parametrize("timeout", [1e308 * 10, True, "5"])
def test_a_stored_manual_trigger_with_a_timeout_no_float_holds_is_not_read(
    timeout: object,
) -> None:
    """``telemetry_codec`` refuses the same values in a span's trigger spec, with and without
    the description beside it, and reads a finite one."""
    crafted = json.dumps(["manual", True, timeout])
    assert (None, None) == (decode_trigger(crafted), decode_trigger(crafted, "manual"))
    read = decode_trigger(json.dumps(["manual", True, 5]), "manual")
    assert read is not None
    assert 5.0 == read.timeout
