"""What a Python handler prints: lines of its stage's logs too, as a command's output is.

A handler's ``print()`` writes to ``sys.stdout``, the stdout of ``taskdaemon run`` or
``serve``, and was seen there only: ``taskdaemon logs``, the web page's log tail and the OTLP
log export had no trace of it, where a scheduler keeps a task's prints in that try's log.
:func:`capture_prints` replaces ``sys.stdout`` with a :class:`_StageStdout` until its stack
closes: a write made while a stage execution is current (``execution.current_execution``: on
the loop for an async handler, in the worker thread of a sync one, in the tasks a handler
starts) still goes to the real stdout, and is also cut into lines, each delivered as a
command's captured stdout is (``output_sinks.deliver``: every output sink, redacted there,
tagged with the run, stage, instance, attempt and span); any other write (the run's summary,
the debugger's prompt) goes to the real stdout alone.

Decision: the real stdout keeps what a handler prints, each write redacted as it is made
(``redaction.redact_text``: a secret never reaches an output, the console included). ``run``
shows it between its stage's progress lines, in order with them in a log of both streams
(``stdout_first``), as a user who prints progress from a handler expects to see it; not held,
so a text without its line end (``print(".", end="")``) shows at once, and a secret printed
in pieces over two writes is found there only as a piece of 8 characters or more at a
write's edges (``secret_pieces``; the delivered lines find it whole: below); a
script that wants the run id alone from ``run -q`` has handlers that do not print, or log
instead. Stdout only. ``sys.stderr`` stays as
it is: the console log handler writes records there, also from inside a handler's call, and a
record is already in the stage's logs. A line is delivered when its newline is written, and
the lines of one write that ends inside a line wait with that line: ``print(text)`` writes
``text``, then its line end, and its lines are then one batch, so a secret it prints wrapped
over them is found by the sinks (``redaction.redact_lines``), and the last line of a print
that may begin a secret waits for the execution's next one (``secret_tails``). A line
that never gets one waits in a buffer of at most ``stage_output.MAX_LINE_BYTES`` characters per
execution (then it is delivered cut, as a command's long line is), and at most
:data:`MAX_OPEN_LINES` executions keep such a buffer (the oldest is delivered first), so a
handler that prints without newlines costs bounded memory. How many lines a run keeps is the
log writer's bound, as for a command's output.

A process forked by stage code (``os.fork()`` in a handler) prints to the real stdout alone.
Decision: the child is no engine: the loop and the threads a line's delivery waits for stayed
in the parent, so the child's first print, resolving the stage's environment for its trace
ids, waited for ever on a loop nobody runs, and a parent waiting for the child
(``os.waitpid``) hung the run. What the child prints still reaches the stream both share; the
stage's logs keep the parent's lines.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from typing import Any, Final, TextIO

from taskdaemon.pipeline import _threads
from taskdaemon.pipeline.execution import current_execution
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.secret_tails import TailHold

__all__ = ["MAX_OPEN_LINES", "capture_prints"]

#: Executions whose unfinished line (no newline yet) is kept at once, at most.
MAX_OPEN_LINES: Final = 256

_Key = tuple[str, str, int, int]


class _StageStdout:
    """``sys.stdout`` while pipelines run: a stage execution's writes become its log lines."""

    def __init__(self, real: TextIO) -> None:
        self._real = real
        self._lock = threading.Lock()
        self._open: dict[_Key, tuple[Any, str]] = {}  # unfinished line per execution
        self._tails: dict[_Key, TailHold] = {}  # per execution, the newest last
        self._pid = os.getpid()  # the engine's process (module docstring: a forked child)

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, buffer...
        return getattr(self._real, name)

    def write(self, text: str) -> int:
        context = current_execution()
        if context is None or (_threads._forked_child and os.getpid() != self._pid):
            return self._real.write(text)
        self._real.write(redact_text(text))
        # Here, not at the top: ``run`` installs this before its first stage, and the capture's
        # module is loaded by then only where a stage prints (``cli/deferred.py``'s start-up).
        from taskdaemon.pipeline.stage_output import MAX_LINE_BYTES  # noqa: PLC0415

        key = (context.run_id, context.stage, context.instance, context.attempt)
        with self._lock:
            _, before = self._open.pop(key, (context, ""))
            held = before + text
            *lines, rest = held.split("\n")
            if lines and rest and len(held) <= MAX_LINE_BYTES:
                lines, rest = [], held  # ``print(text)``'s lines wait for its line end
            while len(rest) > MAX_LINE_BYTES:
                lines.append(rest[:MAX_LINE_BYTES])
                rest = rest[MAX_LINE_BYTES:]
            evicted = []
            if rest:
                self._open[key] = (context, rest)
                while len(self._open) > MAX_OPEN_LINES:
                    evicted.append(self._open.pop(next(iter(self._open))))
        for old, line in evicted:
            self._send(old, line.split("\n"))
        if lines:
            self._send(context, lines)
        return len(text)

    def _send(self, context: Any, lines: list[str]) -> None:
        """Deliver ``lines`` of ``context``'s execution through its :class:`TailHold` (the
        newest :data:`MAX_OPEN_LINES` executions keep one; an older one's is closed)."""
        key = (context.run_id, context.stage, context.instance, context.attempt)
        with self._lock:
            tail = self._tails.get(key)
        if tail is None:
            from taskdaemon.pipeline.output_sinks import trace_ids  # noqa: PLC0415

            # The trace ids now, on the writer's thread, and outside the lock: resolving the
            # environment may wait on the loop, which a hold's thread must never do.
            ids = trace_ids(context.environment)
            tail = TailHold(functools.partial(_deliver, context, ids))
        with self._lock:
            tail = self._tails.pop(key, tail)
            self._tails[key] = tail
            over = len(self._tails) - MAX_OPEN_LINES
            closed = [self._tails.pop(next(iter(self._tails))) for _ in range(max(over, 0))]
        for old in closed:
            old.close()
        tail.send([line.removesuffix("\r") for line in lines], time.time_ns())

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._real.flush()

    def finish(self) -> None:
        """Deliver every unfinished line (the stack closes: the runs have ended)."""
        with self._lock:
            left, self._open = list(self._open.values()), {}
        for context, line in left:
            self._send(context, line.split("\n"))
        with self._lock:
            tails, self._tails = list(self._tails.values()), {}
        for tail in tails:
            tail.close()


