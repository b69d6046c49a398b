"""``taskdaemon COMMAND --help`` in a narrow terminal: a long description keeps its paragraphs
and is filled to the terminal's width, as the options' help is.

``run`` and ``replay`` gave their descriptions with the raw formatter, which keeps each line as
written: 95 columns whatever the terminal's, and ``replay``'s exit codes on one line of 225.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon


@pytest.mark.parametrize("command", ["run", "replay"])
def test_a_description_is_filled_to_a_narrow_terminal(home: Path, command: str) -> None:
    shown = taskdaemon(home, command, "--help", COLUMNS="60")
    assert 0 == shown.returncode, shown.stderr
    lines = shown.stdout.splitlines()
    # argparse fills to the columns less 2; a word longer than that would stand alone.
    assert [] == [line for line in lines if len(line) > 58 and " " in line.strip()]
    # Its paragraphs are still apart: the exit codes start one of their own.
    exit_codes = next(i for i, line in enumerate(lines) if line.startswith("Exit codes:"))
    assert "" == lines[exit_codes - 1]
    assert "SIGHUP: the terminal closed)." in " ".join(lines[exit_codes : exit_codes + 5])
