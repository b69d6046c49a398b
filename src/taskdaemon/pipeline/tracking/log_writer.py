"""Writing runs' log records into the span store's ``logs`` table, beside their spans.

:class:`SqliteLogWriter` is a sibling of the span writer: its own thread and connection on the
same file, so a stage writing thousands of lines never waits for SQLite. It takes:

* captured command output (``write_output``: it is an ``output_sinks.OutputSink``), one
  :class:`~taskdaemon.pipeline.stage_output.OutputBatch` per chunk read, queued whole and
  written by one statement (``tracking._output_rows``);
* stdlib ``logging`` records through :meth:`SqliteLogWriter.handler` (the run logs of
  ``run_log`` and a handler's own ``logging`` calls): only records that carry a ``run_id``
  (stamped by ``logs.ContextFilter`` or given in ``extra``) are kept, the store being per run.

Bodies and attributes are redacted (``redaction``) on the writer thread, off the run's path:
the bodies of a batch with one substring pre-check over all of them (``redact_texts``: almost
no row holds a hint), the attributes' JSON remembered when it repeats
(``log_rows.encode_attributes``). A row whose producer found that JSON remembered
(``run_log``'s lifecycle rows, see ``log_rows``) comes with it, and is inserted as it is.
Rows are written in batches, one transaction each, many rows a statement (``_row_inserts``):
once a row arrives at an idle writer, it waits up to :data:`LINGER_SECONDS` for more (less
when a batch fills up, ``flush`` or ``close`` is called), and a row queued meanwhile wakes
nobody. Without the wait every record
of a run whose loop often waits (sync handlers in threads, subprocesses) cost a thread wake-up
and a commit of its own.
At most :data:`MAX_PENDING` rows wait; past that, new rows are dropped and counted
(``dropped``), with one warning per writer: logging must not exhaust memory nor stop a run.
A batch that cannot be written (a full disk, or a store file deleted or replaced under the
writer, which SQLite would go on writing into unseen) is dropped and counted the same way, said
in one warning at the first failure of a streak and one when a batch is written again, as the
span writer says its own: a `serve` whose disk fills twice in a week said only the first.

When the store cannot be opened, :class:`UnstoredLogs` takes the writer's place: it keeps
nothing and counts what it is handed in ``dropped``, so that the run logs a broken store loses
are counted (``taskdaemon_logs_dropped_total``, alert ``TaskdaemonRunLogsLost``) as its spans
are (``unavailable.UnavailableSpanStore``).

The writer's connection keeps SQLite's automatic WAL checkpoint (every 1,000 pages), unlike
the span writer's (``_checkpoint.Checkpointer``, which counts span rows only): in a run, this
connection's commits make the store's checkpoints (a WAL frame read and a database page
written for each page copied: in a chain of no-op stages, most of this thread's reads and
writes). Kept so: the WAL stays bounded when a run's logs outweigh its spans, and turning it
off only moved about as many copies to the span writer's close, on the run's way out
(benchmarks/README.md, sync56's section).

Values a run's data brings that were not masked before (``secret_values``: a stage returned
the token it printed) are masked again in that run's rows written before: the writer listens
for them while open and queues a ``tracking._remask.Remask`` behind the rows queued so far.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol

from taskdaemon.pipeline.foreign_text import handler_error_text, message_of
from taskdaemon.pipeline.log_levels import severity_number
from taskdaemon.pipeline.log_rows import LogRow, Row, encode_attributes
from taskdaemon.pipeline.redaction import redact_texts
from taskdaemon.pipeline.secret_values import add_secret_listener, remove_secret_listener
from taskdaemon.pipeline.stage_output import OutputBatch
from taskdaemon.pipeline.tracking._fork_guard import sqlite_section
from taskdaemon.pipeline.tracking._output_rows import OUTPUT_SCOPE, OutputRows
from taskdaemon.pipeline.tracking._remask import Remask
from taskdaemon.pipeline.tracking._row_inserts import insert_rows, statements
from taskdaemon.pipeline.tracking._schema import OpenedFile, connect, rollback, why_unwritten

__all__ = ["LINGER_SECONDS", "MAX_PENDING", "SqliteLogWriter", "UnstoredLogs", "flush_all"]

#: Rows waiting for the writer thread at most; more are dropped and counted.
MAX_PENDING: Final = 200_000
#: Seconds an idle writer waits, after a row arrives, for more rows to write in the same batch.
LINGER_SECONDS: Final = 0.05
#: Rows a multi-row ``INSERT`` writes at most (``_row_inserts``); 480 parameters, far under
#: SQLite's limit on a statement's parameters (999 in the oldest SQLite Python supports).
ROWS_A_STATEMENT: Final = 40
_logger = logging.getLogger(__name__)
_INSERTS: Final = statements(
    "INSERT INTO logs (trace_id, time_ns, severity, level, pipeline, stage, instance, attempt,"
    " span_id, scope, body, attributes) VALUES",
    12,
    ROWS_A_STATEMENT,
)

# What waits for the writer: a row (its body, and its attributes unless encoded already,
# redacted on the writer thread), a batch of output lines (as many rows as its lines), or a
# run's rows to mask again (no row of its own).
_Entry = Row | OutputBatch | Remask

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)
_IDS: Final = frozenset(
    {"run_id", "pipeline", "stage", "instance", "attempt", "trace_id", "span_id"}
)


# The writers of this process, for flush_all (a command saying its run ended has no handle).
_LIVE: weakref.WeakSet[SqliteLogWriter] = weakref.WeakSet()


def flush_all(timeout: float) -> bool:
    """Have every log writer of this process write what it holds, within ``timeout`` seconds
    in all; True when each did. A run's last output reaches its writer before the run ends,
    and the writer lingers up to ``LINGER_SECONDS`` before a batch: whoever says the run
    ended (``cli/ended_runs.store_run_end``) calls this first, so ``taskdaemon logs`` read
    at once has the run's last lines."""
    deadline = time.monotonic() + timeout
    finished = True
    for writer in list(_LIVE):
        finished = writer.flush(max(0.0, deadline - time.monotonic())) and finished
    return finished


