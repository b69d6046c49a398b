"""The children of ``taskdaemon``'s process that its own code waits for, told from adopted
orphans by their start (``waited_children``): a child a handler ``posix_spawn``s and waits for
later keeps its exit status (before, the reaper took its zombie and that wait failed with
``ECHILD``), and an orphan adopted while another thread forks is reaped (before, its zombie
stayed until taskdaemon exited)."""

from __future__ import annotations

import contextlib
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


def test_watch_gives_each_spawn_a_window_and_changes_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``watch`` replaces ``os.posix_spawn`` and ``os.posix_spawnp`` once (a second call wraps
    nothing again); each call, one that raises too, opens and closes a window that spares the
    child it started and not one started after it. On a throwaway ``Forks``, the functions put
    back after the test (its at-fork hooks stay registered: ``os.register_at_fork`` has no
    undo, and each later fork adds a window to it, nothing else)."""
    forks = waited_children.Forks()
    monkeypatch.setattr(waited_children, "forks", forks)
    originals = (os.posix_spawn, os.posix_spawnp)
    monkeypatch.setattr(os, "posix_spawn", originals[0])
    monkeypatch.setattr(os, "posix_spawnp", originals[1])
    waited_children.watch()
    wrapped = (os.posix_spawn, os.posix_spawnp)
    waited_children.watch()
    assert wrapped == (os.posix_spawn, os.posix_spawnp)
    assert originals == tuple(getattr(each, "__wrapped__", None) for each in wrapped)
    time.sleep(0.1)  # past the floor's slack
    pid = os.posix_spawnp("true", ["true"], os.environ)
    stat = adopted_reaper.stat_fields(pid)
    assert stat is not None
    started = int(stat[1][19]) / os.sysconf("SC_CLK_TCK")
    assert 0 == os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    with pytest.raises(FileNotFoundError):
        os.posix_spawn("/nonexistent", ["x"], os.environ)
    assert [2, {}] == [len(forks._windows), forks._open]
    later = time.clock_gettime(time.CLOCK_BOOTTIME) + 1
    assert [True, False] == [forks.spared(started), forks.spared(later)]


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
            shell = subprocess.run(
                ["sh", "-c", "sh -c 'sleep 0.5; exit 3' >/dev/null 2>&1 & echo $!"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            )
            orphan = int(shell.stdout)
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
