"""The span store's tables as this version makes them (``SCHEMA_VERSION``).

Schema version 13 (``PRAGMA user_version``):

- ``traces``: one row per trace seen, numbering it (``trace_no``, increasing in order of first
  sight) so span rows carry a small, append-ordered key instead of a random 32-digit id, with the
  start of its first stored span (``first_ns``: retention ages traces that have no run by it);
- ``resources``: one row per distinct resource (its attributes as JSON), referenced by number;
  ``trace_resources`` says which traces use which resource, so retention can drop resources no
  span refers to any more without scanning the spans;
- ``spans``: one row per span, appended in a rowid table, with a unique index on (``trace_no``,
  ``span_id``) that finds a trace's spans and lets a span's end row replace its start row.
  ``start_ns`` and ``end_ns`` are columns (retention and open-span checks read them); everything
  else is one JSON array in ``body``: ``[parent_span_id, name, kind, status_code,
  status_message, attributes, events, links]`` with events as ``[name, time_ns, attributes]``
  and links as ``[trace_id, span_id, attributes]``, and a ninth item, ``[attributes, events,
  links]`` the SDK dropped past its span limits, only when it dropped some (an older reader
  refuses such a row as damaged, and says so, rather than reading the span as whole).
  ``spans_readable`` shows the same rows with named columns for people reading the file with
  ``sqlite3``;
- ``runs``: one row per run (trace), denormalized from the root span (see ``store``); v11
  adds ``replay_of``, the run a replay re-executed (the run span's
  ``taskdaemon.pipeline.replay_of``), so that every list of runs read from the store can tell
  a replay from the run it replayed; v12 changes no table: it says that a replay's
  ``failed_stages`` counts the stages it fed failed (``tracking._migrations``); v13 adds
  ``scheduled_ns``, the time a schedule meant a run to start (the run span's
  ``taskdaemon.pipeline.scheduled_at_ns``, NULL for a run no schedule started), so that
  ``runs list`` can show each scheduled run's landing delay (``landing``) from the row alone;
- ``writers``: one row per processor (pid, host, start, heartbeat, clean close);
- the report aggregates (v5): ``stage_keys``, ``run_aggregates``, ``stage_attempts``,
  ``critical_steps``, described in ``tracking._aggregates_schema``.
- ``logs`` (v6): one row per log record of a run (``trace_id`` = run id; ``tracking.log_writer``
  writes them, ``tracking.log_read`` reads them): time, severity number and text, the stage,
  instance and attempt, the span id, the logger (scope) name, the body and the other attributes
  as a JSON object. Rows are appended in order (``id``), so a reader follows a run by asking for
  ids above the last one it saw; retention deletes a run's logs with its spans. Captured output
  is one row per batch of lines, holding their ids (``tracking._output_rows``; v8: older
  versions read such a row as one record, so they must refuse the file).
- the report aggregates' per-day totals and histograms (v7): ``stage_days``, ``run_days``,
  ``histogram_days``, ``stale_days`` (``tracking._day_totals``).

Why this shape: ingest is bound by the rows SQLite writes. Version 3 kept thirteen columns and a
unique index on (trace id, span id): random trace ids scattered index entries over the whole
index, so each batch dirtied most index pages, and the resource JSON was repeated in every row.
Version 4 writes six values per span into one append-ordered tree, which cut SQLite's own time
per row by about 40% (figures in ``benchmarks/README.md``, "Span store"). That tree was a
WITHOUT ROWID table: its rows are its B-tree's keys, and a span row (1-2 KB with its payload
events, a third of a page) is far above the twentieth of a page such tables are meant for. With
many runs open at once, each row landed in another trace's pages, and each insert split or
rewrote a nearly full page. Version 9 appends the rows to a rowid table and keeps only the
small (trace, span) key in the index, which cut SQLite's time per row of the concurrent-runs
workload by about 3x and halved the file (``benchmarks/README.md``, "Round 11 (lead)").

Opening a file and creating them is ``tracking._schema``; bringing an older file to them,
``tracking._migrations``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Final

__all__ = [
    "DDL",
    "INSERT_RUN",
    "LOGS_DDL",
    "SCHEMA_VERSION",
    "SPANS_DDL",
    "execute_script",
    "insert_writer",
]

SCHEMA_VERSION: Final = 13

LOGS_DDL: Final = """
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    level TEXT NOT NULL,
    pipeline TEXT,
    stage TEXT,
    instance INTEGER,
    attempt INTEGER,
    span_id TEXT,
    scope TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_trace ON logs (trace_id, id)
