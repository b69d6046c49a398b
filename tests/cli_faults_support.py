"""Helpers of the fault tests (``pipeline_cli_faults_test.py``, ``pipeline_cli_hangup_test.py``,
``pipeline_control_stale_test.py``): a pipeline whose stage runs until stopped, its stage
processes, a run's stored status, and a command on a terminal of its own that the test can
hang up. And, for the in-process tests of the stop signals (``pipeline_cli_sigterm_test.py``,
``pipeline_cli_stop_signals_test.py``, ``pipeline_cli_hangup_streams_test.py``), the standard
streams put back after a hangup pointed them elsewhere."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from cli_support import (
    ONE_STAGE_PIPELINE,
    ROOT,
    TASKDAEMON,
    Served,
    environment,
    taskdaemon,
    wait_until_stored,
    write,
)

#: Stage ``wait`` runs until stopped; its sleeper's pid is appended to the file PIDS.
SLOW_PIPELINE = """\
    name: slow
    stages:
      - name: first
        command: "echo '{}'"
        triggers: [{manual: {approval_required: false}}]
      - name: wait
        command: "sleep 600 & echo $! >> PIDS; wait"
        triggers: [{on_completion: {stage: first}}]
"""


def slow_pipeline(tmp_path: Path) -> tuple[Path, Path]:
    """:data:`SLOW_PIPELINE` in a file, and the file its sleepers' pids are written to."""
    pids = tmp_path / "pids"
    return write(tmp_path / "slow.yaml", SLOW_PIPELINE.replace("PIDS", str(pids))), pids


def stored_status(home: Path, run_id: str) -> str:
    """The run's status in the store (``runs show --json``)."""
    shown = taskdaemon(home, "runs", "show", run_id, "--json")
    assert 0 == shown.returncode, shown.stderr
    found: str = json.loads(shown.stdout)["status"]
    return found


def wait_for_pids(pids: Path, count: int) -> None:
    """Wait until ``count`` stage processes wrote their pid (the stage's "running" line comes
    before its shell has started)."""
    for _ in range(300):
        if pids.exists() and len(pids.read_text().split()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} pids never came to {pids}")


def no_sleeper_left(pids: Path) -> None:
    """Every stage process of ``pids`` is gone (or a zombie)."""
    for line in pids.read_text().split():
        sleeper = int(line)
        assert not psutil.pid_exists(sleeper) or (
            psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE
        ), f"stage process {sleeper} outlived the command"


def run_id_of_summary(stdout: str) -> str:
    """The run id of the summary's ``run ID STATUS in T`` line."""
    for line in stdout.splitlines():
        if line.startswith("run ") and " in " in line:
            return line.split()[1]
    raise AssertionError(f"no summary line in {stdout!r}")


def ended_run(home: Path, folder: Path) -> str:
    """The id of a run of ``ONE_STAGE_PIPELINE`` (written in ``folder``) that succeeded."""
    done = taskdaemon(home, "run", str(write(folder / "one.yaml", ONE_STAGE_PIPELINE)))
    assert 0 == done.returncode, done.stderr
    return run_id_of_summary(done.stdout)


#: Seconds :func:`read_until` waits for its needle, in all.
READ_WAIT = 60.0


def read_until(fd: int, needle: bytes, seen: bytearray, since: int = 0) -> None:
    """Read the pty's output into ``seen`` until it holds ``needle`` (past ``since``), or the
    output ends; an AssertionError if neither within :data:`READ_WAIT` seconds in all. Each
    read's wait alone was bounded: a command that keeps drawing (a live table) and never
    writes ``needle`` held the test until pytest's timeout, which shows nothing it read."""
    deadline = time.monotonic() + READ_WAIT
    while needle not in seen[since:]:
        left = deadline - time.monotonic()
        ready = select.select([fd], [], [], left)[0] if left > 0 else []
        assert ready, f"{needle!r} never came: {bytes(seen)[-500:]!r}"
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end closed
            return
        if not chunk:
            return
        seen += chunk


