"""The span store's report aggregates (schema versions 5 and 7): tables ``tracking.aggregates``
fills as runs end, so ``taskdaemon report`` reads indexed summaries instead of rebuilding every run.

- ``stage_keys``: one number per (pipeline, stage) name pair;
- ``run_aggregates``: one row per ended run (``trace_no``): pipeline, status, start, duration and
  the length of its critical path. Its presence says the run's aggregates are written;
- ``stage_attempts``: one row per ended stage attempt of an ended run, keyed by the stage and
  the *run's* start (a report window selects runs by when they started), with its status,
  duration, queue wait, CPU time and peak memory;
- ``critical_steps``: for each ended run, each stage on its critical path, with the time it
  waited before starting and the time it ran.

- (v7) ``stage_days``, ``run_days``, ``histogram_days``: per-day totals and log-scale
  histograms, and ``stale_days``, the days to rebuild (``tracking._day_totals``).

The indexes ``(key, value, start)`` let a report read any percentile of a window as one indexed
step inside one histogram bucket (see ``tracking._day_totals``). A trigger drops a trace's
aggregates when retention deletes the trace, and lists its day as stale. Files written before
version 5 gain empty tables; their ended runs are aggregated the first time a report reads the
store. Files of version 5 or 6 gain the day tables with every day that has runs listed as
stale, so the first report fills them (:func:`add_day_tables`). Files of version 9 or older lose
the aggregates of replays that fed stages, written when a fed execution still counted as an
attempt, with their days listed as stale: the first report aggregates them again under the
rule of ``reporting._replays`` (:func:`forget_replays`).
"""

from __future__ import annotations

import sqlite3
from typing import Final

__all__ = ["add_day_tables", "create_aggregates", "forget_replays"]

_TABLES: Final = """
CREATE TABLE IF NOT EXISTS stage_keys (
    key_no INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    stage TEXT NOT NULL,
    UNIQUE (pipeline, stage)
);
CREATE TABLE IF NOT EXISTS run_aggregates (
    trace_no INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    status TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    critical_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS run_aggregates_start
    ON run_aggregates (pipeline, start_ns, status, duration_ns);
CREATE INDEX IF NOT EXISTS run_aggregates_duration
    ON run_aggregates (pipeline, duration_ns, start_ns);
CREATE TABLE IF NOT EXISTS stage_attempts (
    key_no INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    trace_no INTEGER NOT NULL,
    span_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    queue_ns INTEGER,
    cpu_s REAL,
    peak_memory INTEGER,
    PRIMARY KEY (key_no, start_ns, trace_no, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stage_attempts_duration
    ON stage_attempts (key_no, duration_ns, start_ns);
CREATE INDEX IF NOT EXISTS stage_attempts_queue ON stage_attempts (key_no, queue_ns, start_ns);
CREATE TABLE IF NOT EXISTS critical_steps (
    key_no INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    trace_no INTEGER NOT NULL,
    wait_ns INTEGER NOT NULL,
    run_ns INTEGER NOT NULL,
    PRIMARY KEY (key_no, start_ns, trace_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stage_days (
    key_no INTEGER NOT NULL,
    day INTEGER NOT NULL,
    executions INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    cpu_s REAL,
    cpu_count INTEGER NOT NULL,
    peak_memory INTEGER,
    queue_count INTEGER NOT NULL,
    critical_ns INTEGER NOT NULL,
    PRIMARY KEY (key_no, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_days (
    key_no INTEGER NOT NULL,
    day INTEGER NOT NULL,
    status TEXT NOT NULL,
    runs INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    PRIMARY KEY (key_no, day, status)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS histogram_days (
    key_no INTEGER NOT NULL,
    series INTEGER NOT NULL,
    day INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (key_no, series, day, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stale_days (
    pipeline TEXT NOT NULL,
    day INTEGER NOT NULL,
    PRIMARY KEY (pipeline, day)
) WITHOUT ROWID
"""

