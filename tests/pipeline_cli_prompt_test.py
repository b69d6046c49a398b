"""The interactive prompts' shared machinery (``cli/_prompt.py``)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import ClassVar

from taskdaemon.pipeline.cli._prompt import CommandPrompt


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
