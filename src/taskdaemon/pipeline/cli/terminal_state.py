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

An interactive prompt (``cli/_prompt.py``) keeps its terminal's keys as typed between the lines
readline reads (:func:`keys_as_typed`). readline reads a key at a time, its terminal out of
line mode while it waits for a line, and puts back on return the mode it found. In line mode,
a Ctrl-D typed while no line is read (the debugger's prompt waiting for the run, or between
"run ended" and the next prompt) is kept as the end of a line, which a key-at-a-time read
gets as a NUL byte, not Ctrl-D: readline then took it for a key of its own (``set-mark``),
and the prompt waited for ever for an end of input that had come. Keys typed before the
prompt first switched (``debug FILE`` still loading its pipeline and starting its run, or
the first stop awaited) were kept in line mode the same way: the switch reads first what line
mode holds, each line typed and each Ctrl-D, and hands it to the prompt
(:func:`keys_as_typed`), which reads them before its terminal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import termios
from collections.abc import Callable, Iterator
from typing import IO, Any, NoReturn

__all__ = ["cursor_hidden", "exit_now", "keys_as_typed", "keys_unechoed", "line_unseen"]

#: The settings each :func:`keys_unechoed` or :func:`keys_as_typed` block puts back, the
#: innermost last.
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
    with _changed(_own_terminal(stream), termios.ECHO, lambda keys: keys):
        yield


@contextlib.contextmanager
def keys_as_typed() -> Iterator[list[str | None]]:
    """Inside, the terminal on stdin hands over each key as it is typed, out of line mode (a
    Ctrl-D kept as Ctrl-D for readline: module docstring), when this process is its
    foreground; its echo and signal keys unchanged, its settings put back on the way out.

    Yields what was typed ahead in line mode, read before the switch: each line (with its
    ``\n``; a line ended by Ctrl-D without it) and None for each Ctrl-D on a line of its own,
    the end of input. Line mode hands over only whole lines: a line half typed is left, and
    read as typed after the switch. Empty when the terminal was out of line mode already."""
    settings = _own_terminal(None)
    typed = _lines_typed_ahead() if settings is not None and settings[3] & termios.ICANON else []
    with _changed(settings, termios.ICANON, _key_at_a_time):
        yield typed


@contextlib.contextmanager
def line_unseen() -> Iterator[bool]:
    """Inside, the terminal on stdin reads a line at a time (line mode: Backspace and Ctrl-U
    edit it, as at a shell's password prompt) and echoes none of it, when this process is its
    foreground; yields whether it is so (False: no terminal to read unseen from). For a secret
    typed at a prompt (``cli/hidden_value.py``); its settings put back on the way out."""
    settings = _own_terminal(None)
    with _changed(settings, termios.ECHO, lambda keys: keys, on=termios.ICANON):
        yield settings is not None


def _lines_typed_ahead() -> list[str | None]:
    """What the terminal on stdin, in line mode, holds to be read now (:func:`keys_as_typed`):
    a read of it returns one line, or nothing for a Ctrl-D. Never waits, and stops at the first
    end of input: the prompt ends there, and a terminal that hung up reads as one for ever."""
    typed: list[str | None] = []
    try:
        while select.select([0], [], [], 0)[0]:
            data = os.read(0, 4096)
            typed.append(data.decode(errors="replace") if data else None)
            if not data:
                break
    except OSError:  # the terminal went away: what is left is read, or fails, as it would
        pass
    return typed


def _own_terminal(stream: IO[str] | None) -> list[Any] | None:
    """The settings of the terminal on stdin, when this process is its foreground (and, with
    ``stream``, that stream writes to it too); else None. Without ``stream``, a terminal that
    is not this process's controlling one counts too (a script's pseudo-terminal): changing
    it stops no one."""
    try:
        if not os.isatty(0):
            return None
        if stream is not None and not os.path.samestat(os.fstat(0), os.fstat(stream.fileno())):
            return None
        try:
            foreground = os.tcgetpgrp(0) == os.getpgrp()
        except OSError as error:
            foreground = stream is None and error.errno == errno.ENOTTY
        return termios.tcgetattr(0) if foreground else None
    except (OSError, ValueError, termios.error):  # no file descriptor, or no terminal after all
        return None


def _key_at_a_time(keys: list[Any]) -> list[Any]:
    """``keys`` (the control characters of the settings) for a read that returns each key."""
    keys = list(keys)
    keys[termios.VMIN], keys[termios.VTIME] = 1, 0
    return keys


@contextlib.contextmanager
def _changed(
    settings: list[Any] | None, off: int, keys: Callable[[list[Any]], list[Any]], on: int = 0
) -> Iterator[None]:
    """Inside, the terminal on stdin has the local ``off`` modes cleared (and ``on`` set) and
    its control characters as ``keys`` makes them; ``settings`` (None: no terminal to
    change) put back on the way out, and by :func:`exit_now`."""
    if settings is None:
        yield
        return
    changed = list(settings)
    changed[3] = (settings[3] | on) & ~off
    changed[6] = keys(settings[6])
    # Noted first, and put back before the note goes: a Ctrl-C that came during the change
    # raised as it returned, before the ``try``, and left the echo off (or the terminal out of
    # line mode) for the shell; one that came in ``finally`` between the two did as much.
    _echoed.append(settings)
    try:
        # TCSANOW: the keys typed ahead stay to be read (TCSAFLUSH would drop them).
        termios.tcsetattr(0, termios.TCSANOW, changed)
        yield
    finally:
        _put_back(settings)
        _echoed.pop()


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
