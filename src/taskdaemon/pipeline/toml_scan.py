"""A TOML file's text read line by line as TOML reads it: where its strings, brackets and
comments are, and its keys; one scanner for the lines of its fields (``toml_lines``) and its
``# taskdaemon: ignore`` comments (``ignore_comments``).

``tomllib`` gives plain values and no position. What the text itself says is read here:

* :func:`toml_scan` gives each line (split at ``\\n`` only, as ``tomllib`` counts lines), with
  whether it begins at the top (outside every string and bracket: a header or a key may begin
  it, a line inside a multi-line string or a value spread over lines may not) and where its
  comment begins. Strings are skipped in their four forms (basic, literal, and the multi-line
  forms of both), so a ``[``, ``=`` or ``#`` inside one is text; TOML has no unquoted text that
  may hold a ``#``, so one outside every string begins a comment.
* :func:`key_parts` reads a dotted key (bare or quoted parts) up to its ``=``, or a header's
  ``]``.

One pass, linear in the text: the next sign is found by a pattern, and a string's end by
``str.find``, so a text of a million lines is read once. A text ``tomllib`` refused (a file
read again after it changed) gives lines all the same: a string never closed ends its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, NamedTuple

__all__ = ["TomlLine", "key_parts", "toml_scan"]

#: What can change the scan's state on a line: a bracket, a string's quote, a comment's ``#``.
_SIGN: Final = re.compile(r"[\[\]{}#\"']")
_DELIMITERS: Final = ('"""', "'''", '"', "'")
# One part of a key: bare, or quoted ("..." with escapes, '...' raw), with the blanks around it.
_KEY_PART: Final = re.compile(
    r"[ \t]*(?:([A-Za-z0-9_-]+)|\"((?:[^\"\\\n]|\\.)*)\"|'([^'\n]*)')[ \t]*"
)


class TomlLine(NamedTuple):
    """One line of the text: its 1-based ``number``, its ``start`` and ``end`` (of its ``\\n``,
    or of the text) as indices in the text, whether it begins at the ``top`` (see the module
    docstring), and the index of its comment's ``#`` (-1: none)."""

    number: int
    start: int
    end: int
    top: bool
    comment: int


def toml_scan(text: str) -> Iterator[TomlLine]:
    """The lines of ``text``, in order (see the module docstring)."""
    depth = 0  # open brackets of a value spread over lines
    closing: str | None = None  # the delimiter that ends the multi-line string we are in
    start, number, length = 0, 1, len(text)
    while True:
        end = text.find("\n", start)
        if end < 0:
            end = length
        top = closing is None and depth == 0
        at, comment = start, -1
        if closing is not None:
            at = _string_end(text, start, end, closing)
            if at >= 0:
                closing = None
        while at >= 0:
            sign = _SIGN.search(text, at, end)
            if sign is None:
                break
            at = sign.start()
            char = text[at]
            if char == "#":
                comment = at
                break
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth = max(depth - 1, 0)
            else:
                delimiter = next(d for d in _DELIMITERS if text.startswith(d, at))
                at = _string_end(text, at + len(delimiter), end, delimiter)
                if at < 0 and len(delimiter) == 3:
                    closing = delimiter
                continue
            at += 1
        yield TomlLine(number, start, end, top, comment)
        if end == length:
            return
        start, number = end + 1, number + 1


def key_parts(line: str, at: int) -> tuple[list[str], int] | None:
    """The parts of the dotted key in ``line`` from ``at`` up to its ``=`` (or ``]``, a
    header's), and where that ``=`` or ``]`` is; else None."""
    parts = []
    while True:
        part = _KEY_PART.match(line, at)
        if part is None:
            return None
        parts.append(next(group for group in part.groups() if group is not None))
        at = part.end()
        if line.startswith(".", at):
            at += 1
            continue
        return (parts, at) if line.startswith(("=", "]"), at) else None


def _string_end(text: str, at: int, end: int, delimiter: str) -> int:
    """Where the string opened before ``at`` ends before ``end`` (past its delimiter), or -1.
    A multi-line string's closing three quotes may come after one or two of its own: those
    are read as an empty string after it, which changes nothing of the scan."""
    while True:
        found = text.find(delimiter, at, end)
        if found < 0:
            return -1
        if delimiter.startswith('"') and _escaped(text, found):
            at = found + 1
            continue
        return found + len(delimiter)


def _escaped(text: str, at: int) -> bool:
    """True if the character at ``at`` follows an odd number of backslashes."""
    count = 0
    while at - count - 1 >= 0 and text[at - count - 1] == "\\":
        count += 1
    return count % 2 == 1