class SqliteLogWriter:
    """Appends log rows to ``path``'s ``logs`` table on a thread of its own (see the module)."""

    def __init__(
        self, path: str | Path, *, batch_size: int = 2000, linger: float = LINGER_SECONDS
    ) -> None:
        self.path = Path(path)
        self._batch_size = batch_size
        self._linger_seconds = linger
        self._conn: sqlite3.Connection = connect(self.path)
        self._opened = OpenedFile(self.path)  # a store deleted under it fails its batches
        self._pending: deque[_Entry] = deque()
        self._queued = 0  # rows in _pending
        # The condition's own lock, held bare where nothing waits (``_put``: every queued row
        # takes it, two a stage from the run log; ``Condition.__enter__`` is a Python call).
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._busy = False
        self._writing = 0  # rows in the batch being written
        self._closed = False
        self._flushing = 0  # flush() callers waiting: the writer does not linger for them
        self.written = 0
        self.batches = 0  # transactions committed
        self.dropped = 0
        self._warned = False
        self.remasked = 0  # rows masked again (``remask``)
        self._thread = threading.Thread(target=self._run, name="taskdaemon-log-writer", daemon=True)
        self._thread.start()
        add_secret_listener(self.remask)
        _LIVE.add(self)

    # -- input ---------------------------------------------------------------------------------

    def _put(self, entries: Sequence[_Entry], count: int) -> None:
        with self._lock:  # the condition's own lock, bare: nothing waits here (see __init__)
            if self._closed:
                return
            room = MAX_PENDING - self._queued
            if room < count:
                lost = count - max(room, 0)
                if self.dropped == 0:
                    _logger.warning(
                        "log writer of %s is behind; dropping log records (counted)", self.path
                    )
                self.dropped += lost
                entries, count = _first(entries, max(room, 0)), count - lost
            if not entries:
                return
            idle = not self._pending
            self._pending.extend(entries)
            self._queued += count
            # Wake the writer only from idle (or for a full batch): while it lingers or writes,
            # it finds these rows itself.
            if idle or self._queued >= self._batch_size:
                self._cond.notify_all()

    def write_output(self, batch: OutputBatch) -> None:
        """Queue one batch of captured output (the ``OutputSink`` protocol)."""
        if not batch.dropped_lines:
            self._put((batch,), len(batch.texts))
            return
        marker = {
            "taskdaemon.log.dropped_lines": batch.dropped_lines,
            "taskdaemon.log.dropped_bytes": batch.dropped_bytes,
            "log.iostream": batch.stream,
        }
        row = LogRow(
            batch.run_id,
            time.time_ns(),
            13,
            "WARNING",
            batch.pipeline,
            batch.stage,
            batch.instance,
            batch.attempt,
            batch.span_id,
            OUTPUT_SCOPE,
            batch.marker_text(),
            marker,
        )
        self._put((row,), 1)

    def write_record(self, record: logging.LogRecord) -> None:
        """Queue one stdlib record when it belongs to a run (has a ``run_id``)."""
        run_id = getattr(record, "run_id", None)
        if not run_id:
            return
        attributes = {
            key: value
            for key, value in vars(record).items()
            if key not in _STANDARD and key not in _IDS and not key.startswith("_")
        }
        if record.exc_info and record.exc_info[1] is not None:
            attributes["exception.type"] = type(record.exc_info[1]).__qualname__
            attributes["exception.message"] = handler_error_text(record.exc_info[1])
        row = LogRow(
            str(run_id),
            int(record.created * 1e9),
            severity_number(record.levelno),
            record.levelname,
            getattr(record, "pipeline", None),
            getattr(record, "stage", None),
            getattr(record, "instance", None),
            getattr(record, "attempt", None),
            getattr(record, "span_id", None),
            record.name,
            message_of(record),
            attributes,
        )
        self._put((row,), 1)

    def write_row(self, row: Row) -> None:
        """Queue one row built by its producer (``run_log``, see ``log_rows``): the row
        :meth:`write_record` would make of the equivalent record."""
        self._put((row,), 1)

    def write_rows(self, rows: list[Row]) -> None:
        """Queue ``rows`` in order, as :meth:`write_row` of each would, in one call (the run
        log's rows of one turn of the monitor's queue)."""
        self._put(rows, len(rows))

    def remask(self, run_id: str, values: tuple[str, ...]) -> None:
        """Mask ``values`` again in run ``run_id``'s rows queued or written so far (the
        ``secret_values`` listener: it only queues)."""
        self._put((Remask(run_id, values),), 0)

    def handler(self) -> logging.Handler:
        """A ``logging.Handler`` feeding :meth:`write_record` (add ``logs.ContextFilter``)."""
        return _StoreHandler(self)

    # -- the thread ----------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued row is written; False when ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()  # a lingering writer writes now
            try:
                while self._pending or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(min(left, 0.05))
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the thread, close the file: all within ``timeout``.

        Rows still not written then (a write waiting for a lock another process holds: SQLite
        waits up to its busy timeout, 30 s) are lost with the process: they are counted in
        ``dropped`` and said, with the cause SQLite gives (``_schema.why_unwritten``)."""
        deadline = time.monotonic() + timeout
        remove_secret_listener(self.remask)
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            self._conn.close()
            why = ""
        else:
            with self._cond:
                unwritten = self._queued + self._writing
            self.dropped += unwritten
            why = f" (not written within {timeout:g} s: {why_unwritten(self.path)})"
        if self.dropped:
            _logger.warning(
                "%d run log records were not stored in %s%s", self.dropped, self.path, why
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                self._linger()
                entries, size = self._take()
                self._queued -= size
                self._busy = True
                self._writing = size
            try:
                self._write(entries)
                self.written += size
                self.batches += 1
                if self._warned:  # the streak's end, said as its start was
                    self._warned = False
                    _logger.warning(
                        "run log records are stored again in %s; %d dropped so far",
                        self.path,
                        self.dropped,
                    )
            except Exception as error:  # a broken file loses these rows, never the run
                self.dropped += size
                if not self._warned:  # once a streak, in one line; close() says how many were lost
                    self._warned = True
                    _logger.warning("run log records are not stored: %s: %s", self.path, error)
            finally:
                with self._cond:
                    self._busy = False
                    self._writing = 0
                    self._cond.notify_all()

    def _take(self) -> tuple[list[_Entry], int]:
        """The next batch (holding ``_cond``): entries while fewer than ``batch_size`` rows are
        taken, and how many rows they hold. When fewer than that wait in all (``_queued``
        counts them), every entry is taken at once, as the loop would take them one by one,
        without asking each one's size."""
        pending = self._pending
        if self._queued < self._batch_size:
            entries = list(pending)
            pending.clear()
            return entries, self._queued
        entries = []
        size = 0
        while pending and size < self._batch_size:
            entry = pending.popleft()
            entries.append(entry)
            size += _size(entry)
        return entries, size

    def _linger(self) -> None:
        """Wait (holding ``_cond``) up to ``linger`` seconds for the batch to fill, unless it
        is full, a ``flush`` waits or the writer is closing."""
        deadline = time.monotonic() + self._linger_seconds
        while self._queued < self._batch_size and not self._flushing and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _write(self, entries: list[_Entry]) -> None:
        # Everything but SQLite first (redaction, JSON), to hold the write lock the least.
        steps: list[list[Row] | OutputRows | Remask] = []
        values: list[Row] = []
        shared: object = None
        encoded = ""
        for entry in entries:
            if isinstance(entry, OutputBatch | Remask):
                if values:
                    steps.append(_redacted(values))
                    values = []
                steps.append(OutputRows(entry) if isinstance(entry, OutputBatch) else entry)
                continue
            attributes = entry[11]
            if isinstance(attributes, str):  # encoded by its producer: inserted as it is
                values.append(entry)
                continue
            if attributes is not shared:  # rows often share one dict: encode it once
                shared, encoded = attributes, encode_attributes(attributes)
            values.append((*entry[:11], encoded))
        if values:
            steps.append(_redacted(values))
        if any(isinstance(step, Remask) for step in steps):
            written_spans()  # before the transaction: the span writer needs the write lock
        self._opened.check()
        conn = self._conn
        with sqlite_section():  # a fork meanwhile would leave the child's SQLite locked
            conn.execute("BEGIN IMMEDIATE")  # one transaction per batch: autocommit is per row
            try:
                for step in steps:
                    if isinstance(step, OutputRows):
                        step.insert(conn)
                    elif isinstance(step, Remask):
                        self.remasked += step.apply(conn)
                    else:
                        insert_rows(conn, _INSERTS, step)
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)  # SQLite may have rolled back itself (disk full): no second error
                raise


