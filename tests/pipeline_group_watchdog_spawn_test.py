"""The process-group watchdog's spawn tokens, with real processes: a spawn listed but never
reported is ended by its token when taskdaemon ends, a reported or failed one is not, and a
real ``taskdaemon run`` killed between a command's fork and its group's report leaves no
process of that command."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import ROOT, TASKDAEMON, environment, pythonpath_with, write
from taskdaemon.pipeline.group_watchdog import GroupWatchdog
from watchdog_support import DEADLINE, gone, group, until, watchdog_of


def test_a_spawn_never_reported_is_ended_when_the_pipe_closes() -> None:
    """A process carrying the token of a spawn whose group was never listed gets SIGTERM once
    the pipe's write end closes."""
    watchdog = GroupWatchdog(grace=5.0)
    token = watchdog.spawning()
    with group("sleep", "300", token=token) as process:
        watchdog.close()
        assert -signal.SIGTERM == process.wait(DEADLINE)


#: A Python that handles SIGTERM and stops itself: a signal sent to it stays pending (a process
#: that is stopped handles nothing) where the test reads it, for as long as the test likes.
_STOPPED = (
    "import os, signal; signal.signal(signal.SIGTERM, lambda *_: None); "
    "os.kill(os.getpid(), signal.SIGSTOP)"
)


def _pending(pid: int) -> list[str]:
    """The state of ``pid`` and the signals pending for it (``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return [fields["State"].split()[0], fields["SigPnd"].strip(), fields["ShdPnd"].strip()]


@contextlib.contextmanager
def _stopped(token: str) -> Iterator[subprocess.Popen[bytes]]:
    """A stopped process carrying ``token`` (:data:`_STOPPED`), killed at the end."""
    with group(sys.executable, "-c", _STOPPED, token=token) as process:
        until(lambda: "T" == _pending(process.pid)[0], "the process's stop")
        yield process


#: A stopped process with no signal pending.
_UNSIGNALLED = ["T", "0" * 16, "0" * 16]


def test_a_reported_spawns_process_outside_its_group_is_left_alone() -> None:
    """Once a spawn's group is listed, only the group is ended: a process of the spawn that
    left it (a session of its own) gets no signal, as a stage's normal end leaves it."""
    watchdog = GroupWatchdog(grace=5.0)
    token = watchdog.spawning()
    with group("sleep", "300", token=token) as stage, _stopped(token) as detached:
        watchdog.started(stage.pid, token)
        watchdog.close()  # returns once the watchdog process has exited
        assert (-signal.SIGTERM, _UNSIGNALLED) == (stage.wait(DEADLINE), _pending(detached.pid))


def test_a_spawn_that_failed_is_unlisted() -> None:
    """A spawn told failed is no longer searched for: a process carrying its token gets no
    signal."""
    watchdog = GroupWatchdog(grace=5.0)
    token = watchdog.spawning()
    with _stopped(token) as process:
        watchdog.spawn_failed(token)
        watchdog.close()
        assert _UNSIGNALLED == _pending(process.pid)


def test_a_spawn_never_reported_gets_sigkill_after_the_grace() -> None:
    """A process of a spawn never reported that outlives SIGTERM (stopped, it handles no
    signal) is killed with SIGKILL once the grace has passed."""
    watchdog = GroupWatchdog(grace=0.2)
    token = watchdog.spawning()
    with _stopped(token) as process:
        watchdog.close()
        assert -signal.SIGKILL == process.wait(DEADLINE)


def test_tokens_are_new_at_each_spawn_and_unpredictable() -> None:
    """Each spawn draws a token of its own: 32 hex digits, none repeated."""
    watchdog = GroupWatchdog(grace=5.0, executable="/nonexistent/python")
    tokens = {watchdog.spawning() for _ in range(1000)}
    assert (1000, {32}) == (len(tokens), {len(token) for token in tokens})


# -- taskdaemon run, killed between a command's fork and its group's report --------------------

