"""The process-group watchdog: with real processes, a command stage's groups end with the
taskdaemon process that started them, however it ends, and nothing else is signalled."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from cli_support import ROOT, TASKDAEMON, environment, pythonpath_with, read_line, write
from taskdaemon.pipeline import group_watchdog
from taskdaemon.pipeline.group_watchdog import PROGRAM, GroupWatchdog, shared_watchdog
from watchdog_support import DEADLINE, gone, group, until, watchdog_of


def _kill(pids: list[int]) -> None:
    """SIGKILL whatever of ``pids`` a failed test left running."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


# -- the watchdog object, in this process ------------------------------------------------------


def test_a_listed_group_gets_sigterm_when_the_pipe_closes() -> None:
    """A group listed with ``started`` is sent SIGTERM once the pipe's write end closes."""
    watchdog = GroupWatchdog(grace=5.0)
    with group("sleep", "300") as process:
        watchdog.started(process.pid)
        watchdog.close()
        assert -signal.SIGTERM == process.wait(DEADLINE)


def test_a_group_that_ignores_sigterm_gets_sigkill_after_the_grace() -> None:
    """A group whose processes ignore SIGTERM is killed with SIGKILL after the grace period."""
    watchdog = GroupWatchdog(grace=0.2)
    with group("sh", "-c", "trap '' TERM; sleep 300 & wait") as process:
        # The shell starts its child only after it set the trap.
        until(lambda: bool(psutil.Process(process.pid).children()), "the trap")
        watchdog.started(process.pid)
        watchdog.close()
        assert -signal.SIGKILL == process.wait(DEADLINE)


def test_an_ended_group_is_not_signalled() -> None:
    """A group unlisted with ``ended`` is left alone when the pipe closes."""
    watchdog = GroupWatchdog(grace=5.0)
    with group("sleep", "300") as process:
        watchdog.started(process.pid)
        watchdog.ended(process.pid)
        watchdog.close()  # returns once the watchdog process has exited
        assert None is process.poll()


def test_no_watchdog_process_before_the_first_group() -> None:
    """Making the object starts no process: the first ``started`` does."""
    watchdog = GroupWatchdog(grace=5.0)
    assert None is watchdog.pid


def test_a_watchdog_that_cannot_start_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """When the watchdog cannot be started, the calls do nothing and one warning says so."""
    watchdog = GroupWatchdog(grace=5.0, executable="/nonexistent/python")
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.group_watchdog"):
        watchdog.started(123456)
        watchdog.ended(123456)
        watchdog.started(123457)
    assert 1 == len(caplog.records)


def test_a_watchdog_that_died_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """When the watchdog process has died, the next calls warn once and raise nothing."""
    watchdog = GroupWatchdog(grace=5.0)
    with group("sleep", "300") as process:
        watchdog.started(process.pid)
        pid = watchdog.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        until(lambda: gone(pid), "the watchdog's end")
        with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.group_watchdog"):
            watchdog.ended(process.pid)
            watchdog.started(process.pid)
        watchdog.close()
        assert 1 == len(caplog.records)


# -- a parent that dies while a forked process still holds the pipe -----------------------------

_HOLDER = textwrap.dedent(
    """
    import os, subprocess, sys
    from taskdaemon.pipeline.group_watchdog import PROGRAM, GroupWatchdog

    watchdog = GroupWatchdog(grace=5.0)
    watchdog._start()
    # A process that inherits the write end: the pipe never reaches end-of-file.
    holder = subprocess.Popen(
        ["sleep", "300"], start_new_session=True, pass_fds=(watchdog._fd,)
    )
    watchdog.started(holder.pid)
    print(holder.pid, watchdog.pid, flush=True)
    sys.stdin.read()
    os._exit(0)
    """
)


