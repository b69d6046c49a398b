"""Texts known as secrets by their value (``secret_values`` remembers them), and the
substring tests that find them in a text or a batch of records: what ``redaction`` replaces
and what the exporters look for before a batch leaves (docs/redaction.md, "Values known as
secrets"). Pure: no import of taskdaemon or OpenTelemetry."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

__all__ = [
    "BLANKS",
    "MASKED",
    "MaskedValues",
    "glued",
    "holds_any",
    "holds_masked",
    "holds_needle",
    "masked_batch",
    "masked_text",
    "masked_wrapped",
]

_T = TypeVar("_T")


class MaskedValues:
    """Texts known as secrets by their value, not their shape (``secret_values`` fills it):
    ``redaction.redact_text`` and the functions built on it replace each wherever it appears."""

    __slots__ = (
        "_caches",
        "across_lines",
        "encoded_needles",
        "generation",
        "long_run",
        "needles",
        "values",
    )

    def __init__(self) -> None:
        #: Longest first, so a value holding another is replaced whole; replaced whole on a
        #: change, so readers on other threads need no lock.
        self.values: tuple[str, ...] = ()
        #: A text each value's forms all hold (one per value remembered, fewer than
        #: ``values``): a text holding none holds no value, at one search per value.
        self.needles: tuple[str, ...] = ()
        #: The same for the values' base64 forms (runs of letters and digits, a few a value),
        #: looked for only in a text :attr:`long_run` finds something in.
        self.encoded_needles: tuple[str, ...] = ()
        #: Finds a run of letters and digits as long as the shortest of ``encoded_needles``:
        #: a text without one holds none of them, and most texts (log lines of words and
        #: numbers) are dismissed by this one scan instead of a search per needle.
        self.long_run: re.Pattern[str] = _NO_RUN
        #: The values holding a line break: a text split into lines holds none of them whole.
        self.across_lines: tuple[str, ...] = ()
        self._caches: list[set[Any] | dict[Any, Any]] = []
        #: Counts the changes: a text redacted once and kept (a definition's span attributes,
        #: redacted once per definition) is redacted again when it differs.
        self.generation = 0

    def clears(self, cache: set[Any] | dict[Any, Any]) -> None:
        """Empty ``cache`` (texts redacted before, by what they held) at each change."""
        self._caches.append(cache)

    def replace(
        self, values: tuple[str, ...], needles: tuple[str, ...], encoded: tuple[str, ...] = ()
    ) -> None:
        """Mask ``values`` from now on (longest first), instead of the ones before, looking
        for ``needles`` first, then ``encoded`` in a text with a long enough run (see the
        attributes)."""
        shortest = min(map(len, encoded), default=0)
        # the gate first: a reader meanwhile sees a looser one, never a tighter one
        self.long_run = re.compile(f"[A-Za-z0-9]{{{shortest}}}") if encoded else _NO_RUN
        self.encoded_needles = encoded
        self.needles = needles
        self.values = values
        self.across_lines = tuple(value for value in values if "\n" in value)
        self.generation += 1
        for texts in self._caches:  # a text found clean before may hold a value known now
            texts.clear()


#: :attr:`MaskedValues.long_run` while no value has base64 forms: finds nothing.
_NO_RUN: Final = re.compile("(?!)")

#: The process's masked values.
MASKED: Final = MaskedValues()


def holds_any(values: tuple[str, ...], text: str) -> bool:
    """Whether ``text`` holds one of ``values`` (as substrings)."""
    for value in values:  # noqa: SIM110 - no generator frame per value
        if value in text:
            return True
    return False


def holds_needle(text: str) -> bool:
    """Whether ``text`` holds a needle of a value known as a secret: one of ``MASKED.needles``,
    or, when a run of it is long enough, of ``MASKED.encoded_needles``. A text that does not
    holds none of the values' forms."""
    if holds_any(MASKED.needles, text):
        return True
    encoded = MASKED.encoded_needles
    return bool(encoded) and MASKED.long_run.search(text) is not None and holds_any(encoded, text)


def holds_masked(text: str) -> bool:
    """Whether ``text`` holds a value known as a secret (``secret_values``), in any of its
    written forms: a search per value for its needle (:func:`holds_needle`), then, only if one
    is found, per form."""
    return bool(MASKED.needles) and holds_needle(text) and holds_any(MASKED.values, text)


def masked_batch(
    batch: Sequence[_T], texts: Callable[[_T], Iterable[str]], masked: Callable[[_T], _T]
) -> Sequence[_T]:
    """``batch`` as it leaves for an exporter, each item whose ``texts`` hold a value known as
    a secret now replaced by ``masked(item)`` (the log and span exporters' batches, recorded
    before the value was known). ``batch`` itself when none does: one look over all the texts
    first, then item by item only if a value is in them."""
    if not (
        MASKED.values and holds_masked("\n".join(text for item in batch for text in texts(item)))
    ):
        return batch
    return [masked(item) if holds_masked("\n".join(texts(item))) else item for item in batch]


def masked_text(text: str, values: Iterable[str], replacement: str) -> str:
    """``text`` with each stretch of it that ``values`` (known as secrets: ``MASKED.values``)
    cover replaced by ``replacement`` once (``text`` itself when it holds none). Values that
    overlap are one stretch: in ``alpha-key-1234-beta-key``, the secrets ``alpha-key-1234`` and
    ``1234-beta-key`` both go. Replaced one value after the other, as before, the first took
    the start of the second with it, and the second's rest (``-beta-key``) was shown.

    One value in ``text`` is replaced by ``str.replace``, as before. Several are made stretches
    first (:func:`_stretches`: a search per stretch, not per place), then the text around
    them is kept: memory grows with the text and the stretches masked, as the answer does."""
    present = [value for value in values if value in text]
    if len(present) <= 1:
        return text.replace(present[0], replacement) if present else text
    pieces: list[str] = []
    shown_from = 0
    for start, end in zip(*_stretches(text, present), strict=True):
        pieces += (text[shown_from:start], replacement)
        shown_from = end
    pieces.append(text[shown_from:])
    return "".join(pieces)


