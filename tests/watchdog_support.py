"""Helpers of the watchdog tests (``pipeline_watchdog_process*_test.py``,
``pipeline_group_watchdog*_test.py``): waiting for processes to change state, processes in a
session of their own (carrying a spawn's token in their environment or not), and the watchdog
processes of a taskdaemon."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import psutil

from taskdaemon.pipeline.group_watchdog import PROGRAM, TOKEN_VARIABLE

#: Seconds a test waits for processes to appear or to go (a loaded machine is slow, not wrong).
DEADLINE = 30.0


def gone(pid: int) -> bool:
    """True when ``pid`` runs no more (a zombie waiting for its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition()`` until it holds, failing after :data:`DEADLINE` seconds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE:g} s"
        time.sleep(0.02)


@contextlib.contextmanager
def group(
    *argv: str,
    token: str | None = None,
    user: int | None = None,
    only: dict[str, str] | None = None,
    **extra: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` in a session (so a process group) of its own, killed with its group at the
    end, with ``TASKDAEMON_SPAWN_TOKEN=token`` (none when None) and ``extra`` in its
    environment, or ``only`` as its whole environment (in its order) when given; run as
    ``user`` when given."""
    if only is not None:
        env = dict(only)
    else:
        env = {k: v for k, v in os.environ.items() if k != TOKEN_VARIABLE}
        if token is not None:
            env[TOKEN_VARIABLE] = token
        env.update(extra)
    process = subprocess.Popen(argv, env=env, user=user, start_new_session=True)
    try:
        # Popen returns once the exec has begun; the new environment is set a moment later.
        until(lambda: bool(_environment(process.pid)), "the process's environment")
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _environment(pid: int) -> bytes:
    with open(f"/proc/{pid}/environ", "rb") as environ:
        return environ.read()


def watchdogs(parent: int) -> list[int]:
    """The watchdog processes among ``parent``'s children."""
    found: list[int] = []
    for child in psutil.Process(parent).children():
        with contextlib.suppress(psutil.Error):
            if any(PROGRAM in part for part in child.cmdline()):
                found.append(child.pid)
    return found


def watchdog_of(parent: int) -> int:
    """The pid of ``parent``'s watchdog, once it started (the command may start first)."""
    until(lambda: bool(watchdogs(parent)), "the watchdog's start")
    return watchdogs(parent)[0]