_GATE = """\
import os
import time


def gate(ctx):
    open(os.environ["READY_FILE"], "w").close()
    while not os.path.exists(os.environ["GO_FILE"]):
        time.sleep(0.01)
"""

#: The length of a ``?TOKEN`` line: "?", 32 hex digits, a newline.
_SPAWN_LINE = 34


def _queued(fd: int) -> int:
    """The bytes a pipe holds, through a descriptor of either end."""
    queued: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    return queued


def _window_pipeline(directory: Path) -> Path:
    """``first`` (a command: the watchdog starts), ``gate`` (waits for a file) and ``work``
    (a command whose shell and child write their pids to ``directory / "pids"``)."""
    pids = directory / "pids"
    (directory / "gate_handler.py").write_text(_GATE)
    return write(
        directory / "window.yaml",
        f"""\
        name: window
        stages:
          - name: first
            command: "true"
            triggers: [{{manual: {{approval_required: false}}}}]
          - name: gate
            handler: gate_handler:gate
            triggers: [{{on_completion: {{stage: first}}}}]
          - name: work
            command: "sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"
            triggers: [{{on_completion: {{stage: gate}}}}]
        """,
    )


def _pids(directory: Path) -> list[int]:
    """The pids the command wrote so far."""
    path = directory / "pids"
    return [int(word) for word in path.read_text().split()] if path.exists() else []


def _hold_all_but_a_spawn_line(watchdog: int) -> None:
    """Stop the watchdog and shrink its empty pipe to one page, filled but for one ``?TOKEN``
    line: taskdaemon's next spawn writes that line, forks, and then blocks on the write of its
    group's line, which the pipe has no room for (a write of less than ``PIPE_BUF`` bytes is
    whole or waits), until taskdaemon dies. The filling is newlines, which list nothing."""
    fd = os.open(f"/proc/{watchdog}/fd/0", os.O_WRONLY | os.O_NONBLOCK)  # the pipe's other end
    try:
        until(lambda: 0 == _queued(fd), "the watchdog's reading of the pipe")
        os.kill(watchdog, signal.SIGSTOP)
        size = fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, os.sysconf("SC_PAGE_SIZE"))
        assert size - _SPAWN_LINE == os.write(fd, b"\n" * (size - _SPAWN_LINE))
    finally:
        os.close(fd)


@pytest.mark.slow
def test_kill_9_between_the_fork_and_the_report_ends_the_command(
    home: Path, tmp_path: Path
) -> None:
    """``taskdaemon run`` SIGKILLed after ``work``'s shell and child started but before their
    group was listed (the pipe held that line back): both are ended by their token."""
    pipeline = _window_pipeline(tmp_path)
    env = environment(
        home,
        READY_FILE=str(tmp_path / "ready"),
        GO_FILE=str(tmp_path / "go"),
        PYTHONPATH=pythonpath_with(tmp_path),
    )
    process = subprocess.Popen(
        [TASKDAEMON, "run", "-q", str(pipeline)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pids: list[int] = []
    watchdog = 0
    try:
        until((tmp_path / "ready").exists, "the gate")
        watchdog = watchdog_of(process.pid)
        _hold_all_but_a_spawn_line(watchdog)
        (tmp_path / "go").touch()
        until(lambda: 2 == len(_pids(tmp_path)), "the command's pids")
        pids = _pids(tmp_path)
        fd = os.open(f"/proc/{watchdog}/fd/0", os.O_WRONLY | os.O_NONBLOCK)
        full = _queued(fd) == os.sysconf("SC_PAGE_SIZE")  # with the spawn's line, not the group's
        os.close(fd)
        process.kill()
        process.wait(DEADLINE)
        os.kill(watchdog, signal.SIGCONT)
        with contextlib.suppress(AssertionError):
            until(lambda: all(gone(pid) for pid in [*pids, watchdog]), "the command's end")
        assert [True, True, True, True] == [full, *(gone(pid) for pid in [*pids, watchdog])]
    finally:
        for pid in [*pids, process.pid, watchdog]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if pid:
                    os.kill(pid, signal.SIGKILL)
        process.wait()
