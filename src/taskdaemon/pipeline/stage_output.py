"""Command stages' stdout and stderr, captured line by line as log records of their stage.

:func:`communicate` replaces ``Process.communicate`` for a command stage: it writes stdin, reads
both pipes (made by :class:`OutputCapture`) on a thread of its own in chunks of up to 64 KiB,
and hands each chunk's complete lines, as one
:class:`OutputBatch`, to every registered sink (:func:`add_output_sink`; the CLI registers the
span store's log writer and, with an OTLP log exporter, the OTel one). The engine layer knows
nothing of where lines go; with no sink registered, each line becomes a stdlib ``logging``
record of the ``taskdaemon.run.output`` logger (INFO), so a library user's handlers see it.

The contract of a capture (one per stage execution, both streams together):

* lines are split on ``\\n`` (a trailing ``\\r`` dropped), decoded as UTF-8 with replacement;
  a line longer than :data:`MAX_LINE_BYTES` is cut into pieces of that size, so a command that
  never writes a newline costs bounded memory;
* at most ``max_lines`` lines and ``max_bytes`` bytes (line ends not counted) are captured
  (:class:`CaptureLimits`, ``TASKDAEMON_LOG_CAPTURE_MAX_LINES`` / ``_MAX_BYTES`` in the CLI);
  past the bound, lines are counted and dropped, and when the command ends one WARNING marker
  record says how many lines and bytes were dropped (``dropped_lines`` / ``dropped_bytes``);
* the whole stdout is still kept in memory, as before, since it is the stage's result
  (``{"stdout": ...}`` or the JSON object it prints); stderr is not, only its last
  :data:`STDERR_TAIL_LINES` lines, for the failure message;
* a sink that raises loses that batch, never the stage: the failure is logged once per sink.

Each batch carries the execution's ids (``run_id``, ``pipeline``, ``stage``, ``instance``,
``attempt``) and the stage span's ``trace_id`` / ``span_id`` from its ``TRACEPARENT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import selectors
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "MAX_LINE_BYTES",
    "STDERR_TAIL_LINES",
    "CaptureLimits",
    "OutputBatch",
    "OutputCapture",
    "OutputSink",
    "add_output_sink",
    "capture_limits",
    "communicate",
    "remove_output_sink",
    "set_capture_limits",
]

#: How much of a failed command's stderr its error message keeps.
STDERR_TAIL_LINES: Final = 20
#: Longer lines are cut into pieces of this many bytes.
MAX_LINE_BYTES: Final = 16_384
_CHUNK: Final = 65_536
#: After a short read, how long to let output gather in the pipe (a pipe holds 64 KiB, so only
#: a command writing over ~13 MB/s is slowed; lines reach the sinks at most this much later).
_GATHER_SECONDS: Final = 0.005
_TRACEPARENT: Final = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_logger = logging.getLogger("taskdaemon.run.output")
_own_logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CaptureLimits:
    """Per stage execution: lines and bytes captured at most (0 captures nothing)."""

    max_lines: int = 10_000
    max_bytes: int = 1_048_576


@dataclass(frozen=True, slots=True)
class OutputBatch:
    """Lines one stage execution wrote on one stream, in order, and the marker of dropped ones.

    ``lines`` are ``(time_ns, text)``: the time the chunk holding the line was read. A batch
    with ``dropped_lines > 0`` (and no lines) is the end-of-capture marker.
    """

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int
    trace_id: str | None
    span_id: str | None
    stream: str  # "stdout" | "stderr"
    lines: tuple[tuple[int, str], ...] = ()
    dropped_lines: int = 0
    dropped_bytes: int = 0
    limits: CaptureLimits | None = None

    def marker_text(self) -> str:
        """The marker record's message (only meaningful when ``dropped_lines``)."""
        limits = self.limits or CaptureLimits()
        return (
            f"[taskdaemon] {self.dropped_lines} output lines ({self.dropped_bytes} bytes) "
            f"dropped past the capture bound of {limits.max_lines} lines / "
            f"{limits.max_bytes} bytes per stage"
        )


class OutputSink(Protocol):
    """Receives captured output; called from a stage's reader thread, so it must be
    thread-safe and must not block (queue the batch, do the I/O elsewhere)."""

    def write_output(self, batch: OutputBatch) -> None:
        """Take one batch (queue it; do the I/O elsewhere)."""


