"""Command stages' stdout and stderr, captured line by line as log records of their stage.

:func:`communicate` replaces ``Process.communicate`` for a command stage: it writes stdin, reads
both pipes (made by :class:`OutputCapture`, 256 KiB each when allowed) on a thread of its own
at a cadence (``output_pipes``: a wake-up per 20 ms at most, not per line written), and hands
each read's complete lines, as one :class:`~.output_sinks.OutputBatch`, to every registered
sink (``output_sinks.deliver``: the CLI registers the span store's log writer and, with an OTLP
log exporter, the OTel one). The engine layer knows nothing of where lines go; with no sink
registered, each line becomes a stdlib ``logging`` record of the ``taskdaemon.run.output``
logger (INFO), so a library user's handlers see it.

The contract of a capture (one per stage execution, both streams together):

* lines are split on ``\\n`` (a trailing ``\\r`` dropped), decoded as UTF-8 with replacement;
  a line longer than :data:`MAX_LINE_BYTES` is cut into pieces of at most that size, so a
  command that never writes a newline costs bounded memory. A cut is moved back to the start
  of a secret it would split (a shape of ``redaction`` or a value known as a secret, looked
  for :data:`CUT_LOOK_BYTES` around it), so the sinks find the secret whole in the next piece,
  and never falls inside a UTF-8 character;
* at most ``max_lines`` lines and ``max_bytes`` bytes (line ends not counted) are captured
  (``output_sinks.CaptureLimits``, ``TASKDAEMON_LOG_CAPTURE_MAX_LINES`` / ``_MAX_BYTES`` in
  the CLI); past the bound, lines are counted and dropped, and when the command ends one
  WARNING marker record says how many lines and bytes were dropped (``dropped_lines`` /
  ``dropped_bytes``);
* stdout is also kept whole in memory, since it is the stage's result (``{"stdout": ...}`` or
  the JSON object it prints), up to ``stdout_max_bytes`` (``TASKDAEMON_STDOUT_MAX_BYTES`` in
  the CLI, 64 MiB by default): past it what was kept is let go and the rest is read (so the
  child never blocks on a full pipe) and only counted (``stdout_bytes``, ``stdout_over``); the
  ``command`` loop type then fails the stage, since a cut result would be wrong data. The log
  capture above is not affected. stderr is not kept, only its last :data:`STDERR_TAIL_LINES`
  lines, for the failure message;
* a sink that raises loses that batch, never the stage (``output_sinks.deliver``);
* a PEM private key is never split between batches: from its BEGIN line, lines that leave it
  open (``secret_shapes.open_key_start``) wait for the read that closes it, or the stream's end,
  or :data:`KEY_HOLD_CHARS`, so the sinks' ``redact_lines`` finds it whole whatever the
  pipe's reads cut (a command that pauses mid-key). Held lines keep their read's time;
* a batch's last line that may begin a value known as a secret waits for the stream's next
  batch, half a second at most (``secret_tails``), so a secret printed wrapped over two reads
  is redacted with both pieces together.

Each batch carries the execution's ids (``run_id``, ``pipeline``, ``stage``, ``instance``,
``attempt``) and the stage span's ``trace_id`` / ``span_id`` from its ``TRACEPARENT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from taskdaemon.pipeline.output_pipes import drain, make_pipe
from taskdaemon.pipeline.output_sinks import (
    CaptureLimits,
    OutputBatch,
    capture_limits,
    deliver,
    trace_ids,
)
from taskdaemon.pipeline.redaction import secret_spans
from taskdaemon.pipeline.secret_shapes import open_key_start
from taskdaemon.pipeline.secret_tails import TailHold

#: ``CaptureLimits`` and ``OutputBatch``, the bound a capture keeps and the batch it delivers,
#: are ``output_sinks``', which every sink imports; named here too, beside the capture.
__all__ = [
    "CUT_LOOK_BYTES",
    "KEY_HOLD_CHARS",
    "MAX_LINE_BYTES",
    "STDERR_TAIL_LINES",
    "CaptureLimits",
    "OutputBatch",
    "OutputCapture",
    "communicate",
]

#: How much of a failed command's stderr its error message keeps.
STDERR_TAIL_LINES: Final = 20
#: Longer lines are cut into pieces of at most this many bytes.
MAX_LINE_BYTES: Final = 16_384
#: How far before and after a cut of a long line the capture looks for a secret the cut would
#: split: as long as the longest value known as a secret (``secret_values``), and past any
#: token shape's bound (255 characters).
CUT_LOOK_BYTES: Final = 4_096
#: An open PEM private key's lines held back for the next read at most (characters): more than
#: any key's (an RSA key of 16,384 bits is about 13,000), so a key is always redacted whole.
KEY_HOLD_CHARS: Final = 65_536


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
        self._ids = (run_id, pipeline, stage, instance, attempt, *trace_ids(environment))
        self.limits = limits if limits is not None else capture_limits()
        self._lines_left = self.limits.max_lines
        self._bytes_left = self.limits.max_bytes
        self.captured_lines = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.stdout = bytearray()
        self.stdout_bytes = 0  # read from stdout, kept or not
        self._stderr_tail: deque[bytes] = deque(maxlen=STDERR_TAIL_LINES)
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._held: dict[str, tuple[int, list[str]]] = {}  # an open key's lines, its read time
        self._tails = {
            stream: TailHold(functools.partial(self._send, stream))
            for stream in ("stdout", "stderr")
        }
        self._closed = False
        # [read end, write end] per stream; -1 once closed (a number closed twice could by then
        # be another file's, opened meanwhile by another thread).
        self._pipes: dict[str, list[int]] = {}
        self._capacity: dict[str, int] = {}
        self._fd_lock = threading.Lock()
        try:
            for stream in ("stdout", "stderr"):
                read_end, write_end, self._capacity[stream] = make_pipe()
                self._pipes[stream] = [read_end, write_end]
        except OSError:
            self.abandon()
            raise

    @property
    def stdout_over(self) -> bool:
        """Whether stdout went past ``limits.stdout_max_bytes`` (then ``stdout`` is empty)."""
        return self.stdout_bytes > self.limits.stdout_max_bytes

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
            self.stdout_bytes += len(chunk)
            if self.stdout_bytes <= self.limits.stdout_max_bytes:
                self.stdout += chunk
            elif self.stdout:  # past the bound: no result is made of it, so let it go
                self.stdout = bytearray()
            if self._lines_left <= 0 or self._bytes_left <= 0:
                self._drop(chunk)
                return
        if not self._feed_lines(stream, chunk):
            self._feed_pieces(stream, chunk)

    def _feed_lines(self, stream: str, chunk: bytes) -> bool:
        """``feed``'s common case, without a Python object per line but the stored text: no
        line to cut (over :data:`MAX_LINE_BYTES`) and the byte bound not reached inside the
        chunk. The kept lines are decoded together (``\\n`` never occurs inside a UTF-8
        sequence, so this decodes as line by line would) and split as text; where the line
        bound falls inside the chunk, the lines past it are only counted. False, with nothing
        changed, when ``_feed_pieces`` must do it."""
        end = chunk.rfind(b"\n")
        if end < 0 or len(chunk) - end - 1 > MAX_LINE_BYTES:
            return False
        partial = self._partial[stream]
        head = partial + chunk[:end] if partial else chunk[:end]
        count = head.count(b"\n") + 1
        size = len(head) - count + 1  # line ends not counted (a \r is, as in _take)
        kept, kept_count = head, count
        if self._lines_left <= 0 or self._bytes_left <= 0:
            kept, kept_count = b"", 0
        elif count > self._lines_left:  # the line bound falls inside this chunk
            kept_count = self._lines_left
            rest = head.split(b"\n", kept_count)[-1]
            if len(rest) > MAX_LINE_BYTES and max(map(len, rest.split(b"\n"))) > MAX_LINE_BYTES:
                return False  # _take counts the pieces of a cut line past the bound
            kept = head[: len(head) - len(rest) - 1]
        kept_size = len(kept) - kept_count + 1 if kept_count else 0
        texts: list[str] = []
        if kept_count:
            if kept_size > self._bytes_left:
                return False  # the byte bound falls inside this chunk
            text = kept.decode("utf-8", "replace")
            texts = text.split("\n")
            longest = max(map(len, texts))
            if longest > MAX_LINE_BYTES // 4 and (longest > MAX_LINE_BYTES or not kept.isascii()):
                return False  # maybe a line to cut (a character is 1 to 4 bytes)
            if "\r" in text:
                texts = [line[:-1] if line.endswith("\r") else line for line in texts]
        if stream == "stderr":
            tail = head.rsplit(b"\n", STDERR_TAIL_LINES)[-STDERR_TAIL_LINES:]
            self._stderr_tail.extend(line.rstrip(b"\r") for line in tail)
        self._partial[stream] = chunk[end + 1 :]
        if kept_count < count:  # (then kept_count is all the lines left: the bound is reached)
            self.dropped_lines += count - kept_count
            self.dropped_bytes += size - kept_size
        if kept_count:
            self._lines_left -= kept_count
            self._bytes_left -= kept_size
            self.captured_lines += kept_count
            self._emit(stream, texts, time.time_ns(), "-----BEGIN" in text)
        return True

    def _feed_pieces(self, stream: str, chunk: bytes) -> None:
        """``feed``, line by line: where the bound falls, and lines to cut."""
        pieces = chunk.split(b"\n")
        partial = self._partial[stream]
        if partial:
            pieces[0] = partial + pieces[0]
        partial = pieces.pop()
        if self._lines_left <= 0 or self._bytes_left <= 0:  # only counted: as _drop cuts
            cut = _dropped_cut(len(partial))
            pieces += [partial[at : at + MAX_LINE_BYTES] for at in range(0, cut, MAX_LINE_BYTES)]
            partial = partial[cut:]
        elif len(partial) > MAX_LINE_BYTES + CUT_LOOK_BYTES:  # a cut must see what follows it
            pieces += _cut(partial, MAX_LINE_BYTES + CUT_LOOK_BYTES)
            partial = pieces.pop()
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
        cut = _dropped_cut(len(partial))
        self.dropped_lines += cut // MAX_LINE_BYTES
        self.dropped_bytes += cut
        self._partial["stdout"] = partial[cut:]

    def _finish(self, stream: str) -> None:
        partial = self._partial.pop(stream, b"")
        if partial:
            self._take(stream, [partial])
        held = self._held.pop(stream, None)
        if held is not None:
            self._tails[stream].send(held[1], held[0])
        self._tails[stream].close()

    def read_pipes(self, stop: threading.Event) -> None:
        """Read both pipes to their ends (or until ``stop``), then close them and end the
        capture. Runs on a thread of its own, reading at a cadence (``output_pipes.drain``)."""
        try:
            pipes = {name: (ends[0], self._capacity[name]) for name, ends in self._pipes.items()}
            drain(pipes, self.feed, self._finish, stop)
        finally:
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
        lines: list[str] = []
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
            append(text.decode("utf-8", "replace"))
        if lines:
            self.captured_lines += len(lines)
            self._emit(stream, lines, now, any("-----BEGIN" in line for line in lines))

    def _emit(self, stream: str, texts: list[str], now: int, begins: bool) -> None:
        """Deliver captured lines (``begins``: whether one holds ``-----BEGIN``), but for an
        open private key's, held until a later read closes it (the module docstring)."""
        held = self._held.pop(stream, None)
        if held is not None:
            now, texts = held[0], held[1] + texts
        if held is not None or begins:
            start = open_key_start(texts)
            if start is not None and sum(map(len, texts[start:])) <= KEY_HOLD_CHARS:
                self._held[stream] = (now, texts[start:])
                texts = texts[:start]
        if texts:
            self._tails[stream].send(texts, now)

    def _send(self, stream: str, texts: list[str], time_ns: int) -> None:
        deliver(self._batch(stream, texts=texts, time_ns=time_ns))

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
            deliver(
                self._batch(
                    "stderr", dropped_lines=self.dropped_lines, dropped_bytes=self.dropped_bytes
                )
            )


