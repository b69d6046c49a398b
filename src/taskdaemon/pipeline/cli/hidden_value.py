"""A value typed unseen at a prompt's terminal: ``set --secret [STAGE] INPUT`` with no value
at the debug prompt asks ``value for INPUT (hidden): `` and reads one line with the
terminal's echo off, as ``getpass``, ``gh secret set`` and ``docker login`` do.

``set --secret x VALUE`` masks the value in everything printed after it, but the line typed
shows on the terminal as it is typed, and stays in its scrollback. Read this way, the value
never shows, nor enters readline's history: the command line holds no value.

Decided, and why:

* not ``getpass.getpass``: it opens ``/dev/tty`` (not the prompt's stdin), drops the keys
  typed ahead (``TCSAFLUSH``) and clears only the echo, where the prompt keeps its terminal
  out of line mode between lines (``terminal_state.keys_as_typed``), so Backspace would
  have entered a DEL into the secret. :func:`terminal_state.line_unseen` turns line mode
  on and the echo off;
* the line typed is the value as text, its line end removed and nothing else (a token is
  pasted as it is, with no quotes to get right unseen); a number or an object is given on
  the command line, ``set --secret x 12345678``, as JSON;
* Ctrl-C drops the value, as at the prompt it drops the line (``not set: interrupted``),
  and Ctrl-D on an empty line sets nothing (``not set: no value typed``); an empty line
  too. A SIGTERM or SIGHUP (a subclass of ``KeyboardInterrupt``, ``cli/sigterm.py``) stops
  the command as anywhere else; the terminal's settings are put back whichever way;
* a value pasted with a line break in it is refused, and what followed its first line is
  read unseen and dropped (:func:`_rest_of_paste`): the prompt read it as commands, in clear,
  shown (``unknown command 'SECOND-HALF'``) and kept in its history file. So is a line of the
  terminal's 4095 characters (it drops what is typed past them: the value may be cut) and one
  that is not UTF-8 (each bad byte was set as U+FFFD, unseen): a value nobody typed is never
  set;
* where there is no terminal to read from unseen (stdin a pipe, a process in the
  terminal's background), it is refused in one line saying to give the value on the line,
  which every output masks. Over HTTP the value is in the request's body, never shown.
"""

from __future__ import annotations

import contextlib
import os
import termios
from collections.abc import Callable
from typing import IO

from taskdaemon.pipeline.cli.terminal_state import line_unseen
from taskdaemon.pipeline.errors import PipelineError

__all__ = ["read_unseen"]

#: A line the terminal's line mode takes (Linux keeps 4095 characters and the line end).
_LINE_MAX = 4096
#: Bytes of a paste's rest read and dropped at most; anything past them is flushed unread.
_REST_MAX = 65_536


def read_unseen(
    prompt: str,
    out: IO[str],
    *,
    interactive: bool,
    waiting: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> str:
    """One line typed at ``prompt`` (written to ``out``) on the terminal on stdin, unseen;
    ``interactive``: whether stdin is a terminal; ``waiting``: around the read, what makes a
    Ctrl-C reach it (``PromptSignals.waiting``: the SIGINT may be delivered to another of
    the process's threads, and the read goes on). PipelineError when nothing is set."""
    give = "give it on the line (set --secret [STAGE] INPUT JSON), which every output masks"
    if not interactive:
        raise PipelineError(f"no value given, and stdin is no terminal to type it unseen: {give}")
    with line_unseen() as unseen:
        if not unseen:
            raise PipelineError(
                f"no value given, and the terminal's echo cannot be turned off from the "
                f"background: {give}"
            )
        try:
            # Inside: a Ctrl-C typed as the question shows lands as its write returns.
            out.write(prompt)
            out.flush()
            with waiting():
                typed = os.read(0, _LINE_MAX)
                rest = _rest_of_paste()
        except KeyboardInterrupt as stop:
            if type(stop) is not KeyboardInterrupt:  # SIGTERM or SIGHUP: they stop
                raise
            raise PipelineError("not set: interrupted") from None
        except OSError:  # the terminal hung up: the prompt's next read says so
            raise PipelineError("not set: the terminal went away") from None
        finally:
            with contextlib.suppress(OSError):  # the Enter typed was not echoed either
                out.write("\n")
                out.flush()
    if rest:
        raise PipelineError(
            "not set: the value holds a line break; what followed its first line was dropped, "
            f"unseen: {give}"
        )
    if len(typed) >= _LINE_MAX:
        raise PipelineError(
            f"not set: the line reached the terminal's {_LINE_MAX - 1} characters, and what is "
            f"typed past them is lost: {give}"
        )
    try:
        value = typed.decode().removesuffix("\n")
    except UnicodeDecodeError:
        raise PipelineError(f"not set: the value typed is not UTF-8 text: {give}") from None
    if not value:
        raise PipelineError("not set: no value typed")
    return value


def _rest_of_paste() -> bytes:
    """What the terminal holds after the line read, its echo still off: the rest of a paste
    (the line mode turned off, so that a last line with no line end is read too), up to
    :data:`_REST_MAX` bytes and until none comes for a tenth of a second; anything past that
    is flushed."""
    settings = termios.tcgetattr(0)
    waits = list(settings)
    waits[3] &= ~termios.ICANON
    waits[6] = list(settings[6])
    waits[6][termios.VMIN], waits[6][termios.VTIME] = 0, 1  # a tenth of a second
    rest = b""
    termios.tcsetattr(0, termios.TCSANOW, waits)
    try:
        while len(rest) < _REST_MAX and (more := os.read(0, _REST_MAX)):
            rest += more
        termios.tcflush(0, termios.TCIFLUSH)
    finally:
        termios.tcsetattr(0, termios.TCSANOW, settings)
    return rest
