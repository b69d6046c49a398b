"""Settings: the parsers of numbers, exporter lists and optional values, built in each test
as the settings table builds them at import."""

from __future__ import annotations

import re
from typing import Any

import pytest

from taskdaemon.pipeline.settings_parsers import (
    TRACES_EXPORTERS,
    exporters,
    integer,
    number,
    optional,
    patterns,
    text,
    utf8,
)


# Built in each test, not once at import: mutmut imports the test file before it applies a
# mutant, so a parser built at import would never be the mutated one.
def _port(value: Any) -> Any:
    """``TASKDAEMON_METRICS_PORT``'s parser applied to ``value``."""
    return integer(ge=0, le=65535)(value)


def _count(value: Any) -> Any:
    """The byte and line caps' parser applied to ``value``."""
    return integer(ge=0)(value)


def _timeout(value: Any) -> Any:
    """``TASKDAEMON_EXPORT_TIMEOUT``'s parser applied to ``value``."""
    return number(gt=0, le=300)(value)


def _reason(parse: Any, value: Any) -> str:
    """The reason ``parse`` gives for refusing ``value``."""
    with pytest.raises(ValueError) as caught:  # noqa: PT011 - the reason is what is compared
        parse(value)
    return str(caught.value)


def test_an_integer_written_with_a_zero_fraction_is_taken() -> None:
    """``"2.0"`` is the integer 2."""
    assert 2 == _port("2.0")


def test_an_integer_literal_with_underscores_is_taken() -> None:
    """``"1_000"`` is read as Python reads it."""
    assert 1000 == _port("1_000")


def test_a_large_integer_is_read_exactly() -> None:
    """An integer past a float's precision keeps every digit."""
    assert 9_007_199_254_740_993 == _count("9007199254740993")


def test_an_integer_override_is_kept() -> None:
    """A Python int given as an override is taken as it is."""
    assert 3 == _port(3)


def test_a_float_override_without_a_fraction_is_an_integer() -> None:
    """A Python float such as ``3.0`` is the integer 3."""
    assert (3, int) == (_port(3.0), type(_port(3.0)))


def test_an_integer_with_a_fraction_is_refused_with_its_reason() -> None:
    """``"2.5"`` is no integer: pydantic's words, then the value."""
    expected = "Input should be a valid integer, got a number with a fraction, not '2.5'"
    assert expected == _reason(_port, "2.5")


def test_an_integer_in_other_digits_is_refused_with_its_reason() -> None:
    """Full-width digits, which ``int()`` takes and no other reader of the value does: the
    reason says which digits, then the value."""
    expected = "Input should be a valid integer, in ASCII digits, not '\uff19\uff10'"
    assert expected == _reason(_port, "\uff19\uff10")


def test_text_that_is_no_integer_is_refused_with_its_reason() -> None:
    """A word for an integer setting is refused with pydantic's words."""
    expected = "Input should be a valid integer, unable to parse string as an integer, not 'http'"
    assert expected == _reason(_port, "http")


def test_an_integer_override_of_another_type_is_refused_with_its_reason() -> None:
    """A list given for an integer setting is refused with pydantic's words."""
    assert "Input should be a valid integer, not [1]" == _reason(_port, [1])


def test_an_integer_below_its_lower_bound_is_refused_with_its_reason() -> None:
    """-1 for a setting of at least 0 is refused, naming the bound."""
    assert "Input should be greater than or equal to 0, not '-1'" == _reason(_port, "-1")


def test_an_integer_above_its_upper_bound_is_refused_with_its_reason() -> None:
    """65536 for a port is refused, naming the bound."""
    expected = "Input should be less than or equal to 65535, not '65536'"
    assert expected == _reason(_port, "65536")


def test_a_number_is_read_as_a_float() -> None:
    """``"1.5"`` seconds is 1.5."""
    assert 1.5 == _timeout("1.5")


def test_text_that_is_no_number_is_refused_with_its_reason() -> None:
    """A word for a number setting is refused with pydantic's words."""
    expected = "Input should be a valid number, unable to parse string as a number, not 'soon'"
    assert expected == _reason(_timeout, "soon")


def test_a_number_in_other_digits_is_refused_with_its_reason() -> None:
    """As for an integer: ``float()`` takes full-width digits, the setting does not."""
    expected = "Input should be a valid number, in ASCII digits, not '\uff15'"
    assert expected == _reason(_timeout, "\uff15")


def test_not_a_number_is_refused_by_name() -> None:
    """``nan`` is refused as NaN, not as a bound it misses."""
    assert "Input should be a number, not NaN" == _reason(_timeout, "nan")


def test_a_number_at_its_exclusive_lower_bound_is_refused_with_its_reason() -> None:
    """0 seconds is refused: the timeout must be above 0; the value is quoted as written."""
    assert "Input should be greater than 0, not ' 0 '" == _reason(_timeout, " 0 ")


def test_a_number_above_its_upper_bound_is_refused_with_its_reason() -> None:
    """301.5 seconds (an override) is refused, naming the bound and the value."""
    assert "Input should be less than or equal to 300, not 301.5" == _reason(_timeout, 301.5)


def test_exporter_names_are_stripped_and_lowered() -> None:
    """``" OTLP, Console "`` names the otlp and console exporters."""
    assert ("otlp", "console") == exporters(TRACES_EXPORTERS)(" OTLP, Console ")


def test_an_empty_exporter_list_means_none() -> None:
    """An empty variable is the ``none`` exporter."""
    assert ("none",) == exporters(TRACES_EXPORTERS)("")


def test_an_exporter_override_may_be_a_list() -> None:
    """A list of names given as an override is taken."""
    assert ("otlp",) == exporters(TRACES_EXPORTERS)(["otlp"])


def test_unknown_exporters_are_all_named_with_the_choices() -> None:
    """Every unknown name is quoted, then the exporters there are, sorted."""
    expected = (
        "unknown exporter 'zipkin', 'statsd'; "
        "expected console, none, otlp, otlp_proto_grpc, otlp_proto_http"
    )
    assert expected == _reason(exporters(TRACES_EXPORTERS), "zipkin, otlp, statsd")


def test_an_optional_setting_given_none_is_none() -> None:
    """None is taken as no value, without parsing it."""
    assert None is optional(text)(None)


def test_an_optional_setting_given_a_value_parses_it() -> None:
    """A value is passed to the setting's parser."""
    assert "x" == optional(text)("x")


def test_a_pattern_whose_meaning_is_to_change_is_refused_with_its_reason() -> None:
    """Python's FutureWarning for ``x[[a]`` would be printed by every command: refused, the
    warning's text the reason."""
    expected = "invalid regular expression 'x[[a]': Possible nested set at position 2"
    assert expected == _reason(patterns, "x[[a]")


def test_a_pattern_python_only_deprecates_is_taken() -> None:
    """A DeprecationWarning (``(?(+1)y)``, a group named by a sign) is Python's own, hidden
    outside ``__main__``: the pattern is taken, and the warning left to Python's filters, not
    raised at the user."""
    re.purge()  # compiled before (another test, mutmut's earlier pass), it would not warn again
    with pytest.warns(DeprecationWarning, match="bad character in group name"):
        assert ("(a)(?(+1)y)",) == patterns("(a)(?(+1)y)")


def test_text_of_bytes_that_are_not_utf8_is_refused_with_its_reason() -> None:
    """A lone surrogate (a byte the environment did not decode) is refused, not quoted."""
    assert "holds bytes that are not UTF-8 text" == _reason(utf8, "name-\udcff")