def written_spans() -> None:
    """Wait until this process's span store writers have written the spans they hold (and
    their open spans), so that a ``Remask`` finds every span ended before it was queued."""
    writer = sys.modules.get("taskdaemon.pipeline.tracking.writer")
    if writer is not None:  # else no span writer was ever made here
        writer.flush_open_spans(10_000)


def _redacted(values: list[Row]) -> list[Row]:
    """``values`` with their bodies redacted: one substring pre-check over all the bodies
    (``redact_texts``), each body checked only when that finds a hint, as ``redact_text`` of
    each would do."""
    bodies = [row[10] for row in values]
    clean = redact_texts(bodies)
    if clean is bodies:
        return values
    return [
        row if body is text else (*row[:10], text, row[11])
        for row, body, text in zip(values, bodies, clean, strict=True)
    ]


def _size(entry: _Entry) -> int:
    if isinstance(entry, OutputBatch):
        return len(entry.texts)
    return 0 if isinstance(entry, Remask) else 1


def _first(entries: Sequence[_Entry], room: int) -> list[_Entry]:
    """The entries holding the first ``room`` rows (a batch cut short when it must)."""
    kept: list[_Entry] = []
    for entry in entries:
        if room <= 0:
            break
        size = _size(entry)
        if size > room and isinstance(entry, OutputBatch):
            kept.append(dataclasses.replace(entry, texts=entry.texts[:room]))
        else:
            kept.append(entry)
        room -= size
    return kept


