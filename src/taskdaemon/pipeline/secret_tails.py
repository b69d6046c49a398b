"""A stream's last line that may begin a value known as a secret, held for the stream's next
batch: a one-line secret printed wrapped over two reads of a command's pipe, or over two
``print()`` calls of a handler, is then redacted with both pieces together
(``masked_values.masked_wrapped``, in every sink's ``redaction.redact_lines``), as one read's
lines are (docs/redaction.md, "Values known as secrets").

A batch's last line is held only when its end is a proper start of a one-line value known as a
secret (:func:`begins_value`), so a stage's output waits only while a value is known and only
at such a line. It goes with the stream's next batch (first, with its own read's time), or
alone when the stream ends or :data:`HOLD_SECONDS` pass without one.

Decided, and why:

* :data:`HOLD_SECONDS` is half a second: ``logs --follow`` polls every 0.5 s by default, so a
  line held so long is shown at most one poll later than it would have been. Pieces further
  apart than that are not both found: the first leaves alone, but its end is kept (at most
  the longest value's length) and looked at with the next batch, whose piece is masked: the
  rest of the value, which is most of it when a program cut it near its start.
* Only the last line: a value wrapped over three reads or more has a middle line that is no
  start of it; that line is masked only when the pieces meet in one batch.
* Held on a timer thread (one at a time per stream, ended when the stream ends), because the
  reader of a pipe, or a handler that printed and went on with other work, may not come back
  before the bound.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Sequence
from typing import Final

from taskdaemon.pipeline.masked_values import MASKED, glued, holds_masked, masked_wrapped
from taskdaemon.pipeline.secret_shapes import REDACTED

__all__ = ["HOLD_SECONDS", "TailHold", "begins_value"]

#: How long a line that may begin a secret waits for its stream's next batch, at most.
HOLD_SECONDS: Final = 0.5


def begins_value(line: str, values: Sequence[str]) -> bool:
    """Whether ``line`` ends with a proper start of one of ``values`` (one-line ones: a value
    holding line breaks is masked line by line, ``secret_values``), at least one character.

    Each place in ``line``'s last characters (fewer than the longest value's length) holding
    a value's first character is tried, by a binary search of the values in order: a cost by
    the length of the line's end, not by the number of values known."""
    ordered, firsts, longest = _ordered(values)
    if not ordered:
        return False
    for match in firsts.finditer(line, max(0, len(line) - longest + 1)):
        end = line[match.start() :]
        at = bisect.bisect_right(ordered, end)  # the first value after ``end`` itself
        if at < len(ordered) and ordered[at].startswith(end):
            return True
    return False


_Ordered = tuple[tuple[str, ...], re.Pattern[str], int]

#: ``_ordered``'s last answer and the values it was for, as one pair replaced whole (the
#: process's ``MASKED.values`` is replaced whole on each change: the same tuple, the same
#: values).
_last: list[tuple[object, _Ordered]] = [(None, ((), re.compile("(?!)"), 0))]


def _ordered(values: Sequence[str]) -> _Ordered:
    """``values`` of one line, in order; a pattern of their first characters; the longest's
    length."""
    key, answer = _last[0]
    if values is not key:
        ordered = tuple(sorted(value for value in values if value and "\n" not in value))
        firsts = "".join(sorted({value[0] for value in ordered}))
        pattern = re.compile(f"[{re.escape(firsts)}]" if firsts else "(?!)")
        answer = (ordered, pattern, max(map(len, ordered), default=0))
        _last[0] = (values, answer)
    return answer


class TailHold:
    """One stream's held line: :meth:`send` each batch of lines through it, :meth:`close` it
    when the stream ends. ``deliver(texts, time_ns)`` hands a batch on; it is called under
    the hold's lock (from the caller's thread, or the timer's), so batches keep their order."""

    def __init__(self, deliver: Callable[[list[str], int], None]) -> None:
        self._deliver = deliver
        self._lock = threading.Lock()
        self._held: tuple[int, str] | None = None  # the line, its read's time
        self._kept = ""  # the end of a held line that left alone
        self._timer: threading.Timer | None = None  # the held line's

    def send(self, texts: list[str], time_ns: int) -> None:
        """Hand ``texts`` (read at ``time_ns``) on, after the held line; hold their last line
        when it may begin a value known as a secret."""
        with self._lock:
            if self._held is not None:
                time_ns, line = self._held
                texts = [line, *texts]
                self._held = None
                if self._timer is not None:
                    self._timer.cancel()
            elif self._kept:
                texts = _continued(self._kept, texts)
            self._kept = ""
            values = MASKED.values
            if values and texts and begins_value(texts[-1], values):
                self._held = held = (time_ns, texts.pop())
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = threading.Timer(HOLD_SECONDS, self._expire, (held,))
                self._timer.daemon = True
                self._timer.start()
            if texts:
                self._deliver(texts, time_ns)

    def close(self) -> None:
        """The stream ended: hand the held line on, and end the timer."""
        with self._lock:
            timer, self._timer = self._timer, None
            if self._held is not None:
                self._deliver([self._held[1]], self._held[0])
                self._held = None
        if timer is not None:
            timer.cancel()
            timer.join()

    def _expire(self, held: tuple[int, str]) -> None:
        """The timer's: ``held`` leaves alone if no batch took it meanwhile; its end is kept."""
        with self._lock:
            if self._held is held:
                self._held = None
                longest = max(map(len, MASKED.values), default=0)
                self._kept = held[1][-longest:] if longest else ""
                self._deliver([held[1]], held[0])


def _continued(kept: str, texts: list[str]) -> list[str]:
    """``texts`` with the pieces of a value that ``kept`` (the end of the line before them,
    already handed on) began masked."""
    if not texts or not holds_masked(glued([kept, *texts])):
        return texts
    return masked_wrapped([kept, *texts], MASKED.values, REDACTED)[1:]
