"""``watch`` on a remote span source whose answer never completes, stopped by a real Ctrl-C
(the terminal's interrupt character, typed on a pty): it exits at once, 130, the cursor
shown again, while its poll is still in flight. Before, the poll's worker thread was joined
on the way out: Ctrl-C waited until the source's request gave up (within
``TASKDAEMON_SOURCE_TIMEOUT``).

And a stop signal that a thread other than the main one takes, while the main thread sleeps in
its loop's wait (the poll in flight, no timer due), still stops ``watch`` and ``dag --watch``
(``cli/sigterm.py``'s ``woken_by_signals``). Before, the main thread slept on: the live table
went on drawing, and a Ctrl-C typed just as the loop began to wait was lost the same way (the
Ctrl-C test, under load, then held until pytest's timeout).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_faults_support import OnTerminal, on_a_terminal, read_until

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


@contextlib.contextmanager
def _silent_source(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, socket.socket]]:
    """A ``tempo+http`` URL whose server accepts one request and never answers it in full
    (:func:`_trickle`, from :func:`_holding_the_poll` on), and its listening socket."""
    monkeypatch.setenv("TASKDAEMON_SOURCE_TIMEOUT", DEADLINE)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(60)  # a command that never polls fails the test, not hangs it
        yield f"tempo+http://127.0.0.1:{silent.getsockname()[1]}", silent


@contextlib.contextmanager
def _holding_the_poll(silent: socket.socket) -> Iterator[None]:
    """Inside, the command's first poll is in flight, held by :func:`_trickle`."""
    accepted, _ = silent.accept()
    stop = threading.Event()
    trickling = threading.Thread(target=_trickle, args=(accepted, stop))
    trickling.start()
    try:
        yield
    finally:
        stop.set()
        trickling.join()
        accepted.close()


def _exit_code(command: OnTerminal, signal_name: str) -> int:
    """The command's exit code, once ``signal_name`` (sent) stopped it."""
    try:
        return command.process.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{signal_name} did not stop it while its poll was in flight"
        ) from None


def test_ctrl_c_stops_watch_while_a_silent_source_holds_its_poll(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source's first request is never answered in full and never stalls long enough for
    a read to time out, until the query's deadline (:data:`DEADLINE`): the exit cannot have
    come from an answer, a closed connection or a timeout. Had the command waited for its
    poll, it would still be running when the test stops waiting for it."""
    with (
        _silent_source(monkeypatch) as (url, silent),
        on_a_terminal(home, "watch", "a" * 32, "--source", url) as watch,
        _holding_the_poll(silent),
    ):
        watch.wait_for("\x1b[?25l")  # the live table hid the cursor
        watch.type(b"\x03")  # Ctrl-C: the terminal sends SIGINT
        watch.wait_for("\x1b[?25h")  # the cursor shown again
        code = _exit_code(watch, "Ctrl-C")
    shown = bytes(watch.seen)
    assert 130 == code
    assert b"Traceback" not in shown
    assert shown.index(b"\x1b[?25h") > shown.index(b"\x1b[?25l")


def _asleep_in_its_loop(pid: int) -> None:
    """Wait until the main thread of ``pid`` sleeps in its event loop's wait (``epoll``)."""
    for _ in range(600):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/task/{pid}/wchan").read_text() == "do_epoll_wait":
                return
        time.sleep(0.05)
    raise AssertionError(f"the main thread of {pid} never waited in its loop")


@pytest.mark.parametrize(
    ("command", "signum"),
    [
        (("watch", "a" * 32), signal.SIGINT),
        (("watch", "a" * 32), signal.SIGTERM),
        (("dag", "--run", "a" * 32, "--watch", "-o", "OUT"), signal.SIGTERM),
    ],
    ids=["watch-int", "watch-term", "dag-watch-term"],
)
def test_a_stop_signal_another_thread_takes_still_stops_the_command(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
    signum: int,
) -> None:
    """The signal is sent to one of the command's other threads (``kill`` of its thread id:
    the kernel hands it to that thread), once the main thread sleeps in its loop's wait. Its
    handler raises in the main thread all the same, at once: the command exits 128 + the
    signal without a traceback (``watch`` with its cursor shown again)."""
    argv = [str(tmp_path / "dag.dot") if word == "OUT" else word for word in command]
    with (
        _silent_source(monkeypatch) as (url, silent),
        on_a_terminal(home, *argv, "--source", url) as running,
        _holding_the_poll(silent),
    ):
        pid = running.process.pid
        _asleep_in_its_loop(pid)
        other = next(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)
        os.kill(other, signum)
        exited = _exit_code(running, signal.Signals(signum).name)
        read_until(running.primary, b"\0never written", running.seen)  # to the terminal's end
    shown = bytes(running.seen)
    assert (128 + signum, False) == (exited, b"Traceback" in shown), shown[-500:]
    if command[0] == "watch":
        assert shown.index(b"\x1b[?25h") > shown.index(b"\x1b[?25l")
