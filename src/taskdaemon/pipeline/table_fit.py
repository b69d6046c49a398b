"""Aligned text tables, fitted to a terminal's width when asked: the one rule ``runs list``,
``runs show``, ``report`` and ``run``'s summary follow.

Unfitted (``width`` None: a pipe, a file, ``--wide``), every cell is whole. Fitted, three steps,
each taken only while the table is still wider than the terminal:

1. the columns named to give way (free text: names, errors) are narrowed, the widest first,
   each to no fewer than ``MIN_GIVEN`` columns, their cells (and header) cut with an ellipsis;
2. the columns named to drop are left out, one at a time in the order given (what a reader
   needs least first: memory before the durations), and the free text widens back into the
   room they leave; their headers are returned (``Fitted.hidden``) for the caller's note
   (:func:`hidden_note`), since ``--wide`` brings them back;
3. a caller that asks for it (``floor``: ``runs list`` and ``runs show``, whose fixed columns
   leave a 60-column terminal less than two names of ``MIN_GIVEN``) has the free text narrowed
   further, to no fewer than ``floor`` columns: a last resort, since a name cut to
   ``LAST_GIVEN`` tells fewer apart, but a row that wraps misaligns every column after it;
4. what is left keeps its numbers, statuses, times and ids whole, and a table that still does
   not fit is left wider than the terminal.

Widths are terminal columns, not characters: a CJK character takes two, a combining mark none,
so a row of ``数据仓库`` lines up with the rows above it and is cut where the screen ends.

Run ids shown in a narrow terminal are the shortest prefix, of at least ``MIN_ID`` digits,
unique among the ids listed (:func:`short_ids`), as ``docker ps`` shows its ids."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from itertools import pairwise
from os.path import commonprefix
from typing import NamedTuple

__all__ = [
    "LAST_GIVEN",
    "MIN_GIVEN",
    "MIN_ID",
    "Fitted",
    "aligned",
    "cut_columns",
    "fit",
    "hidden_note",
    "padded",
    "short_ids",
    "text_columns",
    "wrapped",
]

#: The fewest columns a column that gives way keeps (its cells then read ``abcdefghij…``).
MIN_GIVEN = 12
#: The fewest it keeps as a last resort, when the caller asks (``fit``'s ``floor``):
#: ``abcdefg…``.
LAST_GIVEN = 8
#: The fewest digits of a run id shown: every command takes a unique prefix of at least 4.
MIN_ID = 8
#: Between two columns.
_GAP = 2
#: A wrapped line's later lines start with it.
_INDENT = "    "
#: The blanks before a word, and the word.
_WORDS = re.compile(r"(\s*)(\S+)")


def short_ids(ids: Sequence[str]) -> list[str]:
    """Each id cut to the shortest prefix of at least ``MIN_ID`` characters that no other
    distinct id of ``ids`` starts with (the whole id when none is that short)."""
    distinct = sorted(set(ids))
    keep: dict[str, int] = {}
    for before, after in pairwise(distinct):
        shared = len(commonprefix((before, after)))  # noqa: RUF071 (character-wise is meant)
        # Sorted, an id's longest common prefix with any other is with a neighbour.
        keep[before] = max(keep.get(before, 0), shared + 1)
        keep[after] = max(keep.get(after, 0), shared + 1)
    return [i[: max(MIN_ID, keep.get(i, 0))] for i in ids]


#: The columns of the characters met so far: three ``unicodedata`` look-ups a character cost
#: six times what a cut of ASCII does. Bounded: past ``_KNOWN_MAX`` characters, no more are kept.
_known: dict[str, int] = {}
_KNOWN_MAX = 4096


def _char_columns(char: str) -> int:
    columns = _known.get(char)
    if columns is not None:
        return columns
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        columns = 0
    else:
        columns = 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    if len(_known) < _KNOWN_MAX:
        _known[char] = columns
    return columns


def text_columns(text: str) -> int:
    """The terminal columns ``text`` takes: two for a wide (CJK) character, none for a
    combining mark, one for any other."""
    if text.isascii():
        return len(text)
    return sum(map(_char_columns, text))


def cut_columns(text: str, size: int, escapes: Mapping[int, str] | None = None) -> str:
    """``text`` if it takes at most ``size`` columns, else its first characters and ``…``
    within ``size`` columns (``size`` at least 1): ``ellipsis.cut`` counted in columns.

    With ``escapes`` (a ``str.translate`` table of strings), ``text`` is shown translated and
    each escape is one piece: kept whole or left out, never cut to ``\\x1…``. A character
    is never split from the combining marks after it (they take no column, so they stay with
    it), and a wide character that would end past the limit is left out whole."""
    shown = text if escapes is None else text.translate(escapes)
    if shown.isascii() and len(shown) == len(text):  # no wide character, mark nor escape
        return shown if len(shown) <= size else shown[: size - 1] + "…"
    # One pass that stops past ``size`` columns: a long line is not counted to its end.
    pieces: list[str] = []
    kept = 0  # the pieces within ``size - 1`` columns: what stays before an ellipsis
    used = 0
    for char in text:
        piece = None if escapes is None else escapes.get(ord(char))
        used += _char_columns(char) if piece is None else len(piece)
        if used > size:
            return "".join(pieces[:kept]) + "…"
        pieces.append(char if piece is None else piece)
        if used <= size - 1:
            kept = len(pieces)
    return shown


def padded(text: str, size: int) -> str:
    """``text`` and the spaces that make it ``size`` columns wide (none when it is wider):
    ``str.ljust`` counted in columns, so a CJK name lines up with the ASCII ones."""
    return text + " " * (size - text_columns(text))


def _span(widths: Sequence[int]) -> int:
    return sum(widths) + _GAP * (len(widths) - 1)


def _fitted(widths: list[int], width: int, give_way: Collection[int], floor: int) -> list[int]:
    """``widths`` with the ``give_way`` columns narrowed, the widest first, until the line
    fits in ``width`` or each is down to ``floor``."""
    widths = list(widths)
    over = _span(widths) - width
    while over > 0:
        shrinkable = [i for i in give_way if widths[i] > floor]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        others = [widths[i] for i in shrinkable if i != widest]
        # Down to the next widest (or the floor, or the fit), at least one column.
        target = max(floor, max(others, default=floor), widths[widest] - over)
        step = max(1, widths[widest] - target)
        widths[widest] -= step
        over -= step
    return widths


class Fitted(NamedTuple):
    """A table's lines and the headers of the columns left out to fit it, in the table's
    order (empty when none was). A named tuple, not a dataclass: ``runs`` starts without
    importing ``dataclasses`` (``tests/pipeline_cli_startup_test.py``)."""

    lines: list[str]
    hidden: tuple[str, ...] = ()


def fit(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None = None,
    give_way: Collection[int] = (),
    drop: Sequence[int] = (),
    *,
    floor: int = MIN_GIVEN,
) -> Fitted:
    """The lines of a table, two spaces between columns, trailing spaces stripped; fitted to
    ``width`` columns when it is given: the ``give_way`` columns (indexes) narrowed, then the
    ``drop`` columns left out in that order while it is still wider, then the ``give_way``
    columns narrowed to ``floor`` (the module's rule).
    ValueError for a row whose cells are not the header's (a caller's bug, said at once)."""
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"a row's cells are not the header's {len(header)}")
    whole = [max(text_columns(row[i]) for row in (header, *rows)) for i in range(len(header))]
    kept = list(range(len(header)))
    widths = list(whole)
    if width is not None:
        for leaving in (None, *drop):
            if leaving is not None:
                kept.remove(leaving)
            giving = [n for n, i in enumerate(kept) if i in give_way]
            widths = _fitted([whole[i] for i in kept], width, giving, MIN_GIVEN)
            if _span(widths) <= width:
                break
        if _span(widths) > width:  # the last resort (step 3), a no-op at the default floor
            widths = _fitted(widths, width, giving, floor)
    lines = [
        "  ".join(
            padded(cut_columns(row[i], size), size) for i, size in zip(kept, widths, strict=True)
        ).rstrip()
        for row in (header, *rows)
    ]
    return Fitted(lines, tuple(header[i] for i in range(len(header)) if i not in kept))


def aligned(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None = None,
    give_way: Collection[int] = (),
) -> list[str]:
    """The lines of a table fitted by its ``give_way`` columns alone (:func:`fit`)."""
    return fit(header, rows, width, give_way).lines


def hidden_note(hidden: Sequence[str], width: int | None = None) -> list[str]:
    """The line said under a table that left columns out to fit (none when it left none),
    wrapped to ``width``."""
    if not hidden:
        return []
    return wrapped(f"(--wide shows the columns left out to fit: {', '.join(hidden)})", width)


def wrapped(line: str, width: int | None) -> list[str]:
    """A line of prose as is, or, wider than ``width`` columns, wrapped between words, its
    later lines indented by four: a run id or a figure is one word, never broken. The
    blanks between two words on one line are kept (each a space); those at a break go."""
    if width is None or text_columns(line) <= width:
        return [line]
    # Not textwrap: it counts characters, and a line of CJK names would run past the screen.
    lines: list[str] = []
    current, used = "", 0
    for blanks, word in _WORDS.findall(line):
        gap, size = len(blanks), text_columns(word)
        if current not in ("", _INDENT) and used + gap + size > width:
            lines.append(current)
            current, used, gap = _INDENT, len(_INDENT), 0
        current += " " * gap + word
        used += gap + size
    return [*lines, current]
