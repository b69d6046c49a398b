"""Bounded decoding of untrusted JSON (and a depth check for any decoded value).

Every place that decodes JSON it did not write itself (HTTP bodies, ``--input k=<json>``,
``publish --payload``, span files and backend responses) goes through :func:`loads_bounded`,
so that hostile input gets one short :class:`BoundedInputError` instead of a traceback, an
HTTP 500 or unbounded memory:

* ``max_bytes``: the encoded size is checked before anything is decoded;
* bytes must be UTF-8 (the error names the offset of the first bad byte);
* text: a JSON escape may spell a lone UTF-16 surrogate (``"\\ud800"``), a ``str`` that no UTF-8
  writer takes: a span name holding one made ``runs show`` and ``dag`` end in a
  ``UnicodeEncodeError`` traceback. It is refused as a bad byte is (:func:`check_text`, which
  walks the value only when the text holds such an escape);
* numbers: Python refuses to convert an integer of more than 4,300 digits
  (``sys.get_int_max_str_digits``), a ``ValueError`` from inside the decoder that escaped every
  caller catching :class:`BoundedInputError` (a span file holding one was a traceback).
  A caller reading many items in one document (a remote source's answer) passes
  ``long_numbers=True`` instead: such a number decodes to a :class:`LongNumber`, which no
  reader takes for a number, so only the item holding it is lost (one search hit, one span)
  and not every readable one beside it. The document is decoded again for it, with a hook on
  every integer, only when the first decode met such a number: other documents cost nothing;
* ``max_depth``: containers may nest at most this deep. ``json`` itself recurses and raises
  ``RecursionError`` near 1,000 levels; the much lower default keeps every later walker of the
  value (redaction, JSON encoding, CEL conversion) far from Python's recursion limit too;
* values: decoded JSON can take far more memory than its bytes (``[],`` is 3 bytes and a 56-byte
  list, ``0.5,`` 4 bytes and a 24-byte float), so a document is decoded only if it holds at most
  :data:`FREE_VALUES` values or one per ``min_bytes_per_value`` bytes (:data:`MIN_BYTES_PER_VALUE`
  unless a caller says otherwise), a value being a ``{``, ``[`` or ``,`` outside strings: real
  spans have about half that many, and a document of nothing but ``[]`` decodes to tens of times
  its size within ``max_bytes`` and ``max_depth`` alike (:class:`TooDenseError`; figures in
  ``benchmarks/README.md``, "Dense JSON answers"). The count is ``str.count`` of the three
  characters; only a document that this crude count refuses is counted again without its
  strings, so that a text full of commas is not refused for them.

Decision: the default depth limit is 100 levels (real payloads rarely pass 10; orjson refuses
to encode past 254), and there is no default size limit: each caller knows what is large for
its input and passes its own.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "FREE_VALUES",
    "MIN_BYTES_PER_VALUE",
    "BoundedInputError",
    "LongNumber",
    "NotJSONError",
    "TooDenseError",
    "check_depth",
    "check_text",
    "check_unfolded",
    "loads_bounded",
]

#: How deeply containers may nest in decoded input unless a caller says otherwise.
DEFAULT_MAX_DEPTH: Final = 100
#: Bytes a decoded document has per value (``{``, ``[`` or ``,``), at least: about half what
#: compact real spans have.
MIN_BYTES_PER_VALUE: Final = 8
#: Values any document may hold, however short: small inputs (``[1,2,3]``) are never refused,
#: a document nested 100,000 deep is still refused for its depth (the clearer reason), and
#: 131,072 empty lists take about 8 MB.
FREE_VALUES: Final = 2**17
#: Values a value built in Python may hold, each shared sub-value counted every time it is
#: referred to, as a JSON encoder or the CEL binding unfolds it (:func:`check_unfolded`).
MAX_UNFOLDED_VALUES: Final = 2**24
#: A JSON string, escapes included: what the precise count of values leaves out.
_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: A JSON escape of a UTF-16 surrogate (``\\ud83d\\ude00`` is a pair, one character when decoded).
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")

#: Types that never hold other values (what JSON, TOML and YAML scalars decode to, mostly).
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


class BoundedInputError(ValueError):
    """The input is too large, too deeply nested, not UTF-8 or not JSON; ``str()`` is one line."""


class NotJSONError(BoundedInputError):
    """The input is within the limits but is not a JSON document."""


class TooDenseError(BoundedInputError):
    """The input holds more values than its size allows (``holds N values in M bytes, ...``)."""


class LongNumber:
    """An integer of a JSON document too long for Python to read (``loads_bounded``'s
    ``long_numbers``): its count of digits, not its value. ``int()`` and ``float()`` refuse it
    (TypeError), as every reader of a number does, and it is shown by that count."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<a number of {self.digits} digits>"


