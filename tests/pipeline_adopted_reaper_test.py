"""Zombies of processes ``taskdaemon`` adopted as a subreaper that no stage waits for, reaped
by the real ``taskdaemon run`` (``adopted_reaper``); the children its handlers wait for keep
their true exit codes. Before, such a zombie stayed until taskdaemon exited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_support import pythonpath_with, run_quiet, taskdaemon, write
from schedule_support import scheduled_serve
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

_PIPELINE = """\
name: reaped
timeout: 60s
stages:
  - name: c
    command: "true"
    triggers: [{manual: {approval_required: false}}]
  - name: h
    handler: "leaving:leave"
    triggers: [{on_completion: {stage: c}}]
"""

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
    assert 0 == ran.returncode, ran.stderr
    shown = taskdaemon(home, "runs", "show", ran.stdout.strip(), "--json")
    stages = {stage["name"]: stage for stage in json.loads(shown.stdout)["stages"]}
    outputs = json.loads(stages["h"]["attempts"][-1]["outputs"])
    assert [True, True] == outputs["adopted"], outputs
    assert "left" not in outputs["states"], outputs
    assert [3, 4, 5, 6] == outputs["codes"], outputs
    assert {"code": 7} == json.loads(stages["a"]["attempts"][-1]["outputs"])


def _stat(pid: int) -> tuple[str, int, int] | None:
    """A process's state letter, parent pid and start time, from ``/proc/PID/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


@pytest.mark.slow
def test_an_idle_serve_reaps_the_zombie_an_ended_run_left(home: Path, tmp_path: Path) -> None:
    """``serve``'s run ends while its handler's orphaned ``sleep`` runs on, now ``serve``'s
    child; it ends while ``serve`` is idle, and its zombie is gone without another run."""
    pid_file = tmp_path / "pid"
    (tmp_path / "leaving.py").write_text(
        "import subprocess\n\n\ndef leave(context):\n"
        f"    subprocess.run('sleep 7 >/dev/null 2>&1 & echo $! > {pid_file}',"
        " shell=True)\n    return {}\n"
    )
    pipeline = write(tmp_path / "p.yaml", _PIPELINE)
    with scheduled_serve(
        home, pipeline, "--max-runs=1", PYTHONPATH=pythonpath_with(tmp_path)
    ) as serve:
        ended = serve.line(" ended ")
        pid = int(pid_file.read_text())
        adopted = _stat(pid)
        states = []
        deadline = time.monotonic() + 15
        while (now := _stat(pid)) is not None and adopted is not None and now[2] == adopted[2]:
            if now[0] not in states:
                states.append(now[0])
            if time.monotonic() > deadline:
                states.append("left")
                break
            time.sleep(0.05)
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
        assert child.pid in (adopted_reaper._children() or set())
    finally:
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
