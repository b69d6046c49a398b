"""Evaluating CEL in a worker process that can be killed: the runtime limit of expensive
expressions.

The CEL binding evaluates in Rust while holding the GIL and has no cost or time option: a
comprehension over a large list blocks every thread of the process for as long as it runs
(15.6 s for three nested ``map`` over 100 elements). An expression whose static estimate says it
may be expensive (``cel_limits``) is therefore sent, with its context, to one long-lived worker
process; the caller waits for the answer until the worker has used :data:`TIME_LIMIT`
seconds of CPU, then kills the worker (a replacement is started at once, so the next call finds
one ready) and the evaluation is an error. The worker caps its own address space
(:data:`MEMORY_LIMIT`), so a string blow-up ends in a failed allocation rather than in swapping.

The limit is on the CPU the worker used, not on the wall time alone: on a loaded machine a
worker waiting for a CPU (or stopped) is not yet over it, and a cheap expression would fail
for the machine's load. Past :data:`TIME_LIMIT` of wall time the caller reads the worker's
``/proc/PID/stat``: while the worker waits for a CPU, a page or a ``SIGCONT`` (``R``, ``D``,
``T``) and has used less than the limit, the wait goes on, for at most :data:`WAIT_LIMIT`
seconds in all. A worker that sleeps (a broken one: an evaluation never waits) is over the limit
at once, as is any worker where ``/proc`` cannot be read.

Protocol over the worker's stdin/stdout: one ready byte, then length-prefixed pickles
``(source, context)`` → ``("ok", value)`` or ``("error", kind, message)``. The worker imports
nothing of taskdaemon but this module, and exits when its stdin closes (the parent ended).
"""

from __future__ import annotations

import atexit
import functools
import os
import pickle
import resource
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from taskdaemon.pipeline._cel import cel

__all__ = ["MEMORY_LIMIT", "TIME_LIMIT", "WAIT_LIMIT", "CelWorker", "WorkerError", "shared_worker"]

#: Seconds an evaluation may take in the worker (about Kubernetes' per-call limit of 0.1 s,
#: with room for a loaded machine).
TIME_LIMIT: Final = 0.25
#: Seconds of wall time an answer is waited for at most, however little CPU the worker was given.
WAIT_LIMIT: Final = 10.0
#: Seconds a newly started worker may take to become ready.
STARTUP_LIMIT: Final = 15.0
#: The worker's address-space limit, in bytes.
MEMORY_LIMIT: Final = 1024 * 1024 * 1024

_HEADER = struct.Struct(">I")
_READY = b"R"


class WorkerError(Exception):
    """The evaluation did not finish in the worker: over the time limit, or the worker died."""