#: Runs ARGV as the session leader of the terminal on its stdin (its controlling terminal), with
#: SIGHUP as HANGUP says and SIGINT at its default, as a command typed in a terminal has it: a
#: suite run under ``nohup`` (``scripts/mutation.sh``) or in the background inherits them
#: ignored, and an ignored signal stays ignored across exec. Closing the terminal's other end
#: then hangs it up: the kernel sends SIGHUP, as when an ssh connection drops or a tmux pane
#: is killed.
_ON_A_TERMINAL = (
    "import fcntl, os, signal, sys, termios; {hangup}; "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "{controlling}os.execv(sys.argv[1], sys.argv[1:])"
)
_CONTROLLING = "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
#: SIGHUP as a command gets it: at its default (a terminal's command), ignored (``nohup``), or
#: blocked, so that it never comes and the command learns of the hang-up only by a failed
#: read (as when the signal is late: it came while the main thread could not raise it).
HANGUP = {
    "default": "signal.signal(signal.SIGHUP, signal.SIG_DFL)",
    "ignored": "signal.signal(signal.SIGHUP, signal.SIG_IGN)",
    "blocked": "signal.signal(signal.SIGHUP, signal.SIG_DFL); "
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})",
}


@dataclass
class OnTerminal:
    """A ``taskdaemon`` command on a terminal of its own (a pty): its process and the pty's
    other end, which the test reads and closes (``hang_up``)."""

    process: subprocess.Popen[bytes]
    primary: int
    seen: bytearray = field(default_factory=bytearray)

    def wait_for(self, needle: str, since: int = 0) -> None:
        """Read the terminal until it showed ``needle`` (past ``since`` in ``seen``)."""
        read_until(self.primary, needle.encode(), self.seen, since)
        assert needle.encode() in self.seen[since:], bytes(self.seen)[-500:]

    def type(self, keys: bytes) -> None:
        """Type ``keys`` on the terminal (``b"\\x03"``: Ctrl-C, SIGINT to the command)."""
        os.write(self.primary, keys)

    def read_to_end(self) -> bytes:
        """Read the terminal to the end of the output (the command and all it started gone);
        everything it showed."""
        read_until(self.primary, b"\0never written\0", self.seen)
        return bytes(self.seen)

    def run_id(self) -> str:
        """The id of the run the command said it started (``run ID of NAME started``) or
        debugs (``debugging run ID``)."""
        found = re.search(rb"(?:^|\n)(?:debugging )?run ([0-9a-f]{32}) ", self.seen)
        assert found, f"no run started: {bytes(self.seen)[-500:]!r}"
        return found.group(1).decode()

    def hang_up(self) -> int:
        """Close the terminal (the kernel hangs it up: SIGHUP); the command's exit code."""
        if self.primary >= 0:
            os.close(self.primary)
            self.primary = -1
        return self.process.wait(60)

    def close(self) -> None:
        """Kill what is left of the command's session; close the terminal."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.primary >= 0:
            os.close(self.primary)
            self.primary = -1


@contextlib.contextmanager
def on_a_terminal(
    home: Path,
    *args: str,
    columns: int | None = None,
    hangup: str = "default",
    controlling: bool = True,
    command: str = TASKDAEMON,
    cwd: Path = ROOT,
    **extra: str,
) -> Iterator[OnTerminal]:
    """``taskdaemon ARGS`` (``command``, run in ``cwd`` with ``environment(home, **extra)``)
    on a terminal of its own (see :data:`_ON_A_TERMINAL`), in a session of its own, killed at
    the end if still there. ``columns``: the terminal's width (24 rows; ``COLUMNS`` unset, so
    the terminal's own size is read), else the pty's default; ``hangup``: SIGHUP's disposition
    (:data:`HANGUP`); not ``controlling``: the terminal is not its controlling one, as a
    script's pseudo-terminal may not be (it has none then)."""
    primary, secondary = pty.openpty()
    env = environment(home, **extra)
    if columns is not None:
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        env = environment(home, TERM="xterm-256color", **extra)
        env.pop("COLUMNS", None)
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _ON_A_TERMINAL.format(
                    hangup=HANGUP[hangup], controlling=_CONTROLLING if controlling else ""
                ),
                command,
                *args,
            ],
            cwd=cwd,
            env=env,
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            start_new_session=True,
        )
    except BaseException:
        os.close(primary)
        raise
    finally:
        os.close(secondary)
    command = OnTerminal(process, primary)
    try:
        yield command
    finally:
        command.close()


