"""One ended run's report aggregate rows (``tracking.aggregates``): from a run rebuilt from its
stored spans (``write_run``, ``write_record``) or from the attempts the writer kept as it ran
(``write_kept``, ``tracking._kept_runs``). Both paths compute every figure with the same
arithmetic, so they write the same rows (a test holds them equal).

A batch's runs are queued on a ``Pending`` and inserted together, a table at a time, not three
statements a run, and many rows a statement (``tracking._row_inserts``), not one a stage. A run
that already has aggregates (only a run span ended twice has) loses its old rows first, and its
days are listed as stale instead of added to: sums cannot be taken back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, Final

from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.reporting import (
    FED,
    ChainStep,
    critical_chain,
    fed_stages,
    run_fired,
    run_upstream,
    stage_intervals,
)
from taskdaemon.pipeline.status_rules import FAILED_STAGE_STATUSES
from taskdaemon.pipeline.tracking._day_totals import DayTotals, day_of, mark_stale
from taskdaemon.pipeline.tracking._kept_runs import KeptRun
from taskdaemon.pipeline.tracking._kept_runs import to_ns as _ns
from taskdaemon.pipeline.tracking._row_inserts import insert_rows, statements

__all__ = ["Pending", "write_kept", "write_record", "write_run"]


def _learn_keys(
    conn: sqlite3.Connection, pipeline: str, stages: Iterable[str], cache: dict[Any, int]
) -> None:
    """Put the ``stage_keys`` numbers of ``pipeline``'s ``stages`` in ``cache``, creating the
    missing ones: one insert of the new keys and one read of the pipeline's, not two statements
    a stage (each ``taskdaemon run`` starts with an empty cache, so a run of 300 new stages
    paid 600 statements)."""
    missing = [
        (pipeline, stage) for stage in dict.fromkeys(stages) if (pipeline, stage) not in cache
    ]
    if not missing:
        return
    insert_rows(conn, _INSERT_KEYS, missing)
    for stage, number in conn.execute(
        "SELECT stage, key_no FROM stage_keys WHERE pipeline = ?", (pipeline,)
    ):
        cache[pipeline, stage] = number


_INSERT_KEYS: Final = statements("INSERT OR IGNORE INTO stage_keys (pipeline, stage) VALUES", 2, 64)
_INSERT_RUN: Final = statements("INSERT INTO run_aggregates VALUES", 6, 64)
_INSERT_ATTEMPT: Final = statements("INSERT OR REPLACE INTO stage_attempts VALUES", 10, 64)
_INSERT_STEP: Final = statements("INSERT OR REPLACE INTO critical_steps VALUES", 5, 64)


class Pending:
    """Aggregate rows of ended runs not written yet: a batch's runs are written together, a
    table at a time, not three statements a run. ``known``: the runs known to have rows already
    (None: not known, each run is looked up)."""

    def __init__(self, known: set[int] | None = None) -> None:
        self.known = known
        self.traces: set[int] = set()
        self.runs: list[tuple[Any, ...]] = []
        self.attempts: list[tuple[Any, ...]] = []
        self.steps: list[tuple[Any, ...]] = []

    def flush(self, conn: sqlite3.Connection) -> None:
        """Insert the rows gathered (inside the caller's transaction), then start over."""
        if self.runs:
            insert_rows(conn, _INSERT_RUN, self.runs)
            insert_rows(conn, _INSERT_ATTEMPT, self.attempts)
            insert_rows(conn, _INSERT_STEP, self.steps)
        self.traces, self.runs, self.attempts, self.steps = set(), [], [], []


def _step_rows(
    path: Iterable[ChainStep],
    pipeline: str,
    start_ns: int,
    trace_no: int,
    keys: Mapping[Any, int],
) -> tuple[list[tuple[int, int, int, int, int]], int]:
    """The ``critical_steps`` rows of a run's critical path (``reporting.critical_chain``), and
    its length in ns: the sum ``CriticalPath.length`` takes, of the same terms."""
    rows = []
    terms = []
    for stage, start, end, wait, _ in path:
        took = max(0.0, end - start)  # CriticalStep.duration
        terms.append(wait + took)
        rows.append((keys[pipeline, stage], start_ns, trace_no, _ns(wait), _ns(took)))
    return rows, _ns(sum(terms))


def _put_run(  # noqa: PLR0917 (one value per run_aggregates column, then the run's rows)
    conn: sqlite3.Connection,
    trace_no: int,
    pipeline: str,
    status: str,
    start_ns: int,
    duration_ns: int,
    critical_ns: int,
    attempts: list[tuple[Any, ...]],
    steps: list[tuple[int, int, int, int, int]],
    own_key: int,
    days: DayTotals,
    pending: Pending,
) -> None:
    """Queue one ended run's rows on ``pending`` and add it to ``days``. A run aggregated before
    loses its old rows first, and its days (old and new) are listed as stale instead of added
    to (sums cannot be taken back)."""
    known = pending.known
    before = None
    if known is None or trace_no in known:
        if trace_no in pending.traces:  # the same run twice in one batch: the first one is read
            pending.flush(conn)
        before = conn.execute(
            "SELECT pipeline, start_ns FROM run_aggregates WHERE trace_no = ?", (trace_no,)
        ).fetchone()
    if known is not None:
        known.add(trace_no)
    if before is not None:
        _forget_run(conn, trace_no, before[0], before[1])
        mark_stale(conn, before[0], [day_of(before[1])])
        mark_stale(conn, pipeline, [day_of(start_ns)])
    pending.traces.add(trace_no)
    pending.runs.append((trace_no, pipeline, status, start_ns, duration_ns, critical_ns))
    pending.attempts += attempts
    pending.steps += steps
    if before is None:
        days.add_run(own_key, start_ns, status, duration_ns, attempts, steps)


def write_run(
    conn: sqlite3.Connection,
    trace_no: int,
    run: RunRecord,
    cache: dict[Any, int] | None = None,
    days: DayTotals | None = None,
) -> None:
    """Write the aggregates of one ended run (replacing any already there) and add it to
    ``days`` (the caller flushes them; None: flushed here). A run aggregated before is
    replaced, and its days are listed as stale instead (sums cannot be taken back)."""
    pending = Pending()
    totals = DayTotals() if days is None else days
    write_record(conn, trace_no, run, {} if cache is None else cache, totals, pending)
    pending.flush(conn)
    if days is None:
        totals.flush(conn)


def write_record(  # noqa: PLR0917 (write_run's, and the batch's pending rows)
    conn: sqlite3.Connection,
    trace_no: int,
    run: RunRecord,
    keys: dict[Any, int],
    days: DayTotals,
    pending: Pending,
) -> None:
    """``write_run`` of a rebuilt run, its rows queued on ``pending``."""
    if run.end is None:
        return
    start_ns = _ns(run.start)
    # A replay that fed stages: no run figures, no critical path; its fed executions are not
    # attempts (``reporting._replays``; ``kept_run`` does the same).
    fed = fed_stages(run)
    upstream = run_upstream(run)  # reporting.run_critical_path, as tuples
    fired = None if fed else run_fired(run)
    path = (
        []
        if fed
        else critical_chain(
            run.start,
            stage_intervals(run),
            lambda s: upstream.get(s, ()),
            None if not fired else (lambda s: fired.get(s, ())),
        )
    )
    ran = [s for s in run.stages if any(a.end is not None and a.status != FED for a in s.attempts)]
    # With the pipeline's own key (stage ""), last: keys are numbered in order of first sight.
    stages = [s.name for s in ran] + [step[0] for step in path] + [""]
    _learn_keys(conn, run.pipeline, stages, keys)
    attempts = []
    for stage in ran:
        key_no = keys[run.pipeline, stage.name]
        for attempt in stage.attempts:
            if attempt.end is None or attempt.status == FED:
                continue
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
    steps, length_ns = _step_rows(path, run.pipeline, start_ns, trace_no, keys)
    _put_run(
        conn,
        trace_no,
        run.pipeline,
        FED if fed else run.status,
        start_ns,
        _ns(run.duration or 0.0),
        length_ns,
        attempts,
        steps,
        keys[run.pipeline, ""],
        days,
        pending,
    )


def write_kept(  # noqa: PLR0917 (write_run's, from a KeptRun)
    conn: sqlite3.Connection,
    trace_no: int,
    run: KeptRun,
    keys: dict[Any, int],
    days: DayTotals,
    pending: Pending,
) -> None:
    """``write_record`` of a run whose attempts were kept as it ran (``tracking._kept_runs``):
    the same rows, straight from the kept tuples."""
    pipeline, start_ns = run.pipeline, run.start_ns
    _learn_keys(conn, pipeline, [*run.stages, ""], keys)
    # In the order the attempts ended, not grouped by stage: a stage's own attempts keep their
    # order, which is all the day totals' float sums depend on.
    attempts = [
        (
            keys[pipeline, name],
            start_ns,
            trace_no,
            span_id,
            attempt,
            failed,
            _ns(end - start),
            None if queue is None else _ns(queue),
            cpu,
            memory,
        )
        for name, span_id, attempt, failed, start, end, queue, cpu, memory, _, _, _ in run.attempts
    ]
    steps, length_ns = _step_rows(run.path, pipeline, start_ns, trace_no, keys)
    _put_run(
        conn,
        trace_no,
        pipeline,
        run.status,
        start_ns,
        run.duration_ns,
        length_ns,
        attempts,
        steps,
        keys[pipeline, ""],
        days,
        pending,
    )


def _forget_run(conn: sqlite3.Connection, trace_no: int, pipeline: str, start_ns: int) -> None:
    """Delete one run's aggregate rows (the day rows are rebuilt: see ``write_run``)."""
    keys = "SELECT key_no FROM stage_keys WHERE pipeline = ?"
    for table in ("stage_attempts", "critical_steps"):
        conn.execute(
            f"DELETE FROM {table} WHERE key_no IN ({keys}) AND start_ns = ? "  # noqa: S608
            "AND trace_no = ?",
            (pipeline, start_ns, trace_no),
        )
    conn.execute("DELETE FROM run_aggregates WHERE trace_no = ?", (trace_no,))
