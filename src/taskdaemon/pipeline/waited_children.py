"""Which of this process's children some code in it may still wait for: ``adopted_reaper``'s
second proof, for an orphan adopted too soon after its start to be told apart by the looks.

``subprocess.run("sleep 9 &", shell=True)`` in a ``def`` handler: the shell ends at once and
its ``sleep`` becomes taskdaemon's child (a subreaper's, ``adopted_orphans``) within a
millisecond of its start. Nothing the kernel keeps tells it from a child taskdaemon forked:
its parent pid before adoption is gone from ``/proc/PID/stat``, its exit signal is reset to a
fork's, and it shares taskdaemon's session and process group, as does every child a handler
starts without a session of its own. Its start time is as close to a spawn of taskdaemon's as
the shell it came from. What does tell is the process itself: every child Python code starts
is started through

* ``subprocess.Popen`` (``subprocess.run``, ``asyncio``'s subprocesses, ``os.popen``), whose
  object keeps the child's ``pid`` until it has waited for it (``returncode`` set), also once
  dropped unwaited (``subprocess._active``); or ``multiprocessing``'s ``Popen``, alike;
* ``os.fork`` (``os.forkpty``, ``pty.fork``, ``multiprocessing``'s fork), whose at-fork hooks
  run in the parent just before and just after it (:class:`Forks` keeps those windows);
* ``os.system``, which blocks in its own ``waitpid`` until its child ended: that child is a
  zombie for no longer than a wake-up.

So a zombie child is nobody's to wait for when it was a zombie at two looks in a row (no waiter
blocked on it), no live ``Popen`` object of this process holds its pid (:func:`waited_pids`, a
walk of the garbage collector's objects), and no ``os.fork`` or spawn may have started it
(:class:`Forks`: its start time falls in no window that may be its).

Decision: the ``Popen`` objects are found by the collector (``gc.get_referrers`` of the
``Popen`` classes, a walk in C that holds the GIL), not by wrapping ``subprocess.Popen``:
nothing of Python's is patched, and a walk costs only when a zombie is left that the looks
could not prove adopted (rare; each one found held by a ``Popen`` is not walked for again while
it is left). The classes walked for are those in ``subprocess.Popen`` and
``multiprocessing``'s when first seen, kept, as well as those there now: a library that later
puts a wrapper, or a class of its own, in ``subprocess.Popen`` leaves the objects made before,
and those made through an earlier ``from subprocess import Popen``, of the first. Objects
frozen (``gc.freeze()``) are out of the collector's walk: taskdaemon's own freezes (``heap``,
once the pipeline has loaded) go through :func:`freeze`, which keeps the ``Popen`` objects it
freezes (a handler module's, made at its import); while any other freeze holds objects (a
handler's), nothing is proven: a ``Popen`` among them would be missed, so no zombie is judged
nobody's until they are unfrozen. The fork windows are kept from :func:`watch` on,
which the entry points call before any stage runs (``adopted_orphans.allow``); a child started
before it, or before the oldest window kept (at most :data:`FORKS_KEPT`), is never judged.

``os.posix_spawn`` and ``os.posix_spawnp`` start a child that no object holds and that no
at-fork hook sees: the caller keeps its pid and waits for it when it likes; so does
``_posixsubprocess.fork_exec`` called directly (``multiprocessing.util.spawnv_passfds``, which
starts ``multiprocessing``'s resource tracker and fork server, and waits for them by their pid,
and its ``spawn`` children). So the entry points replace the three with wrappers
(:func:`watch`) that give each call a window of :data:`forks`, as an ``os.fork``'s: its child is
spared until its waiter has it.

Decision: ``_posixsubprocess.fork_exec`` is wrapped, though it is private. Its callers in the
standard library are ``subprocess``, which binds it once at its import (``from _posixsubprocess
import fork_exec``: the wrapper never sees it, and its ``Popen`` holds the pid anyway), and
``multiprocessing.util.spawnv_passfds``, which looks it up at each call, as public code that
calls it does (a debugger that wraps it to follow child processes). The wrapper takes any
arguments, so the function's signature may change between Python versions; where it is
missing nothing is wrapped. Left out, a resource tracker or fork server that ended early would
have its zombie reaped behind ``multiprocessing``'s back, its ``waitpid`` failing with
``ECHILD``.

Decision: a window that learns its child's pid. The reaper may look while a call runs, before
any pid is known: the window of a call under way spares every child its thread lists. Once the
call has returned, its wrapper gives the window the pid it returned (0 when it raised: no
child), and the window spares that child alone. An orphan adopted meanwhile, which the kernel
lists under the main thread as it lists the main thread's own children (an ``async def``
handler's spawn, or the engine's), is so judged at the next look after the call, where it was
left until the process exited. ``os.fork`` and ``os.forkpty`` are wrapped for that pid too:
their at-fork hooks open and close the window inside the call, and the wrapper names its child
after it. A fork whose pid no wrapper sees (an extension's own ``fork``, a ``from os import
fork`` made before :func:`watch`, ``subprocess``'s ``preexec_fn`` path) keeps a window that
spares every child of its thread. The child stays spared until someone waits for it, which is
the contract: it is this process's own child, whose zombie would be its waiter's as much
without a subreaper. Wrapping is patching Python, which the ``Popen`` objects avoid (above),
but nothing else tells such a child: the wrappers only read the clock twice around the call,
and only in taskdaemon's own process (never a program that embeds the engine). The other ways
to start a child need nothing more: ``os.spawnv*``, ``pty.spawn`` and ``multiprocessing``'s
fork go through ``os.fork`` and ``os.forkpty``; ``subprocess``'s paths leave a ``Popen``
holding the pid.

A child is in the list of the thread that started it from its birth, and leaves it only when
that thread ends, while an adopted orphan is in the main thread's list: so a window spares only
the children listed under its own thread, or under any once its thread has ended (its children
moved). An orphan adopted while another thread forks is judged as any other.

Not reached: a child started by C code that keeps its pid and waits for it later, more than a
look after its end (an extension's own ``fork`` or ``posix_spawn``, or a ``from os import
posix_spawn`` made before :func:`watch`): nothing of the process says it is waited for, so its
zombie is reaped and that wait fails (``ECHILD``); and an orphan adopted inside a window of the
thread it is listed under (the main thread's) whose pid is not known: until its call returns,
or, for a fork no wrapper saw, until the process exits.
"""

