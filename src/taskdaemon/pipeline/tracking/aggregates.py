"""The span store's report aggregates: written as runs end, read by ``taskdaemon report``.

Writing (``RunAggregator``, called by ``SqliteSpanProcessor`` once per batch, inside its
transaction): the processor's ended stage spans are kept in memory per run (only for runs whose
run span started in this process, so the set is complete); when the run span ends, its run,
attempt and critical-path rows (tables in ``tracking._aggregates_schema``) are written from
them. A run this process did not see start (or whose stages were dropped from memory because
more than ``max_open_runs`` runs were open) is rebuilt from its stored spans instead. The cost
is paid once per run, off the pipeline's threads, on the writer thread.

Reading (``StoreReportData``, a ``reporting.ReportData``): counts and sums come from one range
scan per stage; each percentile is one ``LIMIT 2 OFFSET k`` step along an index ordered by the
value (``_SortedColumn``), walked from whichever end is closer, so no sample is ever loaded
into Python. Ended runs without aggregates (written before schema version 5, or by a process
that died between a run's end and its aggregates) are aggregated first, by rebuilding them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, overload

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.records import AttemptRecord, EdgeRecord, RunRecord, StageRecord
from taskdaemon.pipeline.reporting import PipelineSample, StageSample, run_critical_path
from taskdaemon.pipeline.run_state import FAILED_STAGE_STATUSES
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking.reconstruct import (
    ended_attempt_status,
    ended_run_status,
    find_root,
    is_skip,
    reconstruct_run,
)
from taskdaemon.pipeline.tracking.store import SpanStore, select_trace

__all__ = ["RunAggregator", "StoreReportData", "aggregate_missing", "write_run"]

_NS: Final = 1e9


def _ns(seconds: float) -> int:
    return round(seconds * _NS)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _key_no(conn: sqlite3.Connection, pipeline: str, stage: str, cache: dict[Any, int]) -> int:
    key = (pipeline, stage)
    number = cache.get(key)
    if number is None:
        conn.execute(
            "INSERT OR IGNORE INTO stage_keys (pipeline, stage) VALUES (?, ?)", (pipeline, stage)
        )
        number = cache[key] = conn.execute(
            "SELECT key_no FROM stage_keys WHERE pipeline = ? AND stage = ?", (pipeline, stage)
        ).fetchone()[0]
    return number


def write_run(
    conn: sqlite3.Connection, trace_no: int, run: RunRecord, cache: dict[Any, int] | None = None
) -> None:
    """Write the aggregates of one ended run (replacing any already there)."""
    if run.end is None:
        return
    keys = {} if cache is None else cache
    start_ns = _ns(run.start)
    path = run_critical_path(run)
    attempts = []
    for stage in run.stages:
        key_no = None
        for attempt in stage.attempts:
            if attempt.end is None:
                continue
            if key_no is None:
                key_no = _key_no(conn, run.pipeline, stage.name, keys)
            attempts.append(
                (
                    key_no,
                    start_ns,
                    trace_no,
                    attempt.span_id or attempt.task_run_id,
                    attempt.attempt,
                    int(attempt.status in FAILED_STAGE_STATUSES),
                    _ns(attempt.end - attempt.start),
                    None if attempt.queue_time is None else _ns(attempt.queue_time),
                    attempt.cpu_seconds,
                    attempt.peak_memory_bytes,
                )
            )
    steps = [
        (
            _key_no(conn, run.pipeline, step.stage, keys),
            start_ns,
            trace_no,
            _ns(step.wait),
            _ns(step.duration),
        )
        for step in path.steps
    ]
    conn.execute(
        "INSERT OR REPLACE INTO run_aggregates VALUES (?, ?, ?, ?, ?, ?)",
        (trace_no, run.pipeline, run.status, start_ns, _ns(run.duration or 0.0), _ns(path.length)),
    )
    conn.executemany(
        "INSERT OR REPLACE INTO stage_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", attempts
    )
    conn.executemany("INSERT OR REPLACE INTO critical_steps VALUES (?, ?, ?, ?, ?)", steps)


class RunAggregator:
    """The writer's hook: keeps ended stage spans per open run, writes a run's aggregates when
    its run span ends (see the module docstring). Used on the writer thread only."""

    def __init__(self, max_open_runs: int = 10_000) -> None:
        self._max_open = max_open_runs
        self._open: dict[int, list[Any]] = {}  # trace id (int) -> ended stage spans
        self._keys: dict[Any, int] = {}

    def observe(
        self,
        conn: sqlite3.Connection,
        batch: Sequence[tuple[bool, Any]],
        trace_nos: Mapping[int, int],
    ) -> None:
        """Take one written batch of (ended?, SDK span); write the aggregates of the runs whose
        run span ended in it. Runs inside the writer's transaction."""
        ended_runs = []
        for is_end, span in batch:
            attrs = span.attributes or {}
            trace = span.context.trace_id
            if span.parent is None and attrs.get(t.CICD_PIPELINE_ACTION_NAME) == t.RUN_ACTION:
                if is_end:
                    ended_runs.append(span)
                elif trace not in self._open:
                    if len(self._open) >= self._max_open:
                        # The oldest run is rebuilt from its spans when it ends.
                        del self._open[next(iter(self._open))]
                    self._open[trace] = []
            elif is_end and t.CICD_TASK_NAME in attrs:
                spans = self._open.get(trace)
                if spans is not None:
                    spans.append(span)
        for root in ended_runs:
            trace = root.context.trace_id
            spans = self._open.pop(trace, None)
            trace_no = trace_nos[trace]
            if spans is None:
                stored = select_trace(conn, format(trace, "032x"))
                if find_root(stored) is None:
                    continue
                run = reconstruct_run(stored)
            else:
                run = _run_from_sdk(root, spans)
            write_run(conn, trace_no, run, self._keys)


