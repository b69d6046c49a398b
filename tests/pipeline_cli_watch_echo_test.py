"""``run --watch`` and ``watch`` on a terminal (a pty): keys typed while the live table is drawn
are not echoed into it, and the terminal echoes again however the command ends: its run's end,
Ctrl-C, a second Ctrl-C, SIGTERM, a span source that cannot answer.

``run --watch`` used to leave the echo on: a key typed while the table was drawn moved the
cursor the next redraw counts on, as ``watch``'s did before it turned the echo off
(``pipeline_cli_watch_interrupt_test.py``).
"""

from __future__ import annotations

import signal
import socket
import termios
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from cli_faults_support import OnTerminal, on_a_terminal, wait_for_pids
from cli_support import GATED_PIPELINE, write

pytestmark = pytest.mark.slow

#: What shows the cursor again (the live table hid it: ``\x1b[?25l``).
_SHOW_CURSOR = "\x1b[?25h"

#: One stage that runs until the file GATE exists.
GATE_PIPELINE = """\
    name: gate
    stages:
      - name: hold
        command: "while [ ! -e GATE ]; do sleep 0.1; done"
        triggers: [{manual: {approval_required: false}}]
"""


def _echoes(terminal: OnTerminal) -> bool:
    """Whether the terminal echoes the keys typed on it."""
    return bool(termios.tcgetattr(terminal.primary)[3] & termios.ECHO)


def _ends(pid: int) -> bool:
    """Whether process ``pid`` ends (or is left a zombie) within a minute."""
    for _ in range(600):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _run_watch(home: Path, tmp_path: Path, pipeline: str = GATE_PIPELINE) -> tuple[Any, Path]:
    """``run --watch`` of ``pipeline`` on a terminal (a context manager), and its gate."""
    gate = tmp_path / "gate"
    path = write(tmp_path / "gate.yaml", pipeline.replace("GATE", str(gate)))
    return on_a_terminal(home, "run", str(path), "--watch", columns=80), gate


def test_keys_typed_over_run_watch_are_not_echoed_and_ctrl_c_gives_the_echo_back(
    home: Path, tmp_path: Path
) -> None:
    """The keys and the Ctrl-C go in one write: the terminal handles them in order, so the
    keys were taken (and would have been echoed) before the command got its SIGINT."""
    terminal, _ = _run_watch(home, tmp_path)
    with terminal as run:
        run.wait_for("running")  # the table is drawn: the echo went off before it
        drawing = _echoes(run)
        run.type(b"xyzzy\x03")
        run.wait_for("cancelled in")  # the summary: read first, lest the command block on it
        assert 130 == run.process.wait(60)
        after = _echoes(run)
    shown = bytes(run.seen)
    assert (False, True) == (drawing, after), shown[-500:]
    assert b"xyzzy" not in shown, shown[-500:]
    assert b"Traceback" not in shown


def test_a_second_ctrl_c_to_run_watch_gives_the_echo_back(home: Path, tmp_path: Path) -> None:
    """The first Ctrl-C cancels the run, whose stage ignores SIGTERM: its process group is
    killed only after a grace (``command_loop.KILL_GRACE``). The second, typed as soon as the
    first was said, ends the command at once (``os._exit``), skipping every ``finally``: the
    echo is back and the cursor the table hid shown again all the same; and the stage's group,
    still listed with the watchdog (the second cancellation did not unlist it), is ended."""
    pids = tmp_path / "pids"
    stubborn = GATE_PIPELINE.replace("while", f"trap '' TERM; echo $$ >> {pids}; while")
    terminal, gate = _run_watch(home, tmp_path, stubborn)
    try:
        with terminal as run:
            run.wait_for("running")
            # Its shell runs (and is listed with the watchdog): a Ctrl-C in the instant of its
            # spawn would leave it to nobody (group_watchdog's docstring, "Out of reach").
            wait_for_pids(pids, 1)
            drawing = _echoes(run)
            run.type(b"\x03")
            run.wait_for("SIGINT: cancelling run")
            run.type(b"\x03")
            run.wait_for(_SHOW_CURSOR)
            assert 130 == run.process.wait(60)
            after = _echoes(run)
        # The command left at once; its watchdog ends the stage's group after the grace.
        (shell,) = map(int, pids.read_text().split())
        assert _ends(shell), f"stage process {shell} outlived its command and watchdog"
    finally:
        gate.touch()  # whatever is left of the stage ends its loop
    shown = bytes(run.seen)
    assert (False, True) == (drawing, after), shown[-500:]
    assert shown.rindex(_SHOW_CURSOR.encode()) > shown.rindex(b"\x1b[?25l"), shown[-500:]


def test_run_watch_gives_the_echo_back_when_its_run_ends(home: Path, tmp_path: Path) -> None:
    terminal, gate = _run_watch(home, tmp_path)
    with terminal as run:
        run.wait_for("running")
        drawing = _echoes(run)
        gate.touch()
        run.wait_for("success in")
        assert 0 == run.process.wait(60)
        after = _echoes(run)
    assert (False, True) == (drawing, after), bytes(run.seen)[-500:]


def test_run_watch_gives_the_echo_back_on_sigterm(home: Path, tmp_path: Path) -> None:
    terminal, _ = _run_watch(home, tmp_path)
    with terminal as run:
        run.wait_for("running")
        drawing = _echoes(run)
        run.process.send_signal(signal.SIGTERM)
        run.wait_for("cancelled in")
        assert 143 == run.process.wait(60)
        after = _echoes(run)
    assert (False, True) == (drawing, after), bytes(run.seen)[-500:]


def test_watch_gives_the_echo_back_on_sigterm(home: Path, tmp_path: Path, serve: Any) -> None:
    served = serve(str(write(tmp_path / "gated.yaml", GATED_PIPELINE)))
    served.wait_for_line("waiting for approval")
    with on_a_terminal(home, "watch", served.run_id, "--interval", "0.1", columns=80) as watch:
        watch.wait_for("approval")
        drawing = _echoes(watch)
        watch.process.send_signal(signal.SIGTERM)
        watch.wait_for(_SHOW_CURSOR)
        assert 143 == watch.process.wait(60)
        after = _echoes(watch)
    assert (False, True) == (drawing, after), bytes(watch.seen)[-500:]


def test_watch_gives_the_echo_back_when_its_source_cannot_answer(home: Path) -> None:
    """A port bound and not listening refuses every connection: the first poll fails after
    its retries, under the live table (drawn before the first poll, the echo off), and the
    command ends with its one-line error."""
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        url = f"tempo+http://127.0.0.1:{refusing.getsockname()[1]}"
        with on_a_terminal(home, "watch", "a" * 32, "--source", url, columns=80) as watch:
            watch.wait_for("cannot reach")
            assert 1 == watch.process.wait(60)
            after = _echoes(watch)
    shown = bytes(watch.seen)
    assert b"\x1b[?25l" in shown  # the live table was drawn, with the echo off
    assert after, shown[-500:]
    assert b"Traceback" not in shown
