"""What taskdaemon writes on stderr comes after what was written to stdout before it, in a log
that holds both streams (``taskdaemon ... > log 2>&1``, ``2>&1 | tee``, a CI job's log, the
journal, a container's log read by arrival).

Python buffers stdout by blocks when it is not a terminal, and stderr by lines: a line on
stderr (a refusal, a note, a progress line, a log record) was written out before the answer
printed ahead of it on stdout, and a log of both read them in the wrong order. Every writer of
such a line calls :func:`flush_stdout` first: ``refusal.say`` and ``refusal.note`` (each
command's own lines), the console's log handler (``logs``), and the lines a run writes while a
Python handler may have printed (``cli/run_progress``, ``cli/stop_signals``, the dump hook).
Flushing an empty buffer makes no system call.

Decision: a flush that fails is left for later, never raised here. A stdout whose reader went
away (a closed pipe) or whose device is full fails again at the command's end, where ``cli``
says so with its exit code; raised here, it would have cost the stderr line being written (a
refusal, a warning) and, from a log handler, stopped whatever was logging.
"""

from __future__ import annotations

import contextlib
import sys

__all__ = ["flush_stdout"]


def flush_stdout() -> None:
    """Write out what ``sys.stdout`` holds; never raises (the module docstring)."""
    stream = sys.stdout
    if stream is None:  # no stdout at all (its descriptor was closed at start)
        return
    # A closed pipe, a full device; a stream closed in-process.
    with contextlib.suppress(OSError, ValueError):
        stream.flush()
