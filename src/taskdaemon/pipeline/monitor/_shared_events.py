"""Span events whose attributes equal an earlier event's share its attribute mapping.

The SDK's ``Span.add_event`` builds a ``BoundedAttributes`` for every event: it checks and
cleans each value and sets each key under a lock, about five times what recording the event
costs otherwise. Its result is immutable. A pipeline's ``trigger.evaluated`` events repeat a
few attribute sets (one per stage, trigger and outcome) across every run, so
:class:`SharedEventAttributes` keeps the mapping made for each set and records later events
with it, through the SDK span's own ``_add_event`` with the SDK's own ``Event``, as
``add_event`` does after building the mapping: the same events, attributes, limits and
dropped counts, read by processors, the span store and exporters alike.

Only an SDK span whose ``add_event`` is the SDK's own gets a shared mapping, and only on an
SDK minor version this was compared against (``metrics._direct.CHECKED_SDK``: it reads the
span's private ``_add_event`` and ``_limits``); any other span (a subclass, another SDK's, a
non-recording one) gets ``add_event`` as usual. The mapping is
built with the span's own limits, which are part of the key. Keys hold each value's type
beside it (``True`` and ``1`` are equal as keys, not as attributes).

A mapping seen for the first time is made without the SDK's cleaning when the cleaning would
keep every value as it is (``as_cleaned``, ``bounded``): most events, since their values are
texts, numbers and flags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import Span

from taskdaemon.pipeline.metrics import sdk_checked

__all__ = ["SharedEventAttributes", "SharedMappingEvents", "as_cleaned", "bounded"]

#: At most this many attribute sets are kept (later new sets are built for their event only).
_KEPT_MAX = 10_000


#: The value types the SDK's cleaning returns as they are (a ``str`` within the length limit).
_AS_THEY_ARE = frozenset({bool, int, float, bytes, type(None)})


def as_cleaned(attributes: Mapping[str, Any], length: int | None) -> bool:
    """Whether the SDK's cleaning keeps every key and value of ``attributes`` as it is, under
    the length limit ``length``: non-empty text keys, values of a type it returns unchanged,
    texts within ``length``."""
    for key, value in attributes.items():
        if type(key) is not str or not key:
            return False
        kind = type(value)
        if kind is str:
            if length is not None and len(value) > length:
                return False
        elif kind not in _AS_THEY_ARE:
            return False
    return True


def bounded(made: Any, count: int | None, length: int | None, attributes: Mapping[str, Any]) -> Any:
    """``made(count, attributes, max_value_len=length, immutable=True)``: the SDK's immutable
    ``BoundedAttributes`` class ``made`` of ``attributes``, with the limits ``count`` and
    ``length``.

    When the SDK's cleaning would keep them as they are (``as_cleaned``) and there are no more
    than ``count``, the mapping is made empty and given a copy of ``attributes``, as the SDK's
    own ``__deepcopy__`` does: the same contents, order, limits and dropped count, without a
    cleaning call and a locked set per value. Anything else is built by ``made`` itself."""
    if (count is None or len(attributes) <= count) and as_cleaned(attributes, length):
        shared = made(count, None, max_value_len=length, immutable=True)
        shared._dict = dict(attributes)
        return shared
    return made(count, attributes, max_value_len=length, immutable=True)


class SharedEventAttributes:
    """The immutable attribute mappings of events named ``name`` with the keys ``keys``, one
    per set of values, shared by the events recorded with :meth:`add`."""

    def __init__(self, name: str, keys: Sequence[str]) -> None:
        self._name = name
        self._keys = tuple(keys)
        self._kept: dict[tuple[Any, ...], Any] = {}
        self._span_class: Any = None
        self._event: Any = None
        self._bounded: Any = None
        self._loaded = False

    def _load(self) -> None:
        """The SDK's span and event classes and ``BoundedAttributes``, when the SDK's span
        still builds its events as this module reads it; else none (``add_event`` always)."""
        self._loaded = True
        if not sdk_checked():
            return
        try:
            from opentelemetry.attributes import BoundedAttributes  # noqa: PLC0415
            from opentelemetry.sdk import trace as sdk_trace  # noqa: PLC0415
        except ImportError:
            return
        made = getattr(sdk_trace, "_Span", None)
        if (
            made is None
            or made.add_event is not vars(sdk_trace.Span)["add_event"]
            or not hasattr(made, "_add_event")
        ):
            return
        self._span_class = made
        self._event = sdk_trace.Event
        self._bounded = BoundedAttributes

    def add(self, span: Span, values: tuple[Any, ...], timestamp: int) -> None:
        """Record the event with ``values`` for the keys (already redacted, as
        ``RedactingSpan.add_redacted_event`` takes them) on ``span``, an SDK span (what a
        ``RedactingSpan`` wraps) or any other."""
        if not self._loaded:
            self._load()
        if type(span) is not self._span_class:
            plain = dict(zip(self._keys, values, strict=True))
            span.add_event(self._name, plain, timestamp=timestamp)
            return
        limits = span._limits  # type: ignore[attr-defined]
        count, length = limits.max_event_attributes, limits.max_attribute_length
        key = (count, length, *values, *map(type, values))
        attributes = self._kept.get(key)
        if attributes is None:
            # What ``add_event`` builds, with the span's limits.
            plain = dict(zip(self._keys, values, strict=True))
            attributes = bounded(self._bounded, count, length, plain)
            if len(self._kept) < _KEPT_MAX:
                self._kept[key] = attributes
        span._add_event(self._event(self._name, attributes, timestamp))  # type: ignore[attr-defined]


class SharedMappingEvents:
    """Events recorded with attribute mappings the caller keeps and records again (a memo's),
    each built into the SDK's immutable mapping once per span limits and shared after (module
    docstring). The caller must not change a mapping it passed, nor pass mappings it does not
    keep: each is held here, up to a bound, until :meth:`forget`."""

    def __init__(self) -> None:
        self._sdk = SharedEventAttributes("", ())
        self._kept: dict[int, tuple[Mapping[str, Any], tuple[Any, Any], Any]] = {}

    def add(self, span: Span, name: str, attributes: Mapping[str, Any], timestamp: int) -> None:
        """Record the event ``name`` with ``attributes`` (already redacted) on ``span``."""
        sdk = self._sdk
        if not sdk._loaded:
            sdk._load()
        if type(span) is not sdk._span_class:
            span.add_event(name, attributes, timestamp=timestamp)
            return
        limits = span._limits  # type: ignore[attr-defined]
        bounds = (limits.max_event_attributes, limits.max_attribute_length)
        kept = self._kept.get(id(attributes))
        if kept is not None and kept[0] is attributes and kept[1] == bounds:
            shared = kept[2]
        else:
            # What ``add_event`` builds, with the span's limits.
            shared = bounded(sdk._bounded, bounds[0], bounds[1], attributes)
            if kept is not None or len(self._kept) < _KEPT_MAX:
                self._kept[id(attributes)] = (attributes, bounds, shared)
        span._add_event(sdk._event(name, shared, timestamp))  # type: ignore[attr-defined]

    def forget(self) -> None:
        """Let go of every mapping (the caller's memo let go of them)."""
        self._kept.clear()
