"""``cli/hangup.py`` in this process: after a hangup, the standard streams that were a terminal
(a real pty here) are pointed at ``/dev/null``, so the lines written while the run stops cannot
fail; pipes and files are left to their readers. And which signals stop a command: SIGHUP only
unless ignored at start (``nohup``). The commands on a terminal that hangs up are
``pipeline_cli_hangup_test.py``'s, in subprocesses."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_faults_support import standard_streams_put_back
from taskdaemon.pipeline.cli.hangup import detach_terminal, hangup_handled, stop_signals


@pytest.fixture(autouse=True)
def streams_put_back() -> Iterator[None]:
    with standard_streams_put_back():
        yield


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("on_terminal", [0, 1, 2])
def test_only_the_stream_on_a_terminal_is_pointed_at_dev_null(
    on_terminal: int, tmp_path: Path
) -> None:
    """The stream on the pty now reads end of file and takes writes (``/dev/null``, opened
    for both); the pipe and the file on the two others are the same files as before; no file
    descriptor is left open."""
    terminal, pty_end = os.openpty()
    os.set_blocking(pty_end, False)  # a stream left on the pty fails its read, not waits
    read_end, write_end = os.pipe()
    file = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    others = [fd for fd in (0, 1, 2) if fd != on_terminal]
    for fd, target in [(on_terminal, pty_end), (others[0], read_end), (others[1], file)]:
        os.dup2(target, fd)
    for fd in (pty_end, read_end, file):
        os.close(fd)
    before = {fd: os.fstat(fd) for fd in others}
    opened = _open_fds()
    detach_terminal()
    after = os.fstat(on_terminal)
    written, read = os.write(on_terminal, b"x"), os.read(on_terminal, 1)
    left = _open_fds()
    os.close(terminal)
    os.close(write_end)
    assert (after.st_rdev, written, read) == (os.stat(os.devnull).st_rdev, 1, b"")
    assert {fd: os.fstat(fd) for fd in others} == before
    assert left == opened


@pytest.mark.parametrize(
    ("handling", "handled"),
    [(signal.SIG_DFL, True), (signal.SIG_IGN, False)],
    ids=["default", "nohup"],
)
def test_sighup_stops_a_command_unless_ignored_at_start(
    handling: signal.Handlers, handled: bool
) -> None:
    """SIGINT and SIGTERM always stop a command cleanly; SIGHUP too unless it was ignored
    (``nohup``: whoever started it wants it to outlive its terminal)."""
    previous = signal.signal(signal.SIGHUP, handling)
    try:
        assert (hangup_handled(), stop_signals()) == (
            handled,
            (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if handled else [])),
        )
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_closed_stream_is_passed_over() -> None:
    """A command started with stdin closed (``<&-``) still has its terminal detached from the
    other streams."""
    terminal, pty_end = os.openpty()
    os.dup2(pty_end, 2)
    os.close(pty_end)
    os.close(0)
    detach_terminal()
    after = os.fstat(2).st_rdev
    os.close(terminal)
    assert after == os.stat(os.devnull).st_rdev
