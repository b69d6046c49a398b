"""Processes a command stage left behind outside its process group: adopted, said and ended.

A command stage's group ends with its stage (``command_loop``), but a process that left the
group (``setsid sleep 600 >/dev/null 2>&1 &``, a daemon's double fork) is in no group
taskdaemon knows. When its parents end it is an orphan, and Linux gives an orphan to the
nearest ancestor that asked to be a *child subreaper* (prctl(2), ``PR_SET_CHILD_SUBREAPER``),
else to init. So the first command stage of a process makes taskdaemon a subreaper
(:func:`become_subreaper`, once per process): such a process becomes taskdaemon's child.
Only in taskdaemon's own process: its entry points (``taskdaemon``'s ``main``, ``python -m
taskdaemon.pipeline.cli``) call :func:`allow` first. A program that embeds the engine, and the
tests' own process, is never made a subreaper behind its back: every orphan below it would
become its child to reap, and a test that waits for a process's end would find its zombie.

Which stage's: each spawn's environment carries its own random token
(``TASKDAEMON_SPAWN_TOKEN``, ``group_watchdog``), which children inherit. While a stage's command
runs, each sample of its process tree also looks at taskdaemon's children (``/proc``'s
``task/PID/children``): a child that carries this spawn's token, or is in its group, other than the
command's own process, is one the stage left (:class:`Orphans`). Tokens tell apart the stages of
concurrent runs under ``serve``, which each keep their own.

Decision: killed (SIGKILL) when its stage ends, as its group is, and said in one warning naming
the stage and the processes. The contract of a command stage is that its processes do not
outlive it; a process that left its group holding nothing is otherwise invisible: the run's
record says the stage ended while the work goes on, and under ``serve`` such processes pile up
run after run. A service that must outlive its stage belongs to a service manager
(``systemd-run``), not to a stage. (Before, such a process ran on unsaid; exit56's note.)

Each process found is reaped by its pid (``waitpid``), never by ``waitpid(-1)``, which would
take the exit status of a child that ``asyncio`` or ``subprocess`` waits for. A fork bomb is
bounded: each look reads at most :data:`LOOK_LIMIT` children it does not know yet and keeps
at most as many, and the end kills and looks again in rounds only while the grace lasts; what is
left then is counted in the warning. Children known not to be the spawn's (at most
:data:`LOOK_LIMIT` of them) are skipped unread: listed first (the kernel lists the oldest
first), other stages' commands under ``serve`` would otherwise use up every look and hide what
this stage left. Not reached: more than twice :data:`LOOK_LIMIT` other children at once.

A pid is a process's only while it is unreaped: one that a stage left and that ended during the
stage may be reaped by ``adopted_reaper`` and its pid given to another process, even one that
is no child of taskdaemon. So each process found is kept with its start time
(``/proc/PID/stat``'s field 22), and the end kills and waits for a pid only while that is
still the same: a process that took a freed pid is neither killed nor has its status taken.
A start time is in clock ticks: a pid taken again within the tick of the first one's start is
not told apart, which needs the kernel to go round all pids in that time (or root's
``ns_last_pid``).

Not reached: off Linux (no subreaper, nothing changes, docs/architecture.md says so); a process
that left the group, dropped the token (``env -i``) and kept no parent in the group; one that
left the group and ended between two samples before its stage's end, and an orphan of a Python
handler's own subprocess, adopted too but no stage's to end (left running): their zombies are
reaped by ``adopted_reaper`` when it can tell them from a child some handler's ``subprocess``
waits for (adopted at least a second after their start, or a zombie no ``Popen`` of the process
holds and no ``os.fork`` or spawn of it started, ``waited_children``), else they stay until
taskdaemon exits; and, as before, everything after taskdaemon is killed outright (its orphans
go to init then).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

from taskdaemon.pipeline.adopted_reaper import reaped, stat_fields

__all__ = ["LOOK_LIMIT", "Orphans", "allow", "become_subreaper"]

#: prctl(2)'s option number (linux/prctl.h).
_PR_SET_CHILD_SUBREAPER = 36
#: Children examined per look, and processes kept per stage: a fork bomb's bound.
LOOK_LIMIT = 256
#: Names of processes a warning shows; the others are counted.
SHOWN = 5

_lock = threading.Lock()
#: Whether this process may become a subreaper (:func:`allow`), and whether it is one.
_subreaper: dict[str, bool] = {}


def allow() -> None:
    """Let this process become a subreaper at its first command stage: the entry points'."""
    import atexit  # noqa: PLC0415

    from taskdaemon.pipeline import adopted_reaper, waited_children  # noqa: PLC0415

    with _lock:
        if "allowed" not in _subreaper:
            _subreaper["allowed"] = True
            atexit.register(adopted_reaper.stop)  # the zombies' look ends with the process
            waited_children.watch()  # before any stage: each fork's and spawn's window known


