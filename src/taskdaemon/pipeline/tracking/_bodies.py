"""The span store's rows, reading side of an SDK span: a span's attributes, events and links read
in place (``parts``), and the ``body`` column's JSON text (``body``; layout in
``tracking._schema``). Used by the writer thread only (``tracking.writer``).

Span and trace ids are written as ``"%016x" % n`` and ``"%032x" % n``: the same digits and zero
padding as ``format(n, "016x")`` for every int (printf-style ``x`` and the format mini-language
share CPython's conversion), for about half the work (no format-spec parsing).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

__all__ = ["body", "dumps", "parts"]


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
    here: ``benchmarks/json_encoding.py``)."""
    return orjson.dumps(value, default=_json_default).decode()


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
    (enum names through ``_name_``: ``.name`` is a Python-level property, hashing an enum too);
    ``parent`` is the span's, which the caller has read."""
    parent_id = None if parent is None else "%016x" % parent.span_id  # noqa: UP031 (module docstring)
    if ended:
        status = span.status
        code, message = status.status_code._name_, status.description or ""
    else:
        # An open span's status is not final (its end row has it); its events so far are
        # copied in one C call, since the span's own thread may be appending meanwhile.
        code, message = "UNSET", ""
        events = tuple(events)
    return dumps(
        (
            parent_id,
            span.name,
            span.kind._name_,
            code,
            message,
            attributes,
            [(e.name, e.timestamp, _plain(e.attributes)) for e in events] if events else (),
            [
                (
                    "%032x" % link.context.trace_id,  # noqa: UP031 (module docstring)
                    "%016x" % link.context.span_id,  # noqa: UP031 (module docstring)
                    _plain(link.attributes),
                )
                for link in links
            ]
            if links
            else (),
        )
    )
