"""``taskdaemon COMMAND --help`` in a narrow terminal: a long description keeps its paragraphs
and is filled to the terminal's width, as the options' help is.

``run`` and ``replay`` gave their descriptions with the raw formatter, which keeps each line as
written: 95 columns whatever the terminal's, and ``replay``'s exit codes on one line of 225.
Every command's help, in the 80 columns of a default terminal, has no longer line, and says
the command's exit codes.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.cli import build_parser


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


def _helps(parser: argparse.ArgumentParser, words: str) -> Iterator[tuple[str, str]]:
    """``(command, help text)`` of ``parser`` and of every sub-command under it."""
    yield words, parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _helps(sub, f"{words} {name}".strip())


def test_every_help_fits_an_80_column_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """``debug``'s description kept its lines as written (the raw formatter), 94 columns, and
    its usage was one line of 84; ``runs list`` spelled ``--status``'s choices in its usage, a
    line of 93."""
    monkeypatch.setenv("COLUMNS", "80")
    too_wide = [
        f"{command}: {line}"
        for command, text in _helps(build_parser(), "")
        for line in text.splitlines()
        if len(line) > 80
    ]
    assert [] == too_wide


def test_every_command_says_its_exit_codes() -> None:
    """``serve``, ``ui``, ``runs``, ``logs``, ``report`` and ``retention`` said none, and
    ``watch`` only 0 and 1: a script calling them had only docs/architecture.md's table."""
    commands = [(c, t) for c, t in _helps(build_parser(), "") if c.count(" ") == 0 and c]
    assert 17 == len(commands)
    assert [] == [c for c, text in commands if "exit code" not in " ".join(text.lower().split())]
