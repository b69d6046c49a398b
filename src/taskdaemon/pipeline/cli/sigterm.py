"""SIGTERM handled as Ctrl-C is, for the commands whose Ctrl-C is a ``KeyboardInterrupt`` in
the main thread (``watch``, ``debug FILE``'s prompt): a process ended by SIGTERM's default
action skips every ``finally`` and ``with`` exit, so a live table left the terminal's cursor
hidden and a debugged run was left ``interrupted`` in the store. With :func:`sigterm_raises`,
SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``) instead: the same clean stop, exit
code 143 (:func:`exit_code`). A second SIGTERM exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType

__all__ = ["Terminated", "exit_code", "sigterm_raises"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: handled wherever Ctrl-C is."""

    signum = signal.SIGTERM


def exit_code(stop: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + (stop.signum if isinstance(stop, Terminated) else signal.SIGINT)


def _raise(signum: int, frame: FrameType | None) -> None:
    # A second SIGTERM while the first one's stop is under way: the user does not want to wait.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(128 + signal.SIGTERM))
    raise Terminated


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread while inside."""
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
