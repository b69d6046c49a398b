"""A stream's last lines that may begin a value known as a secret, held for the stream's next
batch: a one-line secret printed wrapped over two reads of a command's pipe or more, or over
two ``print()`` calls of a handler or more, is then redacted with all its pieces together
(``masked_values.masked_wrapped``, in every sink's ``redaction.redact_lines``), as one read's
lines are (docs/redaction.md, "Values known as secrets").

A batch's last lines are held only when they end, glued as ``masked_wrapped`` glues them, with
a proper start of a one-line value known as a secret (``secret_pieces.value_start``), from the line
where that start begins, so a stage's output waits only while a value is known and only at
such lines. They go with the stream's next batch (first, with the time of the read that began
the hold), or alone when the stream ends or :data:`HOLD_SECONDS` pass from the hold's start
without the value's end.

Decided, and why:

* :data:`HOLD_SECONDS` is half a second: ``logs --follow`` polls every 0.5 s by default, so a
  line held so long is shown at most one poll later than it would have been. Pieces further
  apart than that are not both found: the first leaves alone, but its end is kept (at most
  the longest value's length) and looked at with the next batch, whose piece is masked: the
  rest of the value, which is most of it when a program cut it near its start.
* The lines held are the last ones whose glue may begin a value: a value wrapped over three
  reads or more keeps its first pieces held while each next read continues it, and all its
  pieces meet in one batch. The bound stays the first piece's: a hold that takes a held line
  again keeps its deadline, so no line waits longer than :data:`HOLD_SECONDS`; lines past
  that go, and only the rest of the value after them is masked (the kept end, above). At
  most :data:`MAX_HELD_LINES` lines are held (blank lines add nothing to the glue, so a
  program's blank lines after a value's start could otherwise be held without end): a value
  wrapped over more lines than that is found only as far as a batch holds it.
* Sent at the bound by a thread of the stream's own, because the reader of a pipe, or a
  handler that printed and went on with other work, may not come back before the bound. The
  hold that finds no such thread starts one; it sleeps until the held lines' deadline, sends
  them if no batch took them meanwhile, sleeps again while lines are held, and ends when it
  wakes to none, or when the stream ends (:meth:`TailHold.close` joins it). A stream that
  holds at every batch so starts one thread, not one per batch (a ``threading.Timer`` per
  batch, before, was cancelled and started again each time). Not one thread per process
  serving every stream: the hold's own lock is then the only lock its thread takes, with no
  order to keep between streams' locks, and the stream's end can wait for its own thread, so
  nothing is left running after it. The cost is a sleeping thread per stream holding at once.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from taskdaemon.pipeline.masked_values import BLANKS, MASKED, glued, holds_masked, masked_wrapped
from taskdaemon.pipeline.secret_pieces import value_start
from taskdaemon.pipeline.secret_shapes import REDACTED

__all__ = ["HOLD_SECONDS", "MAX_HELD_LINES", "TailHold", "begins_value"]

#: How long a line that may begin a secret waits for its stream's next batch, at most.
HOLD_SECONDS: Final = 0.5
#: Lines held at most: the lines of a 4 KiB value (``MASK_MAX_CHARS``) wrapped at 64 columns.
MAX_HELD_LINES: Final = 64


def begins_value(line: str, values: Sequence[str]) -> bool:
    """Whether ``line`` ends with a proper start of one of ``values`` (one-line ones: a value
    holding line breaks is masked line by line, ``secret_values``), at least one character."""
    return value_start(line, values) is not None


def _held_from(lines: list[str], values: Sequence[str]) -> int:
    """The index of the first of ``lines``' last lines that glued (``masked_values.glued``)
    end with a proper start of one of ``values``; ``len(lines)`` when none do. Only the last
    :data:`MAX_HELD_LINES` lines, and only as many as the longest value's length reaches."""
    longest = max(map(len, values), default=0)
    first, reach = len(lines), 0
    while first > max(0, len(lines) - MAX_HELD_LINES) and reach < longest:
        first -= 1
        reach += len(lines[first].lstrip(BLANKS))
    texts = [line.lstrip(BLANKS) for line in lines[first:]]
    start = value_start("".join(texts), values)
    if start is None:
        return len(lines)
    return first + bisect.bisect_right(list(itertools.accumulate(map(len, texts))), start)


class TailHold:
    """One stream's held lines: :meth:`send` each batch of lines through it, :meth:`close` it
    when the stream ends. ``deliver(texts, time_ns)`` hands a batch on; it is called under
    the hold's lock (from the caller's thread, or the timer's), so batches keep their order."""

    def __init__(self, deliver: Callable[[list[str], int], None]) -> None:
        self._deliver = deliver
        self._lock = threading.Lock()
        self._held: tuple[int, list[str]] | None = None  # the lines, the hold's first read's time
        self._deadline = 0.0  # when the held lines leave at the latest (``time.monotonic``)
        self._kept = ""  # the end of held lines that left alone
        self._woken = threading.Condition(self._lock)  # the stream ended
        self._sender: threading.Thread | None = None  # sends held lines at their deadline

    def send(self, texts: list[str], time_ns: int) -> None:
        """Hand ``texts`` (read at ``time_ns``) on, after the held lines; hold their last lines
        when they may begin a value known as a secret."""
        with self._lock:
            held_before = 0
            if self._held is not None:
                time_ns, lines = self._held
                held_before = len(lines)
                texts = [*lines, *texts]
                self._held = None
            elif self._kept:
                texts = _continued(self._kept, texts)
            self._kept = ""
            values = MASKED.values
            first = _held_from(texts, values) if values and texts else len(texts)
            if first < len(texts):
                now = time.monotonic()
                if first >= held_before:  # a new hold: its own bound
                    self._deadline = now + HOLD_SECONDS
                self._held = (time_ns, texts[first:])
                texts = texts[:first]
                if self._sender is None:
                    self._sender = threading.Thread(
                        target=self._send_late, name="taskdaemon-secret-tail", daemon=True
                    )
                    self._sender.start()
            if texts:
                self._deliver(texts, time_ns)

    def close(self) -> None:
        """The stream ended: hand the held lines on, and end the sending thread."""
        with self._lock:
            sender = self._sender
            if self._held is not None:
                self._deliver(self._held[1], self._held[0])
                self._held = None
            self._woken.notify()
        if sender is not None:
            sender.join()

    def _send_late(self) -> None:
        """The sending thread's: held lines that no batch took by their deadline leave alone,
        and their end is kept; it ends when it wakes to no lines held."""
        with self._lock:
            while self._held is not None:
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._woken.wait(left)
                    continue
                time_ns, lines = self._held
                self._held = None
                longest = max(map(len, MASKED.values), default=0)
                self._kept = glued(lines)[-longest:] if longest else ""
                self._deliver(lines, time_ns)
            self._sender = None


def _continued(kept: str, texts: list[str]) -> list[str]:
    """``texts`` with the pieces of a value that ``kept`` (the end of the line before them,
    already handed on) began masked."""
    if not texts or not holds_masked(glued([kept, *texts])):
        return texts
    return masked_wrapped([kept, *texts], MASKED.values, REDACTED)[1:]
