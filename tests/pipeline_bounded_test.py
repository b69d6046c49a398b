"""``bounded.loads_bounded``'s size, depth and value-density limits, at their edges, and its
integers too long to read."""

from __future__ import annotations

import json
import tomllib
from types import MappingProxyType

import pytest

from taskdaemon.pipeline.bounded import (
    FREE_VALUES,
    MIN_BYTES_PER_VALUE,
    BoundedInputError,
    LongNumber,
    TooDenseError,
    check_depth,
    check_unfolded,
    loads_bounded,
)

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


def test_a_document_denser_in_values_than_allowed_is_refused_with_its_count() -> None:
    """A list of 100,000 empty lists (300,001 bytes, 200,000 values) is refused, naming its
    count, its size and the bound."""
    text = "[" + "[]," * 99_999 + "[]]"
    with pytest.raises(TooDenseError) as caught:
        loads_bounded(text)
    expected = f"holds 200000 values in {len(text)} bytes, more than one per 8 bytes"
    assert expected == str(caught.value)


def test_a_short_document_may_be_as_dense_as_it_likes() -> None:
    """Up to FREE_VALUES values pass however short the document: ``[0,0,...]`` of exactly that
    many values is decoded, one more is refused."""
    at_bound = "[" + "0," * (FREE_VALUES - 1) + "0]"  # FREE_VALUES - 1 commas and one bracket
    past = "[" + "0," * FREE_VALUES + "0]"
    assert FREE_VALUES == len(loads_bounded(at_bound))
    with pytest.raises(TooDenseError, match=f"holds {FREE_VALUES + 1} values"):
        loads_bounded(past)


def test_a_document_at_one_value_per_eight_bytes_is_decoded() -> None:
    """The bound is inclusive: ``[1234567,`` has one value (its comma) per 8 bytes."""
    count = 4 * FREE_VALUES
    text = "[" + "1234567," * (count - 1) + "1234567]"
    assert (0, count) == (len(text) // MIN_BYTES_PER_VALUE - count, len(loads_bounded(text)))


def test_commas_and_brackets_inside_strings_are_not_values() -> None:
    """A long CSV text in one string (a captured output) is one value, not a comma a field."""
    csv = "a,b,[c],{d}," * 100_000
    assert [csv] == loads_bounded(json.dumps([csv]))


def test_escaped_quotes_do_not_end_a_string_for_the_count() -> None:
    """``\\"`` inside a string is part of it: the commas after it are still inside."""
    text = '"' + '\\",' * 100_000 + '"'
    assert '",' * 100_000 == loads_bounded(text)


def test_a_caller_may_decode_dense_documents() -> None:
    """``min_bytes_per_value=None`` takes the bound away."""
    assert 100_000 == len(loads_bounded("[" + "0," * 99_999 + "0]", min_bytes_per_value=None))


def test_the_bound_counts_utf8_bytes() -> None:
    """Values in a text of two-byte characters are allowed per byte, not per character:
    ``"éééé",`` is one value in 7 characters but 11 bytes."""
    item = '"' + "é" * 4 + '",'  # 7 characters, 11 bytes, one value
    text = "[" + item * (2 * FREE_VALUES) + '""]'
    assert 2 * FREE_VALUES + 1 == len(loads_bounded(text))


def test_dense_objects_count_as_values_too() -> None:
    """A list of 100,000 empty objects is as dense as one of empty lists: ``{`` is a value."""
    text = "[" + "{}," * 99_999 + "{}]"
    with pytest.raises(TooDenseError, match=r"^holds 200000 values in 300001 bytes"):
        loads_bounded(text)


def test_a_dense_document_with_strings_is_counted_outside_them_in_all_three_kinds() -> None:
    """Strings send the count to its second, precise pass: there every ``{``, ``[`` and ``,``
    outside a string is still one value (``{"":[]},`` is three)."""
    text = "[" + '{"":[]},' * 99_999 + '{"":[]}]'
    with pytest.raises(TooDenseError, match=r"^holds 300000 values in 800001 bytes"):
        loads_bounded(text)


def test_a_document_at_the_bound_once_strings_are_left_out_is_decoded() -> None:
    """Counted with its strings it is three times too dense; outside them it holds exactly
    one value per 8 bytes (``"a,b,c",``), which the bound allows."""
    count = 4 * FREE_VALUES
    text = "[" + '"a,b,c",' * (count - 1) + '"a,b,c"]'
    assert (count, count) == (len(text) // MIN_BYTES_PER_VALUE, len(loads_bounded(text)))


@pytest.mark.parametrize(
    "value",
    [
        [[[[]]], []],  # the deep container first, a shallow one last in the same level
        tomllib.loads("when = 2026-12-04T00:00:00Z\ndeep = [[[[]]]]"),  # a TOML date first
        MappingProxyType({"deep": [[[[]]]]}),  # a mapping that is not a dict
    ],
)
def test_check_depth_walks_every_container_of_a_level(value: object) -> None:
    """Four levels are refused under a limit of three, whatever comes before or after the
    deepest container in its level, and in any mapping; by ``check_unfolded`` too, which
    passes each as ``check_depth`` does at a limit of five."""
    with pytest.raises(BoundedInputError, match=r"^nested deeper than 3 levels$"):
        check_depth(value, 3)
    with pytest.raises(BoundedInputError, match=r"^nests deeper than 3 levels \("):
        check_unfolded(value, 3)
    check_depth(value, 5)
    check_unfolded(value, 5)


def test_check_unfolded_counts_a_shared_value_each_time_it_is_held() -> None:
    """Ten values held four times over are 40 (and the four references 4 more), whether the
    four are one list or four: 44 pass a bound of 44 and not one of 43."""
    ten = list(range(10))
    for value in ([ten] * 4, [list(range(10)) for _ in range(4)]):
        check_unfolded(value, max_values=44)
        with pytest.raises(BoundedInputError, match=r"^holds more than 43 values, a shared"):
            check_unfolded(value, max_values=43)


def test_check_unfolded_walks_each_shared_container_once() -> None:
    """A list held twice at each of 60 levels unfolds to 2**61 values: counted, not walked."""
    value: list[object] = [1]
    for _ in range(60):
        value = [value, value]
    with pytest.raises(BoundedInputError, match=r"^holds more than 16,777,216 values"):
        check_unfolded(value)
    check_unfolded(value, max_values=2**62)


@pytest.mark.parametrize("sign", ["", "-"])
def test_an_integer_too_long_to_read_refuses_the_document_unless_asked(sign: str) -> None:
    """4,300 digits read; 4,301 refuse the document, or with ``long_numbers`` decode to a
    :class:`LongNumber` of that count beside the values that read, a nested deeper document
    still refused for its depth."""
    longest, long = sign + "7" * 4300, sign + "7" * 4301
    text = f'{{"a": [{longest}, {long}], "b": 1}}'
    with pytest.raises(BoundedInputError, match="a number of more than 4300 digits"):
        loads_bounded(text)
    value = loads_bounded(text, long_numbers=True)
    read, marker = value["a"]
    assert (int(longest), LongNumber, "<a number of 4301 digits>", 1) == (
        read,
        type(marker),
        repr(marker),
        value["b"],
    )
    with pytest.raises(BoundedInputError, match="nested deeper than 2 levels"):
        loads_bounded(f"[{long}, [[1]]]", max_depth=2, long_numbers=True)
