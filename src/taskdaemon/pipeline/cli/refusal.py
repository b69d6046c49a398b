"""A command's refusal: one line on stderr, ``taskdaemon COMMAND: MESSAGE``.

Every command says why it stops in the same form. The message is redacted (a refusal may quote
a setting, a URL or a value the user gave: ``redaction.py``) and each of its lines has its
control characters escaped (``terminal_text.shown``): a path or a name from the environment or
the command line may hold ESC or CR, which would drive the reader's terminal (fuzz41's ``env``
target met a ``TASKDAEMON_HOME`` with ESC in a span store's "no run" line).

The line comes after what the command printed on stdout before it, in a log of both streams
too (``stdout_first``): ``retention --vacuum``'s "deleted N runs" came after the vacuum's
error in ``> log 2>&1``, its stdout held in a block buffer until exit.
"""

from __future__ import annotations

import re
import sys

from taskdaemon.pipeline.stdout_first import flush_stdout

__all__ = ["escaped", "located", "note", "printable", "refuse", "say"]


def printable(message: str) -> str:
    """``message`` redacted, each of its lines' control characters escaped: what :func:`say`
    prints, and any other line of the CLI's that quotes a path or a name it was given."""
    from taskdaemon.pipeline.redaction import redact_text  # noqa: PLC0415 - a refusal only

    return escaped(redact_text(message))


def located(message: str, file: str) -> str:
    """:func:`printable` for the lines about ``file`` (``FILE:LINE:COLUMN: ...``, a pipeline
    file's issues and warnings), each redacted after its place only: the place is the file the
    user named and two numbers, and a file named ``secrets.yaml`` read as a secret's key, so
    that every line about it showed ``secrets.yaml:[REDACTED] ...``, its line lost."""
    from taskdaemon.pipeline.redaction import redact_text  # noqa: PLC0415 - a refusal only

    place = re.compile(re.escape(file) + r"(?::\d+){0,2}: ")
    lines = []
    for line in message.split("\n"):
        found = place.match(line)
        head = "" if found is None else found.group(0)
        lines.append(head + redact_text(line[len(head) :]))
    return escaped("\n".join(lines))


def escaped(message: str) -> str:
    """``message`` with each of its lines' control characters escaped, and nothing redacted:
    for lines redacted already, part by part, where a whole-line redaction would mask words
    of ours (``--input token=VALUE`` reads as a secret's assignment)."""
    from taskdaemon.pipeline.terminal_text import shown  # noqa: PLC0415 - a refusal only

    return "\n".join(map(shown, message.split("\n")))


def say(command: str, message: str) -> None:
    """``taskdaemon COMMAND: MESSAGE`` on stderr (redacted, escaped), after stdout's text."""
    note(f"taskdaemon {command}: {printable(message)}")


def note(line: str) -> None:
    """``line`` on stderr as it is, after what stdout holds (the module docstring): for a
    line of the command's own words, not a refusal (``runs list``'s "--limit N for more")."""
    flush_stdout()
    print(line, file=sys.stderr, flush=True)


def refuse(command: str, code: int, message: str) -> int:
    """:func:`say` the refusal; ``code``, the command's exit code."""
    say(command, message)
    return code
