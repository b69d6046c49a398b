"""Retention's pass over the span store: which runs a policy dooms, and deleting their rows.

``SpanStore.apply_retention`` (``tracking.store``) holds the contract; this module holds the
SQL. The pass runs whenever a store or a writer opens with a policy in the environment, so
what it reads must not grow with the whole history:

- the runs beyond the newest ``keep`` of a pipeline are found from the ``keep``-th newest
  start of each pipeline, read on the (pipeline, start) index, the pipelines themselves by
  seeking from one name to the next: the pass reads ``keep`` index entries a pipeline, not
  every run (a ``ROW_NUMBER`` over all runs did);
- a store whose runs all fit within ``keep`` is told so without counting them: ``runs`` is a
  rowid table, and its rows' distinct rowids all lie between its least and greatest, two
  seeks; when that span is no wider than ``keep``, no pipeline can hold more, and no pipeline
  is walked (the walk read every run of a store under ``keep``: a pass that deleted nothing
  grew with the history);
- runs older than ``max_age`` are a range of the start index;
- when nothing is doomed, nothing is deleted and nothing else is read;
- a resource is looked at only when a doomed trace used it.

The rowid span is a bound, not a count: runs deleted from the middle of the history (by
``keep`` from one pipeline of several) leave gaps that widen it, and then each pipeline is
walked as above, up to ``keep`` entries. An exact ``count(*)`` was not chosen for the bound:
it visits every leaf page of an index, fewer steps than a walk but still as many more as the
history is longer.

What still grows with the history when something is deleted: dropping the closed writers no
run refers to reads every run's ``writer_id`` (no index holds it). Traces without a run row (other
services') go by ``max_age`` alone: counting them for ``keep`` would read every trace, runs'
included, on every open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Final

from taskdaemon.pipeline.tracking._schema import PIPELINE_NAMES

__all__ = ["delete_expired"]

_DOOMED_NOS: Final = (
    "SELECT trace_no FROM traces WHERE trace_id IN (SELECT trace_id FROM temp.doomed)"
)


#: Whether every run fits within ``?`` runs: the rowid span bounds the count (module docstring).
#: NULL (no runs) counts as true.
_ALL_WITHIN: Final = (
    "SELECT coalesce((SELECT max(rowid) FROM runs) - (SELECT min(rowid) FROM runs) < ?, 1)"
)


def _doom_beyond(conn: sqlite3.Connection, pipeline: str, keep: int) -> None:
    """Add to ``temp.doomed`` the runs of ``pipeline`` past its newest ``keep``, newest first
    by start then by run id (the order ``runs list`` shows)."""
    if keep == 0:
        conn.execute(
            "INSERT OR IGNORE INTO temp.doomed SELECT trace_id FROM runs WHERE pipeline = ?",
            (pipeline,),
        )
        return
    row = conn.execute(
        "SELECT start_ns FROM runs WHERE pipeline = ? ORDER BY start_ns DESC LIMIT 1 OFFSET ?",
        (pipeline, keep - 1),
    ).fetchone()
    if row is None:  # no more than ``keep`` runs
        return
    last_kept = row[0]
    (newer,) = conn.execute(
        "SELECT count(*) FROM runs WHERE pipeline = ? AND start_ns > ?", (pipeline, last_kept)
    ).fetchone()
    conn.execute(
        "INSERT OR IGNORE INTO temp.doomed SELECT trace_id FROM runs "
        "WHERE pipeline = ? AND start_ns < ?",
        (pipeline, last_kept),
    )
    # Runs that started at the same instant as the last one kept: those ``runs list`` shows
    # first (the store's search orders a start's runs by descending id) are kept.
    conn.execute(
        "INSERT OR IGNORE INTO temp.doomed SELECT trace_id FROM (SELECT trace_id FROM runs "
        "WHERE pipeline = ? AND start_ns = ? ORDER BY trace_id DESC LIMIT -1 OFFSET ?)",
        (pipeline, last_kept, keep - newer),
    )


def _delete_doomed(conn: sqlite3.Connection) -> tuple[int, int]:
    """Delete the doomed traces' rows; (runs, spans) deleted."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS freed (resource_no INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM temp.freed")
    freed = f"SELECT resource_no FROM trace_resources WHERE trace_no IN ({_DOOMED_NOS})"  # noqa: S608
    conn.execute(f"INSERT OR IGNORE INTO temp.freed {freed}")
    spans = conn.execute(f"DELETE FROM spans WHERE trace_no IN ({_DOOMED_NOS})").rowcount  # noqa: S608
    conn.execute(f"DELETE FROM trace_resources WHERE trace_no IN ({_DOOMED_NOS})")  # noqa: S608
    conn.execute(
        "DELETE FROM resources WHERE resource_no IN (SELECT resource_no FROM temp.freed) "
        "AND NOT EXISTS (SELECT 1 FROM trace_resources t "
        "WHERE t.resource_no = resources.resource_no)"
    )
    conn.execute("DELETE FROM temp.freed")
    conn.execute("DELETE FROM traces WHERE trace_id IN (SELECT trace_id FROM temp.doomed)")
    conn.execute("DELETE FROM logs WHERE trace_id IN (SELECT trace_id FROM temp.doomed)")
    runs = conn.execute(
        "DELETE FROM runs WHERE trace_id IN (SELECT trace_id FROM temp.doomed)"
    ).rowcount
    conn.execute(
        "DELETE FROM writers WHERE closed_ns IS NOT NULL AND id NOT IN "
        "(SELECT writer_id FROM runs WHERE writer_id IS NOT NULL)"
    )
    return runs, spans


