"""``masked_values.masked_wrapped`` on output made to be costly: secrets of one repeated
character, of several lengths, over many short lines. Its work is counted
(``operation_count_support.steps``), not timed, so load does not move it."""

from __future__ import annotations

import gc

from operation_count_support import growth
from taskdaemon.pipeline.masked_values import masked_wrapped

R = "[R]"


def test_a_long_secret_among_short_ones_does_not_make_each_line_read_them_all_again() -> None:
    """4,000 lines of ``aaaa`` with the secrets ``a`` × 8 and ``a`` × L: ten times L is not
    several times the work. Before, each line read again every place begun since the long
    secret's place began, so the work grew with L."""
    lines = ["aaaa"] * 4000
    gc.collect()
    gc.disable()  # no finalizer of an earlier test's garbage counted in the steps
    try:
        grew = growth(lambda n: masked_wrapped(lines, ["a" * 8, "a" * n], R), 80, 800)
    finally:
        gc.enable()
    assert grew < 1.5, grew


def test_overlapping_and_adjacent_places_are_one_piece_a_line() -> None:
    """Places of several values that overlap across lines make one stretch: each line it
    touches holds one replacement, and the text outside it stays."""
    lines = ["xx abcd", "efgh", "ijkl yy", "zz"]
    assert ["xx [R]", "[R]", "[R] yy", "zz"] == masked_wrapped(
        lines, ["abcdef", "defghij", "ghijkl"], R
    )
    assert ["xx [R]", "[R]", "[R]l yy", "zz"] == masked_wrapped(lines, ["abcdef", "ghijk"], R)
