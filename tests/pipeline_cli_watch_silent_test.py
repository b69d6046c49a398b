"""``watch`` on a remote span source whose answer never completes, stopped by a real Ctrl-C
(the terminal's interrupt character, typed on a pty): it exits at once, 130, the cursor
shown again, while its poll is still in flight. Before, the poll's worker thread was joined
on the way out: Ctrl-C waited until the source's request gave up (within
``TASKDAEMON_SOURCE_TIMEOUT``).
"""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import pytest

from cli_faults_support import on_a_terminal

pytestmark = pytest.mark.slow

#: Far past every wait of the test: the poll cannot give up while the test waits.
DEADLINE = "300"


def _trickle(connection: socket.socket, stop: threading.Event) -> None:
    """Answer with a status line, then a header that never ends, a byte every 0.2 s, until
    ``stop`` or until the command has gone.

    A source that sent nothing would not hold the poll until the deadline: a read that gets
    nothing for 10 s times out, and the request is retried on a new connection. On a loaded
    machine the command's exit could take that long, and the retry looked like the command
    waiting for its poll."""
    try:
        connection.sendall(b"HTTP/1.1 200 OK\r\nX-Never-Ends: ")
        while not stop.wait(0.2):
            connection.sendall(b"a")
    except OSError:  # the command closed its end: nobody reads any more
        return


def test_ctrl_c_stops_watch_while_a_silent_source_holds_its_poll(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source's first request is never answered in full and never stalls long enough for
    a read to time out, until the query's deadline (:data:`DEADLINE`): the exit cannot have
    come from an answer, a closed connection or a timeout. Had the command waited for its
    poll, it would still be running when the test stops waiting for it."""
    monkeypatch.setenv("TASKDAEMON_SOURCE_TIMEOUT", DEADLINE)
    stop = threading.Event()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(60)  # a command that never polls fails the test, not hangs it
        url = f"tempo+http://127.0.0.1:{silent.getsockname()[1]}"
        with on_a_terminal(home, "watch", "a" * 32, "--source", url) as watch:
            accepted, _ = silent.accept()  # the poll is in flight now
            trickling = threading.Thread(target=_trickle, args=(accepted, stop))
            trickling.start()
            try:
                watch.wait_for("\x1b[?25l")  # the live table hid the cursor
                watch.type(b"\x03")  # Ctrl-C: the terminal sends SIGINT
                watch.wait_for("\x1b[?25h")  # the cursor shown again
                try:
                    code = watch.process.wait(60)
                except subprocess.TimeoutExpired:
                    raise AssertionError("Ctrl-C waited for the poll in flight") from None
            finally:
                stop.set()
                trickling.join()
                accepted.close()
    shown = bytes(watch.seen)
    assert 130 == code
    assert b"Traceback" not in shown
    assert shown.index(b"\x1b[?25h") > shown.index(b"\x1b[?25l")
