"""The terminal while a live table is drawn (``watch``, ``run --watch``: ``follow`` in
``cli/watch.py``): its echo off, and its echo and cursor put back however the command ends.

The live table's redraw moves the cursor up by the height of the frame it drew last: an echo
moves the cursor too, and that many lines up is then one line short, leaving a line of the old
frame on the screen. A Ctrl-C echoed ``^C`` past a row as wide as the terminal (a narrow one)
wrapped, and the final frame left a stale header line above it; an Enter did so at any width.
Neither command reads from its terminal, and Ctrl-C still stops them: only the echo is off,
not the keys' signals.

A second SIGINT or SIGTERM ends the command at once (``os._exit``, ``cli/stop_signals.py``,
``cli/sigterm.py``, ``cli/serve.py``), skipping every ``finally``: :func:`exit_now` puts the
echo back and shows the cursor the table hid first. A shell keeps the terminal settings a
command that exited (rather than was killed) left behind, so the echo stayed off for the
commands typed next, and the prompt came back without a cursor.
"""

from __future__ import annotations

import contextlib
import os
import termios
from collections.abc import Iterator
from typing import IO, Any, NoReturn

__all__ = ["cursor_hidden", "exit_now", "keys_unechoed"]

#: The settings each :func:`keys_unechoed` block puts back, the innermost last.
_echoed: list[list[Any]] = []
#: The file descriptors of each :func:`cursor_hidden` block, the innermost last.
_hidden: list[int] = []

#: What shows a terminal's cursor again (``rich`` hides it with ``\x1b[?25l``).
_SHOW_CURSOR = b"\x1b[?25h"


@contextlib.contextmanager
def keys_unechoed(stream: IO[str]) -> Iterator[None]:
    """Inside, keys typed on the terminal ``stream`` writes to are not echoed, when stdin is
    that terminal and this process its foreground (a background one that changed them would
    be stopped, SIGTTOU); its settings are put back on the way out."""
    try:
        shown = (
            os.isatty(0)
            and os.path.samestat(os.fstat(0), os.fstat(stream.fileno()))
            and os.tcgetpgrp(0) == os.getpgrp()
        )
        settings = termios.tcgetattr(0) if shown else None
    except (OSError, ValueError, termios.error):  # no file descriptor, or no terminal after all
        settings = None
    if settings is None:
        yield
        return
    quiet = list(settings)
    quiet[3] = settings[3] & ~termios.ECHO
    termios.tcsetattr(0, termios.TCSANOW, quiet)
    _echoed.append(settings)
    try:
        yield
    finally:
        _echoed.pop()
        _put_back(settings)


@contextlib.contextmanager
def cursor_hidden(stream: IO[str]) -> Iterator[None]:
    """Inside, something (the live table) hides the cursor of the terminal ``stream`` writes
    to and shows it on its way out: :func:`exit_now` shows it, who skips that way out."""
    _hidden.append(stream.fileno())
    try:
        yield
    finally:
        _hidden.pop()


def exit_now(code: int) -> NoReturn:
    """``os._exit(code)``, the terminal's echo put back and its cursor shown first (module
    docstring). Written straight to the file descriptor: the signal that calls this may have
    interrupted a write to the stream, which holds its lock."""
    if _echoed:
        _put_back(_echoed[0])  # the outermost: what the terminal had before
    for fd in _hidden:
        with contextlib.suppress(OSError):  # the terminal went away (SIGHUP)
            os.write(fd, _SHOW_CURSOR)
    os._exit(code)


def _put_back(settings: list[Any]) -> None:
    with contextlib.suppress(OSError, termios.error):  # the terminal went away (SIGHUP)
        termios.tcsetattr(0, termios.TCSANOW, settings)