@pytest.mark.slow
def test_the_parent_death_signal_ends_the_groups_without_end_of_file() -> None:
    """When the parent dies while another process holds the pipe's write end, the
    parent-death signal still makes the watchdog end the listed groups."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        assert parent.stdin is not None
        pids = [int(word) for word in read_line(parent.stdout).split()]
        holder, watchdog = pids
        parent.stdin.close()  # the parent leaves through os._exit: no atexit, no close
        parent.wait(DEADLINE)
        until(lambda: gone(holder) and gone(watchdog), "the holder's and watchdog's end")
        assert [True, True] == [gone(holder), gone(watchdog)]
    finally:
        _kill([*pids, parent.pid])
        parent.wait()
        for stream in (parent.stdin, parent.stdout):
            if stream is not None:
                stream.close()


# -- taskdaemon run and serve, killed with SIGKILL ----------------------------------------------


def _family_pipeline(directory: Path, *, wait_for: Path | None = None) -> Path:
    """A one-stage pipeline whose command reads its input, starts two children and a
    grandchild, writes the pids of all four processes to ``directory / "pids"``; it then waits
    for them (or, with ``wait_for``, until that file exists, and ends, its stage ending the
    other two)."""
    pids = directory / "pids"
    tail = "wait" if wait_for is None else f"until [ -e {wait_for} ]; do sleep 0.05; done"
    command = (
        # The stage's input first: taskdaemon writes it after it listed the group with the
        # watchdog, so no pid is written (and no test kills) in the instant before, which the
        # watchdog cannot cover (group_watchdog's docstring, "Out of reach").
        # The two in the background leave the output pipes (a stage reads them to their end).
        f"cat >/dev/null; echo $$ >> {pids}; "
        f"(sleep 300 & echo $! >> {pids}; wait) >/dev/null 2>&1 & "
        f"echo $! >> {pids}; sleep 300 >/dev/null 2>&1 & echo $! >> {pids}; "
        f"{tail}"
    )
    return write(
        directory / "family.yaml",
        f"""\
        name: family
        stages:
          - name: work
            command: {command!r}
            triggers: [{{manual: {{approval_required: false}}}}]
        """,
    )


def _recorded(directory: Path) -> list[int]:
    """The four pids the command writes (the grandchild writes its own, in its own time)."""
    path = directory / "pids"

    def pids() -> list[int]:
        text = path.read_text() if path.exists() else ""
        return [int(word) for word in text.split() if word.isdigit()]

    until(lambda: len(pids()) == 4, "the command's pids")
    return pids()


def _quiet(argv: list[str], home: Path) -> subprocess.Popen[bytes]:
    """``argv`` started from the repository's root with ``home``, its output discarded."""
    return subprocess.Popen(
        argv, cwd=ROOT, env=environment(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _killed_with_family(argv: list[str], home: Path, directory: Path) -> list[bool]:
    """Start ``argv`` (which runs the family pipeline), SIGKILL it once the command wrote its
    pids, and tell for each of them and the watchdog whether it is gone within the deadline."""
    process = _quiet(argv, home)
    pids: list[int] = []
    try:
        pids = _recorded(directory)
        pids.append(watchdog_of(process.pid))
        process.kill()
        process.wait(DEADLINE)
        with contextlib.suppress(AssertionError):
            until(lambda: all(gone(pid) for pid in pids), "the command's processes' end")
        return [gone(pid) for pid in pids]
    finally:
        _kill([*pids, process.pid])
        process.wait()


@pytest.mark.slow
def test_kill_9_of_run_ends_the_command_its_child_and_grandchild(
    home: Path, tmp_path: Path
) -> None:
    """After ``kill -9`` of ``taskdaemon run``, the command's shell, its child, its
    grandchild and the watchdog are all gone within the deadline."""
    pipeline = _family_pipeline(tmp_path)
    gone = _killed_with_family([TASKDAEMON, "run", str(pipeline)], home, tmp_path)
    assert [True] * 5 == gone


@pytest.mark.slow
def test_kill_9_of_serve_ends_the_command_its_child_and_grandchild(
    home: Path, tmp_path: Path
) -> None:
    """After ``kill -9`` of ``taskdaemon serve`` driving a run, the command's shell, its
    child, its grandchild and the watchdog are all gone within the deadline."""
    pipeline = _family_pipeline(tmp_path)
    argv = [TASKDAEMON, "serve", "--port", "0", "--pipeline", str(pipeline), "--max-runs", "1"]
    gone = _killed_with_family(argv, home, tmp_path)
    assert [True] * 5 == gone


@pytest.mark.slow
def test_a_run_that_ends_normally_leaves_no_watchdog(home: Path, tmp_path: Path) -> None:
    """When ``taskdaemon run`` exits normally, its watchdog process has exited too."""
    go = tmp_path / "go"
    pipeline = _family_pipeline(tmp_path, wait_for=go)
    process = _quiet([TASKDAEMON, "run", "-q", str(pipeline)], home)
    pids: list[int] = []
    try:
        pids = _recorded(tmp_path)
        watchdog = watchdog_of(process.pid)
        pids.append(watchdog)
        go.touch()
        process.wait(DEADLINE)
        assert False is psutil.pid_exists(watchdog)
    finally:
        _kill([*pids, process.pid])
        process.wait()


_CHILDREN = """\
import os

import psutil


def children(ctx):
    with open(os.environ["CHILDREN_FILE"], "w") as out:
        for child in psutil.Process().children():
            out.write(" ".join(child.cmdline()) + "\\n")
"""


@pytest.mark.slow
def test_a_run_without_command_stages_starts_no_watchdog(home: Path, tmp_path: Path) -> None:
    """A run of Python stages only never starts a watchdog process."""
    (tmp_path / "children_handler.py").write_text(_CHILDREN)
    pipeline = write(
        tmp_path / "python.yaml",
        """\
        name: python-only
        stages:
          - name: look
            handler: children_handler:children
            triggers: [{manual: {approval_required: false}}]
        """,
    )
    listing = tmp_path / "children.txt"
    env = environment(home, CHILDREN_FILE=str(listing), PYTHONPATH=pythonpath_with(tmp_path))
    done = subprocess.run(
        [TASKDAEMON, "run", "-q", str(pipeline)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE * 2,
        check=False,
    )
    assert (0, []) == (
        done.returncode,
        [line for line in listing.read_text().splitlines() if PROGRAM in line],
    )


# -- how the watchdog process is started, and what it holds ------------------------------------


@contextlib.contextmanager
def _started(watchdog: GroupWatchdog) -> Iterator[int]:
    """``watchdog`` started on a group of its own (a sleeping process, killed at the end);
    yields the watchdog process's pid, and closes the watchdog at the end."""
    with group("sleep", "300") as process:
        try:
            watchdog.started(process.pid)
            pid = watchdog.pid
            assert pid is not None
            yield pid
        finally:
            watchdog.close()


def test_the_watchdog_runs_its_file_isolated_with_this_pid_and_the_grace() -> None:
    """The watchdog process is ``python -I -S`` of the file beside the module, given this
    process's pid and the grace period."""
    watchdog = GroupWatchdog(grace=2.5)
    program = str(ROOT / "src" / "taskdaemon" / "pipeline" / PROGRAM)
    with _started(watchdog) as pid:
        # Its arguments show once exec has set them up, a moment after Popen returns.
        until(lambda: bool(psutil.Process(pid).cmdline()), "the watchdog's arguments")
        argv = psutil.Process(pid).cmdline()
    expected = [sys.executable, "-I", "-S", program, str(os.getpid()), "2.5"]
    assert expected == [argv[0], *argv[1:3], str(Path(argv[3]).resolve()), *argv[4:]]


def test_the_watchdog_runs_in_a_session_of_its_own() -> None:
    """The watchdog leads a session of its own, so a signal to taskdaemon's process group or
    terminal does not reach it."""
    with _started(GroupWatchdog(grace=5.0)) as pid:
        session = os.getsid(pid)
    assert (pid, True) == (session, session != os.getsid(0))


def test_the_watchdogs_output_goes_nowhere() -> None:
    """The watchdog's stdout and stderr are ``/dev/null``: a reader of taskdaemon's output
    sees its end when taskdaemon ends."""
    with _started(GroupWatchdog(grace=5.0)) as pid:
        targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (1, 2)]
    assert ["/dev/null", "/dev/null"] == targets


def _descriptors(pid: int) -> list[str]:
    """What each open descriptor of ``pid`` refers to. One closed between the listing and its
    read (the starting interpreter opens and closes files) is not held, so it is left out."""
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            held.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return held


def test_the_watchdog_inherits_no_other_descriptor() -> None:
    """An inheritable descriptor of this process (here a pipe's write end) is not held by the
    watchdog, which would keep that pipe's reader from seeing its end."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        pipe = os.readlink(f"/proc/self/fd/{write_end}")
        with _started(GroupWatchdog(grace=5.0)) as pid:
            held = _descriptors(pid)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert False is (pipe in held)


def test_a_second_start_keeps_the_running_watchdog() -> None:
    """Starting a started watchdog again (as a thread that lost the race to start it does)
    succeeds and keeps the same process."""
    watchdog = GroupWatchdog(grace=5.0)
    with _started(watchdog) as pid:
        assert (True, pid) == (watchdog._start(), watchdog.pid)


def test_a_closed_watchdog_used_again_starts_a_new_process() -> None:
    """After ``close``, the next ``started`` starts a new watchdog, which ends that group when
    closed in turn."""
    watchdog = GroupWatchdog(grace=5.0)
    with _started(watchdog):
        pass
    with group("sleep", "300") as process:
        watchdog.started(process.pid)
        watchdog.close()
        assert -signal.SIGTERM == process.wait(DEADLINE)


def test_the_warning_when_it_cannot_start_says_why(caplog: pytest.LogCaptureFixture) -> None:
    """The warning of a watchdog that cannot start names the error and what is lost."""
    watchdog = GroupWatchdog(grace=5.0, executable="/nonexistent/python")
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.group_watchdog"):
        watchdog.started(123456)
    expected = [
        "process-group watchdog: cannot start it: [Errno 2] No such file or directory: "
        "'/nonexistent/python'; command stages still end with their stage, but no longer when "
        "this process is killed (kill -9)"
    ]
    assert expected == [record.getMessage() for record in caplog.records]


def _killed(watchdog: GroupWatchdog, group: int) -> int:
    """Start ``watchdog`` on ``group``, SIGKILL its process and wait until it is gone (a
    zombie); its pid."""
    watchdog.started(group)
    pid = watchdog.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    until(lambda: gone(pid), "the watchdog's end")
    return pid


def test_the_warning_when_it_died_says_why(caplog: pytest.LogCaptureFixture) -> None:
    """The warning of a watchdog that died names the failed write and what is lost."""
    watchdog = GroupWatchdog(grace=5.0)
    with group("sleep", "300") as process:
        _killed(watchdog, process.pid)
        with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.group_watchdog"):
            watchdog.ended(process.pid)
        watchdog.close()
    expected = [
        "process-group watchdog: it has ended ([Errno 32] Broken pipe); command stages still "
        "end with their stage, but no longer when this process is killed (kill -9)"
    ]
    assert expected == [record.getMessage() for record in caplog.records]


def test_a_watchdog_that_died_is_reaped() -> None:
    """The first write that finds the watchdog dead reaps its process: no zombie is left
    (before ``close``, which would reap it too)."""
    watchdog = GroupWatchdog(grace=5.0)
    with group("sleep", "300") as process:
        pid = _killed(watchdog, process.pid)
        try:
            watchdog.ended(process.pid)
            left = Path(f"/proc/{pid}").exists()
        finally:
            watchdog.close()
    assert False is left


def test_a_watchdog_that_died_writes_nothing_more(capfd: pytest.CaptureFixture[str]) -> None:
    """After its watchdog died, ``started`` and ``ended`` write nowhere (not to another
    descriptor that took the pipe's number)."""
    watchdog = GroupWatchdog(grace=5.0)
    with group("sleep", "300") as process:
        _killed(watchdog, process.pid)
        watchdog.ended(process.pid)
        capfd.readouterr()
        watchdog.started(process.pid)
        watchdog.ended(process.pid)
        watchdog.close()
    assert ("", "") == tuple(capfd.readouterr())


@pytest.mark.slow
def test_close_gives_up_on_a_watchdog_that_does_not_exit(tmp_path: Path) -> None:
    """``close`` waits for a watchdog that ignores the pipe's end for the grace period and
    five seconds, then returns without it (the process exits anyway)."""
    # A stand-in that never reads its stdin and ends by itself: a test stopped while it waits
    # (a mutant that makes ``close`` wait for ever) leaves nothing behind for long.
    deaf = tmp_path / "deaf"
    deaf.write_text("#!/bin/sh\nexec sleep 60\n")
    deaf.chmod(0o755)
    watchdog = GroupWatchdog(grace=0.1, executable=str(deaf))
    watchdog.started(2**22 + 1)
    running = watchdog._process
    assert running is not None
    try:
        watchdog.close()
        left = running.poll()
    finally:
        running.kill()
        running.wait()
    assert None is left


# -- one watchdog a process, forgotten in a fork child ------------------------------------------


def test_the_shared_watchdog_is_one_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """``shared_watchdog`` gives the same watchdog on every call, with the first call's
    grace."""
    monkeypatch.setattr(group_watchdog, "_shared", None)
    first = shared_watchdog(3.0)
    second = shared_watchdog(7.0)
    assert (True, 3.0) == (first is second, second.grace)


def test_a_fork_child_starts_a_watchdog_of_its_own() -> None:
    """In a fork child (``_forget``), the parent's watchdog is dropped: the child's next
    ``started`` starts a new one, which ends the child's group, while the parent's, whose
    pipe the parent still holds, keeps running."""
    watchdog = GroupWatchdog(grace=5.0)
    with group("sleep", "300") as first, group("sleep", "300") as second:
        watchdog.started(first.pid)
        parents = watchdog._process
        assert parents is not None
        held = os.dup(watchdog._fd)  # the parent's write end, which the child shares
        try:
            watchdog._forget()
            forgotten = watchdog.pid
            watchdog.started(second.pid)
            own = watchdog.pid
            watchdog.close()
            status = second.wait(DEADLINE)
            running = (first.poll(), parents.poll())
        finally:
            os.close(held)
            parents.wait(DEADLINE)
    expected = (None, True, -signal.SIGTERM, (None, None))
    assert expected == (forgotten, own not in (None, parents.pid), status, running)


def test_a_fork_child_tries_again_where_the_parents_watchdog_failed() -> None:
    """A watchdog that could not start in the parent is tried again in a fork child."""
    watchdog = GroupWatchdog(grace=5.0, executable="/nonexistent/python")
    watchdog.started(123456)
    watchdog._executable = sys.executable
    watchdog._forget()
    with _started(watchdog) as pid:
        assert psutil.pid_exists(pid)
