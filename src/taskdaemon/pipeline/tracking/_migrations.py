"""Bringing a span store file written by an older taskdaemon to ``SCHEMA_VERSION``.

Migrations run in one write transaction when a file is opened: version 1 gains the ``writers``
table and ``runs.writer_id`` (its open runs, having no known writer, read as interrupted);
version 2 (spans in a WITHOUT ROWID tree keyed by trace id) and 3 (a rowid table with a unique
index) have their thirteen-column rows rewritten into the v4 tables by one SQL statement each;
version 4 gains the (empty) aggregate tables;
version 5 gains the ``logs`` table;
version 6 gains the day tables, every day listed as stale (``add_day_tables``);
version 7 changes no table: from 8 on, a ``logs`` row may hold a batch of captured lines, and
the version says so to older taskdaemons, which then refuse the file with a one-line error
instead of showing each batch as one record;
version 8 has its span rows copied from the WITHOUT ROWID tree into the rowid table;
version 9 changes no table: the aggregates of replays that fed stages are dropped and written
again by the first report, under the rule that leaves fed executions and such replays out
(``forget_replays``);
version 10 gains ``runs.replay_of``, filled from the stored run spans (``_add_replay_of``);
version 11 changes no table: a replay's FAILED, which the writer counted before without the
stages it fed failed, is counted again from its stored spans (``_recount_replays``);
version 13 gains ``runs.scheduled_ns``, filled from the stored run spans (``_add_scheduled_ns``).

The tables they bring a file to are ``tracking._tables``; ``tracking._schema`` opens the file
and calls :func:`migrate` in its write transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from taskdaemon.pipeline.tracking._aggregates_schema import (
    add_day_tables,
    create_aggregates,
    forget_replays,
)
from taskdaemon.pipeline.tracking._tables import (
    DDL,
    LOGS_DDL,
    SCHEMA_VERSION,
    SPANS_DDL,
    execute_script,
)
from taskdaemon.pipeline.tracking._trace_read import select_trace
from taskdaemon.pipeline.tracking.reconstruct import find_root, reconstruct_run, summarize_run

__all__ = ["migrate"]


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """v2 records which writer started each run (to tell running from interrupted)."""
    conn.execute("ALTER TABLE runs ADD COLUMN writer_id INTEGER")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS writers (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, "
        "host TEXT NOT NULL, started_ns INTEGER NOT NULL, heartbeat_ns INTEGER NOT NULL, "
        "closed_ns INTEGER)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS runs_status ON runs (status, start_ns)")


def _migrate_thirteen_columns_to_4(conn: sqlite3.Connection) -> None:
    """v2 and v3 kept span rows in thirteen columns with the trace id and resource in each row;
    v4 numbers traces and resources and folds the rest of a span into one JSON body."""
    conn.execute("ALTER TABLE spans RENAME TO spans_v3")
    conn.execute("DROP INDEX IF EXISTS spans_start")
    conn.execute("DROP INDEX IF EXISTS spans_id")
    execute_script(conn, DDL)
    conn.execute(
        "INSERT INTO traces (trace_id, first_ns) SELECT trace_id, min(start_ns) FROM spans_v3 "
        "GROUP BY trace_id ORDER BY min(start_ns)"
    )
    conn.execute("INSERT OR IGNORE INTO resources (attributes) SELECT resource FROM spans_v3")
    conn.execute(
        "INSERT INTO spans (trace_no, span_id, start_ns, end_ns, resource_no, body) "
        "SELECT t.trace_no, s.span_id, s.start_ns, s.end_ns, r.resource_no, "
        "json_array(s.parent_span_id, s.name, s.kind, s.status_code, s.status_message, "
        "json(s.attributes), json(s.events), json(s.links)) "
        "FROM spans_v3 s JOIN traces t USING (trace_id) "
        "JOIN resources r ON r.attributes = s.resource"
    )
    conn.execute("INSERT INTO trace_resources SELECT DISTINCT trace_no, resource_no FROM spans")
    conn.execute("DROP TABLE spans_v3")


def _migrate_5_to_6(conn: sqlite3.Connection) -> None:
    """v6 keeps runs' log records beside their spans."""
    execute_script(conn, LOGS_DDL)


def _mark_batched_logs(conn: sqlite3.Connection) -> None:
    """Version 7 to 8 changes no table: the new version tells older taskdaemons that a
    ``logs`` row may hold a batch of lines (see the module docstring)."""


def _spans_to_rowid_table(conn: sqlite3.Connection) -> None:
    """v9 appends span rows to a rowid table instead of a WITHOUT ROWID tree (see the module
    docstring). The view names the table, so it is dropped first and made again with it."""
    conn.execute("DROP VIEW IF EXISTS spans_readable")
    conn.execute("ALTER TABLE spans RENAME TO spans_v8")
    execute_script(conn, SPANS_DDL)
    conn.execute(
        "INSERT INTO spans (trace_no, span_id, start_ns, end_ns, resource_no, body) "
        "SELECT trace_no, span_id, start_ns, end_ns, resource_no, body FROM spans_v8 "
        "ORDER BY trace_no, span_id"
    )
    conn.execute("DROP TABLE spans_v8")