def _run_from_sdk(root: Any, spans: list[Any]) -> RunRecord:
    """The parts of a ``RunRecord`` the aggregates need, from ended SDK spans (cheaper than a
    full rebuild: no payloads, no events)."""
    attrs = root.attributes or {}
    by_stage: dict[str, list[AttemptRecord]] = {}
    upstream: dict[str, tuple[str, ...]] = {}
    for span in spans:
        a = span.attributes or {}
        name = a.get(t.CICD_TASK_NAME)
        if not isinstance(name, str) or not name or is_skip(a, span.start_time, span.end_time):
            continue
        memory = _number(a.get(t.STAGE_PEAK_MEMORY))
        by_stage.setdefault(name, []).append(
            AttemptRecord(
                task_run_id=str(a.get(t.CICD_TASK_RUN_ID) or ""),
                instance=int(_number(a.get(t.STAGE_INSTANCE)) or 0),
                attempt=int(_number(a.get(t.STAGE_ATTEMPT)) or 1),
                status=ended_attempt_status(a, span.status.status_code.name),
                start=span.start_time / _NS,
                end=span.end_time / _NS,
                queue_time=_number(a.get(t.STAGE_QUEUE_TIME)),
                cpu_seconds=_number(a.get(t.STAGE_CPU_TIME)),
                peak_memory_bytes=None if memory is None else int(memory),
                span_id=format(span.context.span_id, "016x"),
            )
        )
        up = a.get(t.STAGE_UPSTREAM)
        if isinstance(up, tuple | list):
            upstream[name] = tuple(str(u) for u in up)
    edges = []
    for item in attrs.get(t.PIPELINE_EDGES) or ():
        parts = str(item).split(">", 2)
        if len(parts) >= 2:
            edges.append(EdgeRecord(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))
    return RunRecord(
        run_id=format(root.context.trace_id, "032x"),
        pipeline=str(attrs.get(t.CICD_PIPELINE_NAME, "")),
        status=ended_run_status(attrs, root.status.status_code.name),
        start=(root.start_time or 0) / _NS,
        end=(root.end_time or 0) / _NS,
        stages=tuple(
            StageRecord(name, "", "", tuple(attempts), upstream=upstream.get(name, ()))
            for name, attempts in by_stage.items()
        ),
        edges=tuple(edges),
    )


def aggregate_missing(conn: sqlite3.Connection, batch: int = 500) -> int:
    """Aggregate every ended run that has no aggregates yet, ``batch`` runs per transaction;
    returns how many were written."""
    done = 0
    keys: dict[Any, int] = {}
    while True:
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
                    write_run(conn, trace_no, run, keys)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done += len(rows)
        if len(rows) < batch:
            return done


class _SortedColumn(Sequence[float]):
    """One column of a window's rows, in ascending order, read item by item from an index on
    (key, column, start_ns): item ``k`` is one ``LIMIT 2 OFFSET`` step from the nearer end."""

    def __init__(  # noqa: PLR0917 (internal; every call site names what it passes)
        self,
        conn: sqlite3.Connection,
        table: str,
        index: str,
        column: str,
        where: str,
        params: tuple[Any, ...],
        length: int,
    ) -> None:
        base = (
            f"SELECT {column} FROM {table} INDEXED BY {index} WHERE {where} "  # noqa: S608
            f"AND {column} IS NOT NULL"
        )
        self._ascending = f"{base} ORDER BY {column} LIMIT 2 OFFSET ?"
        self._descending = f"{base} ORDER BY {column} DESC LIMIT 2 OFFSET ?"
        self._conn = conn
        self._params = params
        self._length = length
        self._cache: dict[int, float] = {}

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(index)
        if index not in self._cache:
            if index < self._length // 2:
                rows = self._conn.execute(self._ascending, (*self._params, index)).fetchall()
                found = {index + i: row[0] for i, row in enumerate(rows)}
            else:
                offset = self._length - 1 - index
                rows = self._conn.execute(self._descending, (*self._params, offset)).fetchall()
                found = {index - i: row[0] for i, row in enumerate(rows)}
            self._cache.update({k: v / _NS for k, v in found.items()})
        return self._cache[index]

    def __iter__(self) -> Iterator[float]:
        return (self[i] for i in range(self._length))


