"""The watchdog process of ``group_watchdog``: the program, run as ``python -I -S`` of this file.

Arguments: the parent's pid and the grace period in seconds. stdin is the pipe: lines ``+PGID``
list a process group, ``-PGID`` unlist it; ``?TOKEN`` lists a spawn about to start, whose
processes carry ``TOKEN_VARIABLE=TOKEN`` in their environment, and ``!TOKEN`` unlists it (its
group was listed, or it did not start). At end-of-file, or on the parent-death signal once the
parent really changed, every listed group gets SIGTERM, and so does every process that carries
the token of a listed spawn (``group_watchdog``'s docstring says why and which); then, after
the grace period, SIGKILL goes to a group if a process of it is still alive (not a zombie), and
to every process that carries such a token then; then the process exits. It imports only what
it needs (``ctypes`` for ``prctl``, and only here), so its start stays near a bare
interpreter's: ``group_watchdog``'s parent side, with ``logging`` and ``subprocess``, is not
loaded here.

Which listed groups still have a live process is read from ``/proc``; elsewhere (not Linux) a
group counts as live while signal 0 finds a process in it, a zombie too, so that the watchdog
still ends every group, waiting out the grace for a group of zombies only. A spawn's processes
are found through ``/proc`` too (elsewhere none is found): only this user's processes, never
pid 1, this process or its parent (the first one, or the one it has now), each by a pidfd
opened before its environment is read, so that the signal reaches the process whose
environment was read or none (its pid may be reused meanwhile). A process whose environment
cannot be read is skipped, and at most ``ENVIRON_MAX`` bytes of an environment are read: a
command's own variables come first in its shell's environment, but the shell orders its
children's as it likes.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Iterator, Set

#: The signal the watchdog asks the kernel for when its parent ends (``PR_SET_PDEATHSIG``).
_PARENT_DEATH_SIGNAL = signal.SIGUSR1
_PR_SET_PDEATHSIG = 1
#: Seconds between two looks at the groups while they have their grace period.
_POLL = 0.02
#: The environment variable a spawn's processes carry its token in (``command_loop``).
TOKEN_VARIABLE = "TASKDAEMON_SPAWN_TOKEN"  # noqa: S105 - a variable's name, no password
#: The bytes of a process's environment searched for a token: the bound of ``execve``'s
#: arguments and environment together (a quarter of the default 8 MiB stack) is twice this.
ENVIRON_MAX = 1 << 20
#: The bytes of an environment read at once: most are a few KiB (a read of ``ENVIRON_MAX``
#: bytes at once made the search several times slower: ``benchmarks/README.md``).
_ENVIRON_READ = ENVIRON_MAX // 16


def _ask_for_parent_death_signal() -> None:
    """``prctl(PR_SET_PDEATHSIG)``, when the C library offers it (end-of-file is enough without)."""
    try:
        import ctypes  # noqa: PLC0415 - only the watchdog pays for it

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(_PARENT_DEATH_SIGNAL), 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        pass


def _live_groups(groups: set[int], proc: str = "/proc") -> set[int]:
    """Those of ``groups`` that still have a process that is not a zombie (a zombie's parent
    may be an init that never reaps; it holds its group id, and is harmless), read from
    ``proc``; without it, those that have a process, a zombie too (module docstring)."""
    live: set[int] = set()
    try:
        names = os.listdir(proc)
    except OSError:  # not Linux
        for pgid in groups:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                continue
            except OSError:  # a process is there, but not ours to signal
                pass
            live.add(pgid)
        return live
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", "rb") as stat:
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


def _carriers(tokens: Set[bytes], parent: int) -> Iterator[tuple[int, int]]:
    """The pid and a pidfd (the caller closes it) of each of this user's processes whose
    environment carries one of ``tokens``, but pid 1, this process and its parents (module
    docstring)."""
    needles = [b"\0%s=%s\0" % (TOKEN_VARIABLE.encode(), token) for token in tokens]
    spared = {1, os.getpid(), os.getppid(), parent}
    uid = os.getuid()
    try:
        names = os.listdir("/proc")
    except OSError:  # not Linux
        return
    for name in names:
        if not name.isdigit() or int(name) in spared:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            pidfd = os.pidfd_open(int(name))
        except OSError:  # it ended meanwhile, or no pidfds (a kernel before 5.3)
            continue
        try:
            with open(f"/proc/{name}/environ", "rb", buffering=0) as environ:
                # A leading NUL: the first variable is matched as the others are.
                found = b"\0"
                while len(found) <= ENVIRON_MAX and (chunk := environ.read(_ENVIRON_READ)):
                    found += chunk
        except OSError:
            found = b""
        if any(needle in found for needle in needles):
            yield int(name), pidfd
        else:
            os.close(pidfd)


def _signal_carriers(tokens: Set[bytes], parent: int, sig: int, signalled: set[int]) -> int:
    """Send ``sig`` to each process carrying one of ``tokens`` whose pid is not in
    ``signalled`` yet, and add it there; how many carry one (a zombie's environment is empty,
    and so is that of a process in the middle of its exec)."""
    found = 0
    for pid, pidfd in _carriers(tokens, parent):
        found += 1
        try:
            if pid not in signalled:
                signal.pidfd_send_signal(pidfd, sig)
                signalled.add(pid)
        except OSError:  # it ended meanwhile
            pass
        finally:
            os.close(pidfd)
    return found


def _end_groups(
    groups: set[int], grace: float, tokens: Set[bytes] = frozenset(), parent: int = 0
) -> None:
    """SIGTERM every group and every process carrying one of ``tokens``, give them ``grace``
    seconds, SIGKILL what is left (of the groups, and whatever carries a token by then).

    Carriers are looked for at each look of the grace, and at least once after the first
    (a spawn's shell may be in its exec, its new environment not yet set, at the first); each
    gets SIGTERM once."""
    if not groups and not tokens:
        return
    _signal_groups(groups, signal.SIGTERM)
    termed: set[int] = set()
    carriers = _signal_carriers(tokens, parent, signal.SIGTERM, termed) if tokens else 0
    looked_again = not tokens
    deadline = time.monotonic() + grace
    live = _live_groups(groups)
    while (live or carriers or not looked_again) and time.monotonic() < deadline:
        time.sleep(_POLL)
        live = _live_groups(live)
        if tokens:
            carriers = _signal_carriers(tokens, parent, signal.SIGTERM, termed)
        looked_again = True
    _signal_groups(live, signal.SIGKILL)
    if carriers:
        _signal_carriers(tokens, parent, signal.SIGKILL, set())


class _Listing:
    """The groups and the spawns the pipe's lines list so far."""

    def __init__(self) -> None:
        self.groups: set[int] = set()
        self.tokens: set[bytes] = set()  # of the spawns started but whose group is not listed
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            kind, rest = line[:1], line[1:]
            if kind == b"+":
                self.groups.add(int(rest))
            elif kind == b"-":
                self.groups.discard(int(rest))
            elif kind == b"?" and rest:
                self.tokens.add(rest)
            elif kind == b"!":
                self.tokens.discard(rest)

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
    _end_groups(listing.groups, grace, listing.tokens, parent)


if __name__ == "__main__":  # pragma: no cover - the watchdog process
    _watch(int(sys.argv[1]), float(sys.argv[2]))
