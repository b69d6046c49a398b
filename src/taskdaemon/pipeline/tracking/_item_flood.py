"""A remote answer holding far more attributes, events or links than its spans can keep,
decoded without them.

A reader keeps at most ``MAX_SPAN_ITEMS`` attributes, events and links of a span, and as many
more that taskdaemon reads (``spans.bounded``), but only after the answer is decoded: one span
of a million attributes, events or links (within ``TASKDAEMON_SOURCE_MAX_BYTES``) was a million
small dicts built at once, many times the answer's size, nearly all of it thrown away.
``json.loads`` is one C call; a hook on every object bounds what it builds, but costs every
answer time (figures in ``benchmarks/README.md``: dns57, remote58).

Decision: the hook is used only on an answer that :func:`flooded` picks out by counting in its
text (``str.count``, a C loop, nothing decoded): more than :data:`FREE_ITEMS` items (a
key-value's ``"key"``, an event's or span's ``"name"``, a link's or span's ``"spanId"``), and
more than twice ``MAX_SPAN_ITEMS`` a span (``"startTimeUnixNano"``, which only a span has),
which is far past any answer whose items its spans can keep. Every other answer decodes as
before. A text can fool the count (a string holding ``"startTimeUnixNano"`` raises the span
count): that answer is then decoded without the hook, bounded as before by the size cap and
``bounded``'s density rule; the count is for a backend that stored a runaway span, not a bound
against every hostile answer.

In a picked answer, :class:`Thinner` tells the objects apart by their keys, as OTLP names them.
It counts the key-values since the last object that holds ``attributes`` (a span, an event, a
link, a resource or scope) closed, and the events and links since the last span closed (a
span's events and links close before it does). Past ``MAX_SPAN_ITEMS`` of them, and past as
many more that taskdaemon reads (``is_read_attribute``, :func:`read_event`,
:func:`trigger_link`), each one decodes to the one :data:`LEFT_OUT` object instead, and what it
held is freed at once. Key-values nested in a ``kvlistValue`` count toward their owner's. A
scope with a name and no version looks like an event without a time: it counts as one event
of the span after it, which then keeps one event fewer of a flood. The span readers skip
``LEFT_OUT`` and count what a span left out as not read (``dropped_attributes``,
``dropped_events``, ``dropped_links``); the answer's warning counts it all, the attributes of
events and links included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.bounded import loads_bounded
from taskdaemon.pipeline.tracking.spans import MAX_SPAN_ITEMS, READ_EVENT_NAMES, is_read_attribute

__all__ = [
    "FREE_ITEMS",
    "LEFT_OUT",
    "Thinner",
    "flooded",
    "loads_answer",
    "read_event",
    "trigger_link",
]

logger = logging.getLogger(__name__)

#: Items an answer may hold with no look at its spans (module docstring).
FREE_ITEMS: Final = 100_000
#: The shortest text an item is: ``{"name":""}`` (a key-value is longer).
_ITEM_CHARS: Final = 11
#: The keys a link may have (OTLP's ``Span.Link``); a span has others too.
_LINK_KEYS: Final = frozenset(
    {"traceId", "spanId", "traceState", "attributes", "droppedAttributesCount", "flags"}
)
#: The keys an event may have (OTLP's ``Span.Event``).
_EVENT_KEYS: Final = frozenset({"timeUnixNano", "name", "attributes", "droppedAttributesCount"})


class _LeftOut:
    """The type of :data:`LEFT_OUT`: no ``dict``, so no reader takes it for an item."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<an item left out while decoding>"


#: What an attribute, event or link past its owner's bound decodes to (module docstring).
LEFT_OUT: Final = _LeftOut()


def read_event(raw: Any) -> bool:
    """Whether an OTLP event (decoded JSON) is one taskdaemon reads (``READ_EVENT_NAMES``)."""
    name = raw.get("name") if type(raw) is dict else None
    return type(name) is str and name in READ_EVENT_NAMES


def trigger_link(raw: Any) -> bool:
    """Whether an OTLP link (decoded JSON) names what triggered its stage."""
    items = raw.get("attributes") if type(raw) is dict else None
    return type(items) is list and any(
        type(item) is dict
        and item.get("key") == t.LINK_RELATION
        and type(value := item.get("value")) is dict
        and value.get("stringValue") == t.LINK_TRIGGERED_BY
        for item in items
    )


def flooded(text: str) -> tuple[int, int] | None:
    """The counts of items and spans of ``text`` when it holds far more attributes, events or
    links than its spans can keep (module docstring); None for every other text."""
    if len(text) <= FREE_ITEMS * _ITEM_CHARS:
        return None  # it cannot hold that many
    items = text.count('"key"') + text.count('"name"') + text.count('"spanId"')
    if items <= FREE_ITEMS:
        return None
    spans = text.count('"startTimeUnixNano"')
    return (items, spans) if items > 2 * MAX_SPAN_ITEMS * (spans + 1) else None


class _Bound:
    """The items of one owner: ``MAX_SPAN_ITEMS`` kept, then as many more that are read; the
    rest counted in ``left_out``."""

    __slots__ = ("_read", "_seen", "left_out")

    def __init__(self) -> None:
        self.left_out = self._seen = self._read = 0

    def keeps(self, item: Any, read: Callable[[Any], bool]) -> bool:
        """Whether the owner's next item is kept; ``read`` says whether taskdaemon reads it."""
        self._seen += 1
        if self._seen <= MAX_SPAN_ITEMS:
            return True
        if self._read < MAX_SPAN_ITEMS and read(item):
            self._read += 1
            return True
        self.left_out += 1
        return False

    def restart(self) -> None:
        """A new owner: none of its items seen yet."""
        self._seen = self._read = 0


class Thinner:
    """``json``'s ``object_pairs_hook`` that leaves out the attributes, events and links past
    their owner's bound (module docstring); ``attributes``, ``events`` and ``links`` count
    them."""

    def __init__(self) -> None:
        self.attributes, self.events, self.links = _Bound(), _Bound(), _Bound()

    def __call__(self, pairs: list[tuple[str, Any]]) -> Any:
        if pairs and pairs[0][0] == "key":
            return (
                dict(pairs) if self.attributes.keeps(pairs[0][1], is_read_attribute) else LEFT_OUT
            )
        value = dict(pairs)
        if "attributes" in value:
            self.attributes.restart()
        if "spanId" in value:
            if _LINK_KEYS.issuperset(value):
                return value if self.links.keeps(value, trigger_link) else LEFT_OUT
            self.events.restart()
            self.links.restart()
        elif ("name" in value or "timeUnixNano" in value) and _EVENT_KEYS.issuperset(value):
            return value if self.events.keeps(value, read_event) else LEFT_OUT
        return value


def loads_answer(text: str, where: str) -> Any:
    """A remote answer's JSON decoded as ``loads_bounded(text, long_numbers=True)`` does, but
    a flooded one (:func:`flooded`) without the attributes, events and links past their
    owners' bound, counted in one warning naming ``where``."""
    counts = flooded(text)
    if counts is None:
        return loads_bounded(text, long_numbers=True)
    thinner = Thinner()
    value = loads_bounded(text, long_numbers=True, object_pairs_hook=thinner)
    left = (thinner.attributes.left_out, thinner.events.left_out, thinner.links.left_out)
    if any(left):
        logger.warning(
            "%s: left out %d attributes, %d events and %d links while decoding, past the first "
            "%d of their span, event or link (the answer holds %d items for %d spans)",
            where,
            *left,
            MAX_SPAN_ITEMS,
            *counts,
        )
    return value