class StoreReportData:
    """``reporting.ReportData`` over the embedded store's aggregates (see the module docstring).
    Aggregates missing ended runs when opened; ``close()`` releases its connection."""

    def __init__(self, store: SpanStore) -> None:
        self._store = store
        self._conn = connect(store.path)
        self.aggregated = aggregate_missing(self._conn)

    def close(self) -> None:
        """Close the aggregates connection (the store stays the caller's)."""
        self._conn.close()

    def pipelines(self, since: float, until: float) -> list[str]:
        """Pipelines with ended runs started in [since, until), sorted."""
        rows = self._conn.execute(
            "SELECT DISTINCT pipeline FROM run_aggregates "
            "WHERE start_ns >= ? AND start_ns < ? AND status != 'unknown' ORDER BY pipeline",
            (_ns(since), _ns(until)),
        ).fetchall()
        return [row[0] for row in rows]

    def run(self, run_id: str) -> RunRecord:
        """One run rebuilt from its spans."""
        return self._store.get_run(run_id)

    def _run_at(self, pipeline: str, window: tuple[int, int], offset: int) -> str | None:
        row = self._conn.execute(
            "SELECT t.trace_id FROM traces t WHERE t.trace_no = (SELECT trace_no FROM "
            "run_aggregates INDEXED BY run_aggregates_duration WHERE pipeline = ? "
            "AND start_ns >= ? AND start_ns < ? ORDER BY duration_ns LIMIT 1 OFFSET ?)",
            (pipeline, *window, offset),
        ).fetchone()
        return None if row is None else str(row[0])

    def sample(self, pipeline: str, since: float, until: float) -> PipelineSample:
        """The sample of ``pipeline``'s ended runs started in [since, until)."""
        window = (_ns(since), _ns(until))
        counts: dict[str, int] = {}
        total_ns = 0
        for status, count, duration in self._conn.execute(
            "SELECT status, count(*), sum(duration_ns) FROM run_aggregates "
            "INDEXED BY run_aggregates_start WHERE pipeline = ? AND start_ns >= ? "
            "AND start_ns < ? GROUP BY status",
            (pipeline, *window),
        ):
            counts[status] = count
            total_ns += duration or 0
        runs = sum(counts.values())
        stages = []
        keys = self._conn.execute(
            "SELECT key_no, stage FROM stage_keys WHERE pipeline = ? ORDER BY stage", (pipeline,)
        ).fetchall()
        for key_no, stage in keys:
            stats = self._conn.execute(
                "SELECT count(*), sum(failed), sum(attempt > 1), sum(cpu_s), count(cpu_s), "
                "max(peak_memory), count(queue_ns) FROM stage_attempts "
                "WHERE key_no = ? AND start_ns >= ? AND start_ns < ?",
                (key_no, *window),
            ).fetchone()
            if not stats[0]:
                continue
            critical = self._conn.execute(
                "SELECT sum(run_ns) FROM critical_steps WHERE key_no = ? AND start_ns >= ? "
                "AND start_ns < ?",
                (key_no, *window),
            ).fetchone()[0]
            where = "key_no = ? AND start_ns >= ? AND start_ns < ?"
            params = (key_no, *window)
            stages.append(
                StageSample(
                    stage=stage,
                    executions=stats[0],
                    failures=stats[1] or 0,
                    retries=stats[2] or 0,
                    cpu_seconds=stats[3],
                    cpu_samples=stats[4],
                    peak_memory_bytes=stats[5],
                    durations=_SortedColumn(
                        self._conn,
                        "stage_attempts",
                        "stage_attempts_duration",
                        "duration_ns",
                        where,
                        params,
                        stats[0],
                    ),
                    queue_waits=_SortedColumn(
                        self._conn,
                        "stage_attempts",
                        "stage_attempts_queue",
                        "queue_ns",
                        where,
                        params,
                        stats[6],
                    ),
                    critical_seconds=(critical or 0) / _NS,
                )
            )
        return PipelineSample(
            pipeline=pipeline,
            runs=runs,
            succeeded=counts.get("success", 0),
            failed=counts.get("failure", 0),
            durations=_SortedColumn(
                self._conn,
                "run_aggregates",
                "run_aggregates_duration",
                "duration_ns",
                "pipeline = ? AND start_ns >= ? AND start_ns < ?",
                (pipeline, *window),
                runs,
            ),
            total_seconds=total_ns / _NS,
            stages=tuple(stages),
            median_run=self._run_at(pipeline, window, (runs - 1) // 2) if runs else None,
            slowest_run=self._run_at(pipeline, window, runs - 1) if runs else None,
        )
