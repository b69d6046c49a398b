"""Span attribute values read as numbers, texts and lists, whatever type the source gave them
(a number may arrive as text from one backend and as a number from another), bounded to what
a store row holds. Read by run reconstruction and by the span store's writer.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["NUMBER_BOUND", "float_attribute", "int_attribute", "strings_attribute", "text_or_none"]

#: The magnitude below which a number read from an attribute is kept: what SQLite's
#: ``INTEGER`` holds. Past it (or not finite: ``inf``, ``nan``) no row holds the value, and
#: the store's writer, which aggregates what it reads here, failed its whole batch on one.
NUMBER_BOUND: Final = 2**63


def float_attribute(value: Any) -> float | None:
    """A numeric attribute as a float (text that reads as one too); None for anything else,
    bools included, and for a number no row can hold (``NUMBER_BOUND``). The span store's writer
    reads its kept attempts with it (``_kept_runs``)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -NUMBER_BOUND < number < NUMBER_BOUND else None  # False for nan


def int_attribute(value: Any, default: int | None = None) -> int | None:
    """An integer attribute (a float's whole part, text that reads as one); ``default`` for
    anything else, bools included, and for a number no row can hold (``NUMBER_BOUND``)."""
    if isinstance(value, bool) or value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        return default
    return number if -NUMBER_BOUND <= number < NUMBER_BOUND else default


def strings_attribute(value: Any) -> tuple[str, ...]:
    """A list attribute as a tuple of texts; a single value as a list of one."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple | list):
        return tuple(str(v) for v in value)
    return (str(value),)


def text_or_none(value: Any) -> str | None:
    """An attribute as text; None when absent or empty."""
    return None if value is None or value == "" else str(value)
