"""The span store's report aggregates (schema version 5): tables ``tracking.aggregates`` fills
as runs end, so ``taskdaemon report`` reads indexed summaries instead of rebuilding every run.

- ``stage_keys``: one number per (pipeline, stage) name pair;
- ``run_aggregates``: one row per ended run (``trace_no``): pipeline, status, start, duration and
  the length of its critical path. Its presence says the run's aggregates are written;
- ``stage_attempts``: one row per ended stage attempt of an ended run, keyed by the stage and
  the *run's* start (a report window selects runs by when they started), with its status,
  duration, queue wait, CPU time and peak memory;
- ``critical_steps``: for each ended run, each stage on its critical path, with the time it
  waited before starting and the time it ran.

The indexes ``(key, value, start)`` let a report read any percentile of a window as one indexed
``LIMIT 2 OFFSET k`` step (see ``tracking.aggregates``). A trigger drops a trace's aggregates
when retention deletes the trace. Files written before version 5 gain empty tables; their ended
runs are aggregated the first time a report reads the store.
"""

from __future__ import annotations

import sqlite3
from typing import Final

__all__ = ["create_aggregates"]

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
) WITHOUT ROWID
"""

# One statement (its body holds several): executed apart from the tables above.
_TRIGGER: Final = """
CREATE TRIGGER IF NOT EXISTS traces_drop_aggregates AFTER DELETE ON traces BEGIN
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
"""


def create_aggregates(conn: sqlite3.Connection) -> None:
    """Create the aggregate tables, indexes and trigger (idempotent; inside the caller's
    transaction: statements are run one by one, never through ``executescript``)."""
    for statement in _TABLES.split(";\n"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(_TRIGGER)