def _deliver(context: Any, ids: tuple[str | None, str | None], lines: list[str], when: int) -> None:
    from taskdaemon.pipeline.output_sinks import OutputBatch, deliver  # noqa: PLC0415

    trace_id, span_id = ids
    deliver(
        OutputBatch(
            context.run_id,
            context.pipeline,
            context.stage,
            context.instance,
            context.attempt,
            trace_id,
            span_id,
            "stdout",
            tuple(lines),
            when,
        )
    )


def capture_prints(stack: contextlib.ExitStack | contextlib.AsyncExitStack) -> None:
    """Make stage executions' ``sys.stdout`` writes their log lines until ``stack`` closes
    (then ``sys.stdout`` is the stream it was); nothing when that is done already.

    The stream it was, whatever a handler did to ``sys.stdout`` meanwhile: one that replaced
    it (``sys.stdout = io.StringIO()``) took ``run``'s summary and ``run -q``'s run id, written
    after the stack closes, and one that closed it (``sys.stdout.close()``) made that write
    a traceback, exit 1, for a run that succeeded. A closed stream is opened again on its
    descriptor (which Python's standard streams do not close with it)."""
    if isinstance(sys.stdout, _StageStdout):
        return
    real = sys.stdout
    try:
        fd: int | None = real.fileno()
    except (OSError, ValueError, AttributeError):  # a stream of no descriptor (a test's)
        fd = None
    stream = _StageStdout(real)
    sys.stdout = stream

    def restore() -> None:
        sys.stdout = real
        if real.closed and fd is not None:
            reopened = open(fd, "w", encoding=real.encoding, errors=real.errors, closefd=False)  # noqa: SIM115
            sys.stdout = reopened
        stream.finish()

    stack.callback(restore)
