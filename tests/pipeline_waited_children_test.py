"""The children of ``taskdaemon``'s process that its own code waits for, told from adopted
orphans by their start (``waited_children``): a child a handler ``posix_spawn``s, or
``multiprocessing`` starts with ``fork_exec``, and waits for later keeps its exit status (before,
the reaper took its zombie and that wait failed with ``ECHILD``), and an orphan adopted while
another thread forks, or while the main thread's own spawn runs, is reaped (before, its zombie
stayed until taskdaemon exited)."""

from __future__ import annotations

import contextlib
import multiprocessing.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_support import run_quiet
from subreaper_support import stage_outputs, subreaper, subreaper_pipeline
from taskdaemon.pipeline import adopted_reaper, waited_children

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a subreaper is Linux's")

#: A ``def`` handler that starts two children with ``os.posix_spawn`` and ``os.posix_spawnp``
#: (no ``Popen``, no at-fork hook), lets them be zombies across the reaper's looks, then waits
#: for each by its pid.
_HANDLERS = """\
import os
import time


def spawn(context):
    spawned = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 3"], os.environ)
    found = os.posix_spawnp("true", ["true"], os.environ)
    time.sleep(3.5)  # zombies at more than two looks of the reaper, a second apart
    codes = []
    for pid in (spawned, found):
        try:
            codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        except ChildProcessError:
            codes.append("reaped behind its waiter's back")
    return {"codes": codes}
"""


@pytest.mark.slow
def test_a_child_a_handler_posix_spawns_keeps_its_status_for_its_waiter(
    home: Path, tmp_path: Path
) -> None:
    """The handler's waits, after many looks, read exit 3 and 0 by the children's pids."""
    pipeline = subreaper_pipeline("spawning:spawn")
    ran = run_quiet(home, tmp_path, ("spawning", _HANDLERS), pipeline)
    assert {"codes": [3, 0]} == stage_outputs(home, ran)


def _watched(monkeypatch: pytest.MonkeyPatch) -> tuple[waited_children.Forks, list[object]]:
    """``watch`` on a throwaway ``Forks``, each call it wraps put back after the test (its
    at-fork hooks stay registered: ``os.register_at_fork`` has no undo, and each later fork
    adds a window to it, nothing else); the calls it replaced, in ``_SPAWNS``' order."""
    forks = waited_children.Forks()
    monkeypatch.setattr(waited_children, "forks", forks)
    originals = []
    for module, names in waited_children._SPAWNS:
        for name in names:
            originals.append(getattr(sys.modules[module], name))
            monkeypatch.setattr(sys.modules[module], name, originals[-1])
    waited_children.watch()
    return forks, originals


def _spawns() -> list[object]:
    return [
        getattr(sys.modules[module], name)
        for module, names in waited_children._SPAWNS
        for name in names
    ]


def test_watch_gives_each_spawn_a_window_and_changes_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``watch`` replaces ``os.posix_spawn``, ``os.posix_spawnp``, ``os.fork``,
    ``os.forkpty`` and ``_posixsubprocess.fork_exec`` once (a second call wraps nothing
    again); each call, one that raises too, opens and closes a window that spares the child it
    started and not one started after it, nor another pid in it."""
    forks, originals = _watched(monkeypatch)
    wrapped = _spawns()
    waited_children.watch()
    assert wrapped == _spawns()
    assert originals == [getattr(each, "__wrapped__", None) for each in wrapped]
    time.sleep(0.1)  # past the floor's slack
    pid = os.posix_spawnp("true", ["true"], os.environ)
    stat = adopted_reaper.stat_fields(pid)
    assert stat is not None
    started = int(stat[1][19]) / os.sysconf("SC_CLK_TCK")
    assert 0 == os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    with pytest.raises(FileNotFoundError):
        os.posix_spawn("/nonexistent", ["x"], os.environ)
    assert [2, {}, [pid, 0]] == [
        len(forks._windows),
        forks._open,
        [window.pid for window in forks._windows],
    ]
    later = time.clock_gettime(time.CLOCK_BOOTTIME) + 1
    assert [True, True, False, False] == [
        forks.spared(started),
        forks.spared(started, pid=pid),
        forks.spared(started, pid=pid + 1),
        forks.spared(later),
    ]


@pytest.mark.slow
def test_a_child_multiprocessing_starts_with_fork_exec_keeps_its_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``multiprocessing`` starts its resource tracker and fork server with
    ``_posixsubprocess.fork_exec`` called directly (no ``Popen``, no at-fork hook) and waits
    for them by their pid. Once watched, such a child, a zombie across looks, is spared: its
    waiter reads 5 (before, the second look reaped it and that wait failed)."""
    forks, _ = _watched(monkeypatch)
    time.sleep(0.1)  # past the floor's slack
    reaper = adopted_reaper.Reaper(forks)
    pid = multiprocessing.util.spawnv_passfds(b"/bin/sh", ["sh", "-c", "exit 5"], ())
    try:
        _until_zombie(pid)
        assert [[], []] == [reaper.look(), reaper.look()]
    finally:
        status = os.waitpid(pid, 0)[1]
    assert 5 == os.waitstatus_to_exitcode(status)


