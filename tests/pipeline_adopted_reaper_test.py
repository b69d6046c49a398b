"""Zombies of processes ``taskdaemon`` adopted as a subreaper that no stage waits for, reaped
by the real ``taskdaemon run`` (``adopted_reaper``); the children its handlers wait for keep
their true exit codes. Before, such a zombie stayed until taskdaemon exited."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_support import pythonpath_with, run_quiet, write
from schedule_support import scheduled_serve
from subreaper_support import stage_outputs, subreaper, subreaper_pipeline
from taskdaemon.pipeline import adopted_reaper, waited_children

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a subreaper is Linux's")

#: A ``def`` handler whose shells leave ``sleep``s that their ends hand to taskdaemon (one
#: adopted at once and ended 3 s later, one adopted 4.5 s after its start and ended 2.5 s later),
#: then watches ``/proc`` for their zombies' end; beside them, children the handler itself waits
#: for, one of them a zombie across many looks, one started by a thread that ends before it does
#: (the child moves to another thread's list), one an ``os.fork``'s, a zombie across looks.
_HANDLERS = """\
import asyncio
import os
import subprocess
import threading
import time


def _stat(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


def leave(context):
    zombie = subprocess.Popen(["sh", "-c", "exit 3"])
    running = subprocess.Popen(["sh", "-c", "sleep 6; exit 4"])
    threaded = []
    thread = threading.Thread(
        target=lambda: threaded.append(subprocess.Popen(["sh", "-c", "sleep 4; exit 5"]))
    )
    thread.start()
    thread.join()
    at_once = subprocess.run(
        "sleep 3 >/dev/null 2>&1 & echo $!", shell=True, capture_output=True, text=True
    )
    pids = [int(at_once.stdout)]
    adopted = [_stat(pids[0])]
    shell = subprocess.run(
        "sleep 7 >/dev/null 2>&1 & echo $!; sleep 4.5", shell=True, capture_output=True, text=True
    )
    pids.append(int(shell.stdout))
    adopted.append(_stat(pids[1]))
    forked = os.fork()
    if forked == 0:
        os._exit(6)
    forked_at = time.monotonic()
    seen = [[], []]
    deadline = time.monotonic() + 15
    while any(now and now[2] == first[2] for now, first in zip(map(_stat, pids), adopted)):
        if time.monotonic() > deadline:
            seen.append("left")
            break
        for states, now in zip(seen, map(_stat, pids)):
            if now is not None and now[0] not in states:
                states.append(now[0])
        time.sleep(0.05)
    time.sleep(max(0, forked_at + 3 - time.monotonic()))  # its zombie across looks
    return {
        "adopted": [first[1] == os.getpid() for first in adopted],
        "states": seen,
        "codes": [
            zombie.wait(),
            running.wait(),
            threaded[0].wait(),
            os.waitstatus_to_exitcode(os.waitpid(forked, 0)[1]),
        ],
    }


async def wait_async(context):
    process = await asyncio.create_subprocess_exec("sh", "-c", "sleep 1; exit 7")
    await asyncio.sleep(4)  # ended, across looks, before it is waited for
    return {"code": await process.wait()}
"""

_PIPELINE = subreaper_pipeline("leaving:leave")

#: The same, and beside ``h`` an ``async def`` handler that waits for its ``asyncio`` child.
_RUN_PIPELINE = (
    _PIPELINE
    + """\
  - name: a
    handler: "leaving:wait_async"
    triggers: [{on_completion: {stage: c}}]
"""
)


@pytest.mark.slow
def test_an_adopted_orphan_of_a_handlers_subprocess_is_reaped_not_its_waited_children(
    home: Path, tmp_path: Path
) -> None:
    """The command stage ``c`` makes taskdaemon a subreaper; ``h``'s two ``sleep``s, orphaned
    by their shells (one at once, one 4.5 s after its start), become taskdaemon's children, end,
    and their zombies are gone while the run goes on. The handler's own children, waited for
    after many looks, exit 3, 4, 5 and 6 (an ``os.fork``'s) as they did (a child reaped behind
    ``Popen``'s back would say 0, one reaped behind ``waitpid`` would raise), and ``a``'s
    ``asyncio`` child 7."""
    ran = run_quiet(home, tmp_path, ("leaving", _HANDLERS), _RUN_PIPELINE)
    outputs = stage_outputs(home, ran)
    assert [True, True] == outputs["adopted"], outputs
    assert "left" not in outputs["states"], outputs
    assert [3, 4, 5, 6] == outputs["codes"], outputs
    assert {"code": 7} == stage_outputs(home, ran, "a")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """A process's state letter, parent pid and start time, from ``/proc/PID/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


#: A handler module that starts a child when it is imported, while the pipeline loads (before
#: ``taskdaemon run`` freezes what exists then, ``heap``), and waits for it in a stage that
#: runs once a command stage made taskdaemon a subreaper, after looks saw it a zombie.
_IMPORT_TIME_HANDLERS = """\
import subprocess
import time

STARTED = subprocess.Popen(["sh", "-c", "exit 3"])


def wait_late(context):
    time.sleep(3.5)  # a zombie across looks of the reaper
    return {"code": STARTED.wait()}
"""

_IMPORT_TIME_PIPELINE = _PIPELINE.replace("leaving:leave", "started:wait_late")


@pytest.mark.slow
def test_a_child_a_handler_module_starts_at_import_is_left_to_its_popen(
    home: Path, tmp_path: Path
) -> None:
    """The ``Popen`` made while the pipeline loads is frozen out of the collector's walk with
    everything else then (``heap``): it still holds its child, whose waiter reads exit 3, not
    the 0 of a child reaped behind its back."""
    ran = run_quiet(home, tmp_path, ("started", _IMPORT_TIME_HANDLERS), _IMPORT_TIME_PIPELINE)
    assert {"code": 3} == stage_outputs(home, ran)


@pytest.mark.slow
def test_an_idle_serve_reaps_the_zombie_an_ended_run_left(home: Path, tmp_path: Path) -> None:
    """``serve``'s run ends while its handler's orphaned loop runs on, now ``serve``'s child;
    it ends while ``serve`` is idle, and its zombie is gone without another run. The loop
    ends when the test touches a file after reading its ``/proc`` entry, so no machine's load
    can end it before that read (it ends after 1,200 looks anyway, should the test stop first)."""
    pid_file, gate = tmp_path / "pid", tmp_path / "gate"
    (tmp_path / "leaving.py").write_text(
        "import subprocess\n\n\ndef leave(context):\n"
        f"    subprocess.run('n=0; while [ ! -e {gate} ] && [ $n -lt 1200 ];"
        f" do sleep 0.05; n=$((n+1)); done >/dev/null 2>&1 & echo $! > {pid_file}',"
        " shell=True)\n    return {}\n"
    )
    pipeline = write(tmp_path / "p.yaml", _PIPELINE)
    try:
        with scheduled_serve(
            home, pipeline, "--max-runs=1", PYTHONPATH=pythonpath_with(tmp_path)
        ) as serve:
            ended = serve.line(" ended ")
            pid = int(pid_file.read_text())
            adopted = _stat(pid)
            gate.touch()
            states = []
            deadline = time.monotonic() + 15
            while (now := _stat(pid)) is not None and adopted is not None and now[2] == adopted[2]:
                if now[0] not in states:
                    states.append(now[0])
                if time.monotonic() > deadline:
                    states.append("left")
                    break
                time.sleep(0.05)
    finally:
        gate.touch()
    assert " ended success" in ended, ended
    assert adopted is not None
    assert adopted[1] == serve.process.pid, adopted
    assert "left" not in states, states


def test_a_look_reaps_no_child_this_process_forked() -> None:
    """A child of the tests' own process (not a subreaper), a zombie across looks spanning
    more than the margin, is never taken as adopted, nor as nobody's (its ``Popen`` holds it):
    its waiter gets its exit code."""
    forks = waited_children.Forks()
    forks.begin()
    time.sleep(0.1)  # past the floor's slack: judged, and found held by its Popen
    child = subprocess.Popen(["sh", "-c", "exit 3"])
    reaper = adopted_reaper.Reaper(forks)
    deadline = time.monotonic() + adopted_reaper.MARGIN * 2.5
    while time.monotonic() < deadline:
        assert [] == reaper.look()
        time.sleep(0.1)
    assert ({}, 3) == (reaper.adopted, child.wait())


def test_a_look_over_the_bound_proves_no_absence(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list longer than ``LIMIT`` (a fork bomb) makes the look unusable, not partial."""
    child = subprocess.Popen(["sleep", "5"])
    try:
        monkeypatch.setattr(adopted_reaper, "LIMIT", 0)
        assert adopted_reaper._children() is None
        monkeypatch.setattr(adopted_reaper, "LIMIT", 1024)
        read = adopted_reaper._children()
        assert read is not None
        assert threading.get_native_id() == read[0].get(child.pid), read
        # More threads than the bound: each list within it, the look still unusable.
        monkeypatch.setattr(adopted_reaper, "LIMIT", 1)
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait)
        thread.start()
        try:
            assert adopted_reaper._children() is None
        finally:
            stop.set()
            thread.join()
    finally:
        child.kill()
        child.wait()


def test_a_list_as_long_as_the_bound_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread's list of exactly ``LIMIT`` children is within the bound: the look is whole,
    not unusable (``_children``' ``>`` made ``>=`` was not killed: polish59). As many children
    as the process has threads, so that ``_threads``' own bound holds too."""
    me, tid = os.getpid(), threading.get_native_id()
    threads = len(os.listdir(f"/proc/{me}/task"))
    children = [subprocess.Popen(["sleep", "5"]) for _ in range(threads)]
    try:
        listed = Path(f"/proc/{me}/task/{tid}/children").read_bytes().split()
        monkeypatch.setattr(adopted_reaper, "LIMIT", len(listed))
        read = adopted_reaper._children()
        assert read is not None, listed
        assert {child.pid: tid for child in children}.items() <= read[0].items(), read
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_a_zombie_no_code_holds_is_reaped_at_its_second_look() -> None:
    """A child started with no ``Popen`` and no ``os.fork`` (``posix_spawn``), as an orphan
    adopted at once is, is reaped once it was a zombie at two looks in a row, not at the first."""
    forks = waited_children.Forks()
    forks.begin()
    time.sleep(0.1)  # past the floor's slack
    reaper = adopted_reaper.Reaper(forks)
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 3"], os.environ)
    while (now := _stat(pid)) is not None and now[0] != "Z":
        time.sleep(0.01)
    assert pid not in reaper.look()
    assert "Z" == (_stat(pid) or ("gone",))[0]
    assert [pid] == reaper.look()
    assert _stat(pid) is None


def test_a_fork_window_spares_the_children_started_in_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child started while a fork runs, or since one started and has not returned, may be
    the fork's: spared; one started after it is judged; windows past the bound raise the floor."""
    forks = waited_children.Forks()
    assert forks.spared(time.clock_gettime(time.CLOCK_BOOTTIME))  # nothing known yet
    forks.begin()
    time.sleep(0.1)
    forks.before()
    begun = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert forks.spared(begun + 5)  # a fork still running
    time.sleep(0.1)
    forks.after()
    ended = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert forks.spared((begun + ended) / 2)
    assert not forks.spared(ended + 0.5)
    assert not forks.spared(begun - 0.05)
    monkeypatch.setattr(waited_children, "FORKS_KEPT", 0)
    forks.before()
    forks.after()
    assert forks.spared(ended - 0.05)  # below the floor now


def test_the_waited_pids_are_those_of_popen_objects_not_waited_for() -> None:
    """A ``Popen``'s child, and a ``Popen`` subclass's, are held until waited for; a waited
    one's pid is no longer (its zombie is gone: the pid may be another process's)."""

    class Kept(subprocess.Popen[bytes]):
        pass

    waited = subprocess.Popen(["true"])
    waited.wait()
    kept, plain = Kept(["true"]), subprocess.Popen(["true"])
    try:
        pids = waited_children.waited_pids()
        assert {kept.pid, plain.pid} <= pids
        assert waited.pid not in pids
    finally:
        assert (0, 0) == (kept.wait(), plain.wait())


def _judge_every_child() -> adopted_reaper.Reaper:
    """A reaper that judges every child started from now on (no fork window spares any)."""
    forks = waited_children.Forks()
    forks.begin()
    time.sleep(0.1)  # the children started next start past the floor's slack
    return adopted_reaper.Reaper(forks)


def _zombie(child: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    while (now := _stat(child.pid)) is not None and now[0] != "Z":
        time.sleep(0.01)
    return child


def test_a_popen_made_before_a_library_swapped_subprocess_popen_is_still_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A library may put a wrapper subclass, or a class of its own, in ``subprocess.Popen``
    once taskdaemon runs: the children of the class imported before (``from subprocess import
    Popen``) are still held, and their waiters get their exit codes."""
    original = subprocess.Popen

    class Wrapper(original):  # type: ignore[type-arg,valid-type,misc]
        pass

    class Other:
        __slots__ = ("pid",)  # no __dict__ to read a pid from

    alive = Other()  # walked for while it is in subprocess.Popen
    for swapped, code in ((Wrapper, 4), (Other, 5)):
        monkeypatch.setattr(subprocess, "Popen", swapped)
        reaper = _judge_every_child()
        child = _zombie(original(["sh", "-c", f"exit {code}"]))
        assert ([], code) == (reaper.look() + reaper.look(), child.wait())
    assert not hasattr(alive, "pid")


def test_a_popen_frozen_by_taskdaemon_is_held_by_another_freeze_nothing_is() -> None:
    """``gc.freeze()`` moves objects out of the collector's walk. Taskdaemon's own freeze
    (``waited_children.freeze``, ``heap``'s) keeps the ``Popen`` objects it froze: still held.
    While another freeze (a handler's) holds objects, a ``Popen`` among them would be missed:
    no zombie is judged nobody's until they are unfrozen. Their waiters read 6 and 7."""
    reaper = _judge_every_child()
    ours = _zombie(subprocess.Popen(["sh", "-c", "exit 6"]))
    waited_children.freeze()
    try:
        assert ours.pid in (waited_children.waited_pids() or set())
        assert [] == reaper.look() + reaper.look()
        theirs = _zombie(subprocess.Popen(["sh", "-c", "exit 7"]))
        gc.freeze()
        assert None is waited_children.waited_pids()
        assert [] == reaper.look() + reaper.look()
    finally:
        gc.unfreeze()
    assert {ours.pid, theirs.pid} <= (waited_children.waited_pids() or set())
    assert (6, 7) == (ours.wait(), theirs.wait())


def test_taskdaemon_s_freeze_walks_the_heap_only_while_the_process_has_a_child() -> None:
    """A freeze with no child alive walks nothing (a ``Popen`` without a child holds nothing to
    reap: the walk was every run's cost); with one, its ``Popen`` is kept and still held. In a
    process of its own, whose only child is the one it starts."""
    program = """
import gc, subprocess
from taskdaemon.pipeline import waited_children
walks = []
walk = gc.get_referrers
gc.get_referrers = lambda *kinds: walks.append(kinds) or walk(*kinds)
waited_children.freeze()
before = len(walks)
child = subprocess.Popen(["sleep", "30"])
waited_children.freeze()
gc.get_referrers = walk
print(before, len(walks), child.pid in (waited_children.waited_pids() or set()))
child.kill()
child.wait()
"""
    env = {**os.environ, "PYTHONPATH": pythonpath_with()}
    ran = subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (0, "0 1 True") == (ran.returncode, ran.stdout.strip()), ran.stderr


def test_the_fork_windows_spare_starts_within_their_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a clock the test sets: a start up to ``SLACK`` after the floor, up to ``SLACK``
    before a fork still under way, or within ``SLACK`` of a fork's window, is spared; one just
    past each is judged. A fork under way when the hooks were registered ends with no window."""
    clock = [100.0]
    monkeypatch.setattr(waited_children, "_now", lambda: clock[0])
    slack = waited_children.SLACK
    forks = waited_children.Forks()
    forks.after()  # its start was not seen: nothing is kept
    forks.begin()
    assert [True, True, False] == [
        forks.spared(100 + slack),
        forks.spared(100.01),
        forks.spared(101),
    ]
    clock[0] = 200.0
    forks.before()
    assert [True, False] == [forks.spared(200 - slack), forks.spared(199)]
    clock[0] = 210.0
    forks.after()
    assert [True, True, True] == [forks.spared(t) for t in (200 - slack, 205, 210 + slack)]
    assert [False, False] == [forks.spared(199), forks.spared(211)]


def test_the_oldest_window_past_the_bound_raises_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for one window, a second fork drops the first, and the floor rises to its
    end: a start before it is spared (not judged), one between the two windows is judged."""
    clock = [100.0]
    monkeypatch.setattr(waited_children, "_now", lambda: clock[0])
    monkeypatch.setattr(waited_children, "FORKS_KEPT", 1)
    forks = waited_children.Forks()
    forks.begin()
    for begun in (200.0, 300.0):
        clock[0] = begun
        forks.before()
        clock[0] = begun + 10
        forks.after()
        assert [True, False] == [forks.spared(begun + 5), forks.spared(begun + 20)]
    assert [True, False] == [forks.spared(150), forks.spared(250)]


def test_a_watched_fork_keeps_its_window_and_its_child_forgets_them() -> None:
    """``watch`` starts judging and keeps each ``os.fork``'s window from then on (a second
    call changes nothing); the forked child starts with none of its parent's forks, an open
    one included. The hooks of this throwaway ``Forks`` stay registered for the tests' process
    (``os.register_at_fork`` has no undo): each later fork adds a window to it, nothing else."""
    forks = waited_children.Forks()
    forks.watch()
    forks.watch()
    time.sleep(0.1)
    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert not forks.spared(before)
    pid = os.fork()
    if pid == 0:  # the child: judged from its parent's floor, with no fork of its own
        code = 4
        try:
            code = 0 if not forks.spared(time.clock_gettime(time.CLOCK_BOOTTIME) + 1) else 3
        finally:
            os._exit(code)  # whatever happened: never back into pytest
    after = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert 0 == os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    assert [True, False] == [forks.spared((before + after) / 2), forks.spared(after + 1)]


def test_a_multiprocessing_childs_pid_is_held_until_joined() -> None:
    """``multiprocessing``'s own ``Popen`` (a forked ``Process``) holds its child's pid until
    the process is joined, as ``subprocess``'s does."""
    process = multiprocessing.get_context("fork").Process(target=time.sleep, args=(0.2,))
    process.start()
    try:
        assert process.pid in waited_children.waited_pids()
    finally:
        process.join()
    assert (0, False) == (process.exitcode, process.pid in waited_children.waited_pids())


@pytest.mark.slow
def test_an_orphan_adopted_long_after_its_start_is_reaped_at_its_end() -> None:
    """A shell's ``sleep``, started more than the margin before a look that did not find it,
    becomes this process's child when the shell ends: the next look keeps it as adopted, and
    the first look after its end reaps it. A child forked after a look, a zombie at the next
    ones, is never taken as adopted: its ``Popen`` gets its exit code."""
    forks = waited_children.Forks()
    forks.begin()
    reaper = adopted_reaper.Reaper(forks)
    with subreaper():
        shell = subprocess.Popen(
            ["sh", "-c", "sleep 4 >/dev/null 2>&1 & echo $!; sleep 2.5"], stdout=subprocess.PIPE
        )
        orphan = int(shell.stdout.readline()) if shell.stdout else 0
        try:
            time.sleep(adopted_reaper.MARGIN + 1)
            assert [] == reaper.look()
            own = subprocess.Popen(["sh", "-c", "exit 3"])
            assert 0 == shell.wait()
            assert [] == reaper.look()
            assert [orphan] == list(reaper.adopted)
            until = time.monotonic() + 15
            while (now := _stat(orphan)) is not None and now[0] != "Z":
                assert time.monotonic() < until
                time.sleep(0.05)
            assert ([orphan], {}) == (reaper.look(), reaper.adopted)
            assert _stat(orphan) is None
            assert ([], [], 3) == (reaper.look(), reaper.look(), own.wait())
        finally:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(orphan, signal.SIGKILL)
                os.waitpid(orphan, 0)
            if shell.stdout:
                shell.stdout.close()


def test_the_look_thread_starts_once_reaps_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """``start`` starts one daemon thread named ``taskdaemon-*`` (not taken for stage
    code's) that looks every ``INTERVAL`` with the process's forks: a zombie nobody holds is
    reaped; ``stop`` ends it, and no later ``start`` starts another."""
    forks = waited_children.Forks()
    forks.begin()
    monkeypatch.setattr(waited_children, "forks", forks)
    monkeypatch.setattr(adopted_reaper, "_started", [])
    monkeypatch.setattr(adopted_reaper, "_stop", threading.Event())
    monkeypatch.setattr(adopted_reaper, "INTERVAL", 0.05)
    time.sleep(0.1)  # past the floor's slack
    adopted_reaper.start()
    adopted_reaper.start()
    threads = [each for each in threading.enumerate() if each.name == "taskdaemon-reaper"]
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 3"], os.environ)
    until = time.monotonic() + 15
    while _stat(pid) is not None:
        assert time.monotonic() < until, _stat(pid)
        time.sleep(0.05)
    adopted_reaper.stop()
    adopted_reaper.start()
    assert [(True, False)] == [(each.daemon, each.is_alive()) for each in threads]
    assert not any(each.name == "taskdaemon-reaper" for each in threading.enumerate())


def test_stop_waits_for_a_look_in_progress_an_interval_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A look that does not return (a read of ``/proc`` that blocks) holds ``stop``, and so the
    process's exit, ``INTERVAL`` at most: ``stop``'s ``join(None)`` was not killed (mut58)."""
    entered, release = threading.Event(), threading.Event()

    class Stuck(adopted_reaper.Reaper):
        def look(self) -> list[int]:
            entered.set()
            release.wait(20)
            return []

    monkeypatch.setattr(adopted_reaper, "Reaper", Stuck)
    monkeypatch.setattr(adopted_reaper, "_started", [])
    monkeypatch.setattr(adopted_reaper, "_stop", threading.Event())
    monkeypatch.setattr(adopted_reaper, "INTERVAL", 0.2)
    adopted_reaper.start()
    (thread,) = adopted_reaper._started
    try:
        assert entered.wait(30)
        began = time.monotonic()
        adopted_reaper.stop()
        took = time.monotonic() - began
        assert thread.is_alive()  # still in its look: stop did not wait for it to end
    finally:
        release.set()
        thread.join(30)
    assert 0.2 <= took < 10, took
    assert not thread.is_alive()


def test_an_adopted_pid_gone_or_taken_again_is_dropped_not_reaped() -> None:
    """An adopted child reaped by someone else (a handler's ``waitpid(-1)``) leaves the list at
    the next look, without an error; one whose pid now names a process started at another time
    (the pid given again) is dropped, not waited for: its own waiter gets its exit code."""
    reaper = adopted_reaper.Reaper(waited_children.Forks())  # no window begun: none judged
    gone = subprocess.Popen(["true"])
    gone.wait()
    taken = subprocess.Popen(["sh", "-c", "sleep 0.5; exit 3"])
    try:
        started = adopted_reaper._start(taken.pid)
        assert started is not None
        reaper.adopted = {gone.pid: started[1], taken.pid: started[1] - 1}
        assert ([], {}) == (reaper.look(), reaper.adopted)
        assert _stat(taken.pid) is not None
    finally:
        assert 3 == taken.wait()


def test_a_pid_already_reaped_is_gone() -> None:
    """``reaped`` of a pid that is no child (any more) says it is gone, and waits for
    nothing."""
    child = subprocess.Popen(["true"])
    child.wait()
    assert adopted_reaper.reaped(child.pid) is True


def test_a_zombie_started_within_a_fork_window_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """A zombie nobody holds, started while an ``os.fork`` of this process ran, may be that
    fork's child, waited for by pid: it is left across looks, for its waiter."""
    forks = waited_children.Forks()
    forks.begin()
    time.sleep(0.1)
    reaper = adopted_reaper.Reaper(forks)
    forks.before()
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 3"], os.environ)
    while (now := _stat(pid)) is not None and now[0] != "Z":
        time.sleep(0.01)
    forks.after()
    assert [[], [], []] == [reaper.look() for _ in range(3)]
    assert 3 == os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_name_is_read_whole_whatever_it_holds(tmp_path: Path) -> None:
    """``stat_fields`` reads a process's name between the first ``(`` and the last ``)``, its
    bytes that are no UTF-8 replaced, and the fields after it, the state letter first."""
    sleep = tmp_path / os.fsdecode(b"\xff (a) Z 1")
    sleep.symlink_to(shutil.which("sleep") or "/bin/sleep")
    process = subprocess.Popen([str(sleep), "30"])
    try:
        until = time.monotonic() + 15
        while (read := adopted_reaper.stat_fields(process.pid)) and read[0] != "\ufffd (a) Z 1":
            assert time.monotonic() < until, read  # before its exec, the name is Python's
            time.sleep(0.01)
        assert read is not None
        assert read[1][0] in "RS", read
    finally:
        process.kill()
        process.wait()
