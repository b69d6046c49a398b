"""A value taken as a number: an int or a float, not a bool, that a float holds finitely.

One rule for every reader of a number that arrives as a value, not as text (a definition's
field, a structured span attribute): a bool is an int to Python but never a number to YAML or
JSON; ``inf`` and ``NaN`` cannot be written as a time or compared as a limit; and an int past
the largest float makes ``float()`` raise, a traceback instead of the caller's one-line error.
Each caller words its own refusal. Text read as a number is ``ascii_number``'s.
"""

from __future__ import annotations

import sys
from typing import TypeGuard

__all__ = ["is_finite_number", "is_number"]


def is_number(value: object) -> TypeGuard[int | float]:
    """True for an int or a float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """True for a number (:func:`is_number`) within ``sys.float_info.max`` either side: not
    ``inf`` or ``NaN``, and ``float(value)`` never raises."""
    return is_number(value) and -sys.float_info.max <= value <= sys.float_info.max