def test_a_window_that_knows_its_pid_spares_that_child_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a clock the test sets: a wrapped call that forks through the at-fork hooks (its
    window opened and closed inside it, as ``os.fork``'s) and returns ``os.forkpty``'s pair
    gives that window the pid: it spares that pid, not another started in it; while it runs
    (no pid yet) it spares any child of its thread, and a window no wrapper closed (C code's
    fork) spares any child in it."""
    clock = [100.0]
    monkeypatch.setattr(waited_children, "_now", lambda: clock[0])
    forks = waited_children.Forks()
    forks.begin()
    under_way: list[bool] = []

    def forkpty() -> tuple[int, int]:
        clock[0] = 200.0
        forks.before()
        clock[0] = 205.0
        under_way.extend([forks.spared(205, pid=1234), forks.spared(205, pid=99)])
        clock[0] = 210.0
        forks.after()
        return 1234, 5

    assert (1234, 5) == forks.spawning(forkpty)()
    assert [[True, True], True, False, True] == [
        under_way,
        forks.spared(205, pid=1234),
        forks.spared(205, pid=99),
        forks.spared(205),
    ]
    clock[0] = 300.0
    forks.before()
    clock[0] = 310.0
    forks.after()
    assert [True, False] == [forks.spared(305, pid=99), forks.spared(205, pid=99)]


def test_a_window_spares_the_children_of_its_own_thread_and_of_threads_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a clock the test sets: a start within a window of thread 7 is spared when listed
    under 7, or when 7 is no longer alive (its children moved); listed under another thread
    while 7 is alive, it is not. A call under way counts alike. Without a thread, every window
    counts."""
    clock = [100.0]
    monkeypatch.setattr(waited_children, "_now", lambda: clock[0])
    monkeypatch.setattr(threading, "get_native_id", lambda: 7)
    forks = waited_children.Forks()
    forks.begin()
    clock[0] = 200.0
    forks.before()
    assert [True, False, True, True] == [
        forks.spared(205, 7, {1, 7}),
        forks.spared(205, 1, {1, 7}),
        forks.spared(205, 1, {1}),
        forks.spared(205),
    ]
    clock[0] = 210.0
    forks.after()
    assert [True, False, True, True, False] == [
        forks.spared(205, 7, {1, 7}),
        forks.spared(205, 1, {1, 7}),
        forks.spared(205, 1, {1}),
        forks.spared(205),
        forks.spared(215, 7, {1, 7}),
    ]


def _until_zombie(pid: int) -> None:
    deadline = time.monotonic() + 10
    while (state := adopted_reaper.stat_fields(pid)) is None or state[1][0] != "Z":
        assert state is not None, pid  # reaped by another: no zombie to look at
        assert time.monotonic() < deadline, state
        time.sleep(0.01)


def _orphan() -> int:
    """A shell's child, orphaned at once (its shell ends first): adopted by the subreaper's
    main thread. Its pid."""
    shell = subprocess.run(
        ["sh", "-c", "sh -c 'sleep 0.5; exit 3' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(shell.stdout)


@pytest.mark.slow
def test_an_orphan_adopted_in_another_threads_fork_window_is_reaped() -> None:
    """Another thread opens a fork window and starts a child in it; meanwhile a shell's child,
    orphaned at once (its shell ends first), is adopted by the main thread. Both are zombies.
    The orphan, listed under the main thread, is reaped at the second look; the window's own
    child, listed under its thread, is spared, and still once that thread ended and it moved:
    its waiter reads 4."""
    forks = waited_children.Forks()
    forks.begin()
    time.sleep(0.1)  # past the floor's slack
    reaper = adopted_reaper.Reaper(forks)
    owned: list[int] = []
    opened, close, closed, end = (threading.Event() for _ in range(4))

    def fork_window() -> None:
        forks.before()
        try:
            owned.append(os.posix_spawn("/bin/sh", ["sh", "-c", "exit 4"], os.environ))
            opened.set()
            close.wait(10)
        finally:
            forks.after()
            closed.set()
        end.wait(10)

    thread = threading.Thread(target=fork_window)
    orphan = 0
    with subreaper():
        thread.start()
        try:
            assert opened.wait(10)
            orphan = _orphan()
            _until_zombie(orphan)
            _until_zombie(owned[0])
            close.set()
            assert closed.wait(10)
            assert [[], [orphan]] == [reaper.look(), reaper.look()]
            assert adopted_reaper.stat_fields(orphan) is None
        finally:
            close.set()
            end.set()
            thread.join()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(orphan, 0)
    assert [[], []] == [reaper.look(), reaper.look()]
    assert 4 == os.waitstatus_to_exitcode(os.waitpid(owned[0], 0)[1])


@pytest.mark.slow
def test_an_orphan_adopted_in_the_main_threads_own_spawn_window_is_reaped() -> None:
    """The main thread, inside a spawn's window (an ``async def`` handler's), starts a child
    that exits 4, and meanwhile an orphan is adopted, listed under the main thread as that
    child is: while the call runs both are spared; once it has returned its child's pid, the
    orphan is reaped at the next look and the child is still spared: its waiter reads 4.
    Before, the window spared the orphan too, until the process exited."""
    forks = waited_children.Forks()
    forks.begin()
    time.sleep(0.1)  # past the floor's slack
    reaper = adopted_reaper.Reaper(forks)
    orphan: list[int] = []
    looks: list[list[int]] = []

    def spawn() -> int:
        owned = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 4"], os.environ)
        orphan.append(_orphan())
        _until_zombie(orphan[0])
        _until_zombie(owned)
        looks.extend([reaper.look(), reaper.look()])
        return owned

    with subreaper():
        try:
            owned = forks.spawning(spawn)()
            looks.extend([reaper.look(), reaper.look()])
            assert [[], [], orphan, []] == looks
            assert adopted_reaper.stat_fields(orphan[0]) is None
        finally:
            for pid in orphan:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
    assert 4 == os.waitstatus_to_exitcode(os.waitpid(owned, 0)[1])
