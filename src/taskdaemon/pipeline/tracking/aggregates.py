"""The span store's report aggregates: written as runs end, read by ``taskdaemon report``.

Writing (``RunAggregator``, called by ``SqliteSpanProcessor`` once per batch, inside its
transaction): what the aggregates read of the processor's ended stage spans (a flat tuple
each, not the span: ``tracking._kept_runs``) is kept in memory per run (only for runs whose
run span started in this process, so the set is complete); when the run span ends, its run,
attempt and critical-path rows (tables in ``tracking._aggregates_schema``) are computed
straight from those tuples, with no record objects, and a batch's rows are inserted with one
``executemany`` a table (``tracking._run_rows``). A run this process did not see start (or whose
stages were dropped from memory because more than ``max_open_runs`` runs were open) is rebuilt
from its stored spans instead (``write_run``; the two paths write the same rows), once: the
writer's own rebuild of it, for its ``runs`` row, is handed over. The cost
is paid once per run, off the pipeline's threads, on the writer thread. Each batch's runs are
also added to the per-day totals and histograms (``tracking._day_totals``), one upsert per
touched day row per batch. A replay's fed stage executions are not kept (no attempt rows), and
a replay that fed any is written with status ``replayed``, no critical path and no run
histogram entry: counted apart, never as a run (``reporting._replays``).

Reading (``StoreReportData``, a ``reporting.ReportData``): counts and sums of a window's whole UTC
days come from the day rows, those of its two cut days from the attempts themselves; each percentile
is exact: the window's histogram names the bucket holding rank ``k``, and either one ``LIMIT 1
OFFSET r`` step inside that bucket's value range, along an index ordered by the value, or the
window's own values in that bucket, sorted in memory when the history crowds the bucket
(``tracking._ranked_column``), read it. No more than one bucket's values (``BUCKET_ROWS``) is ever
loaded into Python, save those of the stages with at most ``_FEW`` executions in the window, read
whole, a few values a stage. Each kind of row (day totals, histograms, a cut day's attempts and
critical steps, those few values) is read for all of a pipeline's stages in one query, not one a
stage: a 5,000-stage run's report made ten a stage. Runs that had not ended are counted for the
report's notes only (``unended``): one query over the window's open runs through ``runs_status``,
and one liveness check per writer.
Ended runs without aggregates (written before schema version 5, or by a process that died between a
run's end and its aggregates) are aggregated first, by rebuilding them; stale days are rebuilt next.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.reporting import FED, PipelineSample, StageSample, Unended
from taskdaemon.pipeline.tracking._day_totals import (
    DAY_NS,
    SERIES_DURATION,
    SERIES_QUEUE,
    SERIES_RUN,
    DayTotals,
    bucket,
    new_totals,
    refresh_stale_days,
    stage_totals_add,
)
from taskdaemon.pipeline.tracking._kept_runs import EdgeUpstream, Kept, attempt_from_sdk, kept_run
from taskdaemon.pipeline.tracking._kept_runs import to_ns as _ns
from taskdaemon.pipeline.tracking._ranked_column import (
    BUCKET_ROWS,
    NS_PER_SECOND,
    WALK_PER_READ,
    BucketCache,
    ColumnReads,
    RankedColumn,
)
from taskdaemon.pipeline.tracking._run_rows import Pending, write_kept, write_record, write_run
from taskdaemon.pipeline.tracking._schema import (
    connect,
    is_busy,
    private_copy,
    rollback,
    why_read_only,
)
from taskdaemon.pipeline.tracking.reconstruct import find_root, reconstruct_run
from taskdaemon.pipeline.tracking.store import SpanStore, select_trace

__all__ = [
    "RUN_ENDED",
    "RUN_STARTED",
    "STAGE_ENDED",
    "RunAggregator",
    "StoreReportData",
    "aggregate_missing",
    "write_run",
]

_logger = logging.getLogger("taskdaemon.tracking")


#: What a written batch tells ``RunAggregator.observe`` about a span.
RUN_STARTED: Final = 0
STAGE_ENDED: Final = 1
RUN_ENDED: Final = 2

#: A stage with at most this many executions in a report window has their durations and queue
#: waits read whole, with the other such stages', in one query: in memory, at most this many
#: values a stage of the pipeline, as the report's own rows hold a few values a stage.
_FEW: Final = 16

_NONE_REBUILT: Final[Mapping[int, RunRecord | None]] = MappingProxyType({})


class RunAggregator:
    """The writer's hook: keeps the attempts of ended stage spans per open run, writes a run's
    aggregates when its run span ends (see the module docstring). Used on the writer thread
    only."""

    def __init__(self, max_open_runs: int = 10_000, *, where: object = "span store") -> None:
        self._max_open = max_open_runs
        self._where = where  # the store file, named in the warning about a damaged row
        self._open: dict[int, list[Kept]] = {}  # trace id (int) -> ended stage attempts
        self._fed: set[int] = set()  # open runs (trace ids) that fed a stage: replays
        self._keys: dict[Any, int] = {}
        self._edges = EdgeUpstream()

    def observe(
        self,
        conn: sqlite3.Connection,
        seen: Sequence[tuple[int, Any, Mapping[str, Any], Any]],
        trace_nos: Mapping[int, int],
        rebuilt: Mapping[int, RunRecord | None] = _NONE_REBUILT,
    ) -> None:
        """Take what one written batch says about runs: ``(RUN_STARTED | STAGE_ENDED |
        RUN_ENDED, SDK span, its attributes, stage)`` in the batch's order (the writer sorts its
        spans out as it builds their rows, and hands over their attributes read in place); write
        the aggregates of the runs whose run span ended in it. ``stage``, for an ended stage
        attempt only: ``(trace id, stage name, span id, status or None for a skip span, start
        ns, end ns, events, links)``, as the writer worked them out for its own tally and its
        row (the same reads, once; events and links as ``_bodies.parts`` reads them in place).
        ``rebuilt``: the runs of the batch the writer rebuilt from their stored spans (trace id
        -> record, None when no run span is stored; ``_run_tally.RunTally.finished_row``
        says why they are handed this way); an ended run with no kept attempts is taken from
        it, and rebuilt here only when it is not in it. Runs inside the writer's transaction."""
        open_runs = self._open
        ended_runs = []
        for kind, span, attrs, stage in seen:
            if kind == STAGE_ENDED:
                attempts = open_runs.get(stage[0])
                if stage[3] == FED:  # a replay's fed execution: no work, not an attempt
                    if attempts is not None:
                        self._fed.add(stage[0])
                elif attempts is not None and stage[3] is not None:
                    # The few fields the aggregates read, not the span: with thousands of runs
                    # open, their ended spans (attributes, payload events, links) were most
                    # of the process's memory.
                    attempts.append(attempt_from_sdk(attrs, *stage[1:]))
            elif kind == RUN_ENDED:
                ended_runs.append((span, attrs))
            else:
                trace = span.context.trace_id
                if trace not in open_runs:
                    if len(open_runs) >= self._max_open:
                        # The oldest run is rebuilt from its spans when it ends.
                        oldest = next(iter(open_runs))
                        del open_runs[oldest]
                        self._fed.discard(oldest)
                    open_runs[trace] = []
        if not ended_runs:
            return
        days = DayTotals()
        # One lookup of the batch's runs that have aggregates already (only a run ended twice
        # has), not one a run.
        numbers = ",".join(str(trace_nos[root.context.trace_id]) for root, _ in ended_runs)
        pending = Pending(
            {
                row[0]
                for row in conn.execute(
                    "SELECT trace_no FROM run_aggregates "
                    "WHERE trace_no IN (SELECT value FROM json_each(?))",
                    (f"[{numbers}]",),
                )
            }
        )
        for root, attrs in ended_runs:
            trace = root.context.trace_id
            kept = open_runs.pop(trace, None)
            trace_no = trace_nos[trace]
            if kept is not None:
                fed = trace in self._fed
                self._fed.discard(trace)
                run = kept_run(root, attrs, kept, self._edges, fed=fed)
                write_kept(conn, trace_no, run, self._keys, days, pending)
                continue
            if trace in rebuilt:
                record = rebuilt[trace]
            else:
                stored = select_trace(conn, format(trace, "032x"), where=self._where)
                record = reconstruct_run(stored) if find_root(stored) is not None else None
            if record is not None:
                write_record(conn, trace_no, record, self._keys, days, pending)
        pending.flush(conn)
        days.flush(conn)


