"""Where a place inside a YAML scalar's value is in the file: a CEL expression's syntax error
(``line 2, column 5`` of the value) on the file's line and column of it.

A scalar's value is not its text: YAML folds, strips and unescapes it, by its style:

* plain, ``'single'`` and ``"double"`` quoted (flow scalars): a line break between two lines
  of text is a space, each empty line between them a line break of the value; the blanks
  around a line break are not the value's (but those inside the quotes before the first and
  after the last); ``''`` is one quote; in double quotes an escape is one character
  (``\\n`` a line break of the value on the same line of the file), and a ``\\`` ending a
  line joins the next without a space;
* ``|`` literal: each line of the file past the header (and a comment there) is one line of
  the value, less the block's indentation, whatever its chomping. The indentation is read
  off the value: the first line's spaces less the value's there, so a header's digit (``|2``)
  needs no parent's indentation; a line of spaces only is empty unless longer than it;
* ``>`` folded: as literal, but a line break between two lines of text that do not begin
  with a blank is a space, or, with empty lines between, that many line breaks.

:func:`scalar_place` walks the text of one scalar (from the parser's event: its style and
marks) as YAML builds its value, piece by piece, and stops at the piece that holds the place.
Each piece is checked against the value the parser gave: where they differ (a construct not
followed here, a ``\\u2028`` line break, which CEL does not count as one) the walk gives up,
and the issue stays on its key's line, as before. Only a file with an issue inside a value
asks, for the scalars of its issues' paths (``yaml_lines`` keeps their events):
a valid file pays nothing. The walk holds nothing per character (a scalar's pieces are
generated, not kept).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Final

from taskdaemon.pipeline.yamlsafe import YAML_BREAK

__all__ = ["scalar_place", "yaml_value_lines"]

#: A line break (group 3) or blanks (4) of a flow scalar.
_BREAK_OR_BLANKS = r"|(\r\n|[\r\n\x85\u2028\u2029])|([ \t]+)"
#: A flow scalar's parts, by its style: an escaped line break (group 1), an escape (2), a line
#: break (3), blanks (4), ``''`` (5), other text (6). Only double quotes have escapes, only
#: single quotes ``''``; a group a style has not never matches (``((?!))``).
_FLOW: Final = {
    '"': re.compile(
        r"(\\(?:\r\n|[\r\n\x85\u2028\u2029]))"
        r"|(\\(?:x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.))"
        + _BREAK_OR_BLANKS
        + r"|((?!))|([^ \t\r\n\x85\u2028\u2029\\]+)",
        re.DOTALL,
    ),
    "'": re.compile(r"((?!))|((?!))" + _BREAK_OR_BLANKS + r"|('')|([^ \t\r\n\x85\u2028\u2029']+)"),
    "": re.compile(r"((?!))|((?!))" + _BREAK_OR_BLANKS + r"|((?!))|([^ \t\r\n\x85\u2028\u2029]+)"),
}
_ESCAPED_BREAK, _ESCAPE, _BREAK, _BLANKS, _QUOTE = 1, 2, 3, 4, 5
#: An escape's piece: one character of the value, whatever it is (not checked).
_ONE: Final = "\0"
_SPACES: Final = re.compile(" *")
#: A block scalar's header: its indicator, then its indentation digit and chomping sign in
#: either order.
_HEADER: Final = re.compile(r"[|>](?:([1-9])[+-]?|[+-]([1-9])?)?")
#: The anchor and tag an event's start mark may stand on, and the blanks, line breaks and
#: comments after them, before the scalar itself.
_PROPERTIES: Final = re.compile(r"(?:[&!][^ \t\r\n]*|[ \t\r\n]+|#[^\r\n]*)*")

#: One piece of a scalar's value: its text, the index in the file where it is written, and
#: whether its characters are the file's one for one (else all are at that index).
_Piece = tuple[str, int, bool]


def yaml_value_lines(
    text: str, wanted: Collection[tuple[str, int, int]], scalars: Mapping[str, Any]
) -> dict[tuple[str, int, int], tuple[int, int]]:
    """The file's line and column of each wanted ``(path, line, column)`` (a place, from 1, in
    the value at ``path``) whose scalar event is in ``scalars`` and is walked to the place."""
    found: dict[tuple[str, int, int], tuple[int, int]] = {}
    for path, line, column in wanted:
        event = scalars.get(path)
        place = None if event is None else scalar_place(text, event, line, column)
        if place is not None:
            found[(path, line, column)] = place
    return found


def scalar_place(text: str, event: Any, line: int, column: int) -> tuple[int, int] | None:
    """The file's line and column (from 1) of the place at ``line`` and ``column`` (from 1) of
    the value of the scalar the parser's ``event`` gives (its last character's when the
    value's line, or the value, ends before it); None where the walk gives up."""
    value: str = event.value
    start, end = event.start_mark.index, event.end_mark.index
    if event.anchor is not None or event.tag is not None:
        properties = _PROPERTIES.match(text, start, end)
        start = start if properties is None else properties.end()
    style = event.style or ""  # the C parser's plain style is "", the Python one's None
    if style in ("|", ">"):
        pieces = _block_pieces(text, start, end, value, folded=style == ">")
    elif style in ('"', "'"):
        pieces = _flow_pieces(text, start + 1, end - 1, style)
    else:
        pieces = _flow_pieces(text, start, end, "")
    offset = _offset(value, line, column)
    index = _index(pieces, value, offset)
    if index is None:
        return None
    mark = event.start_mark
    number, line_start = mark.line + 1, mark.index - mark.column
    for found in YAML_BREAK.finditer(text, mark.index, index):
        number, line_start = number + 1, found.end()
    return number, index - line_start + 1