class UnstoredLogs:
    """The log writer's stand-in for a store that could not be opened (module docstring):
    ``dropped`` counts the rows :class:`SqliteLogWriter` would have queued."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # output, logging and the monitor hand rows on threads
        self.dropped = 0

    def _count(self, rows: int) -> None:
        with self._lock:
            self.dropped += rows

    def write_output(self, batch: OutputBatch) -> None:
        """Count one batch of captured output (its lines, or its one marker row)."""
        self._count(1 if batch.dropped_lines else len(batch.texts))

    def write_record(self, record: logging.LogRecord) -> None:
        """Count one stdlib record when it belongs to a run (has a ``run_id``)."""
        if getattr(record, "run_id", None):
            self._count(1)

    def write_row(self, row: Row) -> None:
        """Count one row."""
        self._count(1)

    def write_rows(self, rows: list[Row]) -> None:
        """Count ``rows``."""
        self._count(len(rows))

    def handler(self) -> logging.Handler:
        """A ``logging.Handler`` feeding :meth:`write_record` (add ``logs.ContextFilter``)."""
        return _StoreHandler(self)

    def flush(self, timeout: float = 10.0) -> bool:
        """Nothing waits: True."""
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Nothing to close: the store's one warning line said that nothing is stored."""


class _Writer(Protocol):
    def write_record(self, record: logging.LogRecord) -> None: ...
    def write_row(self, row: Row) -> None: ...
    def write_rows(self, rows: list[Row]) -> None: ...
    def flush(self, timeout: float = 10.0) -> bool: ...


class _StoreHandler(logging.Handler):
    def __init__(self, writer: _Writer) -> None:
        super().__init__()
        self._writer = writer
        #: Where ``log_rows.row_sink_for`` sends rows of records only this handler wants.
        self.row_sink = writer

    @staticmethod
    def keeps_logger(name: str) -> bool:
        """False for the loggers whose records are never stored: the OTel SDK's, and this
        writer's own (its warnings must not feed it)."""
        return not name.startswith(("opentelemetry", "taskdaemon.pipeline.tracking.log_writer"))

    def emit(self, record: logging.LogRecord) -> None:
        if not self.keeps_logger(record.name):
            return
        try:
            self._writer.write_record(record)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Wait until what was handed to the writer is in the store (``logging``'s flush:
        a debug dump or the debugger's ``logs`` reads the store right after)."""
        self._writer.flush()