def become_subreaper() -> bool:
    """Make this process a child subreaper, once, if :func:`allow` was called; True when it is
    one (Linux only)."""
    with _lock:
        if "allowed" not in _subreaper:
            return False
        if "is" not in _subreaper:
            _subreaper["is"] = _ask_kernel()
            if _subreaper["is"]:
                from taskdaemon.pipeline import adopted_reaper  # noqa: PLC0415

                adopted_reaper.start()  # the zombies no stage waits for
        return _subreaper["is"]


def _ask_kernel() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # noqa: PLC0415 - a process with command stages only

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _children() -> list[int]:
    """The main thread's children: the kernel gives an orphan to its subreaper's first thread
    that is not exiting, the main thread while the process runs (a child another thread forked
    is in that thread's list, but such a child is no orphan)."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as listing:
            return [int(child) for child in listing.read().split()]
    except (OSError, ValueError):
        return []


def _state(pid: int) -> tuple[str, int, str, int] | None:
    """A process's state letter, process group, name and start time (clock ticks since boot),
    from ``/proc/PID/stat``."""
    read = stat_fields(pid)
    try:
        return None if read is None else (read[1][0], int(read[1][2]), read[0], int(read[1][19]))
    except (IndexError, ValueError):
        return None


def _carries(pid: int, entry: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return entry in environ.read().split(b"\0")
    except OSError:
        return False


class Orphans:
    """The processes one command spawn left outside its group that taskdaemon adopted.

    ``root`` is the command's own process (its group's id, reaped by its own waiter), ``token``
    its spawn's token. :meth:`look` runs off the event loop (with the tree's sample);
    :meth:`end` once, at the stage's end, after the group's end.
    """

    def __init__(self, root: int, token: str) -> None:
        from taskdaemon.pipeline._watchdog_process import TOKEN_VARIABLE  # noqa: PLC0415

        self._root = root
        self._entry = f"{TOKEN_VARIABLE}={token}".encode()
        self._found: dict[int, tuple[str, int]] = {}  # each one's name and start time
        # Children seen not to be the spawn's (other stages' commands, the watchdog): not read
        # again, as a process's environment and a live one's group are its own (at most
        # LOOK_LIMIT kept). A pid comes back only once the kernel has gone round all pids, so
        # a new orphan of this spawn is not mistaken for one of these while the stage runs.
        self._others: set[int] = set()
        self._lock = threading.Lock()

    def look(self) -> bool:
        """Keep each child of this process the spawn left (its token, or its group); True when
        the look stopped at its bound with children left unread."""
        read = 0
        for pid in _children():
            if pid in self._others or pid in self._found:
                continue  # known: skipped, not read (the kernel lists the oldest first)
            if read >= LOOK_LIMIT or len(self._found) >= LOOK_LIMIT:
                return True
            read += 1
            state = _state(pid)
            if state is None:
                continue
            letter, group, name, start = state
            if pid != self._root and (
                group == self._root or (letter != "Z" and _carries(pid, self._entry))
            ):
                with self._lock:
                    self._found[pid] = (name, start)
            elif letter != "Z" and len(self._others) < LOOK_LIMIT:
                self._others.add(pid)
        return False

    def end(self, grace: float) -> tuple[list[str], int, int]:
        """Kill and reap what :meth:`look` finds, in rounds while ``grace`` lasts.

        Returns the names of the processes that were still running (at most :data:`SHOWN`),
        how many there were, and how many are left unreaped at the deadline."""
        deadline = time.monotonic() + grace
        killed: dict[int, str] = {}
        while True:
            # A round that killed and reaped all it found is not the last when its look was
            # cut short: the children past the bound are read by the next one. A cut look
            # that found none of ours reads the same children again: no more rounds then.
            cut = self.look()
            with self._lock:
                found = dict(self._found)
            for pid, (name, start) in found.items():
                state = _state(pid)
                if state is not None and state[3] != start:
                    # Ours ended and was reaped by another (``adopted_reaper``), and its pid is
                    # another process's now: neither killed nor waited for.
                    with self._lock:
                        self._found.pop(pid, None)
                    continue
                if state is not None and state[0] != "Z":
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                        killed[pid] = f"{pid} {name!r}"
                if reaped(pid):
                    with self._lock:
                        self._found.pop(pid, None)
            if (not self._found and not (cut and found)) or time.monotonic() >= deadline:
                return list(killed.values())[:SHOWN], len(killed), len(self._found)
            time.sleep(0.01)  # SIGKILL needs no cooperation: a round is enough but for a bomb