def _offset(value: str, line: int, column: int) -> int:
    """The index in ``value`` of its place at ``line`` and ``column``: its line's end at most,
    the value's end past its last line."""
    at = 0
    for _ in range(line - 1):
        at = value.find("\n", at) + 1
        if not at:
            return len(value)
    end = value.find("\n", at)
    return min(at + column - 1, len(value) if end == -1 else end)


def _index(pieces: Iterator[_Piece], value: str, offset: int) -> int | None:
    """The file's index of ``value``'s character at ``offset``, from its ``pieces`` (each
    checked against the value); past its last piece, its last character's; None where a
    piece is not the value's."""
    read, last = 0, None
    for piece, where, one_for_one in pieces:
        if piece is _ONE:
            if read >= len(value):
                return None
        elif not value.startswith(piece, read):
            return None
        if read + len(piece) > offset:
            return where + (offset - read if one_for_one else 0)
        read += len(piece)
        last = where + len(piece) - 1 if one_for_one else where
    return last


def _flow_pieces(text: str, start: int, end: int, style: str) -> Iterator[_Piece]:
    """The pieces of a flow scalar's value written at ``start:end`` (inside its quotes)."""
    blanks: tuple[str, int] | None = None  # blanks not yet known to be the value's
    folding = False  # past a line break, until the next text
    escaped = False  # that line break escaped
    empty = 0  # the empty lines since
    at = 0  # where the first line break is
    for part in _FLOW[style].finditer(text, start, end):
        kind = part.lastindex
        if kind == _BLANKS:
            if not folding:
                blanks = (part.group(), part.start())
            continue
        if kind == _BREAK:
            if folding:
                empty += 1
            else:
                folding, escaped, empty = True, False, 0
                at = part.start() if blanks is None else blanks[1]
                blanks = None
            continue
        if folding:
            folding = False
            if escaped or empty:
                yield "\n" * empty, at, False
            else:
                yield " ", at, False
        elif blanks is not None:
            yield blanks[0], blanks[1], True
        blanks = None
        if kind == _ESCAPED_BREAK:
            folding, escaped, empty, at = True, True, 0, part.start()
        elif kind in (_ESCAPE, _QUOTE):
            yield _ONE, part.start(), False
        else:
            yield part.group(), part.start(), True
    if blanks is not None:
        yield blanks[0], blanks[1], True


def _block_pieces(text: str, start: int, end: int, value: str, *, folded: bool) -> Iterator[_Piece]:
    """The pieces of a ``|`` or ``>`` scalar's value whose header is at ``start``, up to its
    last line of text (what its chomping adds after is not walked)."""
    header = _HEADER.match(text, start)
    if header is None:
        return
    first_break = YAML_BREAK.search(text, header.end(), end)
    if first_break is None:
        return
    indent = _indentation(text, first_break.end(), end, value)
    if indent is None:
        return
    previous: tuple[int, bool] | None = None  # the last line of text's break, its blank start
    empty = 0
    for line_start, line_end in _lines(text, first_break.end(), end):
        if line_end - line_start <= indent:  # blanks past the indentation are text
            empty += 1
            continue
        content = text[line_start + indent : line_end]
        blank = content[0] in " \t"
        if previous is None:
            if empty:
                yield "\n" * empty, line_start, False
        elif folded and not blank and not previous[1]:
            yield (" " if not empty else "\n" * empty), previous[0], False
        else:
            yield "\n" * (empty + 1), previous[0], False
        yield content, line_start + indent, True
        previous, empty = (line_end, blank), 0


def _lines(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The start and end (before its line break) of each line of ``text[start:end]``."""
    for line_break in YAML_BREAK.finditer(text, start, end):
        yield start, line_break.start()
        start = line_break.end()
    if start < end:
        yield start, end


def _indentation(text: str, start: int, end: int, value: str) -> int | None:
    """The block's indentation: the leading spaces of its first line that is not empty less
    those the value has there (past an empty line's line break each). A line of spaces only is
    empty unless longer than the indentation (the rest is then the value's, as for ``|2``)."""
    # ``at``: where the line's value begins, past the empty lines' line breaks
    for at, (line_start, line_end) in enumerate(_lines(text, start, end)):
        line = text[line_start:line_end]
        spaces = _spaces(value, at)
        if line.strip(" "):
            indent = _spaces(line, 0) - spaces
            return indent if indent >= 0 and value.startswith(line[indent:], at) else None
        if spaces:
            return len(line) - spaces if len(line) >= spaces else None
    return None


def _spaces(text: str, at: int) -> int:
    """The number of spaces at ``at`` in ``text``."""
    found = _SPACES.match(text, at)
    return 0 if found is None else found.end() - at
