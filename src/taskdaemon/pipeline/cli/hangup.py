"""SIGHUP, the terminal gone: an ssh connection dropped, a terminal window or tmux pane closed.

The kernel sends SIGHUP to the terminal's foreground process group, and the shell sends it
again to its jobs as it exits. Its default action ends the process at once, as ``kill -9``
does: a run was left ``interrupted`` in the store and its command stages were ended only by
the group watchdog. The commands that stop cleanly on SIGTERM stop so on SIGHUP too
(``cli/stop_signals.py``, ``cli/sigterm.py``), exit 129 (128 + SIGHUP), the run recorded
``cancelled`` with :data:`HANGUP_REASON`.

Two rules hold them:

* A SIGHUP ignored when the process started (``nohup``) stays ignored: whoever started it so
  wants it to outlive its terminal (:func:`hangup_handled`). ``serve`` and ``ui`` follow this
  rule as well: a server under ``nohup`` (or a service manager that ignores SIGHUP) goes on; a
  server in a terminal that closed stops cleanly as on SIGTERM, exit 0, rather than by the
  default action (its open run left ``interrupted``, its telemetry not flushed): nobody is
  left to stop it, and a server nobody can reach from its terminal is one nobody meant to keep.
* After a hangup nothing reaches the terminal and writing to it fails (EIO): the standard
  streams that were a terminal are pointed at ``/dev/null`` first (:func:`detach_terminal`),
  so that the lines and summary written while the run stops cannot raise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat

__all__ = ["HANGUP_REASON", "detach_terminal", "hangup_handled", "stop_signals"]

#: Why a run that SIGHUP stopped was cancelled, as its record says.
HANGUP_REASON = "the terminal hung up (SIGHUP)"


def hangup_handled() -> bool:
    """Whether SIGHUP is to be handled: False when it was ignored at start (``nohup``)."""
    return signal.getsignal(signal.SIGHUP) != signal.SIG_IGN


def stop_signals() -> tuple[int, ...]:
    """The signals that stop a command cleanly: SIGINT, SIGTERM, and SIGHUP unless ignored."""
    hangup = (signal.SIGHUP,) if hangup_handled() else ()
    return (signal.SIGINT, signal.SIGTERM, *hangup)


def detach_terminal() -> None:
    """Point stdin, stdout and stderr at ``/dev/null`` where they are a terminal.

    After a hangup the terminal no longer answers ``isatty`` (its file is hung up), so a
    terminal is told by what ``fstat`` still says: a character device that is not
    ``/dev/null``. Files and pipes are left alone: their reader may still be there.
    """
    try:
        null_device = os.stat(os.devnull).st_rdev
    except OSError:
        return
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            mode = os.fstat(fd)
            if stat.S_ISCHR(mode.st_mode) and mode.st_rdev != null_device:
                null = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(null, fd)
                finally:
                    os.close(null)
