"""``watch`` on a remote span source that accepts and never answers, stopped by a real Ctrl-C
(the terminal's interrupt character, typed on a pty): it exits at once, 130, the cursor
shown again, while its poll is still in flight. Before, the poll's worker thread was joined
on the way out: Ctrl-C waited until the source's request gave up (its retries, within
``TASKDAEMON_SOURCE_TIMEOUT``).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli_faults_support import on_a_terminal

pytestmark = pytest.mark.slow


def _retried(listener: socket.socket) -> bool:
    """Whether a second connection is waiting on ``listener`` (closed if so)."""
    listener.setblocking(False)
    try:
        again, _ = listener.accept()
    except BlockingIOError:
        return False
    again.close()
    return True


def test_ctrl_c_stops_watch_while_a_silent_source_holds_its_poll(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source's first request is accepted and never answered, and stays so until the
    command has exited: the exit cannot have come from an answer, a closed connection or a
    timeout (300 s, far past the test's wait). Had the command waited for the request to give
    up, it would have connected again to retry before exiting: no second connection came."""
    monkeypatch.setenv("TASKDAEMON_SOURCE_TIMEOUT", "300")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"tempo+http://127.0.0.1:{silent.getsockname()[1]}"
        with on_a_terminal(home, "watch", "a" * 32, "--source", url) as watch:
            accepted, _ = silent.accept()  # the poll is in flight now
            with accepted:
                watch.wait_for("\x1b[?25l")  # the live table hid the cursor
                watch.type(b"\x03")  # Ctrl-C: the terminal sends SIGINT
                watch.wait_for("\x1b[?25h")  # the cursor shown again
                assert 130 == watch.process.wait(60)
                assert not _retried(silent), "the command waited for its poll to give up"
    shown = bytes(watch.seen)
    assert b"Traceback" not in shown
    assert shown.index(b"\x1b[?25h") > shown.index(b"\x1b[?25l")
