"""The span store's rows, reading side of an SDK span: a span's attributes, events and links read
in place (``parts``), and the ``body`` column's JSON text (``body``; layout in
``tracking._tables``); for the report aggregates' kept attempts, the span ids its links name
and its events of one name, read the same way (``linked_span_ids``, ``named_events``). Used by
the writer thread only (``tracking._span_batches``, ``tracking._kept_runs``).

Span and trace ids are written as ``"%016x" % n`` and ``"%032x" % n``: the same digits and zero
padding as ``format(n, "016x")`` for every int (printf-style ``x`` and the format mini-language
share CPython's conversion), for about half the work (no format-spec parsing).

A span's fields (``fields``, ``body``) and its events' are read from the private attributes the
SDK's properties return, when the span's class and the event's are the SDK's own (each such
property is ``return self._x``, the same look-up): a property is a Python call, several per span
and three per event, on every row and every open span's rewrite. Any other class goes through
the public properties.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any, Final

import orjson
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, EventBase, ReadableSpan
from opentelemetry.trace import Link, SpanContext, _LinkBase

__all__ = ["body", "dropped", "dumps", "fields", "linked_span_ids", "named_events", "parts"]

#: The span fields the writer reads of each span: ``fields``' and ``body``'s.
_FIELDS: Final = ("end_time", "parent", "context", "start_time", "resource")
_HEAD: Final = ("name", "kind", "status")
#: Per span class, the getter of those fields: of the private attributes when each of the
#: class's properties is ``ReadableSpan``'s own (module docstring; the SDK's two span classes),
#: else of the properties: one look-up and one C call a span, where each property was a
#: Python call.
_field_getters: dict[type, Callable[[Any], tuple[Any, ...]]] = {}
_head_getters: dict[type, Callable[[Any], tuple[Any, ...]]] = {}
#: ``dropped`` of a span that dropped nothing: ``body`` compares with it, no ``any()`` call.
_NOTHING_DROPPED: Final = (0, 0, 0)
#: ``Event``, whose events are read in place, if its three properties are still the SDK's plain
#: field reads (checked once); else None, and every event goes through its properties.
_SDK_EVENT: Final = (
    Event
    if Event.name is vars(EventBase)["name"]
    and Event.timestamp is vars(EventBase)["timestamp"]
    and Event.attributes is vars(Event)["attributes"]
    else None
)
#: ``Link``, likewise (its ``context`` and ``attributes``: ``_LinkBase``'s and its own).
_SDK_LINK: Final = (
    Link
    if Link.context is vars(_LinkBase)["context"] and Link.attributes is vars(Link)["attributes"]
    else None
)


def linked_span_ids(links: Sequence[Any]) -> tuple[int, ...]:
    """The span ids (ints) that a span's ``links`` (as ``parts`` gives them) name, an SDK link's
    read in place (plain loops: a comprehension costs a call)."""
    ids: tuple[int, ...] = ()
    for link in links:
        if type(link) is _SDK_LINK and type(c := link._context) is SpanContext:
            ids += (c[1],)
        else:
            ids += (link.context.span_id,)
    return ids


def named_events(events: Sequence[Any], name: str) -> tuple[tuple[int, Any], ...]:
    """(time ns, attributes) of a span's ``events`` (as ``parts`` gives them) called ``name``,
    an SDK event's read in place."""
    found: tuple[tuple[int, Any], ...] = ()
    for e in events:
        if type(e) is _SDK_EVENT:
            if e._name == name:
                found += ((e._timestamp, e._attributes),)
        elif e.name == name:
            found += ((e.timestamp, e.attributes),)
    return found