def _cut(data: bytes, rest: int = MAX_LINE_BYTES) -> list[bytes]:
    """``data`` cut into pieces of at most :data:`MAX_LINE_BYTES` while more than ``rest``
    bytes are left; the last piece is what is left."""
    pieces: list[bytes] = []
    start = 0
    while len(data) - start > rest:
        end = _cut_point(data, start + MAX_LINE_BYTES)
        pieces.append(data[start:end])
        start = end
    pieces.append(data[start:])
    return pieces


def _dropped_cut(size: int) -> int:
    """How much of a line not yet ended, ``size`` bytes so far, a feed past the capture's bound
    cuts off: as many whole pieces as :func:`_cut` makes of a line without secrets (the pieces
    are only counted, so where a secret falls does not matter)."""
    over = size - MAX_LINE_BYTES - CUT_LOOK_BYTES
    return 0 if over <= 0 else -(-over // MAX_LINE_BYTES) * MAX_LINE_BYTES


def _cut_point(data: bytes, at: int) -> int:
    """Where to cut ``data`` at or before ``at``: not inside a UTF-8 character, and before a
    secret found crossing the cut in the :data:`CUT_LOOK_BYTES` around it. A secret that
    starts further back than that is cut where it is (documented in docs/redaction.md)."""
    low = at - CUT_LOOK_BYTES
    while at > low and data[at] & 0xC0 == 0x80:  # a continuation byte: back to its lead
        at -= 1
    # Bytes that are not UTF-8 decode to lone surrogates, one each, and encode back the same,
    # so a character offset in the window converts back to a byte offset exactly.
    before = data[low:at].decode("utf-8", "surrogateescape")
    window = before + data[at : at + CUT_LOOK_BYTES].decode("utf-8", "surrogateescape")
    spans = secret_spans(window)
    cut = len(before)
    while True:
        starts = [start for start, end in spans if start < cut < end]
        if not starts or min(starts) <= 0:
            break
        cut = min(starts)
    if cut == len(before):
        return at
    return low + len(window[:cut].encode("utf-8", "surrogateescape"))


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
    # Python 3.11's early releases (Debian 12's 3.11.2; not 3.11.7) keep a broken pipe's error
    # in a future that nobody awaits, then log it with its traceback ("Future exception was
    # never retrieved") after each command that left its stdin unread. The pipe's end is
    # awaited aside, not here: a command's child may hold the pipe open, unread, after the stage.
    ending = asyncio.ensure_future(_pipe_ended(stdin))
    _ENDING.add(ending)
    ending.add_done_callback(_ENDING.discard)


#: The tasks awaiting a command's stdin pipe's end, held until it ends (a task the loop alone
#: refers to may be collected while it waits).
_ENDING: set[asyncio.Future[None]] = set()


async def _pipe_ended(stdin: asyncio.StreamWriter) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await stdin.wait_closed()


#: Seconds a command's output is still read after its process exited, while a process it left
#: behind holds the pipes open (``sh -c 'server & echo done'``): the stage ends when its
#: process ends, and what a child writes in this grace is still its output.
DRAIN_GRACE: Final = 1.0


async def communicate(
    process: asyncio.subprocess.Process,
    stdin: bytes,
    capture: OutputCapture,
    held_open: Callable[[bool], Awaitable[None]] | None = None,
) -> None:
    """Feed ``stdin``, capture stdout and stderr to their ends (on a reader thread), and wait
    for the process. When cancelled, the reader stops within 0.1 s and still ends the capture.

    Once the process has exited, its pipes are read for :data:`DRAIN_GRACE` more at most:
    past it, ``held_open(False)`` is awaited (the command loop ends the processes left in the
    command's group, which hold the pipes), what they wrote is read for as long again, and
    the reader stops, ``held_open(True)`` first when the pipes are still held (by a process
    outside the group). The wait for the process's end no longer waits for a child it left
    running, which ran the stage to its timeout.
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
        await process.wait()
        if not await _ended_within(done, DRAIN_GRACE):
            if held_open is not None:
                await held_open(False)
            if not await _ended_within(done, DRAIN_GRACE):
                if held_open is not None:
                    await held_open(True)
                stop.set()
                await asyncio.shield(done)
    except BaseException:
        stop.set()
        raise


async def _ended_within(done: asyncio.Future[None], seconds: float) -> bool:
    """Whether ``done`` is done within ``seconds`` (it is not cancelled when it is not)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(done), seconds)
    return done.done()


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
