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
