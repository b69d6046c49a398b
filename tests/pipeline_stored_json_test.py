"""``stored_json.loads`` gives orjson's value or error for every text, whichever path it takes."""

from __future__ import annotations

import json
import subprocess
import sys

import orjson
import pytest

from taskdaemon.pipeline import stored_json

#: Rows as the writer writes them, and damaged ones where the two decoders disagree.
TEXTS = [
    '[null,"run","INTERNAL","OK","",{"n":3,"f":1.5,"s":"\\u00e9"},[["e",12,{}]],[]]',
    '{"a":1,"a":2}',
    "[-0.0, -0, 1e5, 1E-3, 123456789012345678]",
    "[18446744073709551615, -9223372036854775808]",
    "[18446744073709551616]",  # past u64: orjson reads a float
    "[-9223372036854775809]",
    "[NaN]",
    "[Infinity, -Infinity]",
    "[1e999]",
    '["\\ud800"]',  # a lone surrogate: orjson refuses it
    '["\\uD800"]',  # the same, written in upper case
    '["\\uD83D\\uDE00"]',  # a pair: both read the emoji
    "[" * 1030 + "]" * 1030,  # past orjson's depth limit
    "[" * 900 + "]" * 900,
    '"\ufeff[1]"',
    "\ufeff[1]",
    "",
    "[1] x",
    '["a\x01"]',
    " \t\n[1]\r\n",
]


def _outcome(function: object, text: object) -> tuple[str, object]:
    try:
        return ("value", function(text))  # type: ignore[operator]
    except Exception as error:  # the error is what is compared
        return (type(error).__name__, str(error))


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_loads_matches_orjson(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each text decodes to orjson's value (type included) or raises orjson's error, on the
    standard library's path (orjson hidden from ``sys.modules``) as on orjson's."""
    expected = _outcome(orjson.loads, text)
    monkeypatch.setattr(stored_json, "_left", stored_json.STDLIB_ROWS)
    monkeypatch.delitem(sys.modules, "orjson")
    got = _outcome(stored_json.loads, text)
    assert repr(expected) == repr(got)
    if expected[0] != "value":
        with pytest.raises(json.JSONDecodeError):
            stored_json.loads(text)


def test_non_text_goes_to_orjson() -> None:
    """Bytes decode as orjson decodes them and other types raise orjson's error."""
    assert orjson.loads(b"[1]") == stored_json.loads(b"[1]")
    with pytest.raises(json.JSONDecodeError):
        stored_json.loads(3)


@pytest.mark.slow
def test_a_few_rows_import_no_orjson_and_many_do() -> None:
    """A process decoding fewer than ``STDLIB_ROWS`` texts never imports orjson; past that
    budget it does."""
    code = (
        "import sys\n"
        "from taskdaemon.pipeline import stored_json as s\n"
        "for _ in range(s.STDLIB_ROWS): s.loads('[1, {\"a\": 2.5}]')\n"
        "print('orjson' in sys.modules)\n"
        "s.loads('[1]')\n"
        "print('orjson' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert ["False", "True"] == out


def test_bytes_decode_as_orjson_decodes_them_on_the_standard_library_s_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bytes, which the standard library's decoder does not take, go to orjson even while
    the budget lasts and orjson is not imported."""
    monkeypatch.setattr(stored_json, "_left", stored_json.STDLIB_ROWS)
    monkeypatch.delitem(sys.modules, "orjson")
    assert [1, {"a": 2.5}] == stored_json.loads(b'[1, {"a": 2.5}]')


def test_the_first_rows_import_no_orjson_and_the_next_one_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a process that has not imported orjson, the first ``STDLIB_ROWS`` texts are
    decoded without it; the next one imports it."""
    monkeypatch.setattr(stored_json, "_left", stored_json.STDLIB_ROWS)
    monkeypatch.delitem(sys.modules, "orjson")
    for _ in range(stored_json.STDLIB_ROWS):
        stored_json.loads('[1, {"a": 2.5}]')
    imported_within_budget = "orjson" in sys.modules
    stored_json.loads("[1]")
    assert (False, True) == (imported_within_budget, "orjson" in sys.modules)


@pytest.mark.parametrize(
    "text",
    ["[" * 1030 + "]" * 1030, '{"a":' * 1030 + "1" + "}" * 1030],
    ids=["lists", "objects"],
)
def test_nesting_past_orjson_s_limit_is_its_error_whatever_the_recursion_limit(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a recursion limit high enough for the standard library to read 1030 levels,
    such a text still raises orjson's depth error, as orjson would."""
    expected = _outcome(orjson.loads, text)
    monkeypatch.setattr(stored_json, "_left", stored_json.STDLIB_ROWS)
    monkeypatch.delitem(sys.modules, "orjson")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        got = _outcome(stored_json.loads, text)
    finally:
        sys.setrecursionlimit(limit)
    assert repr(expected) == repr(got)
