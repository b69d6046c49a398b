"""Keep ``fork()`` out of SQLite: ``sqlite_section()`` marks a thread's time inside SQLite.

SQLite guards process-wide state (the open-file table of its Unix VFS, its allocator) with
mutexes. The sqlite3 module releases the GIL around SQLite calls, so another thread can
``fork()`` while the span writer, its checkpointer or a heartbeat is in the middle of one. The
child inherits that mutex locked, with no thread left to unlock it: its restarted span writer
then blocks for ever in ``sqlite3.connect`` and every span the child makes is lost. (A stage
handler using ``multiprocessing``, whose default start method on Linux is fork, does exactly
this.)

So the store's threads enter a section around their SQLite work, and a ``before`` fork hook
waits until no thread is inside one and keeps new ones out until the fork is done. Sections
run side by side (the writer and the checkpointer must not serialise); only fork waits. A fork
therefore waits for the SQLite calls in progress, at worst a write waiting out another
process's lock (the store's busy timeout).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["forking", "sqlite_section"]


class _Guard:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.inside = 0  # threads inside a section
        self.forking = False


_guard = _Guard()


@contextmanager
def sqlite_section() -> Iterator[None]:
    """Run the body with fork held off; waits while a fork is under way."""
    guard = _guard
    with guard.cond:
        while guard.forking:
            guard.cond.wait()
        guard.inside += 1
    try:
        yield
    finally:
        with guard.cond:
            guard.inside -= 1
            guard.cond.notify_all()


def forking() -> bool:
    """True while a fork waits for sections to end or is under way (for tests)."""
    return _guard.forking


def _before_fork() -> None:
    guard = _guard
    with guard.cond:
        guard.forking = True
        while guard.inside:
            guard.cond.wait()


def _after_fork_in_parent() -> None:
    guard = _guard
    with guard.cond:
        guard.forking = False
        guard.cond.notify_all()


def _after_fork_in_child() -> None:
    # Only the forking thread exists in the child: nobody is inside a section, and the
    # condition's lock may have been caught held by a thread that no longer exists.
    _guard.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