class CelWorker:
    """One worker process, used by one caller at a time (calls from threads are serialised)."""

    def __init__(self, time_limit: float = TIME_LIMIT) -> None:
        self.time_limit = time_limit
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._owner = 0
        self._thread: ThreadPoolExecutor | None = None
        #: When the answer being waited for was asked for, and the worker's CPU seconds then.
        self._asked: tuple[float, float | None] = (0.0, None)
        #: The worker's pid and its ``/proc/PID/stat`` kept open (``_cpu``).
        self._stat: tuple[int, int] | None = None

    def start(self) -> None:
        """Start the worker now if none runs (non-blocking: it gets ready in the background)."""
        with self._lock:
            self._ensure()

    def evaluate(self, source: str, context: Mapping[str, Any]) -> Any:
        """The value of ``source`` over ``context``, computed in the worker.

        Raises WorkerError over the time limit or when the worker dies; ``ValueError`` (and the
        other errors the binding raises) for an evaluation error, with the binding's message.
        """
        return self.evaluate_encoded(self.encode(source, context))

    @staticmethod
    def encode(source: str, context: Mapping[str, Any]) -> bytes:
        """The request :meth:`evaluate_encoded` sends: a snapshot of ``context``, so the caller
        may change its data once this returns; ``ValueError`` when it cannot be sent."""
        try:
            return pickle.dumps((source, dict(context)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a handler's result may hold anything
            raise ValueError(f"the context cannot be sent to the CEL worker: {exc}") from None

    async def evaluate_async(self, request: bytes) -> Any:
        """:meth:`evaluate_encoded` in a thread of the worker's own (``taskdaemon-cel``): the
        event loop never waits for the worker. Requests queue there, one answered at a time."""
        import asyncio  # noqa: PLC0415 - `validate` and `dag` import this module, not asyncio

        with self._lock:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="taskdaemon-cel")
            thread = self._thread
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(thread, self.evaluate_encoded, request)

    def evaluate_encoded(self, request: bytes) -> Any:
        """:meth:`evaluate` of a request made by :meth:`encode` (safe to call from any thread:
        it touches nothing but the worker)."""
        with self._lock:
            process = self._ensure()
            assert process.stdin is not None
            assert process.stdout is not None
            if not self._ready:
                self._read(process, 1, time.monotonic() + STARTUP_LIMIT, "start")
                self._ready = True
            try:
                process.stdin.write(_HEADER.pack(len(request)) + request)
                process.stdin.flush()
                self._asked = (time.monotonic(), self._cpu(process.pid)[1])
                deadline = self._asked[0] + self.time_limit
                (size,) = _HEADER.unpack(self._read(process, _HEADER.size, deadline, "answer"))
                reply = pickle.loads(self._read(process, size, deadline, "answer"))  # noqa: S301 - our own worker
            except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
                # UnpicklingError and EOFError: an answer that is not one (a broken worker)
                self._restart()
                raise WorkerError(f"the CEL worker failed: {exc}") from None
        if reply[0] == "ok":
            return reply[1]
        kind, message = reply[1], reply[2]
        raise (KeyError(message) if kind == "KeyError" else ValueError(message))

    def close(self) -> None:
        """Stop the worker and its waiting thread (both are started again by the next call)."""
        with self._lock:
            self._stop()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=True)

    # -- internals (the lock is held) -----------------------------------------------------------

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._owner == os.getpid():
            if self._process.poll() is None:
                return self._process
            self._stop()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "taskdaemon.pipeline.cel_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            # Its own session: a Ctrl-C on the terminal reaches taskdaemon's process group,
            # and would kill the worker under an evaluation in flight ("the CEL worker died"),
            # while taskdaemon itself winds the run down. It still ends with taskdaemon: its
            # stdin closes then.
            start_new_session=True,
        )
        self._owner = os.getpid()
        self._ready = False
        return self._process

    def _read(
        self, process: subprocess.Popen[bytes], size: int, deadline: float, what: str
    ) -> bytes:
        """Exactly ``size`` bytes from the worker, or WorkerError (and a new worker) when the
        ``time.monotonic()`` deadline passes or the worker ends first."""
        assert process.stdout is not None
        fd = process.stdout.fileno()
        data = b""
        while len(data) < size:
            # Polled even past the deadline: this thread may have waited for a CPU itself.
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                later = self._more_time(process) if what == "answer" else None
                if later is not None:
                    deadline = later
                    continue
                self._restart()
                if what == "start":
                    raise WorkerError("the CEL worker did not start in time")
                raise WorkerError(f"over the time limit of {self.time_limit:g} s")
            chunk = os.read(fd, size - len(data))
            if not chunk:
                self._restart()
                raise WorkerError("the CEL worker died (over its memory limit?)")
            data += chunk
        if what == "start" and data != _READY:
            self._restart()
            raise WorkerError("the CEL worker sent garbage")
        return data

    def _more_time(self, process: subprocess.Popen[bytes]) -> float | None:
        """A later deadline for the answer when the worker has not had the CPU the limit
        allows it (the module docstring), else None."""
        asked, spent = self._asked
        state, now_spent = self._cpu(process.pid)
        now = time.monotonic()
        if spent is None or now_spent is None or state not in ("R", "D", "T"):
            return None
        left = self.time_limit - (now_spent - spent)
        if left <= 0 or now - asked >= WAIT_LIMIT:
            return None
        return min(now + left, asked + WAIT_LIMIT)

    def _cpu(self, pid: int) -> tuple[str, float | None]:
        """``_cpu_state`` of the worker ``pid``: its stat file is opened once for the worker,
        since every evaluation reads it, and read again from its start."""
        if self._stat is None or self._stat[0] != pid:
            self._close_stat()
            try:
                self._stat = (pid, os.open(f"/proc/{pid}/stat", os.O_RDONLY))
            except OSError:
                return "", None
        return _cpu_state(self._stat[1])

    def _close_stat(self) -> None:
        stat, self._stat = self._stat, None
        if stat is not None:
            os.close(stat[1])

    def _restart(self) -> None:
        self._stop()
        self._ensure()  # started now, so that it is ready by the next call

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or self._owner != os.getpid():
            return
        process.kill()
        process.wait()
        self._close_stat()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


#: Clock ticks a second, the unit of ``/proc/PID/stat``'s CPU times.
_TICKS: Final = os.sysconf("SC_CLK_TCK")


def _cpu_state(stat: int) -> tuple[str, float | None]:
    """A process's state letter and its CPU seconds (user and system) from its
    ``/proc/PID/stat``, open as ``stat``; ``("", None)`` when it cannot be read."""
    try:
        # After the command's closing parenthesis (the command may hold spaces): the state
        # (field 3), then utime and stime (fields 14 and 15).
        fields = os.pread(stat, 4096, 0).rsplit(b")", 1)[1].split()
        return fields[0].decode(), (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return "", None


@functools.cache
def shared_worker() -> CelWorker:
    """The process's worker, made on first use and stopped when the interpreter exits."""
    worker = CelWorker()
    atexit.register(worker.close)
    return worker


# -- the worker side ------------------------------------------------------------------------------


def _serve() -> None:  # pragma: no cover - runs in the worker process
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    programs: dict[str, Any] = {}
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(_READY)
    stdout.flush()
    while header := stdin.read(_HEADER.size):
        (size,) = _HEADER.unpack(header)
        source, context = pickle.loads(stdin.read(size))  # noqa: S301 - from our parent
        try:
            program = programs.get(source)
            if program is None:
                if len(programs) > 256:
                    programs.clear()
                program = programs[source] = cel.compile(source)
            reply: tuple[Any, ...] = ("ok", program.execute(context))
        except KeyError as exc:
            reply = ("error", "KeyError", str(exc.args[0]) if exc.args else "")
        except BaseException as exc:  # the binding may panic (a BaseException)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            reply = ("error", type(exc).__name__, str(exc) or type(exc).__name__)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            data = pickle.dumps(("error", "TypeError", f"unpicklable result: {exc}"))
        stdout.write(_HEADER.pack(len(data)) + data)
        stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    _serve()
