"""``__eq__``, ``__hash__`` and ``__repr__`` of frozen dataclasses, written once for all of them.

A ``@frozen`` record (``taskdaemon.pipeline.frozen``, which gives every record this base), or a
class declared ``@dataclass(frozen=True, eq=False, repr=False, ...)`` that derives from
:class:`ValueMethods`, compares, hashes and prints exactly as ``@dataclass(frozen=True)`` makes
it: equal when the other object is of the same class and the fields with ``compare=True`` are
equal (else ``NotImplemented``); hashed over the fields ``dataclasses`` hashes (``hash=None``
follows ``compare``); shown as ``QualName(field=value!r, ...)`` over the fields with
``repr=True``, ``...`` for an object met again while it is being shown.
``tests/pipeline_value_methods_test.py`` checks them against the methods ``dataclasses``
generates.

Why: on Python 3.11 ``@dataclass`` compiles every generated method of every class with its own
``exec``, and the ~50 frozen classes of the model, the events and the engine are built at each
command's start-up; the three methods written once here leave half of that compiling out (the
figures are in ``benchmarks/README.md``, "CLI start-up"). The methods are a little slower per
call than generated ones: none of them is on a hot path (events and the model are built,
matched and read, rarely compared or hashed).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ValueMethods"]

# Per class: (names compared, names hashed, names shown).
_NAMES: dict[type, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}
_SHOWING = threading.local()  # ids of the objects this thread's repr is inside


def _names(cls: type) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    names = _NAMES.get(cls)
    if names is None:
        found: Any = getattr(cls, "__record_fields__", None)
        if found is None:  # a dataclass (``frozen.Record`` classes list their fields)
            import dataclasses  # noqa: PLC0415 - a record never needs it

            found = dataclasses.fields(cls)
        names = (
            tuple(f.name for f in found if f.compare),
            tuple(f.name for f in found if (f.compare if f.hash is None else f.hash)),
            tuple(f.name for f in found if f.repr),
        )
        _NAMES[cls] = names
    return names


class ValueMethods:
    """Base of a frozen dataclass declared with ``eq=False, repr=False``: the value methods
    ``dataclasses`` would have generated (see the module docstring)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        compared = _names(self.__class__)[0]
        return tuple(getattr(self, name) for name in compared) == tuple(
            getattr(other, name) for name in compared
        )

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in _names(self.__class__)[1]))

    def __repr__(self) -> str:
        showing: set[int] | None = getattr(_SHOWING, "ids", None)
        if showing is None:
            showing = _SHOWING.ids = set()
        key = id(self)
        if key in showing:
            return "..."
        showing.add(key)
        try:
            shown = ", ".join(
                f"{name}={getattr(self, name)!r}" for name in _names(self.__class__)[2]
            )
            return f"{self.__class__.__qualname__}({shown})"
        finally:
            showing.discard(key)
