"""A remote answer holding far more attributes than its spans can keep, decoded without them.

A reader keeps at most ``MAX_SPAN_ITEMS`` attributes of a span, and as many more that
taskdaemon reads (``spans.bounded``), but only after the answer is decoded: one span of a
million attributes (within ``TASKDAEMON_SOURCE_MAX_BYTES``) was a million small dicts built at
once, many times the answer's size, nearly all of it thrown away. ``json.loads`` is one C call;
a hook on every object bounds what it builds, but costs every answer time (figures in
``benchmarks/README.md``: dns57, remote58).

Decision: the hook is used only on an answer that :func:`flooded` picks out by counting in its
text (``str.count``, a C loop, nothing decoded): more than :data:`FREE_KEY_VALUES` key-values
(``"key"``), and more than twice ``MAX_SPAN_ITEMS`` a span (``"spanId"``, a link's too), which is
far past any answer whose attributes its spans can keep. Every other answer decodes as before.
A text can fool the count (a string holding ``"spanId"`` raises the span count): that answer is
then decoded without the hook, bounded as before by the size cap and ``bounded``'s density
rule; the count is for a backend that stored a runaway span, not a bound against every
hostile answer.

In a picked answer, :class:`Thinner` counts the key-values since the last object that holds
``attributes`` (a span, an event, a link, a resource or scope) closed; past
``MAX_SPAN_ITEMS`` of them, and past as many more that taskdaemon reads, each one decodes to the
one :data:`LEFT_OUT` object instead, and what it held is freed at once. Key-values nested in a
``kvlistValue`` count toward their owner's. The span readers skip ``LEFT_OUT`` and count the
span's left-out attributes as not read (``dropped_attributes``); the answer's warning counts
them all, events' and links' included.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from taskdaemon.pipeline.bounded import loads_bounded
from taskdaemon.pipeline.tracking.spans import MAX_SPAN_ITEMS, is_read_attribute

__all__ = ["FREE_KEY_VALUES", "LEFT_OUT", "Thinner", "flooded", "loads_answer"]

logger = logging.getLogger(__name__)

#: Key-values an answer may hold with no look at its spans (module docstring).
FREE_KEY_VALUES: Final = 100_000
#: The shortest text a key-value is: ``{"key":"","value":{}}``.
_KEY_VALUE_CHARS: Final = 22


class _LeftOut:
    """The type of :data:`LEFT_OUT`: no ``dict``, so no reader takes it for an attribute."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<an attribute left out while decoding>"


#: What a key-value past its owner's bound decodes to (module docstring).
LEFT_OUT: Final = _LeftOut()


def flooded(text: str) -> tuple[int, int] | None:
    """The counts of key-values and spans of ``text`` when it holds far more attributes than
    its spans can keep (module docstring); None for every other text."""
    if len(text) <= FREE_KEY_VALUES * _KEY_VALUE_CHARS:
        return None  # it cannot hold that many
    key_values = text.count('"key"')
    if key_values <= FREE_KEY_VALUES:
        return None
    spans = text.count('"spanId"')
    return (key_values, spans) if key_values > 2 * MAX_SPAN_ITEMS * (spans + 1) else None


class Thinner:
    """``json``'s ``object_pairs_hook`` that leaves out key-values past their owner's bound
    (module docstring); ``left_out`` counts them."""

    def __init__(self) -> None:
        self.left_out = 0
        self._key_values = 0  # since the last owner of attributes closed
        self._read = 0  # of those past the bound, the ones taskdaemon reads kept

    def __call__(self, pairs: list[tuple[str, Any]]) -> Any:
        if pairs and pairs[0][0] == "key":
            self._key_values += 1
            if self._key_values <= MAX_SPAN_ITEMS:
                return dict(pairs)
            if self._read < MAX_SPAN_ITEMS and is_read_attribute(pairs[0][1]):
                self._read += 1
                return dict(pairs)
            self.left_out += 1
            return LEFT_OUT
        if any(key == "attributes" for key, _ in pairs):
            self._key_values = self._read = 0
        return dict(pairs)


def loads_answer(text: str, where: str) -> Any:
    """A remote answer's JSON decoded as ``loads_bounded(text, long_numbers=True)`` does, but
    a flooded one (:func:`flooded`) without the attributes past its spans' bound, counted in one
    warning naming ``where``."""
    counts = flooded(text)
    if counts is None:
        return loads_bounded(text, long_numbers=True)
    thinner = Thinner()
    value = loads_bounded(text, long_numbers=True, object_pairs_hook=thinner)
    if thinner.left_out:
        logger.warning(
            "%s: left out %d attributes while decoding, past the first %d of their span, event "
            "or link (the answer holds %d key-values for %d spans)",
            where,
            thinner.left_out,
            MAX_SPAN_ITEMS,
            *counts,
        )
    return value
