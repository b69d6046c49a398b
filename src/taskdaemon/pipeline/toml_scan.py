"""A TOML file's text read as TOML reads it: where its strings, brackets and comments are,
and its keys; one scanner for the lines of its fields (``toml_lines``) and its ``#
taskdaemon: ignore`` comments (``ignore_comments``).

``tomllib`` gives plain values and no position. What the text itself says is read here:

* :func:`toml_scan` gives each line (split at ``\\n`` only, as ``tomllib`` counts lines), with
  whether it begins at the top (outside every string and bracket: a header or a key may begin
  it, a line inside a multi-line string or a value spread over lines may not). Strings are
  skipped in their four forms (basic, literal, and the multi-line forms of both), so a ``[``,
  ``=`` or ``#`` inside one is text; TOML has no unquoted text that may hold a ``#``, so one
  outside every string begins a comment, which is skipped whole.
* :func:`key_parts` reads a dotted key (bare or quoted parts) up to its ``=``, or a header's
  ``]``.

One pass of one pattern over the text, linear: a text of a million lines is read once. The
strings and comments alone, without the lines, are :func:`toml_comments`'s, read by the same
pattern less brackets and line breaks, which leaves less for Python to loop over. A text
``tomllib`` refused (a file read again after it changed) gives lines all the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, NamedTuple

__all__ = ["STRINGS", "TomlComment", "TomlLine", "key_parts", "toml_comments", "toml_scan"]

#: TOML's strings, each form once: multi-line basic (which may end in one or two quotes of its
#: own before its closing three, ``"""a"""""``), multi-line literal, basic, literal; and, in a
#: text ``tomllib`` refused, a quote never closed, which ends its line (else each quote after it
#: on the line would look for its end again: quadratic). A string with escapes is read as runs
#: of plain characters between its escapes (and, multi-line, its lone quotes), each possessive
#: (``*+``): an alternation repeated per character, ``(?:[^"\\]|\\.)*``, makes ``re`` keep a
#: backtracking entry per character, many times the string's own size.
STRINGS: Final = (
    r'"""[^\\"]*+(?:(?:\\.|"(?!""))[^\\"]*+)*+"""(?:""?)?',
    r"'''.*?'''(?:''?)?",
    r'"[^"\\\n]*+(?:\\[^\n][^"\\\n]*+)*+"',
    r"'[^'\n]*'",
    r"[\"'][^\n]*",
)
_COMMENT: Final = r"(#[^\n]*)"
#: What the lines need: a string, a comment (group 1), a bracket (2), a line break (3).
_PARTS: Final = re.compile("|".join((*STRINGS, _COMMENT, r"([\[\]{}])", r"(\n)")), re.DOTALL)
#: What the comments need: a string, skipped, or a comment (group 1).
_STRINGS_OR_COMMENT: Final = re.compile("|".join((*STRINGS, _COMMENT)), re.DOTALL)
# One part of a key: bare, or quoted ("..." with escapes, '...' raw), with the blanks around it.
_KEY_PART: Final = re.compile(
    r"[ \t]*(?:([A-Za-z0-9_-]+)|\"([^\"\\\n]*+(?:\\.[^\"\\\n]*+)*+)\"|'([^'\n]*)')[ \t]*"
)


class TomlComment(NamedTuple):
    """One comment: its 1-based ``line`` and ``column`` (of its ``#``), and its ``start`` and
    ``end`` as indices in the text."""

    line: int
    column: int
    start: int
    end: int


class TomlLine(NamedTuple):
    """One line of the text: its 1-based ``number``, its ``start`` and ``end`` (of its ``\\n``,
    or of the text) as indices in the text, and whether it begins at the ``top`` (see the
    module docstring). Where a comment is, :func:`toml_comments` says: no reader of the lines
    asked it of them."""

    number: int
    start: int
    end: int
    top: bool


def toml_scan(text: str) -> Iterator[TomlLine]:
    """The lines of ``text``, in order (see the module docstring)."""
    depth = 0  # open brackets of a value spread over lines
    number, start, top = 1, 0, True  # the line being read
    for part in _PARTS.finditer(text):
        kind = part.lastindex
        if kind == 3:  # its line break
            yield TomlLine(number, start, part.start(), top)
            number, start, top = number + 1, part.end(), depth == 0
        elif kind == 2:
            depth = depth + 1 if part.group(2) in "[{" else max(depth - 1, 0)
        elif kind is None:  # a string: a multi-line one's line breaks are lines inside it
            at = text.find("\n", part.start(), part.end())
            while at >= 0:
                yield TomlLine(number, start, at, top)
                number, start, top = number + 1, at + 1, False
                at = text.find("\n", start, part.end())
        # a comment (1) is skipped whole: a bracket in it is text
    yield TomlLine(number, start, len(text), top)


def toml_comments(text: str) -> Iterator[TomlComment]:
    """The comments of ``text``, in order: only comments and strings are read, so this is
    cheaper than the lines of :func:`toml_scan` when the comments are all that is wanted."""
    number, counted = 1, 0
    for part in _STRINGS_OR_COMMENT.finditer(text):
        if part.lastindex == 1:
            number += text.count("\n", counted, part.start())
            counted = part.start()
            column = part.start() - text.rfind("\n", 0, part.start())
            yield TomlComment(number, column, part.start(), part.end())


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