def _add_run_column(conn: sqlite3.Connection, name: str, kind: str) -> None:
    """Add column ``name`` of type ``kind`` to ``runs`` unless the file has it already (a file
    set back to an older version by hand, as the upgrade tests do)."""
    if name not in {row[1] for row in conn.execute("PRAGMA table_info(runs)")}:
        conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


def _add_replay_of(conn: sqlite3.Connection) -> None:
    """v11 keeps the run a replay re-executed on its ``runs`` row, read here from the stored run
    spans: one pass over the span rows, whose text test skips the JSON of every span that does
    not name the attribute (only a replay's run span does), then one update a replay. A run
    whose run span is not stored keeps NULL, as ``summarize_run`` would say. Like the other
    migrations, it may run again on a file that has the column (one set back to an older
    version by hand, as the upgrade tests do)."""
    _add_run_column(conn, "replay_of", "TEXT")
    conn.execute(
        "UPDATE runs SET replay_of = found.original FROM ("
        " SELECT t.trace_id, max(NULLIF(CAST(json_extract(s.body, "
        "'$[5].\"taskdaemon.pipeline.replay_of\"') AS TEXT), '')) AS original"
        " FROM spans s JOIN traces t USING (trace_no)"
        " WHERE s.body LIKE '%\"taskdaemon.pipeline.replay_of\"%'"
        " AND json_extract(s.body, '$[0]') IS NULL GROUP BY t.trace_id"
        ") AS found WHERE runs.trace_id = found.trace_id AND found.original IS NOT NULL"
    )


def _recount_replays(conn: sqlite3.Connection) -> None:
    """v12 holds a replay's ``failed_stages`` to ``summarize_run``'s count, which counts a stage
    it fed by the status it was fed (``reconstruct.counted_status``). Written before, the
    count left such stages out, and a replay of a failed run was listed ``failure`` with no
    failed stage; only its spans can tell, so each ended replay is rebuilt from them, once.
    A replay whose run span is not stored keeps its count, as the writer left it."""
    ended = conn.execute(
        "SELECT trace_id FROM runs WHERE replay_of IS NOT NULL AND end_ns IS NOT NULL"
    ).fetchall()
    where = conn.execute("PRAGMA database_list").fetchone()[2]  # the file, for a warning
    for (trace_id,) in ended:
        spans = select_trace(conn, trace_id, where=where)
        if find_root(spans) is None:
            continue
        failed = summarize_run(reconstruct_run(spans)).failed_stages
        conn.execute("UPDATE runs SET failed_stages = ? WHERE trace_id = ?", (failed, trace_id))


def _add_scheduled_ns(conn: sqlite3.Connection) -> None:
    """v13 keeps the time a schedule meant a run to start on its ``runs`` row, read here from
    the stored run spans as ``_add_replay_of`` reads ``replay_of``: one pass whose text test
    skips every span that does not name the attribute (only a scheduled run's run span does).
    Only a whole, non-negative number is a due time (``landing.scheduled_at``): a foreign
    producer's text, float or bool keeps NULL, and so does an integer past 64 bits, which
    ``json_extract`` reads as a REAL (``json_type`` still says ``integer``): stored, it was a
    float where the reader of ``runs`` takes an int, and ``runs list`` skipped the run as a
    corrupt row. It may run again on a file that has the column.
    """
    _add_run_column(conn, "scheduled_ns", "INTEGER")
    conn.execute(
        "UPDATE runs SET scheduled_ns = found.due FROM ("
        " SELECT t.trace_id, max(json_extract(s.body, '$[5].\"taskdaemon.pipeline."
        "scheduled_at_ns\"')) AS due FROM spans s JOIN traces t USING (trace_no)"
        " WHERE s.body LIKE '%\"taskdaemon.pipeline.scheduled_at_ns\"%'"
        " AND json_extract(s.body, '$[0]') IS NULL"
        " AND json_type(s.body, '$[5].\"taskdaemon.pipeline.scheduled_at_ns\"') = 'integer'"
        " AND typeof(json_extract(s.body, '$[5].\"taskdaemon.pipeline.scheduled_at_ns\"'))"
        " = 'integer'"
        " AND json_extract(s.body, '$[5].\"taskdaemon.pipeline.scheduled_at_ns\"') >= 0"
        " GROUP BY t.trace_id"
        ") AS found WHERE runs.trace_id = found.trace_id"
    )


_MIGRATIONS: Final = {
    1: _migrate_1_to_2,
    2: _migrate_thirteen_columns_to_4,
    3: _migrate_thirteen_columns_to_4,
    4: create_aggregates,
    5: _migrate_5_to_6,
    6: add_day_tables,
    7: _mark_batched_logs,
    8: _spans_to_rowid_table,
    9: forget_replays,
    10: _add_replay_of,
    11: _recount_replays,
    12: _add_scheduled_ns,
}
# What each migration brings the file to (2 -> 4 skips the v3 layout: both become v4 alike).
_MIGRATED_TO: Final = {
    1: 2,
    2: 4,
    3: 4,
    4: 5,
    5: 6,
    6: 7,
    7: 8,
    8: 9,
    9: 10,
    10: 11,
    11: 12,
    12: 13,
}


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring the store of ``conn``, at ``version`` (1 or more), to ``SCHEMA_VERSION``, one
    migration after another, in the caller's transaction."""
    while version < SCHEMA_VERSION:
        _MIGRATIONS[version](conn)
        version = _MIGRATED_TO[version]