def _int_or_long(text: str) -> int | LongNumber:
    try:
        return int(text)
    except ValueError:  # past sys.get_int_max_str_digits
        return LongNumber(len(text.lstrip("-")))


def loads_bounded(
    data: bytes | bytearray | str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int | None = None,
    min_bytes_per_value: int | None = MIN_BYTES_PER_VALUE,
    *,
    long_numbers: bool = False,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """Decode the JSON document ``data`` within the limits; BoundedInputError otherwise.

    ``max_bytes`` counts UTF-8 bytes (a ``str`` is measured as its encoding);
    ``min_bytes_per_value`` None decodes a document however dense in values;
    ``long_numbers`` decodes an integer too long to read as a :class:`LongNumber` instead of
    refusing the document (module docstring); ``object_pairs_hook`` is ``json``'s, for a caller
    that builds objects its own way (``tracking._item_flood``). The message starts with
    what is wrong (``larger than …``, ``not UTF-8 …``, ``holds … values …``, ``nested deeper
    than …``, ``a number of more than … digits``, ``not JSON: …``); callers prefix it with
    what they were reading.
    """
    if max_bytes is not None:
        size = len(data) if not isinstance(data, str) else _utf8_length(data, max_bytes)
        if size > max_bytes:
            raise BoundedInputError(f"larger than {max_bytes} bytes")
    if not isinstance(data, str):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BoundedInputError(f"not UTF-8 (invalid byte at offset {exc.start})") from None
    else:
        text = data
    if min_bytes_per_value is not None:
        _check_density(text, min_bytes_per_value)
    try:
        value = _decode(text, max_depth, None, object_pairs_hook)
    except _TooLongError:
        if not long_numbers:
            digits = sys.get_int_max_str_digits()
            raise BoundedInputError(f"a number of more than {digits} digits") from None
        value = _decode(text, max_depth, _int_or_long, object_pairs_hook)
    check_depth(value, max_depth)
    check_text(text, value)
    return value


class _TooLongError(Exception):
    """An integer past Python's bound on ``int()`` met by the decoder."""


def _decode(
    text: str,
    max_depth: int,
    parse_int: Callable[[str], Any] | None,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None,
) -> Any:
    try:
        return json.loads(text, parse_int=parse_int, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise BoundedInputError(f"nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise NotJSONError(f"not JSON: {exc}") from None
    except ValueError:  # Python's own bound on int(), raised inside the decoder
        raise _TooLongError from None


def check_depth(value: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """BoundedInputError if mappings and lists in ``value`` nest deeper than ``max_depth``.

    Iterative (a value nested past the recursion limit is measured too); a scalar has depth 0,
    ``[]`` depth 1. Shared sub-values are walked once per reference, so only call it on
    freshly decoded trees (JSON and TOML have no sharing).
    """
    # Level by level, keeping only the children that may be containers: a decoded document is
    # mostly scalars, and one set lookup of their type is far cheaper than an ABC isinstance.
    level: list[Any] = [value]
    depth = 0
    while True:
        below: list[Any] = []
        containers = False
        for item in level:
            if isinstance(item, dict):
                children: Any = item.values()
            elif isinstance(item, list | tuple):
                children = item
            elif isinstance(item, Mapping):
                children = item.values()
            else:
                continue
            containers = True
            below += [child for child in children if type(child) not in _SCALARS]
        if not containers:
            return
        depth += 1
        if depth > max_depth:
            raise BoundedInputError(f"nested deeper than {max_depth} levels")
        level = below


def check_unfolded(
    value: Any, max_depth: int = DEFAULT_MAX_DEPTH, max_values: int = MAX_UNFOLDED_VALUES
) -> None:
    """:func:`check_depth` for a value built in Python rather than decoded (a handler's
    result), which may share sub-values: BoundedInputError when it nests deeper than
    ``max_depth`` (a value holding itself does without end) or unfolds to more than
    ``max_values`` values, each shared sub-value counted as often as it is referred to.

    Every later walker unfolds sharing: ``x = [x, x]`` forty times over is 81 objects, and
    2**41 values to its JSON encoder and to the CEL binding, which ran out of memory in native
    code. Walked level by level, each level's distinct containers once with how often they are
    reached, so the walk costs at most ``max_depth`` times the distinct containers."""
    level: dict[int, list[Any]] = {id(value): [value, 1]}
    depth = 0
    values = 0
    while True:
        below: dict[int, list[Any]] = {}
        containers = False
        for item, times in level.values():
            kind = type(item)  # the usual kinds first: an ABC's isinstance is far slower
            if kind is dict:
                children: Any = item.values()
            elif kind is list or kind is tuple:
                children = item
            elif isinstance(item, Mapping):
                children = item.values()
            elif isinstance(item, list | tuple):
                children = item
            else:
                continue
            containers = True
            values += times * len(children)
            for child in children:
                if type(child) not in _SCALARS:
                    if (entry := below.get(id(child))) is None:
                        below[id(child)] = [child, times]
                    else:
                        entry[1] += times
        if values > max_values:
            raise BoundedInputError(
                f"holds more than {max_values:,} values, a shared one counted each time it is held"
            )
        if not containers:
            return
        depth += 1
        if depth > max_depth:
            raise BoundedInputError(
                f"nests deeper than {max_depth} levels (a value that holds itself does without end)"
            )
        level = below


def check_text(text: str, value: Any) -> None:
    """BoundedInputError if ``value``, decoded from the JSON ``text``, holds a lone surrogate
    in a string or a key: only looked for when ``text`` escapes a surrogate."""
    if "\\u" not in text or _SURROGATE_ESCAPE.search(text) is None:
        return
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found is not None:
                raise BoundedInputError(f"not UTF-8 (a lone surrogate, \\u{ord(found[0]):04x})")
        elif isinstance(item, dict):
            stack += item
            stack += item.values()
        elif isinstance(item, list):
            stack += item


def _check_density(text: str, min_bytes_per_value: int) -> None:
    """TooDenseError if ``text`` holds more values than its size allows (module docstring)."""
    if len(text) <= FREE_VALUES:
        return  # it cannot hold more values than characters
    values = text.count("[") + text.count("{") + text.count(",")
    if values <= max(FREE_VALUES, len(text) // min_bytes_per_value):
        return
    size = len(text.encode("utf-8", "surrogatepass"))
    if values > max(FREE_VALUES, size // min_bytes_per_value) and '"' in text:
        outside = _STRING.sub("", text)
        values = outside.count("[") + outside.count("{") + outside.count(",")
    if values > max(FREE_VALUES, size // min_bytes_per_value):
        raise TooDenseError(
            f"holds {values} values in {size} bytes, more than one per {min_bytes_per_value} bytes"
        )


def _utf8_length(text: str, limit: int) -> int:
    # A str of n characters encodes to n..4n bytes: only encode when the bounds do not decide.
    if len(text) > limit:
        return len(text)
    if 4 * len(text) <= limit:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))
