"""The span store writer's health: what ``/readyz`` reports and how many spans were lost.

A span is *dropped* when the row of its end could not be committed (its batch's transaction
failed, "database or disk is full" for instance): it is then in no store, and counted once. A
span whose start row was lost but whose end row was written later is not dropped.

The store is *failing* from a failed batch until a later batch holding spans commits. A commit
of the writer's heartbeat alone does not count: on a full disk the heartbeat (one row updated in
place) can succeed while every batch of spans fails, and ``/readyz`` must not flip back to
ready while spans are still being dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["StoreHealth", "WriteFailures"]


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """The span store writer's verdict for ``/readyz``."""

    ok: bool
    detail: str


class WriteFailures:
    """Dropped spans and the failing state of one writer (see the module docstring).

    The writer thread records outcomes; any thread reads them (``/readyz``, the metric
    ``taskdaemon.spans.dropped``, the end-of-run report).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dropped = 0
        self._failing = False
        self._last_error: str | None = None
        self._dropped_at_recovery: int | None = None

    @property
    def dropped(self) -> int:
        """Spans dropped since the writer started."""
        return self._dropped

    @property
    def failing(self) -> bool:
        """True from a failed batch until a batch holding spans is written."""
        return self._failing

    @property
    def last_error(self) -> str | None:
        """The cause of the latest failed batch (kept after writes recover), or None."""
        return self._last_error

    @property
    def dropped_at_recovery(self) -> int | None:
        """``dropped`` when writes last succeeded again (what the recovery line said), or None
        before any recovery: the spans dropped since are ``dropped`` minus it."""
        return self._dropped_at_recovery

    def failed(self, spans: int, error: BaseException) -> bool:
        """A batch holding ``spans`` ended spans failed with ``error``; True when this starts a
        failing period (the one to log)."""
        with self._lock:
            self._dropped += spans
            self._last_error = str(error) or type(error).__name__
            started = not self._failing
            self._failing = True
            return started

    def succeeded(self, spans: int) -> bool:
        """A batch holding ``spans`` rows (0: a heartbeat) was committed; True when this ends a
        failing period (the one to log)."""
        if not spans:
            return False
        with self._lock:
            ended = self._failing
            self._failing = False
            if ended:
                self._dropped_at_recovery = self._dropped
            return ended
