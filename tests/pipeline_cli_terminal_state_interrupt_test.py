"""A Ctrl-C at the worst moment of ``watch`` on a real terminal (a pty) leaves the terminal
as it was: its cursor shown, its echo on, exit 130, no traceback.

The moments are instructions apart, too close for a key typed by the test to hit them each
time: the command (``python -c`` wrapping the console script's ``main``) sends itself the
SIGINT a typed Ctrl-C sends, at the one instruction, through a wrapper of the call that opens
the window (``rich``'s ``Console.show_cursor``, ``termios.tcsetattr``).
"""

from __future__ import annotations

import os
import pty
import sys
import termios
from pathlib import Path

import pytest

from cli_faults_support import ended_run, on_a_terminal

pytestmark = pytest.mark.slow

_HIDE, _SHOW = b"\x1b[?25l", b"\x1b[?25h"

#: ``main`` with ``PATCH`` run first: it wraps a call so that SIGINT comes at its moment.
_WRAPPED = """\
import os, signal, sys
{patch}
from taskdaemon.pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""

#: SIGINT as ``rich`` has just hidden the cursor, starting its live display (``hide``), or
#: is about to show it again, stopping it (``show``).
_AT_THE_CURSOR = """\
from rich.console import Console
shown = Console.show_cursor
def show_cursor(self, show=True):
    if show == {show}:
        os.kill(os.getpid(), signal.SIGINT)
    return shown(self, show)
def hide_cursor(self, show=True):
    done = shown(self, show)
    if show == {show}:
        os.kill(os.getpid(), signal.SIGINT)
    return done
Console.show_cursor = {wrapper}
"""

#: SIGINT as the terminal's echo has just been turned off.
_AT_THE_ECHO = """\
import termios
changed = termios.tcsetattr
def tcsetattr(fd, when, settings):
    changed(fd, when, settings)
    if not settings[3] & termios.ECHO:
        os.kill(os.getpid(), signal.SIGINT)
termios.tcsetattr = tcsetattr
"""


def _watched_with(home: Path, run_id: str, patch: str) -> tuple[bytes, int]:
    """``watch RUN`` on a terminal, ``patch`` applied: what it showed and its exit code.
    The terminal's settings after it are a new terminal's (read through the pty's other
    end, which reads the settings of its terminal)."""
    code = _WRAPPED.format(patch=patch)
    with on_a_terminal(home, "-c", code, "watch", run_id, command=sys.executable) as watch:
        exit_code = watch.process.wait(60)
        shown = watch.read_to_end()
        after = termios.tcgetattr(watch.primary)
    primary, secondary = pty.openpty()
    try:
        assert after == termios.tcgetattr(secondary)
    finally:
        os.close(primary)
        os.close(secondary)
    return shown, exit_code


@pytest.mark.parametrize(
    ("moment", "wrapper", "show"),
    [("the live display's start", "hide_cursor", False), ("its stop", "show_cursor", True)],
)
def test_a_ctrl_c_as_the_live_display_starts_or_stops_shows_the_cursor(
    home: Path, tmp_path: Path, moment: str, wrapper: str, show: bool
) -> None:
    """Before, a Ctrl-C in ``Live.start`` (``__enter__``: no ``__exit__`` then) or in its
    stop before its ``finally`` raised there: the shell got a hidden cursor back."""
    patch = _AT_THE_CURSOR.format(show=show, wrapper=wrapper)
    shown, code = _watched_with(home, ended_run(home, tmp_path), patch)
    assert code == 130, shown
    assert _HIDE in shown, shown
    assert _SHOW in shown[shown.rindex(_HIDE) :], (moment, shown[-300:])
    assert b"Traceback" not in shown, shown


def test_a_ctrl_c_as_the_echo_goes_off_puts_it_back(home: Path, tmp_path: Path) -> None:
    """Before, a Ctrl-C during the ``tcsetattr`` that turns the echo off raised as it returned,
    before the ``try`` that puts it back: the shell's terminal no longer echoed what was typed
    (``_watched_with`` compares the settings)."""
    shown, code = _watched_with(home, ended_run(home, tmp_path), _AT_THE_ECHO)
    assert code == 130, shown
    assert b"Traceback" not in shown, shown