class _Registry:
    """The process's sinks and bound (replaced whole, so readers need no lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sinks: tuple[OutputSink, ...] = ()
        self.limits = CaptureLimits()
        self.failed: set[int] = set()


_registry = _Registry()


def add_output_sink(sink: OutputSink) -> None:
    """Send every captured batch to ``sink`` from now on (process-wide)."""
    with _registry.lock:
        if sink not in _registry.sinks:
            _registry.sinks = (*_registry.sinks, sink)


def remove_output_sink(sink: OutputSink) -> None:
    """Stop sending batches to ``sink`` (no error if it was not registered)."""
    with _registry.lock:
        _registry.sinks = tuple(s for s in _registry.sinks if s is not sink)
        _registry.failed.discard(id(sink))


def set_capture_limits(limits: CaptureLimits) -> CaptureLimits:
    """Set the per-stage bound of captures started from now on; returns the previous one."""
    with _registry.lock:
        previous, _registry.limits = _registry.limits, limits
    return previous


def capture_limits() -> CaptureLimits:
    """The bound captures start with."""
    return _registry.limits


def _deliver(batch: OutputBatch) -> None:
    sinks = _registry.sinks
    if not sinks:
        _log_batch(batch)
        return
    for sink in sinks:
        try:
            sink.write_output(batch)
        except Exception:  # monitoring never stops a pipeline; say so once per sink
            if id(sink) not in _registry.failed:
                _registry.failed.add(id(sink))
                _own_logger.warning(
                    "output sink %r failed; its batches are lost", sink, exc_info=True
                )


def _log_batch(batch: OutputBatch) -> None:
    """The fallback sink: one stdlib record per line (a library user's handlers see them)."""
    level = logging.WARNING if batch.dropped_lines else logging.INFO
    if not _logger.isEnabledFor(level):
        return
    extra = {
        "run_id": batch.run_id,
        "pipeline": batch.pipeline,
        "stage": batch.stage,
        "instance": batch.instance,
        "attempt": batch.attempt,
        "trace_id": batch.trace_id,
        "span_id": batch.span_id,
        "stream": batch.stream,
    }
    if batch.dropped_lines:
        _logger.warning("%s", batch.marker_text(), extra=extra)
    for _, text in batch.lines:
        _logger.info("%s", text, extra=extra)


class OutputCapture:
    """The capture of one stage execution (see the module docstring for the contract)."""

    def __init__(
        self,
        *,
        run_id: str,
        pipeline: str,
        stage: str,
        instance: int,
        attempt: int,
        environment: Mapping[str, str] | None = None,
        limits: CaptureLimits | None = None,
    ) -> None:
        match = _TRACEPARENT.match((environment or {}).get("TRACEPARENT", ""))
        self._ids = (
            run_id,
            pipeline,
            stage,
            instance,
            attempt,
            match[1] if match else None,
            match[2] if match else None,
        )
        self.limits = limits if limits is not None else _registry.limits
        self._lines_left = self.limits.max_lines
        self._bytes_left = self.limits.max_bytes
        self.captured_lines = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.stdout = bytearray()
        self._stderr_tail: deque[bytes] = deque(maxlen=STDERR_TAIL_LINES)
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._closed = False
        # [read end, write end] per stream; -1 once closed (a number closed twice could by then
        # be another file's, opened meanwhile by another thread).
        self._pipes: dict[str, list[int]] = {}
        self._fd_lock = threading.Lock()
        try:
            for stream in ("stdout", "stderr"):
                self._pipes[stream] = list(os.pipe())
        except OSError:
            self.abandon()
            raise

    @property
    def stderr_tail(self) -> str:
        """The last :data:`STDERR_TAIL_LINES` lines of stderr, as text."""
        lines = (line.decode(errors="replace") for line in self._stderr_tail)
        return "\n".join(lines).rstrip("\n")

    # -- the pipes ---------------------------------------------------------------------------

    @property
    def child_stdout(self) -> int:
        """The write end of the stdout pipe, for the child (``stdout=``)."""
        return self._pipes["stdout"][1]

    @property
    def child_stderr(self) -> int:
        """The write end of the stderr pipe, for the child (``stderr=``)."""
        return self._pipes["stderr"][1]

    def _close(self, which: int) -> None:
        with self._fd_lock:
            for ends in self._pipes.values():
                if ends[which] >= 0:
                    with contextlib.suppress(OSError):
                        os.close(ends[which])
                    ends[which] = -1

    def spawned(self) -> None:
        """The child has its ends: close ours, so its exit reads as end of file."""
        self._close(1)

    def abandon(self) -> None:
        """No child will be read (the spawn failed or was cancelled): close every end."""
        self._close(1)
        self._close(0)

    def feed(self, stream: str, chunk: bytes) -> None:
        """Capture one chunk read from ``stream`` (its complete lines; the rest waits)."""
        if stream == "stdout":
            self.stdout += chunk
            if self._lines_left <= 0 or self._bytes_left <= 0:
                self._drop(chunk)
                return
        pieces = chunk.split(b"\n")
        partial = self._partial[stream]
        if partial:
            pieces[0] = partial + pieces[0]
        partial = pieces.pop()
        if len(partial) > MAX_LINE_BYTES:
            cut = len(partial) - len(partial) % MAX_LINE_BYTES
            pieces.extend(_cut(partial[:cut]))
            partial = partial[cut:]
        self._partial[stream] = partial
        if pieces:
            self._take(stream, pieces)

    def _drop(self, chunk: bytes) -> None:
        """``feed`` of stdout past the bound: count the lines and bytes ``_take`` would drop,
        without splitting the chunk (a command printing 100,000 lines drops 90,000 by default).
        """
        partial = self._partial["stdout"]
        newlines = chunk.count(b"\n")
        if newlines:
            end = chunk.rindex(b"\n")
            self.dropped_lines += newlines
            self.dropped_bytes += len(partial) + end - (newlines - 1)
            partial = chunk[end + 1 :]
        else:
            partial += chunk
        if len(partial) > MAX_LINE_BYTES:
            cut = len(partial) - len(partial) % MAX_LINE_BYTES
            self.dropped_lines += cut // MAX_LINE_BYTES
            self.dropped_bytes += cut
            partial = partial[cut:]
        self._partial["stdout"] = partial

    def _finish(self, stream: str) -> None:
        partial = self._partial.pop(stream, b"")
        if partial:
            self._take(stream, [partial])

    def read_pipes(self, stop: threading.Event) -> None:
        """Read both pipes to their ends (or until ``stop``), then close them and end the
        capture. Runs on a thread of its own: blocking reads cost nothing per line, and after a
        short read it waits :data:`_GATHER_SECONDS` so a command writing line by line is read
        in large chunks instead of one wake-up per line."""
        selector = selectors.DefaultSelector()
        try:
            for stream, ends in self._pipes.items():
                selector.register(ends[0], selectors.EVENT_READ, stream)
            while selector.get_map() and not stop.is_set():
                events = selector.select(timeout=0.1)
                full = False
                for key, _ in events:
                    chunk = os.read(key.fd, _CHUNK)
                    if chunk:
                        self.feed(key.data, chunk)
                        full = full or len(chunk) == _CHUNK
                    else:
                        selector.unregister(key.fd)
                        self._finish(key.data)
                if events and not full:
                    time.sleep(_GATHER_SECONDS)
        finally:
            selector.close()
            for stream in list(self._partial):
                self._finish(stream)
            self.abandon()
            self.close()

    def _take(self, stream: str, pieces: list[bytes]) -> None:
        if stream == "stderr":
            self._stderr_tail.extend(piece.rstrip(b"\r") for piece in pieces[-STDERR_TAIL_LINES:])
        if self._lines_left <= 0 or self._bytes_left <= 0:
            self.dropped_lines += len(pieces)
            self.dropped_bytes += sum(map(len, pieces))
            return
        if max(map(len, pieces)) > MAX_LINE_BYTES:  # a long line that came in one read
            pieces = [cut for piece in pieces for cut in _cut(piece)]
        now = time.time_ns()
        lines: list[tuple[int, str]] = []
        append = lines.append
        for index, piece in enumerate(pieces):
            size = len(piece)
            if self._lines_left <= 0 or self._bytes_left < size:
                rest = pieces[index:]
                self._lines_left = 0  # the bound is reached: what follows is dropped in order
                self.dropped_lines += len(rest)
                self.dropped_bytes += sum(map(len, rest))
                break
            self._lines_left -= 1
            self._bytes_left -= size
            text = piece[:-1] if piece.endswith(b"\r") else piece
            append((now, text.decode("utf-8", "replace")))
        if lines:
            self.captured_lines += len(lines)
            _deliver(self._batch(stream, lines=tuple(lines)))

    def _batch(self, stream: str, **fields: object) -> OutputBatch:
        run_id, pipeline, stage, instance, attempt, trace_id, span_id = self._ids
        return OutputBatch(
            run_id,
            pipeline,
            stage,
            instance,
            attempt,
            trace_id,
            span_id,
            stream,
            limits=self.limits,
            **fields,  # type: ignore[arg-type]
        )

    def close(self) -> None:
        """End the capture: the marker batch when lines were dropped (once)."""
        if self.dropped_lines and not self._closed:
            self._closed = True
            _deliver(
                self._batch(
                    "stderr", dropped_lines=self.dropped_lines, dropped_bytes=self.dropped_bytes
                )
            )


def _cut(data: bytes) -> list[bytes]:
    if len(data) <= MAX_LINE_BYTES:
        return [data]
    return [data[i : i + MAX_LINE_BYTES] for i in range(0, len(data), MAX_LINE_BYTES)]


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    stdin = process.stdin
    if stdin is None:
        return
    # As Process.communicate does: a command that does not read its stdin is not an error.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            stdin.write(data)
            await stdin.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.close()


async def communicate(
    process: asyncio.subprocess.Process, stdin: bytes, capture: OutputCapture
) -> None:
    """Feed ``stdin``, capture stdout and stderr to their ends (on a reader thread), and wait
    for the process. When cancelled, the reader stops within 0.1 s and still ends the capture.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    stop = threading.Event()

    def read() -> None:
        try:
            capture.read_pipes(stop)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_settle, done)

    # A thread of its own, not the default executor: a pipeline may run more command stages at
    # once than that pool has threads, and a command blocks when nobody drains its pipe.
    threading.Thread(target=read, name="taskdaemon-output", daemon=True).start()
    try:
        await _feed(process, stdin)
        await asyncio.shield(done)
        await process.wait()
    except BaseException:
        stop.set()
        raise


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
