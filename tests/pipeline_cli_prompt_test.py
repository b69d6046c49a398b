"""The interactive prompts' shared machinery (``cli/_prompt.py``)."""

from __future__ import annotations

import io
import os
import pty
import termios
from collections.abc import Sequence
from typing import ClassVar

import pytest

from taskdaemon.pipeline.cli._prompt import CommandPrompt, LinesAbove


class Echo(CommandPrompt):
    """A prompt whose one command prints its argument, as a command prints a run's text."""

    COMMANDS: ClassVar[dict[str, str]] = {"say": "say TEXT   print TEXT"}

    def _do_say(self, args: Sequence[str]) -> None:
        self._print(args[0])


def test_a_printed_line_has_its_control_characters_escaped() -> None:
    """Text with an escape sequence is printed escaped, its line breaks and tabs kept."""
    out = io.StringIO()
    Echo(stdin=io.StringIO(), stdout=out).execute('say "a\x1b[2J\tb\nc\x07"')
    assert "a\\x1b[2J\tb\nc\\x07\n" == out.getvalue()


def test_lines_written_while_a_prompt_reads_go_through_unchanged_on_a_pipe() -> None:
    """Off a terminal (a pipe, a file) the lines of another thread are written as they come,
    even while a prompt reads: no erase, no prompt drawn again in the output."""
    out = io.StringIO()
    above = LinesAbove(out)
    above.reading("(x) ")
    above.write("    1.00s  slow  success\n")
    assert "    1.00s  slow  success\n" == out.getvalue()


def _through_a_terminal(
    term: str, monkeypatch: pytest.MonkeyPatch, *, echo: bool | None = None
) -> str:
    """What a line written while a prompt reads puts on a pseudo-terminal under ``term``;
    with ``echo``, the prompt reads its keys from that terminal, echo on or off."""
    monkeypatch.setenv("TERM", term)
    controller, terminal = pty.openpty()
    attrs = termios.tcgetattr(terminal)
    attrs[1] &= ~termios.OPOST  # the bytes as written, no \n made \r\n
    if echo is not None:
        attrs[3] = attrs[3] | termios.ECHO if echo else attrs[3] & ~termios.ECHO
    termios.tcsetattr(terminal, termios.TCSANOW, attrs)
    try:
        with open(terminal, "w", closefd=False) as stream:
            above = LinesAbove(stream)
            above.reading("(x) ", None if echo is None else terminal)
            above.write("one ")
            above.write("line\n")
            above.reading(None)
            above.write("after\n")
        shown = b""
        while not shown.endswith(b"after\n"):  # a pty read returns what came so far
            shown += os.read(controller, 4096)
        return shown.decode()
    finally:
        os.close(terminal)
        os.close(controller)


def test_a_line_written_while_a_prompt_reads_shows_above_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a terminal, the prompt's row is erased, the line written (in as many writes as it
    takes), and the prompt drawn again below it (with readline's buffer: nothing typed here);
    once the prompt no longer reads, a line goes through as it is."""
    assert "\r\x1b[Kone line\n(x) after\n" == _through_a_terminal("xterm", monkeypatch)


def test_a_dumb_terminal_gets_a_new_row_instead_of_an_erase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``dumb`` terminal erases nothing: the line starts a new row below the prompt's, and
    the prompt follows it; no escape sequence is written."""
    assert "\none line\n(x) after\n" == _through_a_terminal("dumb", monkeypatch)


def test_a_line_written_before_readline_draws_its_prompt_goes_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Until readline draws its prompt (it turns the terminal's echo off as it does), a line
    is written as it comes: a prompt drawn after it too would show twice. Once echo is off,
    the line goes above the prompt."""
    assert "one line\nafter\n" == _through_a_terminal("xterm", monkeypatch, echo=True)
    assert "\r\x1b[Kone line\n(x) after\n" == _through_a_terminal("xterm", monkeypatch, echo=False)


def test_a_line_with_an_open_quote_is_one_error_line_as_the_others_read() -> None:
    """A line shlex cannot split (a quote left open) said ``error: No closing quotation``,
    capitalized unlike every other error line; the prompt goes on with the next line."""
    out = io.StringIO()
    Echo(stdin=io.StringIO('say "half\nsay whole\n'), stdout=out).loop()
    assert ["error: no closing quotation", "whole"] == [
        line for line in out.getvalue().splitlines() if not line.startswith("(")
    ]