from __future__ import annotations

import functools
import gc
import os
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Collection
from typing import ParamSpec, TypeVar

__all__ = ["FORKS_KEPT", "SLACK", "Forks", "forks", "freeze", "waited_pids", "watch"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: ``os.fork`` and spawn windows kept: a fork bomb's bound (older ones raise the floor instead).
FORKS_KEPT = 1024
#: Seconds around a fork window a child's start time may fall in: it is read in clock ticks
#: (``SC_CLK_TCK``, a hundredth of a second on Linux), rounded down.
SLACK = 0.02


class _Window:
    """One ``os.fork`` or spawn call's window: its start and end, its thread (``/proc``'s id),
    and the pid the call returned, once its wrapper knows it (0: it started no child)."""

    __slots__ = ("begun", "ended", "pid", "thread")

    def __init__(self, begun: float, ended: float, thread: int) -> None:
        self.begun, self.ended, self.thread = begun, ended, thread
        self.pid: int | None = None


class Forks:
    """The windows of this process's ``os.fork`` and spawn calls (``CLOCK_BOOTTIME``, the
    clock of a process's start time), each with its thread's id (``/proc/self/task``'s), from
    :meth:`begin` on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Children started before it are never judged (before :meth:`begin`, windows dropped).
        self._floor: float | None = None
        #: The calls under way: their start and thread id, by their thread's ``get_ident``.
        self._open: dict[int, tuple[float, int]] = {}
        self._windows: deque[_Window] = deque()
        #: Each thread's window last closed, until the wrapper of its call gives it its pid.
        self._closed = threading.local()

    def begin(self) -> None:
        """Judge the children started from now on."""
        with self._lock:
            if self._floor is None:
                self._floor = _now()

    def watch(self) -> bool:
        """:meth:`begin`, and keep each ``os.fork``'s window (``register_at_fork``), once; True
        the first time."""
        with self._lock:
            if self._floor is not None:
                return False
            self._floor = _now()
        os.register_at_fork(
            before=self.before, after_in_parent=self.after, after_in_child=self._forget
        )
        return True

    def spawning(self, spawn: Callable[_P, _R]) -> Callable[_P, _R]:
        """``spawn`` (``os.posix_spawn``, ``os.fork``) with a window of its own for each call,
        which knows the pid the call returned once it has returned. A call that forks through
        ``os.fork``'s at-fork hooks (:meth:`before`, :meth:`after`) has its window from them,
        closed inside the call: the pid goes to that one."""

        @functools.wraps(spawn)
        def within(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            self._closed.window = None
            self.before()
            pid = 0
            try:
                started = spawn(*args, **kwargs)
                pid = _pid_of(started)
                return started
            finally:
                self.after()
                self._born(pid)

        return within

    def before(self) -> None:
        """A fork starts on this thread (no lock: another thread may hold it in the child)."""
        self._open[threading.get_ident()] = (_now(), threading.get_native_id())

    def after(self) -> None:
        """The fork this thread started has returned in the parent."""
        started = self._open.pop(threading.get_ident(), None)
        if started is None:
            return
        window = _Window(started[0], _now(), started[1])
        self._closed.window = window
        with self._lock:
            self._windows.append(window)
            if len(self._windows) > FORKS_KEPT:
                dropped = self._windows.popleft()
                self._floor = max(self._floor or 0.0, dropped.ended)

    def _born(self, pid: int) -> None:
        """The call whose window this thread closed last returned ``pid`` (0 in a fork's child,
        where its parent's windows are gone, or when it started none)."""
        window: _Window | None = getattr(self._closed, "window", None)
        self._closed.window = None
        if window is not None:
            window.pid = pid

    def _forget(self) -> None:
        """In the child: its parent's forks are not its own, and the lock may be held."""
        self._lock = threading.Lock()
        self._open.clear()
        self._windows.clear()
        self._closed = threading.local()

    def spared(
        self,
        started: float,
        listed: int | None = None,
        alive: Collection[int] = (),
        pid: int | None = None,
    ) -> bool:
        """Whether a child started at ``started`` (seconds since boot) may be an ``os.fork``'s
        or a spawn's of this process, or is not judged at all. ``listed``: the thread whose
        children it is listed among, ``alive`` the threads that were alive then; a window of
        another thread still alive does not spare it (None: every window does). ``pid``: the
        child's; a window whose call returned another pid does not spare it (None: every
        window does)."""
        with self._lock:
            floor, windows = self._floor, list(self._windows)
        opened = list(self._open.values())
        if floor is None or started <= floor + SLACK:
            return True

        def mine(thread: int) -> bool:
            return listed is None or thread == listed or thread not in alive

        if any(started >= begun - SLACK for begun, thread in opened if mine(thread)):
            return True
        return any(
            window.begun - SLACK <= started <= window.ended + SLACK
            for window in windows
            if mine(window.thread) and (pid is None or window.pid in (None, pid))
        )


#: The ``Popen`` classes first seen in their modules, from this module's import on, walked for
#: even once another class has taken their place.
_first_seen: dict[tuple[str, str], type] = {("subprocess", "Popen"): subprocess.Popen}

#: The ``Popen`` objects taskdaemon's own freezes (:func:`freeze`) moved out of the walk; under
#: the lock, with the sentinel: a young container referring to :data:`_MARKER`, made after
#: each of them, that the walk no longer finds once another freeze moved it out too.
_frozen: weakref.WeakSet[object] = weakref.WeakSet()
_MARKER = object()
_sentinel: list[list[object]] = [[_MARKER]]
_frozen_lock = threading.Lock()

#: This process's forks: watched by the entry points (``adopted_orphans.allow``).
forks = Forks()


#: What :func:`watch` wraps: the module, and the names of its calls that start a child.
_SPAWNS = (
    ("os", ("posix_spawn", "posix_spawnp", "fork", "forkpty")),
    ("_posixsubprocess", ("fork_exec",)),
)


def watch() -> None:
    """:meth:`Forks.watch` of :data:`forks`, and, the first time, each call of
    :data:`_SPAWNS` replaced by its :meth:`Forks.spawning`: the entry points' only."""
    if forks.watch():
        for module, names in _SPAWNS:
            found = sys.modules.get(module)  # both imported with ``subprocess``
            for name in names:
                spawn = getattr(found, name, None)
                if spawn is not None:
                    setattr(found, name, forks.spawning(spawn))


def freeze() -> None:
    """``gc.freeze()`` (``heap``'s), keeping the ``Popen`` objects it moves out of the
    collector's walk (one a handler module made at its import, as the pipeline loaded): they
    still hold their children.

    The heap is walked for them only while this process has a child: a ``Popen`` object whose
    child is gone holds nothing to reap, and the walk of a whole heap is the freeze's cost on
    every run. Not reached: a ``Popen`` another thread makes during the freeze whose child is
    forked after it (a thread a handler module started at its import, spawning then)."""
    with _frozen_lock:
        kinds = _popen_kinds() if _has_children() else []
        for held in gc.get_referrers(*kinds) if kinds else ():
            if type(held) in kinds:
                try:
                    _frozen.add(held)
                except TypeError:  # a class put in subprocess.Popen with no __weakref__
                    continue
        gc.freeze()
        _sentinel[0] = [_MARKER]


def _has_children() -> bool:
    """Whether some thread of this process has a child (``/proc``; True where it cannot
    tell)."""
    try:
        tasks = os.listdir("/proc/self/task")
        for task in tasks:
            with open(f"/proc/self/task/{task}/children", "rb") as listed:
                if listed.read(1):
                    return True
    except OSError:
        return True
    return False


def waited_pids() -> set[int] | None:
    """The pids that a live ``Popen`` object of this process (``subprocess``'s, or
    ``multiprocessing``'s when loaded, or a subclass's) holds and has not waited for; None
    while another freeze than :func:`freeze` (a handler's ``gc.freeze()``) holds objects out of
    the collector's walk: it cannot tell."""
    kinds = _popen_kinds()
    with _frozen_lock:
        # The collector's own walk, in C: an instance of a class refers to its class. type(),
        # not isinstance(): an object's own __class__ (a proxy's) is never run.
        found = gc.get_referrers(_MARKER, *kinds)
        if not any(held is _sentinel[0] for held in found):
            return None
        held = [popen for popen in found if type(popen) in kinds] + list(_frozen)
    pids: set[int] = set()
    for popen in held:
        try:  # a class put in subprocess.Popen may have no __dict__ (__slots__)
            attributes = object.__getattribute__(popen, "__dict__")
        except AttributeError:
            continue
        pid = attributes.get("pid")
        if isinstance(pid, int) and attributes.get("returncode") is None:
            pids.add(pid)
    return pids


def _popen_kinds() -> set[type]:
    """The ``Popen`` classes in their modules now and when first seen, and their subclasses."""
    kinds: set[type] = set()
    for where in (("subprocess", "Popen"), ("multiprocessing.popen_fork", "Popen")):
        now = getattr(sys.modules.get(where[0]), where[1], None)
        if isinstance(now, type):
            _first_seen.setdefault(where, now)
        for kind in {now, _first_seen.get(where)}:
            if isinstance(kind, type):
                kinds.update(_with_subclasses(kind))
    return kinds


def _with_subclasses(kind: type) -> list[type]:
    found = [kind]
    subclasses: list[type] = type.__subclasses__(kind)
    for subclass in subclasses:
        found.extend(_with_subclasses(subclass))
    return found


def _pid_of(started: object) -> int:
    """The pid a spawn returned (``os.forkpty``'s is first of two; 0 in a fork's child)."""
    if isinstance(started, tuple) and started:
        started = started[0]
    return started if isinstance(started, int) else 0


def _now() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)
