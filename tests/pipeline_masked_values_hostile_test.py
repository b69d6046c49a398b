"""``masked_values.masked_wrapped`` on output made to be costly: secrets of one repeated
character, of several lengths, over many short lines. Its work is counted
(``operation_count_support.steps``), not timed, so load does not move it."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

from operation_count_support import growth, steps
from taskdaemon.pipeline.masked_values import masked_text, masked_wrapped

R = "[R]"
_T = TypeVar("_T")


def test_a_long_secret_among_short_ones_does_not_make_each_line_read_them_all_again() -> None:
    """4,000 lines of ``aaaa`` with the secrets ``a`` × 8 and ``a`` × L: ten times L is not
    several times the work. Before, each line read again every place begun since the long
    secret's place began, so the work grew with L."""
    lines = ["aaaa"] * 4000
    grew = _counted(lambda: growth(lambda n: masked_wrapped(lines, ["a" * 8, "a" * n], R), 80, 800))
    assert grew < 1.5, grew


#: Secrets of one repeated character, ``a`` × 8 to ``a`` × 199, longest first.
REPEATED = ["a" * n for n in range(199, 7, -1)]


def test_secrets_of_one_repeated_character_cost_no_search_per_place() -> None:
    """100 lines of ``a`` × W and the secrets ``a`` × 8 to ``a`` × 199: ten times W is not
    several times the work (a search per line and value at most). Before, every place of
    every value in the glued lines was found, crossing a line break or not: W's sum of W / L."""
    grew = _counted(
        lambda: growth(lambda width: masked_wrapped(["a" * width] * 100, REPEATED, R), 1000, 10_000)
    )
    assert grew < 1.5, grew


def test_many_secrets_of_one_repeated_character_cost_as_the_longest_two() -> None:
    """100,000 ``a``: masking the 192 secrets ``a`` × 8 to ``a`` × 199 is not several times
    the work of masking the longest two (each further value is passed over where they cover
    the text), and the whole text is one stretch, as it was. Before, each value's every place
    was found: the work was the text's length over each value's, summed."""
    text = "a" * 100_000
    assert R == masked_text(text, REPEATED, R)
    many, two = _counted(
        lambda: (
            steps(lambda: masked_text(text, REPEATED, R)),
            steps(lambda: masked_text(text, REPEATED[:2], R)),
        )
    )
    assert many < 2 * two, (many, two)


def _counted(count: Callable[[], _T]) -> _T:
    """``count()`` with gc off: no finalizer of an earlier test's garbage counted in the
    steps."""
    gc.collect()
    gc.disable()
    try:
        return count()
    finally:
        gc.enable()


def test_overlapping_and_adjacent_places_are_one_piece_a_line() -> None:
    """Places of several values that overlap across lines make one stretch: each line it
    touches holds one replacement, and the text outside it stays."""
    lines = ["xx abcd", "efgh", "ijkl yy", "zz"]
    assert ["xx [R]", "[R]", "[R] yy", "zz"] == masked_wrapped(
        lines, ["abcdef", "defghij", "ghijkl"], R
    )
    assert ["xx [R]", "[R]", "[R]l yy", "zz"] == masked_wrapped(lines, ["abcdef", "ghijk"], R)