def aggregate_missing(conn: sqlite3.Connection, batch: int = 500) -> int:
    """Aggregate every ended run that has no aggregates yet, ``batch`` runs per transaction;
    returns how many were written. When there are as many aggregated runs as ended runs (the
    writer aggregates each run in the transaction that ends it), two counts answer, not a join
    of every run."""
    done = 0
    keys: dict[Any, int] = {}
    # All runs less the open ones, not a count of "end_ns IS NOT NULL", which reads every run's
    # row: count(*) alone walks no row, and the open runs are found through runs_status (their
    # rows say 'running'). A row that broke that rule would be counted as ended: the join
    # below would then run, which is slower, never wrong.
    ended = (
        conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        - conn.execute(
            "SELECT count(*) FROM runs WHERE status = 'running' AND end_ns IS NULL"
        ).fetchone()[0]
    )
    if conn.execute("SELECT count(*) FROM run_aggregates").fetchone()[0] >= ended:
        return 0
    while True:
        days = DayTotals()
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT t.trace_no, t.trace_id FROM runs r JOIN traces t USING (trace_id) "
                "WHERE r.end_ns IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM run_aggregates a WHERE a.trace_no = t.trace_no) LIMIT ?",
                (batch,),
            ).fetchall()
            for trace_no, trace_id in rows:
                spans = select_trace(conn, trace_id)
                run = reconstruct_run(spans) if find_root(spans) is not None else None
                if run is None or run.end is None:
                    # Nothing to aggregate (its run span is gone): an empty marker row.
                    conn.execute(
                        "INSERT OR REPLACE INTO run_aggregates VALUES (?, '', 'unknown', 0, 0, 0)",
                        (trace_no,),
                    )
                else:
                    write_run(conn, trace_no, run, keys, days)
            days.flush(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done += len(rows)
        if len(rows) < batch:
            return done


class _Window:
    """A report window in epoch ns: its whole UTC days ``[first_day, end_day)`` (read from the
    day rows) and the partial days around them (``edges``, read from the attempts)."""

    def __init__(self, since: float, until: float) -> None:
        self.since, self.until = _ns(since), _ns(until)
        self.first_day = -(-self.since // DAY_NS)
        self.end_day = self.until // DAY_NS
        if self.first_day >= self.end_day:  # no whole day: every row is an edge
            self.first_day = self.end_day = 0
            self.edges = [(self.since, self.until)] if self.since < self.until else []
        else:
            self.edges = [
                (low, high)
                for low, high in (
                    (self.since, self.first_day * DAY_NS),
                    (self.end_day * DAY_NS, self.until),
                )
                if low < high
            ]

    @property
    def days(self) -> tuple[int, int]:
        """``(first_day, end_day)`` for the day rows' ``day >= ? AND day < ?``."""
        return self.first_day, self.end_day


def _remove(copy: Path) -> None:
    """Remove a store's private copy and its directory (``_schema.private_copy``)."""
    import shutil  # noqa: PLC0415 - the writer imports this module: kept off its start-up

    shutil.rmtree(copy.parent, ignore_errors=True)


class StoreReportData:
    """``reporting.ReportData`` over the embedded store's aggregates (see the module docstring).
    Aggregates missing ended runs and rebuilds stale days when opened, then reads everything in
    one read transaction (one consistent snapshot); ``close()`` ends it and the connection."""

    def __init__(
        self,
        store: SpanStore,
        *,
        bucket_rows: int = BUCKET_ROWS,
        walk_per_read: int = WALK_PER_READ,
    ) -> None:
        self._store = store
        self._bucket_cache = BucketCache(bucket_rows, walk_per_read)
        self._copy: Path | None = None
        try:
            self._conn = connect(store.path)
        except SpanSourceError:
            why = why_read_only(store.path, or_full=True)
            if why is None:
                raise
            # A backup's snapshot, a read-only volume, another user's folder or a full disk:
            # the aggregates are written to a private copy, for this report only, rather than
            # refusing to report.
            self._copy = private_copy(store.path)
            _logger.warning("%s: %s, reporting from a temporary copy", store.path, why)
            try:
                self._conn = connect(self._copy)
            except BaseException:
                _remove(self._copy)
                raise
        try:
            self._conn.create_function("taskdaemon_bucket", 1, bucket, deterministic=True)
            self.aggregated = aggregate_missing(self._conn)
            self.rebuilt_days = refresh_stale_days(self._conn)
            self._conn.execute("BEGIN")
        except sqlite3.OperationalError as error:
            self.close()
            if not is_busy(error):
                raise
            # Held past the store's busy timeout (a long ``BEGIN EXCLUSIVE``, a ``retention
            # --vacuum``): a traceback said "database is locked" and nothing of why a report
            # writes. Only a report with aggregates to bring up to date writes at all.
            raise SpanSourceError(
                f"{store.path}: another process holds the store's write lock ({error}), and "
                "the report brings the store's aggregates up to date first: run it again once "
                "that process is done"
            ) from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the aggregates connection (the store stays the caller's), and remove the
        temporary copy if the store was read from one."""
        rollback(self._conn)
        self._conn.close()
        if self._copy is not None:
            _remove(self._copy)

    def pipelines(self, since: float, until: float) -> list[str]:
        """Pipelines with ended runs started in [since, until), sorted."""
        window = (_ns(since), _ns(until))
        names = [
            row[0]
            for row in self._conn.execute(
                "SELECT DISTINCT pipeline FROM stage_keys WHERE pipeline != '' ORDER BY pipeline"
            )
        ]
        return [
            name
            for name in names
            if self._conn.execute(
                "SELECT 1 FROM run_aggregates INDEXED BY run_aggregates_start WHERE pipeline = ? "
                "AND start_ns >= ? AND start_ns < ? AND status != 'unknown' LIMIT 1",
                (name, *window),
            ).fetchone()
        ]

    def run(self, run_id: str) -> RunRecord:
        """One run rebuilt from its spans."""
        return self._store.get_run(run_id)

    def unended(self, since: float, until: float) -> Mapping[str, Unended]:
        """Per pipeline, its runs started in [since, until) that had not ended: only the
        window's open runs are read (an open run's row says ``running`` until it ends, and
        ``runs_status`` orders by status, then start), grouped by writer, whose liveness
        tells still running from interrupted."""
        counts: dict[str, list[int]] = {}
        alive: dict[int | None, bool] = {}
        for name, writer_id, runs in self._conn.execute(
            "SELECT pipeline, writer_id, count(*) FROM runs INDEXED BY runs_status "
            "WHERE status = 'running' AND start_ns >= ? AND start_ns < ? AND end_ns IS NULL "
            "GROUP BY pipeline, writer_id",
            (_ns(since), _ns(until)),
        ):
            if writer_id not in alive:
                alive[writer_id] = self._store.writer_alive(self._conn, writer_id)
            counts.setdefault(name, [0, 0])[not alive[writer_id]] += runs
        return {name: Unended(c[0], c[1]) for name, c in sorted(counts.items())}

    def _histogram(self, key_no: int, series: int, window: _Window) -> Counter[int]:
        return Counter(
            dict(
                self._conn.execute(
                    "SELECT bucket, sum(count) FROM histogram_days WHERE key_no = ? "
                    "AND series = ? AND day >= ? AND day < ? GROUP BY bucket",
                    (key_no, series, *window.days),
                ).fetchall()
            )
        )

    def _stages(self, pipeline: str, window: _Window, shown: bool) -> tuple[StageSample, ...]:
        """The samples of ``pipeline``'s stages with executions in ``window``, by stage name:
        each kind of row read for all its stages at once, and the durations and queue waits of
        a stage with at most ``_FEW`` executions read whole in one more query, where reading
        them by rank would cost a query or two a percentile. Not ``shown``, only the cut
        days' executions and duration histograms are read, counted in SQL, not attempt by
        attempt in Python, and the queue waits are left empty (``reporting.ReportData.sample``)."""
        keys = self._conn.execute(
            "SELECT key_no, stage FROM stage_keys WHERE pipeline = ? AND stage != '' "
            "ORDER BY stage",
            (pipeline,),
        ).fetchall()
        totals = {key_no: new_totals() for key_no, _ in keys}
        # ``key_no IN``: each stage's rows along the primary key, in its order (its day's,
        # then its attempts' start order), so sums are added as one stage at a time added them.
        for key_no, *row in self._conn.execute(
            "SELECT key_no, sum(executions), sum(failures), sum(retries), sum(cpu_s), "
            "sum(cpu_count), max(peak_memory), sum(queue_count), sum(critical_ns) "
            "FROM stage_days WHERE key_no IN (SELECT key_no FROM stage_keys WHERE pipeline = ? "
            "AND stage != '') AND day >= ? AND day < ? GROUP BY key_no",
            (pipeline, *window.days),
        ):
            totals[key_no] = row
        # Per series, each stage's histogram of the window (bucket -> count).
        histograms: dict[int, defaultdict[int, Counter[int]]] = {
            SERIES_DURATION: defaultdict(Counter),
            SERIES_QUEUE: defaultdict(Counter),
        }
        duration_counts, queue_counts = histograms[SERIES_DURATION], histograms[SERIES_QUEUE]
        for key_no, series, number, count in self._conn.execute(
            "SELECT key_no, series, bucket, sum(count) FROM histogram_days "
            "WHERE key_no IN (SELECT key_no FROM stage_keys WHERE pipeline = ? AND stage != '') "
            "AND series IN (?, ?) AND day >= ? AND day < ? GROUP BY key_no, series, bucket",
            (pipeline, SERIES_DURATION, SERIES_QUEUE, *window.days),
        ):
            histograms[series][key_no][number] = count
        for low, high in window.edges:
            if not shown:
                for key_no, number, count in self._conn.execute(
                    "SELECT key_no, taskdaemon_bucket(duration_ns), count(*) FROM stage_attempts "
                    "WHERE key_no IN (SELECT key_no FROM stage_keys WHERE pipeline = ? "
                    "AND stage != '') AND start_ns >= ? AND start_ns < ? GROUP BY 1, 2",
                    (pipeline, low, high),
                ):
                    totals[key_no][0] += count
                    duration_counts[key_no][number] += count
                continue
            for key_no, failed, attempt, took, queue_ns, cpu_s, peak in self._conn.execute(
                "SELECT key_no, failed, attempt, duration_ns, queue_ns, cpu_s, peak_memory "
                "FROM stage_attempts WHERE key_no IN (SELECT key_no FROM stage_keys "
                "WHERE pipeline = ? AND stage != '') AND start_ns >= ? AND start_ns < ?",
                (pipeline, low, high),
            ):
                stage_totals_add(totals[key_no], failed, attempt, queue_ns, cpu_s, peak)
                duration_counts[key_no][bucket(took)] += 1
                if queue_ns is not None:
                    queue_counts[key_no][bucket(queue_ns)] += 1
            for key_no, critical_ns in self._conn.execute(
                "SELECT key_no, sum(run_ns) FROM critical_steps WHERE key_no IN (SELECT key_no "
                "FROM stage_keys WHERE pipeline = ? AND stage != '') "
                "AND start_ns >= ? AND start_ns < ? GROUP BY key_no",
                (pipeline, low, high),
            ):
                totals[key_no][7] += critical_ns
        few = self._few_values(
            [key_no for key_no, _ in keys if 0 < totals[key_no][0] <= _FEW], window
        )
        stages = []
        for key_no, stage in keys:
            executions, failures, retries, cpu_s, cpu_count, peak, _, critical_ns = totals[key_no]
            if not executions:
                continue
            durations: Sequence[float]
            queue_waits: Sequence[float]
            if key_no in few:
                durations, queue_waits = few[key_no]
            else:
                durations = self._column(key_no, SERIES_DURATION, window, histograms, executions)
                queue_waits = (
                    self._column(key_no, SERIES_QUEUE, window, histograms, executions)
                    if shown
                    else ()
                )
            stages.append(
                StageSample(
                    stage=stage,
                    executions=executions,
                    failures=failures,
                    retries=retries,
                    cpu_seconds=cpu_s,
                    cpu_samples=cpu_count,
                    peak_memory_bytes=peak,
                    durations=durations,
                    queue_waits=queue_waits,
                    critical_seconds=critical_ns / NS_PER_SECOND if shown else 0.0,
                )
            )
        return tuple(stages)

    def _few_values(
        self, keys: list[int], window: _Window
    ) -> dict[int, tuple[list[float], list[float]]]:
        """Per stage of ``keys``, its window's durations and queue waits, sorted ascending."""
        values: dict[int, tuple[list[float], list[float]]] = {key_no: ([], []) for key_no in keys}
        if not keys:
            return values
        for key_no, took, queue_ns in self._conn.execute(
            "SELECT key_no, duration_ns, queue_ns FROM stage_attempts "
            "WHERE key_no IN (SELECT value FROM json_each(?)) AND start_ns >= ? AND start_ns < ?",
            (json.dumps(keys), window.since, window.until),
        ):
            durations, queue_waits = values[key_no]
            durations.append(took / NS_PER_SECOND)
            if queue_ns is not None:
                queue_waits.append(queue_ns / NS_PER_SECOND)
        for durations, queue_waits in values.values():
            durations.sort()
            queue_waits.sort()
        return values

    def _column(
        self,
        key_no: int,
        series: int,
        window: _Window,
        histograms: Mapping[int, Mapping[int, Counter[int]]],
        executions: int,
    ) -> RankedColumn:
        """A stage's durations (``series`` ``SERIES_DURATION``) or queue waits, read by rank
        with the window's histogram of them (``histograms[series][key_no]``)."""
        column = "duration_ns" if series == SERIES_DURATION else "queue_ns"
        index = "stage_attempts_duration" if series == SERIES_DURATION else "stage_attempts_queue"
        where = "WHERE key_no = ? AND start_ns >= ? AND start_ns < ?"
        return RankedColumn(
            self._conn,
            ColumnReads(
                f"FROM stage_attempts INDEXED BY {index} " + where,
                # The primary key (key, start, trace, span): the window's range of the stage.
                "FROM stage_attempts INDEXED BY sqlite_autoindex_stage_attempts_1 " + where,
                column,
                "start_ns, trace_no, span_id",  # the value indexes' order after the value
                (key_no, series),
            ),
            (key_no, window.since, window.until),
            histograms[series].get(key_no, Counter()),
            executions,  # a window read crosses the attempts without a queue wait too
            self._bucket_cache,
        )

    def sample(
        self, pipeline: str, since: float, until: float, *, shown: bool = True
    ) -> PipelineSample:
        """The sample of ``pipeline``'s ended runs started in [since, until). Not ``shown``
        (a previous window, a chart's day): its median and slowest runs are not looked for,
        each a rank read and a trace lookup (``reporting.ReportData.sample``)."""
        window = _Window(since, until)
        counts: Counter[str] = Counter()
        total_ns = 0
        own = self._conn.execute(
            "SELECT key_no FROM stage_keys WHERE pipeline = ? AND stage = ''", (pipeline,)
        ).fetchone()
        histogram: Counter[int] = Counter()
        if own is not None:
            for status, runs, duration in self._conn.execute(
                "SELECT status, sum(runs), sum(duration_ns) FROM run_days WHERE key_no = ? "
                "AND day >= ? AND day < ? GROUP BY status",
                (own[0], *window.days),
            ):
                counts[status] += runs
                if status != FED:
                    total_ns += duration
            histogram = self._histogram(own[0], SERIES_RUN, window)
        for low, high in window.edges:
            for status, duration in self._conn.execute(
                "SELECT status, duration_ns FROM run_aggregates INDEXED BY run_aggregates_start "
                "WHERE pipeline = ? AND start_ns >= ? AND start_ns < ? AND status != 'unknown'",
                (pipeline, low, high),
            ):
                counts[status] += 1
                if status != FED:
                    total_ns += duration
                    histogram[bucket(duration)] += 1
        # A replay that fed stages is counted apart, never as a run (``reporting._replays``).
        replays = counts.pop(FED, 0)
        runs = sum(counts.values())
        where = (
            "WHERE pipeline = ? AND start_ns >= ? AND start_ns < ? "
            f"AND status NOT IN ('unknown', '{FED}')"
        )
        durations = RankedColumn(
            self._conn,
            ColumnReads(
                "FROM run_aggregates INDEXED BY run_aggregates_duration " + where,
                "FROM run_aggregates INDEXED BY run_aggregates_start " + where,
                "duration_ns",
                "start_ns, trace_no",  # run_aggregates_duration's order after the value
                (own[0] if own is not None else 0, SERIES_RUN),
            ),
            (pipeline, window.since, window.until),
            histogram,
            runs,
            self._bucket_cache,
        )
        return PipelineSample(
            pipeline=pipeline,
            runs=runs,
            succeeded=counts.get("success", 0),
            failed=counts.get("failure", 0),
            durations=durations,
            total_seconds=total_ns / NS_PER_SECOND,
            stages=self._stages(pipeline, window, shown),
            median_run=self._run_at(durations, (runs - 1) // 2) if runs and shown else None,
            slowest_run=self._run_at(durations, runs - 1) if runs and shown else None,
            replays=replays,
        )

    def _run_at(self, durations: RankedColumn, rank: int) -> str:
        trace_no = durations.row_at(rank, "trace_no")
        row = self._conn.execute(
            "SELECT trace_id FROM traces WHERE trace_no = ?", (trace_no,)
        ).fetchone()
        return str(row[0]) if row is not None else ""