def _getter(cls: type, names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``attrgetter`` of ``names`` for spans of class ``cls``: of their private attributes when
    each of those properties of ``cls`` is ``ReadableSpan``'s own, of the properties else."""
    own = vars(ReadableSpan)
    if all(getattr(cls, name, None) is own[name] for name in names):
        return attrgetter(*(f"_{name}" for name in names))
    return attrgetter(*names)


def fields(span: ReadableSpan) -> tuple[Any, ...]:
    """``(end_time, parent, context, start_time, resource)`` of ``span``."""
    cls = type(span)
    read = _field_getters.get(cls)
    if read is None:
        read = _field_getters[cls] = _getter(cls, _FIELDS)
    return read(span)


def parts(span: ReadableSpan) -> tuple[Mapping[str, Any], Sequence[Any], Sequence[Any]]:
    """A span's attributes, events and links.

    For spans the SDK built (``Span`` and the ``ReadableSpan`` it hands to ``on_end``): the dict
    inside their ``BoundedAttributes`` and the deques inside their ``BoundedList``s, read in
    place. The public properties copy them through Python-level locks on every access, which
    costs more than the rest of the row; reading in place is safe because the writer only reads
    them while holding the GIL (one orjson call, one lookup at a time). Any other layout goes
    through the public properties.
    """
    raw: Any = span
    try:
        attributes, events, links = raw._attributes._dict, raw._events._dq, raw._links._dq
    except AttributeError:
        return span.attributes or {}, span.events, span.links
    if type(attributes) is dict and type(events) is deque and type(links) is deque:
        return attributes, events, links
    return span.attributes or {}, span.events, span.links


def dropped(span: ReadableSpan) -> tuple[int, int, int]:
    """The attributes, events and links the SDK dropped from ``span`` past its limits: the
    counts of its ``BoundedAttributes`` and ``BoundedList``s read in place as in ``parts``,
    else the public properties (a span without them has dropped nothing)."""
    raw: Any = span
    try:
        return raw._attributes.dropped, raw._events.dropped, raw._links.dropped
    except AttributeError:
        return (
            getattr(span, "dropped_attributes", 0),
            getattr(span, "dropped_events", 0),
            getattr(span, "dropped_links", 0),
        )


def _plain(attributes: Any) -> Any:
    """An event's or link's attributes for the JSON body: the dict inside the SDK's
    ``BoundedAttributes``, read in place as in ``parts`` (its ``len`` and its ABC type test,
    through orjson's ``default``, cost more than the encoding); anything else as it is."""
    inner = getattr(attributes, "_dict", None)
    if type(inner) is dict:
        return inner
    return attributes if attributes else {}


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):  # attributes of a layout _plain does not know
        return dict(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value: Any) -> str:
    """Compact JSON text via orjson (an order of magnitude faster than the standard library
    here: ``benchmarks/json_encoding.py``).

    orjson refuses an int past 64 bits; such a value (an attribute another library's span
    sets, under ``opentelemetry-instrument``) is written as its digits, as text
    (:func:`_wide_ints_as_text`), rather than failing the span, and with it the writer's
    whole batch: the spans of every run written with it."""
    try:
        return orjson.dumps(value, default=_json_default).decode()
    except TypeError:  # a wide int, or a value nothing encodes: raised again by the retry
        return orjson.dumps(_wide_ints_as_text(value), default=_json_default).decode()


def _wide_ints_as_text(value: Any) -> Any:
    """``value`` with every int orjson cannot write (past 64 bits) as its decimal text, and
    the containers holding one copied (tuples and lists as lists, mappings as dicts)."""
    if type(value) is int:
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, tuple | list):
        return [_wide_ints_as_text(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _wide_ints_as_text(item) for key, item in value.items()}
    return value


def body(
    span: ReadableSpan,
    parent: SpanContext | None,
    attributes: Mapping[str, Any],
    events: Sequence[Any],
    links: Sequence[Any],
    *,
    ended: bool,
) -> str:
    """The ``body`` column: ``[parent, name, kind, status, message, attributes, events, links]``
    (enum names through ``_name_``: ``.name`` is a Python-level property, hashing an enum too),
    and a ninth item, ``[attributes, events, links]`` the SDK dropped (``dropped``), only when
    it dropped some; ``parent`` is the span's, which the caller has read."""
    if parent is None:
        parent_id = None
    else:  # a ``SpanContext``'s ``span_id`` is its second item (as a link's, below)
        span_no = parent[1] if type(parent) is SpanContext else parent.span_id
        parent_id = "%016x" % span_no  # noqa: UP031 (module docstring)
    cls = type(span)
    read = _head_getters.get(cls)
    if read is None:
        read = _head_getters[cls] = _getter(cls, _HEAD)
    name, kind, status = read(span)
    if ended:
        code, message = status.status_code._name_, status.description or ""
    else:
        # An open span's status is not final (its end row has it); its events so far are
        # copied in one C call, since the span's own thread may be appending meanwhile.
        code, message = "UNSET", ""
        events = tuple(events)
    row = (
        parent_id,
        name,
        kind._name_,
        code,
        message,
        attributes,
        # An SDK event's fields and its attributes' dict read in place (module docstring),
        # inline: four Python calls an event fewer (three properties and ``_plain``).
        [
            (
                e._name,
                e._timestamp,
                a._dict if type(a := e._attributes) is BoundedAttributes else _plain(a),
            )
            if type(e) is _SDK_EVENT
            else (e.name, e.timestamp, _plain(e.attributes))
            for e in events
        ]
        if events
        else (),
        # The same for a link, and its ``SpanContext``'s ids as the tuple items its
        # ``trace_id`` and ``span_id`` properties return.
        [
            (
                "%032x" % c[0],  # noqa: UP031 (module docstring)
                "%016x" % c[1],  # noqa: UP031 (module docstring)
                a._dict if type(a := link._attributes) is BoundedAttributes else _plain(a),
            )
            if type(link) is _SDK_LINK and type(c := link._context) is SpanContext
            else (
                "%032x" % link.context.trace_id,  # noqa: UP031 (module docstring)
                "%016x" % link.context.span_id,  # noqa: UP031 (module docstring)
                _plain(link.attributes),
            )
            for link in links
        ]
        if links
        else (),
    )
    lost = dropped(span)
    return dumps(row if lost == _NOTHING_DROPPED else (*row, lost))
