"""The embedded span store, writing side: ``SqliteSpanProcessor``, an OTel span processor.

``on_start`` and ``on_end`` only put the span on a queue; one writer thread turns queued spans
into rows and commits a batch at least every ``flush_interval`` (100 ms) while spans arrive, so
a running run is visible from another process within that delay. ``force_flush`` and
``shutdown`` write everything queued before they were called; ``flush_run_end`` does it,
bounded, for a process about to say that a run ended. What rows a batch becomes, in one
transaction, is its base class's: ``tracking._span_batches.SpanBatchWriter``. This module is
the processor around it: the queue, the writer thread and its heartbeat, the flushes, a store
opened again after ``fork()``, and the health a failing write reports.

Wake-ups. The writer is woken by the first span that reaches it idle, then waits out the
interval without being woken per span and writes what is queued; ``force_flush``,
``flush_open_spans``, ``shutdown`` and a queue that reaches ``max_batch`` (the memory bound)
wake it at once (``tracking._span_queue``).

Retention. The policy (``retention``, else ``TASKDAEMON_RETENTION_*``) is applied when the writer
starts, then again every ``RETENTION_EVERY`` while it runs: ``serve`` runs for weeks, and a
pass at its start alone let the store grow all that time past the runs it was told to keep. A
minute bounds the overshoot to the runs of a minute, and a pass that deletes nothing reads
little (``tracking._retention``). A failing pass is one warning until a pass succeeds again.

Cost. The caller pays one queue append; the writer's time per span is the batch's
(``tracking._span_batches``), and WAL checkpoints run on their own thread
(``_checkpoint.Checkpointer``).

Statement journals in memory. A batch inserts many rows a statement inside its transaction
(``_row_inserts``), so SQLite keeps a statement journal for each such statement (the pages it
changes, as they were, to undo that statement alone if it fails midway), and past 64 KiB it
moves that journal to a temporary file: a page number and a page, two ``pwrite`` calls a page.
A long run's spans share one trace, and their random span ids put each row of a 64-row
statement on another leaf of the primary key's index, so in a long chain most batches spilled,
each with a temporary file made, written and removed. The writer's connection has
``temp_store = MEMORY``: the journal stays in memory. What it holds is bounded by the pages
one statement changes (64 rows: their pages of the table and of its indexes), freed when the
statement ends. Only this connection: a reader's sorts (the web page, reports) keep SQLite's
default and may spill to disk.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.trace import SpanProcessor

from taskdaemon.pipeline.errors import SpanSourceError, SpanStoreError
from taskdaemon.pipeline.tracking._checkpoint import Checkpointer
from taskdaemon.pipeline.tracking._fork_guard import sqlite_section
from taskdaemon.pipeline.tracking._health import StoreHealth, WriteFailures
from taskdaemon.pipeline.tracking._run_tally import is_run_span
from taskdaemon.pipeline.tracking._schema import OpenedFile, connect, why_unwritten
from taskdaemon.pipeline.tracking._span_batches import SpanBatchWriter, register_writer
from taskdaemon.pipeline.tracking._span_queue import STOP, Flush, SpanQueue
from taskdaemon.pipeline.tracking.run_start import adopted_writer
from taskdaemon.pipeline.tracking.store import RetentionPolicy, SpanStore, retention_from_env
from taskdaemon.pipeline.wording import counted

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

__all__ = [
    "HEARTBEAT_EVERY",
    "RETENTION_EVERY",
    "RUN_END_WAIT",
    "SqliteSpanProcessor",
    "StoreHealth",
    "flush_open_spans",
    "flush_run_end",
]

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY: Final = 1.0  # seconds between writer heartbeats (see store.STALE_AFTER)
RETENTION_EVERY: Final = 60.0  # seconds between retention passes (the module docstring)
#: Seconds a process waits for its writers to hold a run's end before it says the run ended
#: (``flush_run_end``). The run is over: the wait only holds back the line, the control
#: socket's close and a scheduled next run, so a writer stuck on another process's lock (up
#: to SQLite's busy timeout) costs this, not the busy timeout.
RUN_END_WAIT: Final = 2.0

_NOTHING: Final[list[tuple[bool, Any]]] = []  # no batch being written (never appended to)

# The writers of this process, for flush_open_spans and flush_run_end (a debug dump, and a
# command saying that its run ended, have no handle on them).
_LIVE: weakref.WeakSet[SqliteSpanProcessor] = weakref.WeakSet()


def flush_open_spans(timeout_millis: int = 30000) -> bool:
    """``SqliteSpanProcessor.flush_open_spans`` on every embedded-store writer of this process
    (True when each finished in time)."""
    finished = [processor.flush_open_spans(timeout_millis) for processor in list(_LIVE)]
    return all(finished)  # every writer flushed, even after one timed out


def flush_run_end(run_id: str, timeout: float = RUN_END_WAIT) -> bool:
    """Have every embedded-store writer of this process write what it holds, the end of
    ``run_id`` among it, within ``timeout`` seconds in all; True when each did.

    Whoever says a run ended, or stops serving it (closes its control socket), calls this
    first: the run span is queued as the run finishes, but a writer commits it only with its
    next batch, and meanwhile ``debug attach``, ``approve`` or ``runs show`` read the store,
    find the run running with no process serving it, and ask whether its process still runs.
    Once per run end, never per stage. A writer that does not finish in time says so in one
    line and counts it (``late_run_ends``); the caller goes on (monitoring never holds a
    pipeline)."""
    deadline = time.monotonic() + timeout
    finished = True
    for processor in list(_LIVE):
        remaining = max(0, int((deadline - time.monotonic()) * 1000))
        finished = processor.flush_run_end(run_id, remaining) and finished
    return finished


class SqliteSpanProcessor(SpanBatchWriter, SpanProcessor):
    """An OTel ``SpanProcessor`` writing every span to the SQLite store at start and at end.

    Never blocks the caller beyond a queue put; a failing write drops its batch (telemetry
    never breaks the pipeline): the spans lost are counted (``dropped_spans``), the first
    failure and the recovery are logged in one line each, and ``health()`` reports the store
    down until a batch of spans is written again (``tracking._health``). Register it with
    ``tracer_provider.add_span_processor(SqliteSpanProcessor(path))``.

    A store file deleted or replaced under the writer (``rm spans.db`` while a run goes) is a
    failing write too: SQLite would go on writing into the unlinked file, which no reader sees,
    and the run would be lost without a word. Each batch first checks that ``path`` still
    names the file the connection opened (device and inode: one ``stat`` a batch).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = 0.1,
        max_batch: int = 4096,
        retention: RetentionPolicy | None = None,
        retention_every: float = RETENTION_EVERY,
    ) -> None:
        super().__init__(Path(path))
        self._interval = flush_interval
        self._max_batch = max_batch
        self._retention = retention
        self._retention_every = retention_every
        self._queue = SpanQueue(flush_interval, max_batch)
        self._shutdown = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._failures = WriteFailures()
        self._writing: list[tuple[bool, Any]] = _NOTHING  # the batch being written
        self._late_run_ends = 0  # run ends not written within flush_run_end's bound
        self._late_lock = threading.Lock()
        _LIVE.add(self)
        self._thread = threading.Thread(target=self._run, name="taskdaemon-span-store", daemon=True)
        self._thread.start()
        self._ready.wait()
        if isinstance(self._error, SpanSourceError):
            raise self._error
        if self._error is not None:
            raise SpanStoreError(f"{self.path}: cannot open span store: {self._error}")
        if hasattr(os, "register_at_fork"):
            restart = weakref.WeakMethod(self._restart_in_child)

            def after_in_child() -> None:
                method = restart()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=after_in_child)

    def _restart_in_child(self) -> None:
        """After ``fork()``: the writer thread does not exist in the child, and SQLite forbids
        using a connection across a fork. Start a fresh writer (its own connection, checkpoint
        thread and ``writers`` row with the child's pid), so spans the child makes are stored
        and its runs' liveness follows the child. What the parent had queued stays the parent's
        to write. A child that leaves through ``os._exit`` (as multiprocessing's do) should call
        ``force_flush`` first, as with any OTel processor."""
        if self._shutdown:
            return
        self._queue = SpanQueue(self._interval, self._max_batch)
        self._forget_runs()
        self._error = None
        self._failures = WriteFailures()
        self._writing = _NOTHING
        self._late_lock = threading.Lock()  # the parent's may have been held at the fork
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskdaemon-span-store", daemon=True)
        self._thread.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Queue the span's start. Its attributes are read by the writer, off the caller's
        thread: by then the span may have more of them, which is all the better."""
        if not self._shutdown:
            self._queue.put((False, span))

    def _on_ending(self, span: Span) -> None:
        """Nothing to do before the span is frozen."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the ended span (immutable from now on, so no copy)."""
        if not self._shutdown:
            self._queue.put((True, span))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write everything queued so far; False if that took longer than the timeout, or when
        the writer thread is gone (after ``shutdown``, as the SDK's processors answer, or because
        it died: nothing queued can be written then)."""
        if not self._thread.is_alive():
            return False
        marker = Flush()
        self._queue.put_urgent(marker)
        return marker.done.wait(timeout_millis / 1000)

    def flush_open_spans(self, timeout_millis: int = 30000) -> bool:
        """``force_flush``, and rewrite what open spans gained since their row was written
        even when the spacing of such rewrites says not yet (a debug dump reads the store next:
        it must see the run span's latest ``breakpoint.hit``)."""
        if not self._thread.is_alive():
            return False
        marker = Flush(refresh=True)
        self._queue.put_urgent(marker)
        return marker.done.wait(timeout_millis / 1000)

    def flush_run_end(self, run_id: str, timeout_millis: int) -> bool:
        """``force_flush`` for a run that has just ended (module function ``flush_run_end``):
        past ``timeout_millis`` one warning line says the store does not hold the run's end
        yet, and ``late_run_ends`` counts it. A writer that is gone answers False in silence:
        what it could not write is told as its other losses are."""
        if not self._thread.is_alive():
            return False
        if self.force_flush(timeout_millis):
            return True
        with self._late_lock:
            self._late_run_ends += 1
            late = self._late_run_ends
        logger.warning(
            "span store %s: the end of run %s was not written within %.1fs; it shows running "
            "there until it is (%s so far)",
            self.path,
            run_id,
            timeout_millis / 1000,
            counted(late, "late run end"),
        )
        return False

    @property
    def late_run_ends(self) -> int:
        """Run ends not written within ``flush_run_end``'s bound since this writer started."""
        return self._late_run_ends

    def shutdown(self) -> None:
        """Flush, mark this writer closed, stop the thread; safe to call twice. A closed writer
        leaves this process's writers (``flush_open_spans`` has nothing to ask it)."""
        if self._shutdown:
            return
        self._shutdown = True
        _LIVE.discard(self)
        self._queue.put_urgent(Flush(), STOP)
        self._thread.join()

    @property
    def dropped_spans(self) -> int:
        """Spans lost since this writer started: their end row could not be written."""
        return self._failures.dropped

    @property
    def dropped_at_recovery(self) -> int | None:
        """``dropped_spans`` when writes last succeeded again (said in the recovery line), or
        None before any recovery."""
        return self._failures.dropped_at_recovery

    def unwritten(self) -> tuple[int, str]:
        """Ended spans not written yet, queued or in a write still going on, and why, when the
        writer thread outlived ``shutdown``'s bound (``Telemetry.shutdown``): the process ends
        now and loses them. A write waiting for another process's lock (``database is locked``
        only comes after SQLite's busy timeout, 30 s) is the usual cause. ``(0, "")`` when
        everything was written."""
        if not self._thread.is_alive():
            return 0, ""
        count = self._queue.ended_waiting() + sum(1 for ended, _ in list(self._writing) if ended)
        return count, (why_unwritten(self.path) if count else "")

    @property
    def last_write_error(self) -> str | None:
        """The cause of the latest failed write (kept after writes recover), or None."""
        return self._failures.last_error

    def health(self) -> StoreHealth:
        """Whether spans are being written: the writer thread is alive and no batch of spans
        has failed since the last one written (``/readyz`` reports this as the ``span_store``
        component)."""
        if self._shutdown:
            return StoreHealth(False, f"{self.path}: span store closed")
        if not self._thread.is_alive():
            return StoreHealth(False, f"{self.path}: span store writer thread died")
        failures = self._failures
        if failures.failing:
            return StoreHealth(
                False,
                f"{self.path}: writes failing ({failures.last_error}); "
                f"{counted(failures.dropped, 'span')} dropped",
            )
        return StoreHealth(True, f"{self.path}: writing")

    # -- writer thread

    def _run(self) -> None:
        try:
            with sqlite_section():
                conn = connect(self.path)
                self._opened = OpenedFile(self.path)
                conn.execute("PRAGMA wal_autocheckpoint = 0")  # see Checkpointer
                conn.execute("PRAGMA temp_store = MEMORY")  # see the module docstring
                # Not waited for when the write lock is taken: the constructor (and a run's
                # first command stage, which needs the monitor) would wait out the busy
                # timeout. The first write registers then (``_write``).
                # A row this process registered before its telemetry loaded is this one's.
                self._writer_id = adopted_writer(
                    self.path, functools.partial(register_writer, conn, wait=False)
                )
        except BaseException as exc:  # reported to the constructor
            self._error = exc
            self._ready.set()
            return
        checkpointer = Checkpointer(self.path)
        self._ready.set()
        try:
            self._serve(conn, checkpointer)
        finally:  # also when the thread dies: leave no checkpoint thread or connection behind
            checkpointer.close()
            with sqlite_section():
                conn.close()

    def _serve(self, conn: sqlite3.Connection, checkpointer: Checkpointer) -> None:
        """The writer thread's work once the store is open: retention, then batches until
        ``STOP``, with a retention pass every ``retention_every`` seconds."""
        try:
            policy = self._retention if self._retention is not None else retention_from_env()
        except Exception as exc:
            logger.warning(
                "span store %s: retention failed, continuing without it: %s", self.path, exc
            )
            policy = RetentionPolicy()
        retained = self._retain(policy, failing=False)
        last_pass = last_beat = time.monotonic()
        stop = False
        while not stop:
            if policy.is_active and time.monotonic() - last_pass >= self._retention_every:
                retained = self._retain(policy, failing=not retained)
                last_pass = time.monotonic()
            batch, flushes, stop = self._queue.next_batch(last_beat + HEARTBEAT_EVERY)
            beat = time.monotonic() - last_beat >= HEARTBEAT_EVERY
            refresh = any(flush.refresh for flush in flushes)
            if batch or beat or stop or refresh:
                self._writing = batch  # what is lost if the process ends during this write
                try:
                    with sqlite_section():
                        self._write(conn, batch, closing=stop, flushing=refresh)
                except Exception as exc:
                    self._write_failed(batch, exc)
                else:
                    if self._failures.succeeded(len(batch)):
                        logger.warning(
                            "span store %s: writes succeed again; %s dropped so far",
                            self.path,
                            counted(self._failures.dropped, "span"),
                        )
                    if batch:
                        checkpointer.wrote(len(batch))
                    else:
                        checkpointer.settle()
                last_beat = time.monotonic()
                self._writing = _NOTHING
            for flush in flushes:
                flush.done.set()
            del batch  # not kept alive while the writer waits: ended spans may be freed

    def _retain(self, policy: RetentionPolicy, *, failing: bool) -> bool:
        """Apply ``policy`` (when active); False when the pass failed, said in one line unless
        the last pass ``failing`` said it already."""
        if not policy.is_active:
            return True
        try:
            with sqlite_section():
                SpanStore(self.path, retention=policy).close()
        except Exception as exc:
            if not failing:
                logger.warning("span store %s: retention failed: %s", self.path, exc)
            return False
        return True

    def _write_failed(self, batch: list[tuple[bool, Any]], exc: Exception) -> None:
        """Count the batch's ended spans as dropped; log the first failure of a streak in one
        line (every batch fails alike on a full disk: one line says it, the count says how
        much was lost)."""
        ended = sum(1 for is_end, _ in batch if is_end)
        if self._failures.failed(ended, exc):
            logger.warning(
                "span store %s: write failed, spans are dropped until writes succeed again: %s",
                self.path,
                exc,
            )
        # A run whose run span was lost never ends in the store: forget its tally (a
        # long-lived writer would otherwise keep it for ever).
        for is_end, span in batch:
            if is_end and is_run_span(span.parent, span.attributes or {}):
                self._tally.forget("%032x" % span.context.trace_id)  # noqa: UP031 (see _bodies)
