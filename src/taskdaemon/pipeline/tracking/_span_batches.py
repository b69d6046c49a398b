"""The embedded span store's rows: one batch of spans written in one transaction.

``SpanBatchWriter`` is the base of ``tracking.writer.SqliteSpanProcessor``: the processor
queues spans and runs the writer thread, this turns each batch it takes into rows. A span is
written when it starts (``end_ns`` NULL) and again when it ends; a span that has already
ended when its start comes up gets only the ended row. An open span that gained events or
attributes has its row rewritten (``_refresh_open``), spaced out by what rewrites cost. The
rows are those of ``tracking._tables``; a run's ``runs`` row is ``tracking._run_tally``'s
(from an in-memory tally of a run this writer saw start, else rebuilt from its stored spans,
once for its row and its report aggregates both); the report aggregates are
``tracking.aggregates``'.

Cost. The writer's time per span goes to building the JSON body, the SQLite inserts, the run
tally and reading the span, in that order of weight (figures in ``benchmarks/README.md``,
"Span store"). It reads an SDK span's attributes, events and links in place when it can
(``tracking._bodies.parts``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from opentelemetry.trace import SpanContext

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.landing import scheduled_ns
from taskdaemon.pipeline.masked_values import MASKED
from taskdaemon.pipeline.tracking._bodies import body as _body
from taskdaemon.pipeline.tracking._bodies import dropped as _dropped
from taskdaemon.pipeline.tracking._bodies import dumps as _dumps
from taskdaemon.pipeline.tracking._bodies import fields as _fields
from taskdaemon.pipeline.tracking._bodies import parts as _parts
from taskdaemon.pipeline.tracking._remask import masked_span_body
from taskdaemon.pipeline.tracking._row_inserts import insert_rows, statements
from taskdaemon.pipeline.tracking._run_tally import UPSERT_RUN, RunTally, is_run_span
from taskdaemon.pipeline.tracking._schema import OpenedFile, is_busy, rollback
from taskdaemon.pipeline.tracking._tables import INSERT_RUN, insert_writer
from taskdaemon.pipeline.tracking.aggregates import (
    RUN_ENDED,
    RUN_STARTED,
    STAGE_ENDED,
    RunAggregator,
)
from taskdaemon.pipeline.tracking.reconstruct import ended_attempt_status, is_skip, replay_of
from taskdaemon.pipeline.tracking.run_start import started_early

if TYPE_CHECKING:
    from taskdaemon.pipeline.records import RunRecord

__all__ = ["OPEN_ROW_BYTES_A_SECOND", "REFRESH_SPACING", "SpanBatchWriter", "register_writer"]

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

# A start never overwrites an ended row (the end may already be there), but replaces an open one:
# the start row that ``run`` wrote of a run span or stage span before its telemetry loaded
# (``tracking.run_start``), with all the span records (the conflict costs what ``OR IGNORE``'s
# did; no look-up in Python). An end always overwrites. Both insert many rows a statement
# (``_row_inserts``), 64 at most (384 parameters).
_START: Final = statements(
    "INSERT INTO spans (trace_no, span_id, start_ns, end_ns, resource_no, body) VALUES",
    6,
    64,
    "ON CONFLICT (trace_no, span_id) DO UPDATE SET start_ns = excluded.start_ns, "
    "resource_no = excluded.resource_no, body = excluded.body WHERE end_ns IS NULL",
)
_END: Final = statements(
    "INSERT OR REPLACE INTO spans (trace_no, span_id, start_ns, end_ns, resource_no, body) VALUES",
    6,
    64,
)
# An open span's row rewritten with what it gained; never a row whose end is already written.
_REFRESH_OPEN: Final = (
    "UPDATE spans SET body = ? WHERE trace_no = ? AND span_id = ? AND end_ns IS NULL"
)


def register_writer(conn: sqlite3.Connection, *, wait: bool) -> int | None:
    """Insert this writer's ``writers`` row and return its id. Without ``wait``, None at once
    when another connection holds the write lock (with it, SQLite's busy timeout applies);
    any other error is raised."""
    (busy_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
    if not wait:
        conn.execute("PRAGMA busy_timeout = 0")
    try:
        return insert_writer(conn)
    except sqlite3.OperationalError as exc:
        if wait or not is_busy(exc):
            raise
        return None
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")


class SpanBatchWriter:
    """Writes batches of queued spans, ``(is_end, span)`` pairs, to the store: what a writer
    keeps between its batches (the runs it saw start, its open spans, each resource's JSON,
    what it knows as secret and since when) and the transaction of each batch.
    ``SqliteSpanProcessor`` sets ``_opened`` and ``_writer_id`` once its thread opened the
    store and registered."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._opened: OpenedFile | None = None  # set once the writer thread opened the file
        self._writer_id: int | None = None
        self._resource_json: dict[int, tuple[Any, str]] = {}
        self._refresh_due = 0.0  # monotonic time of the next _refresh_open
        # ``MASKED.generation`` last seen, and the time (ns) it was first seen: see _learnt_ns.
        self._learnt = (MASKED.generation, time.time_ns() if MASKED.generation else 0)
        self._forget_runs()

    def _forget_runs(self) -> None:
        """Start with no run tallied and no span open (also in a forked child: the parent's
        runs and spans are the parent's to write)."""
        self._tally = RunTally()  # the runs this writer saw start, for their summary rows
        # Spans whose start row is written and whose end is not: (trace, span id) -> [span,
        # (events, attributes) counts last written, monotonic time before which the row is not
        # rewritten]; see _refresh_open.
        self._open: dict[tuple[int, int], list[Any]] = {}
        self._aggregates = RunAggregator(where=self.path)  # report aggregates, as runs end

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
            self._writer_id = register_writer(conn, wait=True)
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
                    started_early(trace_id)  # forgotten there: ``_START`` replaces its row
                stages = attrs.get(t.PIPELINE_STAGES) or ()
                pipeline = str(attrs.get(t.CICD_PIPELINE_NAME, ""))
                new_runs.append(
                    (
                        trace_id,
                        pipeline,
                        start_ns,
                        len(stages),
                        self._writer_id,
                        replay_of(attrs),
                        scheduled_ns(attrs),
                    )
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
            insert_rows(conn, _START, started)
            insert_rows(conn, _END, ended)
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