# The UTC day of run_aggregates.start_ns in SQL (``/`` truncates toward zero; this floors).
_DAY: Final = "(start_ns / 86400000000000 - (start_ns % 86400000000000 < 0))"

# One statement (its body holds several): executed apart from the tables above.
_TRIGGER: Final = f"""
CREATE TRIGGER IF NOT EXISTS traces_drop_aggregates AFTER DELETE ON traces BEGIN
    INSERT OR IGNORE INTO stale_days SELECT pipeline, {_DAY} FROM run_aggregates
        WHERE trace_no = old.trace_no AND status != 'unknown';
    DELETE FROM stage_attempts WHERE trace_no = old.trace_no
        AND start_ns = (SELECT start_ns FROM run_aggregates WHERE trace_no = old.trace_no)
        AND key_no IN (SELECT key_no FROM stage_keys WHERE pipeline =
            (SELECT pipeline FROM run_aggregates WHERE trace_no = old.trace_no));
    DELETE FROM critical_steps WHERE trace_no = old.trace_no
        AND start_ns = (SELECT start_ns FROM run_aggregates WHERE trace_no = old.trace_no)
        AND key_no IN (SELECT key_no FROM stage_keys WHERE pipeline =
            (SELECT pipeline FROM run_aggregates WHERE trace_no = old.trace_no));
    DELETE FROM run_aggregates WHERE trace_no = old.trace_no;
END
"""  # noqa: S608 (no input: _DAY is a constant)


def create_aggregates(conn: sqlite3.Connection) -> None:
    """Create the aggregate tables, indexes and trigger (idempotent; inside the caller's
    transaction: statements are run one by one, never through ``executescript``)."""
    for statement in _TABLES.split(";\n"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(_TRIGGER)


def add_day_tables(conn: sqlite3.Connection) -> None:
    """Version 6 to 7: the day tables, the trigger that marks days stale, and every day with
    runs listed as stale (rebuilt by the first report; inside the caller's transaction)."""
    conn.execute("DROP TRIGGER IF EXISTS traces_drop_aggregates")
    create_aggregates(conn)
    conn.execute(
        f"INSERT OR IGNORE INTO stale_days SELECT DISTINCT pipeline, {_DAY} "  # noqa: S608
        "FROM run_aggregates WHERE status != 'unknown'"
    )


def forget_replays(conn: sqlite3.Connection) -> None:
    """Version 9 to 10: drop the aggregates of every run with a fed (``replayed``) stage span
    and list its day as stale; the first report aggregates those runs again (inside the
    caller's transaction). One pass over the span rows: the text test skips the JSON of every
    span that cannot be fed."""
    for (trace_no,) in conn.execute(
        "SELECT DISTINCT a.trace_no FROM spans s JOIN run_aggregates a USING (trace_no) "
        "WHERE s.body LIKE '%\"replayed\"%' AND a.status != 'unknown' "
        "AND json_extract(s.body, '$[5].\"taskdaemon.stage.status\"') = 'replayed'"
    ).fetchall():
        conn.execute(
            f"INSERT OR IGNORE INTO stale_days SELECT pipeline, {_DAY} "  # noqa: S608
            "FROM run_aggregates WHERE trace_no = ?",
            (trace_no,),
        )
        for table in ("stage_attempts", "critical_steps"):
            conn.execute(
                f"DELETE FROM {table} WHERE trace_no = ?1 "  # noqa: S608 (a constant name)
                "AND start_ns = (SELECT start_ns FROM run_aggregates WHERE trace_no = ?1) "
                "AND key_no IN (SELECT key_no FROM stage_keys WHERE pipeline = "
                "(SELECT pipeline FROM run_aggregates WHERE trace_no = ?1))",
                (trace_no,),
            )
        conn.execute("DELETE FROM run_aggregates WHERE trace_no = ?", (trace_no,))