def delete_expired(
    conn: sqlite3.Connection,
    *,
    cutoff_ns: int | None,
    keep: int | None,
    writer_alive: Callable[[sqlite3.Connection, int | None], bool],
) -> tuple[int, int]:
    """In the open write transaction on ``conn``: delete the runs that started before
    ``cutoff_ns`` or, per pipeline, are beyond the newest ``keep`` (None: no such limit),
    except those whose writer is alive (``writer_alive(conn, writer_id)``), with their spans,
    log records and the resources only they used; traces without a run row whose first span is
    older than ``cutoff_ns`` go too. Returns (runs, spans) deleted."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (trace_id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp.doomed")
    if cutoff_ns is not None:
        conn.execute(
            "INSERT OR IGNORE INTO temp.doomed SELECT trace_id FROM runs WHERE start_ns < ?",
            (cutoff_ns,),
        )
    if keep is not None and not conn.execute(_ALL_WITHIN, (keep,)).fetchone()[0]:
        for (pipeline,) in conn.execute(PIPELINE_NAMES).fetchall():
            _doom_beyond(conn, pipeline, keep)
    open_rows = conn.execute(
        "SELECT r.trace_id, r.writer_id FROM temp.doomed d CROSS JOIN runs r "
        "ON r.trace_id = d.trace_id WHERE r.end_ns IS NULL"
    ).fetchall()
    for trace_id, writer_id in open_rows:
        if writer_alive(conn, writer_id):
            conn.execute("DELETE FROM temp.doomed WHERE trace_id = ?", (trace_id,))
    if cutoff_ns is not None:
        # Traces no run row describes (spans of other services) go by their age.
        conn.execute(
            "INSERT OR IGNORE INTO temp.doomed SELECT trace_id FROM traces t "
            "WHERE first_ns < ? AND NOT EXISTS (SELECT 1 FROM runs r "
            "WHERE r.trace_id = t.trace_id)",
            (cutoff_ns,),
        )
    deleted = (0, 0)
    if conn.execute("SELECT EXISTS (SELECT 1 FROM temp.doomed)").fetchone()[0]:
        deleted = _delete_doomed(conn)
    conn.execute("DELETE FROM temp.doomed")
    return deleted
