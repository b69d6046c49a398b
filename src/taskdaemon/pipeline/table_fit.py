"""Aligned text tables, fitted to a terminal's width when asked: the one rule ``runs list``,
``runs show`` and ``report`` follow.

Unfitted (``width`` None: a pipe, a file, ``--wide``), every cell is whole. Fitted, only the
columns named to give way are narrowed, the widest first, each to no fewer than
``MIN_GIVEN`` characters, and their cells (and header) cut with an ellipsis: numbers, statuses
and times are never cut. A table that still does not fit keeps those columns whole and is
left wider than the terminal.

Run ids shown in a narrow terminal are the shortest prefix, of at least ``MIN_ID`` digits,
unique among the ids listed (:func:`short_ids`), as ``docker ps`` shows its ids."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import pairwise
from os.path import commonprefix

from taskdaemon.pipeline.ellipsis import cut

__all__ = ["MIN_GIVEN", "MIN_ID", "aligned", "short_ids"]

#: The fewest characters a column that gives way keeps (its cells then read ``abcdefghij…``).
MIN_GIVEN = 12
#: The fewest digits of a run id shown: every command takes a unique prefix of at least 4.
MIN_ID = 8
#: Between two columns.
_GAP = 2


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


def _fitted(widths: list[int], width: int, give_way: Collection[int]) -> list[int]:
    """``widths`` with the ``give_way`` columns narrowed, the widest first, until the line
    fits in ``width`` or each is down to ``MIN_GIVEN``."""
    widths = list(widths)
    over = sum(widths) + _GAP * (len(widths) - 1) - width
    while over > 0:
        shrinkable = [i for i in give_way if widths[i] > MIN_GIVEN]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        others = [widths[i] for i in shrinkable if i != widest]
        # Down to the next widest (or the floor, or the fit), at least one character.
        target = max(MIN_GIVEN, max(others, default=MIN_GIVEN), widths[widest] - over)
        step = max(1, widths[widest] - target)
        widths[widest] -= step
        over -= step
    return widths


def aligned(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None = None,
    give_way: Collection[int] = (),
) -> list[str]:
    """The lines of a table, two spaces between columns, trailing spaces stripped; fitted to
    ``width`` columns by narrowing the ``give_way`` columns (indexes) when it is given."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    if width is not None:
        widths = _fitted(widths, width, give_way)
    return [
        "  ".join(
            cut(cell, size).ljust(size) for cell, size in zip(row, widths, strict=True)
        ).rstrip()
        for row in (header, *rows)
    ]
