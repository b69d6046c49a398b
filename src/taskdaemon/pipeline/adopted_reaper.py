"""Zombies of processes taskdaemon adopted as a subreaper and no stage ends: reaped by pid.

Once taskdaemon is a child subreaper (``adopted_orphans``), every orphan below it becomes its
child, and, when it ends, its zombie until someone waits for it. A command stage's orphans are
waited for at the stage's end; two kinds are not: an orphan of a Python handler's own
subprocess (``subprocess.run("sleep 9 & sleep 3", shell=True)`` in a ``def`` handler), and a
process that left a command stage's group and ended between two samples. Under ``serve``
(months of runs) their zombies would pile up: init reaped them before taskdaemon was a
subreaper.

Never reaped: a child some code in the process still waits for. ``subprocess.Popen`` (and
``asyncio``'s child watcher) reads ``ECHILD`` as exit 0, so reaping such a child gives its
waiter a wrong status, silently; ``waitpid(-1)`` is therefore never called. The kernel shows no
mark of adoption (an orphan's parent pid and exit signal become those of a fork's child,
prctl(2)), but the order of events tells: a child taskdaemon forks is its child from birth (in
the forking thread's ``/proc/self/task/TID/children``); an adopted one becomes its child only
when its parents end. So each look (:class:`Reaper`) keeps the set of children of all of
taskdaemon's threads and the time it was taken (``CLOCK_BOOTTIME``, the clock of
``/proc/PID/stat``'s start time, field 22, in clock ticks since boot). A child absent from the
last look whose start time is more than :data:`MARGIN` before that look existed then and was
nobody's child of taskdaemon: it was adopted since, and its zombie is reaped by its pid
(``waitpid(pid, WNOHANG)``), its start time compared first (a pid is reused only once reaped).
The margin covers the kernel's order inside fork (a child's start time is set a moment before
it is linked to its parent's list); a look read while one of taskdaemon's threads ended (its
children move to another thread) is not used, nor one whose lists exceed :data:`LIMIT` (a fork
bomb): neither may prove an absence.

An orphan adopted within the margin of its start (``sleep 9 &`` whose shell ends at once) is
proven nobody's the other way, from what the process knows of the children its code starts
(``waited_children``): a zombie at two usable looks in a row, which no ``Popen`` object of the
process holds and which no ``os.fork`` or spawn of it started (one of the thread whose
children list it, or of a thread gone, that returned its pid or no pid yet), is reaped by its
pid. A look reads the
children's states only when some child is a zombie (``waitid`` with ``WNOWAIT``, which reaps
nothing), and walks the ``Popen`` objects only when such a zombie is left to judge.

Decision: this, not a reaper process of each command stage (a subreaper of its own between
taskdaemon and the command, so that taskdaemon adopts nothing). Such a process is one more
interpreter started per command stage, its cost on every stage though few leave anything; the
stage's process would no longer be the command's (its group, its samples, its signals and exit
status relayed); and a ``def`` handler's orphans, the case above, would go to init as before
runend57, which a stage's reaper does not change. The group of a stage does not tell either: a
handler's own subprocess, and its orphans, share taskdaemon's session and group.

Decision: one daemon thread looks every :data:`INTERVAL` seconds, started when the process
becomes a subreaper (only then are there orphans to adopt) and stopped at exit, off the event
loop; ``serve`` idle, and a ``def`` handler's orphans with no command stage running, are looked
at too. A low rate, because what it reaps holds no resource but a pid slot, and every look
reads a ``children`` file per thread.

Not reached: an orphan adopted less than :data:`MARGIN` after its start whose start time falls
in a window of the thread it is listed under (the main thread) of a fork whose pid no wrapper
of ``waited_children`` saw, or whose pid a ``Popen`` holds (reused), and what
``waited_children`` says it cannot tell: their zombies stay until taskdaemon exits; and more
than :data:`LIMIT` adopted processes or zombies waiting at once (the others are left to
taskdaemon's exit).
"""

from __future__ import annotations

import os
import threading
import time

from taskdaemon.pipeline import waited_children

__all__ = ["INTERVAL", "LIMIT", "MARGIN", "Reaper", "reaped", "start", "stat_fields", "stop"]

#: Seconds between two looks.
INTERVAL = 1.0
#: Seconds a child must have existed before a look that did not find it to count as adopted.
MARGIN = 1.0
#: Children per thread's list, threads per look, and adopted processes kept: a fork bomb's bound.
LIMIT = 1024

_started: list[threading.Thread] = []
_start_lock = threading.Lock()
_stop = threading.Event()


def start() -> None:
    """Start the look's thread, once per process (the subreaper's, ``adopted_orphans``)."""
    with _start_lock:
        if _started or _stop.is_set():
            return
        reaper = Reaper()

        def run() -> None:
            while not _stop.wait(INTERVAL):
                reaper.look()

        # Named taskdaemon-*: not taken for stage code's thread (``cli/stage_leftovers``).
        thread = threading.Thread(target=run, name="taskdaemon-reaper", daemon=True)
        thread.start()
        _started.append(thread)


