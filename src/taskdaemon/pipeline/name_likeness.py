"""How alike a wrong name is to a candidate, as ``difflib`` measures it
(``SequenceMatcher.ratio``), with the work counted and bounded: the measure
``wording.close_match`` ranks a "did you mean" by; and how much two names share at their
start and at their ends, found by comparing slices, not character by character.

The work is counted as difflib's loops run: one pass over a candidate to count its letters
(``quick_ratio``), then, before each longest-match search (``find_longest_match``), the
characters it walks and, for each, the places of that character in the name it looks at.
That is what a comparison costs, charged before it is spent; the product of the lengths is
no bound: a search runs again on each side of every match found, so two names made of one
short pattern, each the other's reverse, cost many times that product."""

from __future__ import annotations

import difflib
from collections import Counter

__all__ = ["BoundedMatcher", "WorkSpentError", "ends_shared", "shared_start"]


class WorkSpentError(Exception):
    """A comparison would have gone past the work left to a :class:`BoundedMatcher`."""


class BoundedMatcher(difflib.SequenceMatcher[str]):
    """difflib's matcher of one ``name`` against candidates, that raises :class:`WorkSpentError`
    rather than spend more than ``work`` (counted as the module says). difflib's own
    ``autojunk`` never applies: it drops a name's frequent characters only from a name of 200
    or more, longer than any name compared."""

    def __init__(self, name: str, work: int) -> None:
        super().__init__()
        self.set_seq2(name)
        self.left = work
        self._counts = Counter(name)
        self._candidate = ""

    def _spend(self, work: int) -> None:
        self.left -= work
        if self.left < 0:
            raise WorkSpentError

    def ratio_within(self, candidate: str, cutoff: float) -> float | None:
        """``candidate``'s ratio if at least ``cutoff``, else None; difflib's cheap filters
        first, as ``get_close_matches`` runs them (its lengths alone cost nothing)."""
        self.set_seq1(candidate)
        self._candidate = candidate
        if self.real_quick_ratio() < cutoff:
            return None
        self._spend(len(candidate))
        if self.quick_ratio() < cutoff:
            return None
        score = self.ratio()
        return score if score >= cutoff else None

    def find_longest_match(
        self, alo: int = 0, ahi: int | None = None, blo: int = 0, bhi: int | None = None
    ) -> difflib.Match:
        """difflib's search, charged first with the characters of ``a[alo:ahi]`` and each
        one's places in the name: the most its loops can run."""
        walked = self._candidate[alo:ahi]
        self._spend(len(walked) + sum(map(self._counts.__getitem__, walked)))
        return super().find_longest_match(alo, ahi, blo, bhi)


def shared_start(one: str, other: str) -> int:
    """How many characters ``one`` and ``other`` begin with alike."""
    return _shared(one, other, at_end=False)


def ends_shared(one: str, other: str) -> int:
    """How many characters ``one`` and ``other`` share at their start and their end, each
    character counted once: what a typo leaves of a name, on both sides of it."""
    start = _shared(one, other, at_end=False)
    return start + min(_shared(one, other, at_end=True), min(len(one), len(other)) - start)


def _shared(one: str, other: str, *, at_end: bool) -> int:
    """How many characters ``one`` and ``other`` begin (``at_end``: end) with alike, found by
    halving, each step one comparison of slices no longer than the shorter one."""
    low, high = 0, min(len(one), len(other))
    while low < high:
        middle = (low + high + 1) // 2
        if at_end:
            alike = one[len(one) - middle :] == other[len(other) - middle :]
        else:
            alike = one[:middle] == other[:middle]
        if alike:
            low = middle
        else:
            high = middle - 1
    return low
