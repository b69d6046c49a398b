"""The terminal's echo, off while a live table is drawn (``watch``, ``run --watch``: ``follow``
in ``cli/watch.py``), and put back however the command ends.

The live table's redraw moves the cursor up by the height of the frame it drew last: an echo
moves the cursor too, and that many lines up is then one line short, leaving a line of the old
frame on the screen. A Ctrl-C echoed ``^C`` past a row as wide as the terminal (a narrow one)
wrapped, and the final frame left a stale header line above it; an Enter did so at any width.
Neither command reads from its terminal, and Ctrl-C still stops them: only the echo is off,
not the keys' signals.

A second SIGINT or SIGTERM ends the command at once (``os._exit``, ``cli/stop_signals.py``,
``cli/sigterm.py``), skipping every ``finally``: :func:`exit_now` puts the echo back first. A
shell keeps the terminal settings a command that exited (rather than was killed) left behind,
so the echo would have stayed off for the commands typed next.
"""

from __future__ import annotations

import contextlib
import os
import termios
from collections.abc import Iterator
from typing import IO, Any, NoReturn

__all__ = ["exit_now", "keys_unechoed"]

#: The settings each :func:`keys_unechoed` block puts back, the innermost last.
_echoed: list[list[Any]] = []


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


def exit_now(code: int) -> NoReturn:
    """``os._exit(code)``, the terminal's echo put back first (module docstring)."""
    if _echoed:
        _put_back(_echoed[0])  # the outermost: what the terminal had before
    os._exit(code)


def _put_back(settings: list[Any]) -> None:
    with contextlib.suppress(OSError, termios.error):  # the terminal went away (SIGHUP)
        termios.tcsetattr(0, termios.TCSANOW, settings)