def stop() -> None:
    """Stop the look's thread and wait for its look in progress: registered with ``atexit``
    by the entry points (``adopted_orphans.allow``), outside any stage, so that the hook is
    not taken for stage code's (``cli/stage_leftovers``)."""
    with _start_lock:
        _stop.set()
        started = list(_started)
    for thread in started:
        thread.join(INTERVAL)


class Reaper:
    """The adopted children one process found, and its last usable look."""

    def __init__(self, forks: waited_children.Forks | None = None) -> None:
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._forks = waited_children.forks if forks is None else forks
        self._last: tuple[float, frozenset[int]] | None = None
        #: Adopted children not yet reaped: pid to start time (clock ticks since boot).
        self.adopted: dict[int, int] = {}
        #: Zombie children not proven adopted at the last usable look: pid to start time.
        self._zombies: dict[int, int] = {}
        #: Those of them a ``Popen`` object held: left to it, not looked for again.
        self._held: dict[int, int] = {}

    def look(self) -> list[int]:
        """One look: keep the children adopted since the last one, reap those that ended.
        Returns the pids reaped."""
        now = time.clock_gettime(time.CLOCK_BOOTTIME)
        read = _children()
        if read is not None:
            children, threads = read
            if self._last is not None:
                then, seen = self._last
                for pid in children.keys() - seen:
                    started = _start(pid)
                    if (
                        started is not None
                        and started[1] / self._ticks < then - MARGIN
                        and len(self.adopted) < LIMIT
                    ):
                        self.adopted[pid] = started[1]
            self._last = (now, frozenset(children))
            return self._reap() + self._unwaited(children, threads)
        return self._reap()

    def _reap(self) -> list[int]:
        done = []
        for pid, started in list(self.adopted.items()):
            state = _start(pid)
            if state is None or state[1] != started:
                del self.adopted[pid]  # reaped by someone else (a handler's waitpid(-1))
            elif state[0] == "Z" and reaped(pid):
                del self.adopted[pid]
                done.append(pid)
        return done

    def _unwaited(self, children: dict[int, int], threads: set[int]) -> list[int]:
        """Reap the zombies that were zombies at the last usable look too and that no code of
        this process waits for (``waited_children``), judged by the windows of the thread each
        is listed under and of the threads gone (``threads`` are alive). Returns the pids
        reaped."""
        zombies: dict[int, int] = {}
        for pid in children if _any_zombie() else ():
            state = None if pid in self.adopted else _start(pid)
            if state is not None and state[0] == "Z" and len(zombies) < LIMIT:
                zombies[pid] = state[1]
        before, self._zombies = self._zombies, zombies
        self._held = {pid: at for pid, at in self._held.items() if zombies.get(pid) == at}
        judged = [
            pid
            for pid, at in zombies.items()
            if before.get(pid) == at
            and pid not in self._held
            and not self._forks.spared(at / self._ticks, children[pid], threads, pid)
        ]
        waited = waited_children.waited_pids() if judged else set()
        if waited is None:
            return []  # objects frozen out of the walk: nothing is proven at this look
        done = []
        for pid in judged:
            if pid in waited:
                self._held[pid] = zombies[pid]
            elif reaped(pid):
                del zombies[pid]
                done.append(pid)
        return done


def reaped(pid: int) -> bool:
    """Reap ``pid`` if it has ended; True once it is gone: by its pid, never ``waitpid(-1)``."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not a child (any more): nothing of it is left to this process
    return done == pid


def _any_zombie() -> bool:
    """Whether some child of this process is a zombie: one system call that reaps nothing
    (``WNOWAIT``), so that a look reads no child's ``stat`` while none has ended."""
    try:
        return os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return False


def _children() -> tuple[dict[int, int], set[int]] | None:
    """The children of all this process's threads, each with the thread it is listed under,
    and those threads; None when the look proves nothing (a thread ended meanwhile, or a list
    over :data:`LIMIT`)."""
    me = os.getpid()
    threads = _threads(me)
    if threads is None:
        return None
    children: dict[int, int] = {}
    for tid in threads:
        try:
            with open(f"/proc/{me}/task/{tid}/children", "rb") as listing:
                found = listing.read().split()
        except OSError:
            return None  # the thread ended: its children moved to another one
        if len(found) > LIMIT:
            return None
        try:
            children.update(dict.fromkeys(map(int, found), tid))
        except ValueError:
            return None
    after = _threads(me)
    return (children, after) if after is not None and threads <= after else None


def _threads(me: int) -> set[int] | None:
    try:
        threads = {int(tid) for tid in os.listdir(f"/proc/{me}/task")}
    except (OSError, ValueError):
        return None
    return threads if len(threads) <= LIMIT else None


def stat_fields(pid: int) -> tuple[str, list[str]] | None:
    """A process's name and the fields after it in ``/proc/PID/stat`` (the state letter first),
    or None once it is gone: one reader for this module and ``adopted_orphans``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode("utf-8", "replace")
    except OSError:
        return None
    end = text.rfind(")")
    return text[text.find("(") + 1 : end], text[end + 2 :].split()


def _start(pid: int) -> tuple[str, int] | None:
    """A process's state letter and start time (clock ticks since boot), ``/proc/PID/stat``."""
    read = stat_fields(pid)
    try:
        return None if read is None else (read[1][0], int(read[1][19]))
    except (IndexError, ValueError):
        return None