"""

# The span rows and their readable view (a migration makes them again on their own).
SPANS_DDL: Final = """
CREATE TABLE IF NOT EXISTS spans (
    trace_no INTEGER NOT NULL,
    span_id TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    resource_no INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (trace_no, span_id)
);
CREATE VIEW IF NOT EXISTS spans_readable AS
SELECT t.trace_id, s.span_id, json_extract(s.body, '$[0]') AS parent_span_id,
    json_extract(s.body, '$[1]') AS name, json_extract(s.body, '$[2]') AS kind, s.start_ns,
    s.end_ns, json_extract(s.body, '$[3]') AS status_code,
    json_extract(s.body, '$[4]') AS status_message, json_extract(s.body, '$[5]') AS attributes,
    json_extract(s.body, '$[6]') AS events, json_extract(s.body, '$[7]') AS links,
    r.attributes AS resource
FROM spans s JOIN traces t USING (trace_no) JOIN resources r USING (resource_no);
"""

_BASE_DDL: Final = (
    """
CREATE TABLE IF NOT EXISTS traces (
    trace_no INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL UNIQUE,
    first_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_first ON traces (first_ns);
CREATE TABLE IF NOT EXISTS resources (
    resource_no INTEGER PRIMARY KEY,
    attributes TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS trace_resources (
    trace_no INTEGER NOT NULL,
    resource_no INTEGER NOT NULL,
    PRIMARY KEY (trace_no, resource_no)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trace_resources_resource ON trace_resources (resource_no);
"""
    + SPANS_DDL
    + """
CREATE TABLE IF NOT EXISTS runs (
    trace_id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    status TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    stage_count INTEGER NOT NULL DEFAULT 0,
    failed_stages INTEGER NOT NULL DEFAULT 0,
    writer_id INTEGER,
    replay_of TEXT,
    scheduled_ns INTEGER
);
CREATE INDEX IF NOT EXISTS runs_pipeline_start ON runs (pipeline, start_ns);
CREATE INDEX IF NOT EXISTS runs_start ON runs (start_ns);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, start_ns);
CREATE TABLE IF NOT EXISTS writers (
    id INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_ns INTEGER NOT NULL,
    heartbeat_ns INTEGER NOT NULL,
    closed_ns INTEGER
);
"""
)
DDL: Final = _BASE_DDL + ";\n" + LOGS_DDL


#: A run's row when its run span starts (a row already there, its end's, is kept).
INSERT_RUN: Final = (
    "INSERT OR IGNORE INTO runs (trace_id, pipeline, status, start_ns, stage_count, writer_id, "
    "replay_of, scheduled_ns) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)"
)


def insert_writer(conn: sqlite3.Connection) -> int | None:
    """Insert this process's ``writers`` row, its heartbeat now; its id."""
    import socket  # noqa: PLC0415 - writers only: the readers of the store do not load it

    now = time.time_ns()
    return conn.execute(
        "INSERT INTO writers (pid, host, started_ns, heartbeat_ns) VALUES (?, ?, ?, ?)",
        (os.getpid(), socket.gethostname(), now, now),
    ).lastrowid


def execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``script``'s statements one by one in the caller's transaction."""
    # Statement by statement: executescript would commit the caller's transaction half-way.
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)
