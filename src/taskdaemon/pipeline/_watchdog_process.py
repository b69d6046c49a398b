"""The watchdog process of ``group_watchdog``: the program, run as ``python -I -S`` of this file.

Arguments: the parent's pid and the grace period in seconds. stdin is the pipe: lines ``+PGID``
list a process group, ``-PGID`` unlist it. At end-of-file, or on the parent-death signal once
the parent really changed, every listed group gets SIGTERM, then, after the grace period,
SIGKILL if a process of it is still alive (not a zombie); then the process exits. It imports
only what it needs (``ctypes`` for ``prctl``, and only here), so its start stays near a bare
interpreter's: ``group_watchdog``'s parent side, with ``logging`` and ``subprocess``, is not
loaded here.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

#: The signal the watchdog asks the kernel for when its parent ends (``PR_SET_PDEATHSIG``).
_PARENT_DEATH_SIGNAL = signal.SIGUSR1
_PR_SET_PDEATHSIG = 1
#: Seconds between two looks at the groups while they have their grace period.
_POLL = 0.02


def _ask_for_parent_death_signal() -> None:
    """``prctl(PR_SET_PDEATHSIG)``, when the C library offers it (end-of-file is enough without)."""
    try:
        import ctypes  # noqa: PLC0415 - only the watchdog pays for it

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(_PARENT_DEATH_SIGNAL), 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        pass


def _live_groups(groups: set[int]) -> set[int]:
    """Those of ``groups`` that still have a process that is not a zombie (a zombie's parent
    may be an init that never reaps; it holds its group id, and is harmless)."""
    live: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue  # it ended meanwhile
        # After the command's name: state, ppid, pgrp.
        if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) in groups:
            live.add(int(fields[2]))
    return live


def _signal_groups(groups: set[int], sig: signal.Signals) -> None:
    for pgid in groups:
        try:  # noqa: SIM105 - contextlib is one import more at start-up
            os.killpg(pgid, sig)
        except OSError:  # gone already, or no longer ours to signal
            pass


def _end_groups(groups: set[int], grace: float) -> None:
    """SIGTERM every group, give them ``grace`` seconds, SIGKILL what is left."""
    if not groups:
        return
    _signal_groups(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace
    live = _live_groups(groups)
    while live and time.monotonic() < deadline:
        time.sleep(_POLL)
        live = _live_groups(live)
    _signal_groups(live, signal.SIGKILL)


class _Listing:
    """The groups the pipe's lines list so far."""

    def __init__(self) -> None:
        self.groups: set[int] = set()
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                self.groups.add(int(line[1:]))
            elif line[:1] == b"-":
                self.groups.discard(int(line[1:]))

    def drain(self, fd: int) -> None:
        """Feed what the pipe holds now, without waiting for more."""
        os.set_blocking(fd, False)
        try:
            while chunk := os.read(fd, 65536):
                self.feed(chunk)
        except OSError:  # BlockingIOError: nothing more was written
            pass


def _watch(parent: int, grace: float) -> None:  # pragma: no cover - runs in the watchdog
    # The parent-death signal only wakes the loop (through the wake-up pipe): a handler that
    # raised could do so between a read and the handling of what it read, losing a line.
    wake, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(_PARENT_DEATH_SIGNAL, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _ask_for_parent_death_signal()
    listing = _Listing()
    while os.getppid() == parent:  # else it ended, maybe before the request took effect
        ready = select.select([0, wake], [], [])[0]
        if 0 in ready:
            chunk = os.read(0, 65536)
            if not chunk:  # end-of-file: the parent ended
                break
            listing.feed(chunk)
        elif wake in ready:  # a signal; the parent's end, or merely its starting thread's
            os.read(wake, 512)
    else:
        listing.drain(0)  # what the parent wrote before it ended, not yet read
    _end_groups(listing.groups, grace)


if __name__ == "__main__":  # pragma: no cover - the watchdog process
    _watch(int(sys.argv[1]), float(sys.argv[2]))
