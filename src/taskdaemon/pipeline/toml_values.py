"""Where the pieces of a TOML value spread over lines are: its items, its inline tables' keys,
and the lines of a string's value.

``toml_lines`` gives a key's line; a value may go on over the lines below it, in an array
(``ignore_warnings = [`` and an item a line) or a multi-line string (``expression = '''``). What is
wrong with it is then on a later line, where the author looks for it, as the YAML reader
places a flow sequence's item on its own line:

* :func:`value_lines` walks one value from its key's ``=``: an array's items are numbered as
  the field paths number them (``triggers[1]``), on the line each begins on, an inline table's
  keys on theirs, past comments and blank lines between items, and the line breaks inside
  strings counted. It stops where the value ends: each value of the file is walked once at
  most, so the walk is linear in the text.
* :func:`string_place` gives the file's line and column of a place in a string's value
  (``line 2, column 5`` of a CEL expression), as TOML makes the value: a multi-line string's first
  line break, right after its opening quotes, is not the value's; a ``\\`` ending a line of a basic
  string joins the next non-blank line to it; ``\\n`` (and its ``\\u`` forms) is a line of the value
  on the same line of the file. A ``\\r\\n`` is one line break, as ``tomllib`` reads it.

Only the text of a file ``tomllib`` read is walked (or that file read again: a text that
changed since ends the walk where it no longer reads as TOML, never raises).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final

from taskdaemon.pipeline.toml_scan import STRINGS, key_parts

__all__ = ["string_place", "value_lines"]

#: A value's pieces: a string or a bare word (a number, a date, ``true``), unnamed; a comment
#: (group 1), an opening bracket (2), a closing one (3), a comma (4), a line break (5).
_PIECES: Final = re.compile(
    "|".join(
        (*STRINGS, r"(#[^\n]*)", r"([\[{])", r"([\]}])", r"(,)", r"(\n)", r"[^\s\[\]{},#=\"']+")
    ),
    re.DOTALL,
)
_COMMENT, _OPEN, _CLOSE, _COMMA, _BREAK = 1, 2, 3, 4, 5
#: The parts of a multi-line basic string: a ``\\`` ending its line, which skips the line
#: breaks and blanks after it (group 1); a line break written as an escape (2); any other
#: escape, one character of the value (3); a line break of the file (4); plain characters (5).
_BASIC_PARTS: Final = re.compile(
    r"(\\[ \t]*\r?\n[ \t\r\n]*)|(\\(?:n|u000[aA]|U0000000[aA]))"
    r"|(\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.))|(\r?\n)|([^\\\r\n]+|\r)",
    re.DOTALL,
)
#: A literal string's parts: a line break of the file (4), any other characters (5); the other
#: groups never match (a literal string has no escapes).
_LITERAL_PARTS: Final = re.compile(r"((?!))|((?!))|((?!))|(\r?\n)|([^\r\n]+|\r)")
_JOINED, _ESCAPED_BREAK, _ESCAPE, _FILE_BREAK = 1, 2, 3, 4


def value_lines(
    text: str, at: int, number: int, path: str, *, wanted: Collection[str], found: dict[str, int]
) -> tuple[dict[str, tuple[int, int]], int]:
    """The paths inside the value of ``path`` that begins past ``at`` (its ``=``) on line
    ``number`` put in ``found`` with their lines if ``wanted`` (each the line of its item's or
    key's first character); and where each wanted string value inside it, or the value
    itself when a string, begins: its index in ``text`` and its line (for
    :func:`string_line`); and the index where the value ends (in a text that changed since
    it loaded, where the walk stopped: the text's end at most)."""
    strings: dict[str, tuple[int, int]] = {}
    # The open arrays and inline tables: each one's path and, for an array, its next item.
    opened: list[tuple[str, int | None]] = []
    while (piece := _PIECES.search(text, at)) is not None:
        at, kind = piece.end(), piece.lastindex
        if kind == _BREAK:
            number += 1
        elif kind == _COMMENT:
            pass
        elif kind in (_COMMA, _CLOSE):
            if not opened:
                break
            if kind == _CLOSE:
                opened.pop()
                if not opened:
                    break
            elif (index := opened[-1][1]) is not None:
                opened[-1] = (opened[-1][0], index + 1)
            else:  # the next key of an inline table
                read = _key(text, at, opened[-1][0], number, wanted=wanted, found=found)
                if read is None:
                    break
                path, at = read
        else:  # a value begins: an array's item, a key's value or the value walked
            if opened and (index := opened[-1][1]) is not None:
                path = f"{opened[-1][0]}[{index}]"
                if path in wanted:
                    found.setdefault(path, number)
            if kind == _OPEN:
                table = piece.group(_OPEN) == "{"
                opened.append((path, None if table else 0))
                if (
                    table
                    and (read := _key(text, at, path, number, wanted=wanted, found=found))
                    is not None
                ):
                    path, at = read
                continue
            if path in wanted and text.startswith(("'", '"'), piece.start()):
                strings.setdefault(path, (piece.start(), number))
            number += text.count("\n", piece.start(), at)
            if not opened:
                break
    return strings, at


def _key(
    text: str, at: int, table: str, number: int, *, wanted: Collection[str], found: dict[str, int]
) -> tuple[str, int] | None:
    """The path of the inline table's key that begins at ``at`` (a dotted key's tables each on
    its line too), and the index past its ``=``; None where no key is (``{}``)."""
    read = key_parts(text, at)
    if read is None:
        return None
    path = table
    for part in read[0]:
        path = f"{path}.{part}"
        if path in wanted:
            found.setdefault(path, number)
    return path, read[1] + 1


def string_place(text: str, start: int, number: int, line: int, column: int) -> tuple[int, int]:
    """The file's line and column (from 1) of the place at ``line`` and ``column`` (from 1) of
    the value of the string that begins at index ``start`` of ``text``, on the file's line
    ``number`` (see the module docstring); its line's last character's when the value's line,
    or the value, ends before it."""
    quote = text[start]
    width = 3 if text.startswith(quote * 3, start) else 1
    found = _PIECES.match(text, start)
    stop = len(text) if found is None else found.end()
    if stop - start >= 2 * width and text.startswith(quote * width, stop - width):
        stop -= width  # the closing quotes are not the value's
    at = start + width
    if width == 3 and text.startswith(("\n", "\r\n"), at):  # the line break TOML leaves out
        at = text.index("\n", at) + 1
        number += 1
    line_start = text.rfind("\n", 0, at) + 1
    here, read = 1, 0  # the value's line, and its characters read on it
    last = at  # the file's index past the last character read on the value's line
    for part in (_BASIC_PARTS if quote == '"' else _LITERAL_PARTS).finditer(text, at, stop):
        kind = part.lastindex
        if kind == _JOINED:  # the file's lines go on, the value's line does not
            number += text.count("\n", part.start(), part.end())
            line_start = text.rfind("\n", part.start(), part.end()) + 1
            continue
        if kind in (_ESCAPED_BREAK, _FILE_BREAK):
            if here == line:  # the value's line ends before the column
                break
            here, read, last = here + 1, 0, part.end()
            if kind == _FILE_BREAK:
                number, line_start = number + 1, part.end()
            continue
        size = 1 if kind == _ESCAPE else len(part.group())
        if here == line and read + size >= column:
            index = part.start() + (0 if kind == _ESCAPE else column - read - 1)
            return number, index - line_start + 1
        read, last = read + size, part.end()
    return number, max(last - line_start, 1)
