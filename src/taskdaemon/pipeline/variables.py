"""taskdaemon's environment variables, read by one rule: the exact name, else the same name
spelt in another case (as the settings have always read them).

Every place that reads a variable itself, rather than through ``settings.load_settings``,
uses :func:`variable`, and the settings use :func:`reader`, so a command and a reader never
disagree on a value (``home.py``'s docstring tells what disagreeing did).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

__all__ = ["reader", "variable"]


def reader(environ: Mapping[str, str] | None = None) -> Callable[[str], str | None]:
    """A lookup of variables in ``environ`` (default: the process's environment) by the rule
    of the module docstring; the names are folded once, at the first name not found as it is
    spelt, for a caller that looks up many."""
    found = os.environ if environ is None else environ
    folded: dict[str, str] | None = None

    def lookup(name: str) -> str | None:
        nonlocal folded
        value = found.get(name)
        if value is None:
            if folded is None:
                folded = {key.upper(): text for key, text in found.items()}
            value = folded.get(name.upper())
        return value

    return lookup


def variable(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of ``name`` in ``environ`` (default: the process's environment) by the rule
    of the module docstring; None when absent."""
    return reader(environ)(name)