def glued(lines: Iterable[str]) -> str:
    """``lines`` joined without their line breaks and the blanks (spaces, tabs) that start
    each: where ``masked_wrapped`` looks for a value wrapped over them."""
    return "".join(line.lstrip(BLANKS) for line in lines)


def masked_wrapped(lines: list[str], values: Iterable[str], replacement: str) -> list[str]:
    """``lines`` (consecutive lines of one output) with each value of ``values`` that they
    hold wrapped, its pieces on two or more lines (``tok[:20]``, then ``tok[20:]``; base64 cut
    at 64 or 76 columns), masked: each piece becomes ``replacement``, and what was around the
    value on its first and last lines stays. ``lines`` itself when none is wrapped there.

    A value is looked for in the lines glued together without their line breaks and the
    blanks that start each (:func:`glued`); only a place that crosses a line break counts (a
    value within one line is ``masked_text``'s). Decisions: any line break inside the value
    counts, wherever the program put it, since the pieces together give the value away as
    surely as the value whole does; and so does an indent before a piece (``fold``, then
    ``sed 's/^/  /'``; a YAML block, a logger's continuation lines): blanks are what a program
    puts before a line to lay it out, and a value wrapped exactly before a blank of its own
    (rare: ``textwrap`` drops that blank anyway) is the only one this misses. Any other
    text before a piece (a prefix such as ``log: ``, a timestamp) is not taken away: it may
    be anything, and the pieces are then not found.

    Overlapping places are made one stretch before the lines are read: the stretches are then
    sorted by their ends as by their starts, and each line reads only those reaching it. Sorted
    by start alone, one long value's place held back the first place a line may reach, and
    each line read again every place begun since (a secret of one repeated character among
    longer ones of it: the lines times the longest value's length)."""
    indents = [len(line) - len(line.lstrip(BLANKS)) for line in lines]
    texts = [line[indent:] for line, indent in zip(lines, indents, strict=True)]
    glue = "".join(texts)
    present = [value for value in values if value in glue]
    if not present:
        return lines
    ends = list(itertools.accumulate(map(len, texts)))  # where each line's text ends in ``glue``
    crossing = list(zip(*_stretches(glue, present, ends), strict=True))  # sorted by ends too
    if not crossing:
        return lines
    out: list[str] = []
    first = 0  # the first stretch that may reach the current line
    line_start = 0
    for line, indent, line_end in zip(lines, indents, ends, strict=True):
        while first < len(crossing) and crossing[first][1] <= line_start:
            first += 1
        pieces: list[str] = [line[:indent]]
        at = line_start
        for start, end in itertools.islice(crossing, first, None):
            if start >= line_end:
                break
            if start > at:
                pieces += (glue[at:start], replacement)
            elif len(pieces) == 1:  # the place started on a line before
                pieces.append(replacement)
            at = max(at, min(end, line_end))
        out.append("".join(pieces) + glue[at:line_end] if len(pieces) > 1 else line)
        line_start = line_end
    return out


#: What an indent is made of (``glued``).
BLANKS: Final = " \t"


def _stretches(
    text: str, values: Iterable[str], ends: Sequence[int] | None = None
) -> tuple[list[int], list[int]]:
    """The stretches of ``text`` that ``values`` cover, disjoint and in order (their starts,
    their ends): each value's places as ``str.replace`` finds them (one after the other, not
    overlapping: a search from each character would make a long value repeated in a long text
    cost their lengths' product), a place overlapping another making one stretch with it.
    With ``ends`` (where each line's text ends in ``masked_wrapped``'s glue), only a place
    that crosses a line's end counts.

    The longest value first, and a place within a stretch found before is passed over with
    all the places that would be: the search goes on from where the value could first reach
    past the stretch (and, with ``ends``, from where it could first cross the line's end). So
    a value costs a search per stretch and per line at most, not one per place it has: a
    secret of one repeated character among longer ones of it, in a text of that character,
    used to cost every place of every value (its length over the value's, summed). Places
    that overlap only the end of a stretch are found where the value's own order might have
    stepped over them: the stretch then grows, and never shrinks, by them."""
    starts: list[int] = []
    stops: list[int] = []
    for value in sorted(values, key=len, reverse=True):
        size = len(value)
        at = text.find(value)
        while at >= 0:
            before = bisect.bisect_right(starts, at) - 1  # the last stretch starting by ``at``
            if before >= 0 and at + size <= stops[before]:  # within it: on past its end
                at = text.find(value, stops[before] - size + 1)
                continue
            if ends is not None:
                line_end = ends[bisect.bisect_right(ends, at)]
                if at + size <= line_end:  # within one line: on to where it could cross
                    at = text.find(value, line_end - size + 1)
                    continue
            first = before if before >= 0 and stops[before] > at else before + 1
            after = bisect.bisect_left(starts, at + size)  # stretches overlapping: first..after
            start, stop = at, at + size
            if first < after:
                start, stop = min(start, starts[first]), max(stop, stops[after - 1])
            starts[first:after] = [start]
            stops[first:after] = [stop]
            at = text.find(value, at + size)
    return starts, stops
