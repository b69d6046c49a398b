"""A command stage's output pipes, made large and read at a cadence rather than per write.

A reader blocked in ``read`` (or ``select``) on a pipe is woken by every ``write`` into it: a
command printing line by line (a shell loop of ``echo``, a program writing unbuffered) then
pays a scheduler wake-up per line, and the reader a system call per line. Here instead
(figures in ``benchmarks/README.md``, "log_capture.py"):

* :func:`make_pipe` enlarges each pipe from 64 KiB to :data:`PIPE_BYTES` (``F_SETPIPE_SZ``,
  Linux). When that is refused (the user's pipe quota is spent, or the platform has no such
  call) the pipe keeps its size, silently: the capture still works, only with more wake-ups.
  Why 256 KiB and not Linux's unprivileged maximum of 1 MiB: the pipes of all of a user's
  processes share one quota (``/proc/sys/fs/pipe-user-pages-soft``, 64 MiB by default), and a
  user past it gets 8 KiB pipes for *every* new pipe, not only taskdaemon's; at 256 KiB that
  takes 128 command stages at once (2 pipes each), at 1 MiB only 32. 256 KiB hold many
  wake-ups' worth of a shell loop printing as fast as it can, and 1 MiB measured no cheaper;
* :func:`drain` waits until some output arrives, reads each ready pipe (up to its capacity at
  once), then sleeps before looking again, so what the command writes meanwhile gathers in the
  pipe and comes in one read: a wake-up per :data:`CADENCE_SECONDS` at most, not per line;
* it never lets a pipe fill up and stall the command: a read that returns the pipe's whole
  capacity means the writer may be waiting, so the pipes are read again at once; otherwise the
  sleep is cut to the time the fullest pipe would take, at the rate just seen, to fill half-way.

Lines therefore reach the sinks at most :data:`CADENCE_SECONDS` after they were written (plus
what the sinks add), which keeps ``logs --follow`` and the per-stage live tail prompt.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

__all__ = ["CADENCE_SECONDS", "PIPE_BYTES", "drain", "make_pipe"]

#: The size asked for each output pipe (the kernel allocates its pages only as output waits).
PIPE_BYTES: Final = 1 << 18
#: After a read that did not fill a pipe, how long output gathers before the next look.
CADENCE_SECONDS: Final = 0.02
_DEFAULT_PIPE_BYTES: Final = 65_536
#: Wait for the first output this long at most per ``select`` (so a stop is seen soon).
_SELECT_SECONDS: Final = 0.1


def make_pipe() -> tuple[int, int, int]:
    """A new pipe as ``(read end, write end, capacity in bytes)``, enlarged when allowed."""
    read_end, write_end = os.pipe()
    size = _DEFAULT_PIPE_BYTES
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        try:
            size = fcntl.fcntl(write_end, set_size, PIPE_BYTES)
        except OSError:  # over the user's quota: keep the pipe as it is, and its real size
            with contextlib.suppress(OSError):
                size = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
    return read_end, write_end, max(size, 4096)


def drain(
    pipes: Mapping[str, tuple[int, int]],
    feed: Callable[[str, bytes], None],
    finish: Callable[[str], None],
    stop: threading.Event,
) -> None:
    """Read every pipe of ``pipes`` (name → ``(read end, capacity)``) to its end of file, or
    until ``stop`` is set (seen within 0.1 s): ``feed(name, chunk)`` per read, in order, and
    ``finish(name)`` at a pipe's end of file. The read ends are made non-blocking (they are
    the reader's own; the command has the write ends); the caller closes them.

    While output flows the reader reads and sleeps, and never waits on a pipe (a reader
    waiting on a pipe is what makes each write wake it); only when a round found nothing does
    it wait, in ``select``, for the next output."""
    open_pipes = dict(pipes)
    selector = selectors.DefaultSelector()
    try:
        for fd, _ in open_pipes.values():
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        emptied = time.monotonic()
        while open_pipes and not stop.is_set():
            fill = -1.0  # of the fullest pipe just read, as a fraction of its capacity
            for name, (fd, capacity) in list(open_pipes.items()):
                try:
                    chunk = os.read(fd, capacity)
                except BlockingIOError:
                    continue
                if not chunk:
                    del open_pipes[name]
                    selector.unregister(fd)
                    finish(name)
                    continue
                feed(name, chunk)
                fill = max(fill, len(chunk) / capacity)
            now = time.monotonic()
            elapsed, emptied = now - emptied, now
            if not open_pipes or fill >= 1.0:  # a full pipe: the writer may wait, read on
                continue
            if fill < 0.0:  # nothing came: wait for output (the command may be busy or idle)
                selector.select(timeout=_SELECT_SECONDS)
                continue
            # Half-way to full at the rate seen since the previous read, at most the cadence.
            stop.wait(min(CADENCE_SECONDS, elapsed / max(fill, 1e-9) / 2))
    finally:
        selector.close()
