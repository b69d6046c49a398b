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
* where there is no terminal to read from unseen (stdin a pipe, a process in the
  terminal's background), it is refused in one line saying to give the value on the line,
  which every output masks. Over HTTP the value is in the request's body, never shown.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import IO

from taskdaemon.pipeline.cli.terminal_state import line_unseen
from taskdaemon.pipeline.errors import PipelineError

__all__ = ["read_unseen"]

#: A line the terminal's line mode takes (Linux keeps 4095 characters and the line end).
_LINE_MAX = 4096


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
    value = typed.decode(errors="replace").removesuffix("\n")
    if not value:
        raise PipelineError("not set: no value typed")
    return value