@contextlib.contextmanager
def listening(directory: Path, *names: str, backlog: int | None = None) -> Iterator[list[Path]]:
    """A Unix socket listening at ``directory/NAME`` for each name (a live run's, as far as a
    listing can tell), closed and removed at the end. None of them accepts: with ``backlog``
    0 the first connection fills its queue, and each later one is refused at once (EAGAIN),
    as by a run too busy to accept."""
    directory.mkdir(mode=0o700, exist_ok=True)
    with contextlib.ExitStack() as stack:
        paths = []
        for name in names:
            listener = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            path = directory / name
            listener.bind(str(path))
            stack.callback(path.unlink, missing_ok=True)
            listener.listen(*(() if backlog is None else (backlog,)))
            paths.append(path)
        yield paths


@contextlib.contextmanager
def in_background(home: Path) -> Iterator[Callable[..., Served]]:
    """A function starting ``taskdaemon ARGS`` in the background (``launcher`` runs it: the
    console script, or a ``python -c`` wrapper first), each in a session of its own, its
    stdout and stderr on pipes, without the variables ``without`` names; whatever is left of a
    session is killed at the end."""
    started: list[Served] = []

    def launch(
        *args: str,
        stdin: int | None = subprocess.DEVNULL,
        launcher: Sequence[str] = (TASKDAEMON,),
        without: Sequence[str] = (),
    ) -> Served:
        env = environment(home)
        for name in without:
            env.pop(name, None)
        process = subprocess.Popen(
            [*launcher, *args],
            cwd=ROOT,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(Served(process))
        return started[-1]

    try:
        yield launch
    finally:
        for served in started:
            if served.process.poll() is None:
                os.killpg(served.process.pid, signal.SIGKILL)
            served.process.communicate()
            if served.process.stdin is not None:
                served.process.stdin.close()


def killed_run(home: Path, tmp_path: Path) -> str:
    """The id of a run of :data:`SLOW_PIPELINE` whose process was killed (``kill -9``) while
    ``wait`` ran, once the store held that and its record ``stage wait.0.1 started``: no
    writer will end it, and its control socket is left behind, stale. Both are waited for: a
    stage that starts before telemetry has loaded is stored at once, its records only once the
    log writer has loaded (``tracking/run_start.py``)."""
    path, _pids = slow_pipeline(tmp_path)
    with in_background(home) as start:
        killed = start("run", str(path))
        killed.wait_for_line("wait                     running")
        wait_until_stored(home, killed.run_id, "wait")
        _wait_until_logged(home, killed.run_id, "stage wait.0.1 started")
        killed.process.kill()  # taskdaemon alone: its group watchdog ends the stage's processes
        killed.finish()
    return killed.run_id


def _wait_until_logged(home: Path, run_id: str, body: str) -> None:
    """Wait until the home's store holds a record of the run whose body starts with ``body``."""
    from taskdaemon.pipeline.errors import SpanSourceError
    from taskdaemon.pipeline.tracking.log_read import run_log_records

    for _ in range(300):
        try:
            if any(r.body.startswith(body) for r in run_log_records(home / "spans.db", run_id)):
                return
        except (SpanSourceError, sqlite3.Error):  # not yet written, or mid-write
            pass
        time.sleep(0.1)
    raise AssertionError(f"no record {body!r} of run {run_id} in the store")


@contextlib.contextmanager
def standard_streams_put_back() -> Iterator[None]:
    """Inside, a test may point file descriptors 0, 1 and 2 elsewhere (``detach_terminal``
    points those that are a terminal at ``/dev/null``, as under ``pytest -s``): put back after."""
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    try:
        yield
    finally:
        for fd, copy in enumerate(saved):
            os.dup2(copy, fd)
            os.close(copy)
