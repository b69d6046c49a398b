"""SIGTERM and SIGHUP handled as Ctrl-C is, for the commands whose Ctrl-C is a
``KeyboardInterrupt`` in the main thread (``watch``, ``logs -f``, ``dag --watch``, ``debug
FILE``'s prompt): a process ended by either signal's default action skips every ``finally``
and ``with`` exit, so a live table left the terminal's cursor hidden, a debugged run was left
``interrupted`` in the store, and a follower's parent was told of a death by signal.
With :func:`sigterm_raises`, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``)
instead, and SIGHUP :class:`HungUp`: the same clean stop, exit code 143 or 129
(:func:`exit_code`). A second SIGTERM exits at once. SIGHUP follows ``cli/hangup.py``: left
ignored under ``nohup``, the terminal's streams detached before anything is raised, and a
SIGHUP after the first signal (the shell's, after the kernel's) is no hurry: it changes nothing.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

from taskdaemon.pipeline.cli.hangup import HANGUP_REASON, detach_terminal, hangup_handled
from taskdaemon.pipeline.cli.terminal_state import exit_now

__all__ = ["HungUp", "Terminated", "exit_code", "reason", "sigterm_raises"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: handled wherever Ctrl-C is."""

    signum: int = signal.SIGTERM


class HungUp(Terminated):
    """SIGHUP (the terminal closed), raised in the main thread."""

    signum: int = signal.SIGHUP


def exit_code(stop: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 129 for SIGHUP, 130 for Ctrl-C."""
    return 128 + (stop.signum if isinstance(stop, Terminated) else signal.SIGINT)


def reason(stop: KeyboardInterrupt) -> str | None:
    """The reason a run ``stop`` cancelled records; None: the engine's "run cancelled"."""
    return HANGUP_REASON if isinstance(stop, HungUp) else None


def _stopping() -> None:
    """What signals do once the first one raised: a second SIGTERM exits at once (the user does
    not want to wait); SIGHUP only detaches the terminal."""
    signal.signal(signal.SIGTERM, lambda *_: exit_now(128 + signal.SIGTERM))
    if hangup_handled():
        signal.signal(signal.SIGHUP, lambda *_: detach_terminal())


def _raise(signum: int, frame: FrameType | None) -> None:
    _stopping()
    raise Terminated


def _hang_up(signum: int, frame: FrameType | None) -> None:
    detach_terminal()  # before the stop writes anything: a hung-up terminal fails writes
    _stopping()
    raise HungUp


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated`, and SIGHUP (unless ignored) :class:`HungUp`, in the
    main thread while inside."""
    hangup = hangup_handled()
    previous = signal.signal(signal.SIGTERM, _raise)
    previous_hangup = signal.signal(signal.SIGHUP, _hang_up) if hangup else None
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        # Once stopping, a late SIGHUP (the shell's, as it exits) still only detaches: its
        # default action would end the process before it returns its exit code.
        if previous_hangup is not None and signal.getsignal(signal.SIGHUP) is _hang_up:
            signal.signal(signal.SIGHUP, previous_hangup)
