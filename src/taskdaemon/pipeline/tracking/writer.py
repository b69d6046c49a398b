"""The embedded span store, writing side: ``SqliteSpanProcessor``, an OTel span processor.

``on_start`` and ``on_end`` only put the span on a queue; one writer thread turns queued spans
into rows and commits a batch at least every ``flush_interval`` (100 ms) while spans arrive, so
a running run is visible from another process within that delay. A span is written when it
starts (``end_ns`` NULL) and again when it ends; a span that has already ended when its start
comes up gets only the ended row. ``force_flush`` and ``shutdown`` write everything queued
before they were called; ``flush_run_end`` does it, bounded, for a process about to say that
a run ended. The rows are those of ``tracking._tables``; a run's ``runs`` row is
``tracking._run_tally``'s (from an in-memory tally of a run this processor saw start, else
rebuilt from its stored spans, once for its row and its report aggregates both).

Wake-ups. The writer is woken by the first span that reaches it idle, then waits out the
interval without being woken per span and writes what is queued; ``force_flush``,
``flush_open_spans``, ``shutdown`` and a queue that reaches ``max_batch`` (the memory bound)
wake it at once (``tracking._span_queue``).

Cost. The caller pays one queue append. The writer's time per span goes to building the JSON
body, the SQLite inserts, the run tally and reading the span, in that order of weight (figures
in ``benchmarks/README.md``, "Span store"). It reads an SDK span's attributes, events and links in
place when it can (``tracking._bodies.parts``), and WAL checkpoints run on their own thread
(``_checkpoint.Checkpointer``).
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanContext

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.masked_values import MASKED
from taskdaemon.pipeline.tracking._bodies import body as _body
from taskdaemon.pipeline.tracking._bodies import dropped as _dropped
from taskdaemon.pipeline.tracking._bodies import dumps as _dumps
from taskdaemon.pipeline.tracking._bodies import fields as _fields
from taskdaemon.pipeline.tracking._bodies import parts as _parts
from taskdaemon.pipeline.tracking._checkpoint import Checkpointer
from taskdaemon.pipeline.tracking._fork_guard import sqlite_section
from taskdaemon.pipeline.tracking._health import StoreHealth, WriteFailures
from taskdaemon.pipeline.tracking._remask import masked_span_body
from taskdaemon.pipeline.tracking._run_tally import INSERT_RUN, UPSERT_RUN, RunTally, is_run_span
from taskdaemon.pipeline.tracking._schema import (
    OpenedFile,
    connect,
    is_busy,
    rollback,
    why_unwritten,
)
from taskdaemon.pipeline.tracking._span_queue import STOP, Flush, SpanQueue
from taskdaemon.pipeline.tracking.aggregates import (
    RUN_ENDED,
    RUN_STARTED,
    STAGE_ENDED,
    RunAggregator,
)
from taskdaemon.pipeline.tracking.reconstruct import ended_attempt_status, is_skip, replay_of
from taskdaemon.pipeline.tracking.store import RetentionPolicy, SpanStore, retention_from_env
from taskdaemon.pipeline.wording import counted

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

    from taskdaemon.pipeline.records import RunRecord

__all__ = [
    "HEARTBEAT_EVERY",
    "RUN_END_WAIT",
    "SqliteSpanProcessor",
    "StoreHealth",
    "flush_open_spans",
    "flush_run_end",
]

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY: Final = 1.0  # seconds between writer heartbeats (see store.STALE_AFTER)
#: Seconds a process waits for its writers to hold a run's end before it says the run ended
#: (``flush_run_end``). The run is over: the wait only holds back the line, the control
#: socket's close and a scheduled next run, so a writer stuck on another process's lock (up
#: to SQLite's busy timeout) costs this, not the busy timeout.
RUN_END_WAIT: Final = 2.0
#: After rewriting open spans that gained events (``_refresh_open``), the writer waits this many
#: times what it took (building the rows and their UPDATE) before doing it again: a handful of
#: open runs are refreshed on every batch, thousands of them (each run span rewritten whole,
#: with up to 128 events) cost the writer at most a twentieth of its time instead of most of
#: it. Why a twentieth, not a tenth: the spacing is wall time and the writer idles most of it,
#: so a tenth of the wall clock was a fifth of the writer's own CPU with a thousand runs open;
#: an open run's new events now reach readers about twice later under such a load (still
#: within seconds), and as before with every batch when few runs are open. Only when the rows
#: are rewritten changes, never what they hold: an end row always has every event.
REFRESH_SPACING: Final = 19.0
#: And each open span's row waits a second per this many bytes of it after it was written
#: before it is rewritten again. The spacing above weighs what all rewrites cost the writer,
#: not how much one row is rewritten: a stage that publishes large events over minutes has a
#: row growing to its payload budget (16 MiB, docs/span-store.md, "A byte budget a span"),
#: which was rewritten whole as often as that spacing let it, its whole body and SQLite's
#: copies of it built each time and written through the WAL. Now a 16 MiB row goes at most
#: every 16 s, while a row of a few KiB (a run span and its trigger evaluations) still goes
#: with the next batch. As above, only when changes, never what: the end row,
#: ``flush_open_spans`` and ``shutdown`` write every event.
OPEN_ROW_BYTES_A_SECOND: Final = 1 << 20

_INSERT_SPAN: Final = (
    "INTO spans (trace_no, span_id, start_ns, end_ns, resource_no, body) VALUES (?, ?, ?, ?, ?, ?)"
)
# A start never overwrites a row (the end may already be there); an end always does.
_INSERT_START: Final = "INSERT OR IGNORE " + _INSERT_SPAN
_INSERT_END: Final = "INSERT OR REPLACE " + _INSERT_SPAN
# An open span's row rewritten with what it gained; never a row whose end is already written.
_REFRESH_OPEN: Final = (
    "UPDATE spans SET body = ? WHERE trace_no = ? AND span_id = ? AND end_ns IS NULL"
)

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


def _register_writer(conn: sqlite3.Connection, *, wait: bool) -> int | None:
    """Insert this writer's ``writers`` row and return its id. Without ``wait``, None at once
    when another connection holds the write lock (with it, SQLite's busy timeout applies);
    any other error is raised."""
    (busy_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
    if not wait:
        conn.execute("PRAGMA busy_timeout = 0")
    try:
        now = time.time_ns()
        return conn.execute(
            "INSERT INTO writers (pid, host, started_ns, heartbeat_ns) VALUES (?, ?, ?, ?)",
            (os.getpid(), socket.gethostname(), now, now),
        ).lastrowid
    except sqlite3.OperationalError as exc:
        if wait or not is_busy(exc):
            raise
        return None
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")


class SqliteSpanProcessor(SpanProcessor):
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
    ) -> None:
        self.path = Path(path)
        self._opened: OpenedFile | None = None  # set once the writer thread opened the file
        self._interval = flush_interval
        self._max_batch = max_batch
        self._retention = retention
        self._queue = SpanQueue(flush_interval, max_batch)
        self._resource_json: dict[int, tuple[Any, str]] = {}
        self._tally = RunTally()  # the runs this writer saw start, for their summary rows
        # Spans whose start row is written and whose end is not: (trace, span id) -> [span,
        # (events, attributes) counts last written, monotonic time before which the row is not
        # rewritten]; see _refresh_open.
        self._open: dict[tuple[int, int], list[Any]] = {}
        self._aggregates = RunAggregator(where=self.path)  # report aggregates, as runs end
        self._refresh_due = 0.0  # monotonic time of the next _refresh_open
        # ``MASKED.generation`` last seen, and the time (ns) it was first seen: see _learnt_ns.
        self._learnt = (MASKED.generation, time.time_ns() if MASKED.generation else 0)
        self._shutdown = False
        self._writer_id: int | None = None
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
            raise SpanSourceError(f"{self.path}: cannot open span store: {self._error}")
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
        self._tally = RunTally()
        self._open = {}
        self._aggregates = RunAggregator(where=self.path)
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
                # Not waited for when the write lock is taken: the constructor (and a run's
                # first command stage, which needs the monitor) would wait out the busy
                # timeout. The first write registers then (``_write``).
                self._writer_id = _register_writer(conn, wait=False)
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
        ``STOP``."""
        try:
            policy = self._retention if self._retention is not None else retention_from_env()
            if policy.is_active:
                with sqlite_section():
                    SpanStore(self.path, retention=policy).close()
        except Exception as exc:
            logger.warning(
                "span store %s: retention failed, continuing without it: %s", self.path, exc
            )
        last_beat = time.monotonic()
        stop = False
        while not stop:
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
                            "span store %s: writes succeed again; %d spans dropped so far",
                            self.path,
                            self._failures.dropped,
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

    def _write(
        self,
        conn: sqlite3.Connection,
        batch: list[tuple[bool, Any]],
        *,
        closing: bool,
        flushing: bool = False,
    ) -> None:
        """Write one batch in one transaction: span rows, the traces and resources they use,
        new and finished runs, and this writer's heartbeat. ``flushing`` (a ``force_flush``
        asks, see ``flush_open_spans``) rewrites open spans whatever the spacing says."""
        assert self._opened is not None  # set before the first batch
        self._opened.check()
        if self._writer_id is None:  # the write lock was taken when the writer started
            self._writer_id = _register_writer(conn, wait=True)
        # Rows are built before the transaction, with the trace id (int) and the resource's
        # id() in place of their numbers: those are looked up inside it (so no other process's
        # retention can delete a trace or resource in between) and patched into the rows.
        started: list[list[Any]] = []
        ended: list[list[Any]] = []
        trace_ids: dict[int, str] = {}
        first_start: dict[int, int] = {}
        resources: dict[int, Any] = {}
        new_runs: list[tuple[Any, ...]] = []
        ended_root_spans: list[tuple[str, Any]] = []
        seen: list[tuple[int, Any, Mapping[str, Any], Any]] = []  # for the report aggregates
        now = time.monotonic()
        learnt_ns = self._learnt_ns()
        for is_end, span in batch:
            # The span's five fields in one call, read in place for the SDK's spans (_bodies).
            end_ns, parent, context, start_ns, resource = _fields(span)
            if not is_end and end_ns is not None:
                # Ended before this batch was written: its end is queued (on_end comes after the
                # end time is set), in this batch or the next, so only the end row is written.
                # A run's start still opens its tally: its stages' ends come before its own.
                if parent is None:
                    attrs = _parts(span)[0]
                    if is_run_span(None, attrs):
                        self._tally.open("%032x" % context.trace_id)  # noqa: UP031 (see _bodies)
                        seen.append((RUN_STARTED, span, attrs, None))
                continue
            # A ``SpanContext`` is a tuple whose ``trace_id`` and ``span_id`` properties return
            # its first two items: read as items, two property calls fewer a span.
            if type(context) is SpanContext:
                trace, span_no = context[0], context[1]
            else:
                trace, span_no = context.trace_id, context.span_id
            start_ns = start_ns or 0
            trace_id = trace_ids.get(trace)
            if trace_id is None:
                trace_id = trace_ids[trace] = "%032x" % trace  # noqa: UP031 (see _bodies)
                first_start[trace] = start_ns
            elif start_ns < first_start[trace]:
                first_start[trace] = start_ns
            resources[id(resource)] = resource
            attrs, events, links = _parts(span)
            span_hex = "%016x" % span_no  # noqa: UP031 (see _bodies)
            body = _body(span, parent, attrs, events, links, ended=is_end)
            row = [
                trace,
                span_hex,
                start_ns,
                end_ns,
                id(resource),
                body if start_ns >= learnt_ns else masked_span_body(body),
            ]
            # Only a root can be a run span: a stage span's row skips the call.
            is_run = parent is None and is_run_span(None, attrs)
            key = (trace, span_no)
            if is_end:
                self._open.pop(key, None)
                ended.append(row)
                if is_run:
                    ended_root_spans.append((trace_id, span))
                    seen.append((RUN_ENDED, span, attrs, None))
                else:
                    name = attrs.get(t.CICD_TASK_NAME)
                    if isinstance(name, str) and name:
                        # A stage attempt: what the run's tally and the report aggregates
                        # read of it is worked out once, for both (None: a skip span).
                        status = (
                            None
                            if is_skip(attrs, start_ns, end_ns)
                            else ended_attempt_status(attrs, span.status.status_code._name_)
                        )
                        self._tally.count(trace_id, name, start_ns, status, attrs)
                        stage = (trace, name, span_hex, status, start_ns, end_ns, events, links)
                        seen.append((STAGE_ENDED, span, attrs, stage))
            else:
                waits = len(row[5]) / OPEN_ROW_BYTES_A_SECOND
                self._open[key] = [span, (len(events), len(attrs)), now + waits]
                started.append(row)
            if is_run:
                if not is_end:
                    # Only a start opens a tally: one opened at the run's end would have missed
                    # its stages, and the summary trusts a tally (it rebuilds the run without).
                    self._tally.open(trace_id)
                    seen.append((RUN_STARTED, span, attrs, None))
                stages = attrs.get(t.PIPELINE_STAGES) or ()
                pipeline = str(attrs.get(t.CICD_PIPELINE_NAME, ""))
                new_runs.append(
                    (trace_id, pipeline, start_ns, len(stages), self._writer_id, replay_of(attrs))
                )
        refreshed: list[list[Any]] = []
        began = time.monotonic()
        if closing or flushing or began >= self._refresh_due:
            refreshed = self._refresh_open(
                trace_ids, first_start, learnt_ns, forced=closing or flushing
            )
            self._refresh_due = began + REFRESH_SPACING * (time.monotonic() - began)
        conn.execute("BEGIN IMMEDIATE")
        try:
            trace_nos = self._trace_numbers(conn, trace_ids, first_start)
            for row in refreshed:
                row[1] = trace_nos[row[1]]
            if refreshed:
                updating = time.monotonic()
                conn.executemany(_REFRESH_OPEN, refreshed)
                self._refresh_due += REFRESH_SPACING * (time.monotonic() - updating)
            resource_nos = {key: self._resource_no(conn, r) for key, r in resources.items()}
            uses: set[tuple[int, int]] = set()
            for rows in (started, ended):
                for row in rows:
                    row[0] = trace_nos[row[0]]
                    row[4] = resource_nos[row[4]]
                    uses.add((row[0], row[4]))
            conn.executemany("INSERT OR IGNORE INTO trace_resources VALUES (?, ?)", uses)
            conn.executemany(_INSERT_START, started)
            conn.executemany(_INSERT_END, ended)
            conn.executemany(INSERT_RUN, new_runs)
            rebuilt: dict[int, RunRecord | None] = {}
            finished = (
                self._tally.finished_row(
                    conn, run, span, rebuilt, writer_id=self._writer_id, where=self.path
                )
                for run, span in ended_root_spans
            )
            conn.executemany(UPSERT_RUN, [row for row in finished if row is not None])
            self._aggregates.observe(conn, seen, trace_nos, rebuilt)
            now = time.time_ns()
            conn.execute(
                "UPDATE writers SET heartbeat_ns = ?, closed_ns = ? WHERE id = ?",
                (now, now if closing else None, self._writer_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise

    def _learnt_ns(self) -> int:
        """When this writer first saw what is known as a secret now (``MASKED.generation``).
        A span started before may have recorded a value in clear before it was known: its row,
        written from what the span holds, is masked again (``masked_span_body``), or it would
        undo ``Remask``. A span started after recorded each text redacted with the values
        known: its row is written as it is, so nothing is searched while nothing new is
        learnt. Seen late (at the next batch), the time errs on the side of masking."""
        generation = MASKED.generation
        if generation != self._learnt[0]:
            self._learnt = (generation, time.time_ns())
        return self._learnt[1]

    def _refresh_open(
        self,
        trace_ids: dict[int, str],
        first_start: dict[int, int],
        learnt_ns: int,
        *,
        forced: bool,
    ) -> list[list[Any]]:
        """``[body, trace, span id]`` for each open span that gained events or attributes since
        its row was written, so a running run's span events (an approval it waits for, a
        trigger evaluation) reach readers while the span is still open: with the batch or the
        heartbeat, at most every ``REFRESH_SPACING`` times the last refresh's own duration,
        and each row at most a second per ``OPEN_ROW_BYTES_A_SECOND`` of it unless ``forced``.
        Adds the spans' traces to the batch's lookups."""
        rows = []
        now = time.monotonic()
        for (trace, span_id), entry in self._open.items():
            span = entry[0]
            if span.end_time is not None:
                continue  # its end row is on its way
            if now < entry[2] and not forced:
                continue
            attrs, events, links = _parts(span)
            # Events dropped count too: a span at its event limit gains one and loses one.
            counts = (len(events) + _dropped(span)[1], len(attrs))
            if counts == entry[1]:
                continue
            entry[1] = counts
            if trace not in trace_ids:
                trace_ids[trace] = "%032x" % trace  # noqa: UP031 (see _bodies)
                first_start[trace] = span.start_time or 0
            body = _body(span, span.parent, attrs, events, links, ended=False)
            if (span.start_time or 0) < learnt_ns:
                body = masked_span_body(body)
            entry[2] = now + len(body) / OPEN_ROW_BYTES_A_SECOND
            rows.append([body, trace, "%016x" % span_id])  # noqa: UP031 (see _bodies)
        return rows

    @staticmethod
    def _trace_numbers(
        conn: sqlite3.Connection, trace_ids: dict[int, str], first_start: dict[int, int]
    ) -> dict[int, int]:
        """Trace id (int) -> ``trace_no`` for the batch's traces (``trace_ids``: their hex ids),
        numbering new ones with ``first_start``, the start of their earliest span in the batch."""
        if not trace_ids:
            return {}
        conn.executemany(
            "INSERT OR IGNORE INTO traces (trace_id, first_ns) VALUES (?, ?)",
            [(hex_id, first_start[trace]) for trace, hex_id in trace_ids.items()],
        )
        numbers = dict(
            conn.execute(
                "SELECT trace_id, trace_no FROM traces "
                "WHERE trace_id IN (SELECT value FROM json_each(?))",
                (orjson.dumps(list(trace_ids.values())).decode(),),
            ).fetchall()
        )
        return {trace: numbers[hex_id] for trace, hex_id in trace_ids.items()}

    def _resource_no(self, conn: sqlite3.Connection, resource: Any) -> int:
        """The ``resource_no`` of a resource (its attribute JSON is encoded once per object)."""
        cached = self._resource_json.get(id(resource))
        if cached is None or cached[0] is not resource:
            cached = self._resource_json[id(resource)] = (
                resource,
                _dumps(dict(resource.attributes)),
            )
        conn.execute("INSERT OR IGNORE INTO resources (attributes) VALUES (?)", (cached[1],))
        row = conn.execute(
            "SELECT resource_no FROM resources WHERE attributes = ?", (cached[1],)
        ).fetchone()
        number: int = row[0]
        return number
