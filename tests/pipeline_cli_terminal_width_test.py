"""``summary_width``: the columns of a real pseudo-terminal, None for a pipe and for a
terminal nobody sized."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import termios

import pytest

from taskdaemon.pipeline.cli.terminal_width import summary_width


@pytest.mark.parametrize(("columns", "expected"), [(0, None), (80, 80), (132, 132)])
def test_a_pseudo_terminal_s_columns_and_none_when_unsized(
    columns: int, expected: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pty sized to 80 or 132 columns is that wide; one left at 0 columns (openpty without
    TIOCSWINSZ) has no known width, like a pipe, rather than a width of 0 to fit to."""
    monkeypatch.delenv("COLUMNS", raising=False)
    controller, terminal = pty.openpty()
    try:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        with open(terminal, "w", closefd=False) as stream:
            assert expected == summary_width(stream)
            monkeypatch.setenv("COLUMNS", "100")  # COLUMNS first, as shutil reads it
            assert 100 == summary_width(stream)
    finally:
        os.close(terminal)
        os.close(controller)


def test_a_pipe_has_no_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe is not a terminal: None, whatever COLUMNS says."""
    monkeypatch.setenv("COLUMNS", "80")
    reader, writer = os.pipe()
    try:
        with open(writer, "w", closefd=False) as stream:
            assert summary_width(stream) is None
    finally:
        os.close(reader)
        os.close(writer)
