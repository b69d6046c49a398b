"""Decoding the JSON the span store holds, as orjson decodes it, without importing orjson for a
few rows.

orjson's import loads uuid, platform and ``dataclasses`` (with ``inspect``), which costs a
command such as ``runs show`` about as much as decoding some thousand rows with the standard
library's C decoder. So :func:`loads` decodes the first :data:`STDLIB_ROWS` texts of a process
with ``json``, then (or as soon as something else imported it) with orjson.

The result is orjson's in every case: a text takes the standard library's path only when that
path cannot differ, and anything it refuses is decoded again by orjson, whose value or error
(a ``json.JSONDecodeError`` subclass) is returned or raised. What the standard library accepts
and orjson does not (or reads otherwise) goes to orjson: ``NaN``/``Infinity``, numbers that
overflow a double, integers outside 64 bits (orjson reads them as floats), escaped lone
surrogates, and nesting deeper than orjson's limit of 1024 (any text with that many brackets).
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["STDLIB_ROWS", "decode_at", "loads"]

#: Texts a process decodes with the standard library before it imports orjson.
STDLIB_ROWS = 512

_MAX_BRACKETS = 1000  # below orjson's nesting limit (1024), so depth never differs
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # orjson's integers; outside, it reads a float

_left = STDLIB_ROWS


class _RefusedError(ValueError):
    """The standard library read a value orjson reads otherwise: decode with orjson."""


def _constant(name: str) -> Any:
    raise _RefusedError(name)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _RefusedError(text)
    return value


def _int(text: str) -> int:
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise _RefusedError(text)
    return value


_DECODER = json.JSONDecoder(parse_float=_float, parse_int=_int, parse_constant=_constant)


def _orjson_loads(text: Any) -> Any:
    import orjson  # noqa: PLC0415 - see the module docstring

    return orjson.loads(text)


def loads(text: Any) -> Any:
    """``orjson.loads(text)``: the same value, or the same ``json.JSONDecodeError`` subclass."""
    global _left  # noqa: PLW0603 - the process-wide budget of the standard library's path
    if (
        _left <= 0
        or "orjson" in sys.modules
        or type(text) is not str
        or "\\ud" in text
        or "\\uD" in text
        or text.count("[") + text.count("{") > _MAX_BRACKETS
    ):
        return _orjson_loads(text)
    _left -= 1
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError):
        return _orjson_loads(text)


def decode_at(text: str, at: int) -> tuple[Any, int]:
    """The JSON value that starts at ``text[at]`` (no space before it) and where it ends, as
    the standard library decodes it; ValueError where it fails, and for a value orjson would
    read otherwise (see the module docstring), which the caller then decodes with
    :func:`loads`. For a reader of a text too large to decode whole (``tracking._rows``)."""
    try:
        value, end = _DECODER.raw_decode(text, at)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return value, end
