"""A number written with ASCII digits: the one rule for text taskdaemon reads as a number.

``int()`` and ``float()`` take any script's digits and spaces (``--port ９０９０`` was 9090,
``１０`` ten), and ``str.isdigit`` takes marks ``int()`` refuses (``²``), which no other reader
of the value (a shell, a YAML parser, a person) would. Every option, setting, path index and
stored field read as a number goes through this module, each caller keeping its own message.
"""

from __future__ import annotations


def ascii_only(text: str) -> str:
    """``text`` if it is ASCII, else ValueError: a number is read as ``int(ascii_only(text))``
    (or ``float``), whose ValueError the caller words."""
    if not text.isascii():
        raise ValueError(text)
    return text


def ascii_digits(text: str) -> bool:
    """True if ``text`` is one or more of ``0``-``9`` and nothing else (no sign, space,
    underscore or other script's digit): what ``int(text)`` reads as the same count."""
    return text.isascii() and text.isdigit()
