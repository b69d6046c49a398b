"""``python -m taskdaemon`` is the ``taskdaemon`` command, as a user without the venv's ``bin``
on the ``PATH`` runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from taskdaemon import __version__


def _module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskdaemon", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_python_dash_m_taskdaemon_answers_as_the_command(tmp_path: Path) -> None:
    """Its version, and a one-line usage error with exit 2 for an unknown command."""
    version = _module("--version", cwd=tmp_path)
    unknown = _module("nosuch", cwd=tmp_path)
    expected = (0, True, 2, 1, True)
    assert expected == (
        version.returncode,
        __version__ in version.stdout,
        unknown.returncode,
        len([line for line in unknown.stderr.splitlines() if "error:" in line]),
        "Traceback" not in unknown.stderr,
    )


# Ctrl-C while the command's modules load: SIGINT to itself at the import of the command's
# package, then the entry point as the console script (``main``) or ``python -m`` calls it. In
# a weakref callback (``{in_callback}``), as importlib's module locks have, a raised
# ``KeyboardInterrupt`` is printed as "Exception ignored" and dropped.
INTERRUPTED_WHILE_LOADING = """\
import os, signal, sys, weakref

def interrupt(*_):
    os.kill(os.getpid(), signal.SIGINT)
    sum(range(100))  # Python code: the handler runs here

class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "taskdaemon.pipeline.cli":
            if {in_callback}:
                class Lock: pass
                lock = Lock()
                ref = weakref.ref(lock, interrupt)
                del lock
            else:
                interrupt()
        return None

sys.meta_path.insert(0, Interrupt())
sys.argv = ["taskdaemon", "--version"]
if {console_script}:
    from taskdaemon.__main__ import main
    sys.exit(main())
import runpy
runpy.run_module("taskdaemon", run_name="__main__")
"""


def _interrupted_while_loading(
    cwd: Path, *, console_script: bool, in_callback: bool
) -> tuple[int, str, str]:
    script = INTERRUPTED_WHILE_LOADING.format(
        console_script=console_script, in_callback=in_callback
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def test_ctrl_c_while_the_command_loads_exits_130_without_a_traceback(tmp_path: Path) -> None:
    """Both entry points: before, the import of the command was outside any guard, and
    Ctrl-C there printed a ``KeyboardInterrupt`` traceback and killed Python by SIGINT."""
    assert [(130, "", "")] * 2 == [
        _interrupted_while_loading(tmp_path, console_script=script, in_callback=False)
        for script in (True, False)
    ]


def test_ctrl_c_in_a_callback_while_the_command_loads_is_not_lost(tmp_path: Path) -> None:
    """Raised in a callback, ``KeyboardInterrupt`` was dropped with an "Exception ignored"
    traceback, and the command went on (here, it printed its version)."""
    assert (130, "", "") == _interrupted_while_loading(
        tmp_path, console_script=True, in_callback=True
    )
