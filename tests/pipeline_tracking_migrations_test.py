"""Opening a span store written by an older schema: each older version is migrated in place,
version 8's spans move to a rowid table, and a newer schema is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline_tracking_support import T0, S, make_provider, orphans_and_integrity, write_example_run
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import (
    SCHEMA_VERSION,
    RetentionPolicy,
    SpanEventRecord,
    SpanLinkRecord,
    SpanRecord,
    SpanStore,
    SqliteSpanProcessor,
)

_THIRTEEN_COLUMNS = """
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT NOT NULL,
    kind TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER, status_code TEXT NOT NULL,
    status_message TEXT NOT NULL, attributes TEXT NOT NULL, events TEXT NOT NULL,
    links TEXT NOT NULL, resource TEXT NOT NULL"""


# The span tables of the three earlier schema versions (v1 and v2 share one).
_OLD_SPANS = {
    1: f"CREATE TABLE spans ({_THIRTEEN_COLUMNS}, PRIMARY KEY (trace_id, span_id)) WITHOUT ROWID;"
    "CREATE INDEX spans_start ON spans (start_ns);",
    3: f"CREATE TABLE spans ({_THIRTEEN_COLUMNS});"
    "CREATE UNIQUE INDEX spans_id ON spans (trace_id, span_id);"
    "CREATE INDEX spans_start ON spans (start_ns);",
}


_OLD_SPANS[2] = _OLD_SPANS[1]


_OLD_RUNS = """
CREATE TABLE runs (
    trace_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, status TEXT NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER, stage_count INTEGER NOT NULL DEFAULT 0,
    failed_stages INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_pipeline_start ON runs (pipeline, start_ns);
CREATE INDEX runs_start ON runs (start_ns);
"""


_WRITERS_SINCE_V2 = """
ALTER TABLE runs ADD COLUMN writer_id INTEGER;
CREATE TABLE writers (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL,
    started_ns INTEGER NOT NULL, heartbeat_ns INTEGER NOT NULL, closed_ns INTEGER);
CREATE INDEX runs_status ON runs (status, start_ns);
"""


_OLD_ROWS = """
INSERT INTO runs (trace_id, pipeline, status, start_ns, end_ns, stage_count, failed_stages)
VALUES ('11111111111111111111111111111111', 'old', 'success', 1000, 2000, 1, 0),
       ('22222222222222222222222222222222', 'old', 'running', 3000, NULL, 1, 0);
INSERT INTO spans VALUES ('11111111111111111111111111111111', '1111111111111111', NULL, 'RUN old',
    'SERVER', 1000, 2000, 'UNSET', '',
    '{"cicd.pipeline.name":"old","cicd.pipeline.action.name":"RUN","cicd.pipeline.result":"success"}',
    '[]', '[]', '{"service.name":"old"}');
INSERT INTO spans VALUES ('11111111111111111111111111111111', 'aaaaaaaaaaaaaaaa',
    '1111111111111111', 'build', 'INTERNAL', 1100, 1900, 'ERROR', 'boom',
    '{"cicd.pipeline.name":"old","cicd.pipeline.task.name":"build","tags":["x","y"]}',
    '[["exception",1500,{"exception.type":"ValueError"}]]',
    '[["33333333333333333333333333333333","3333333333333333",{"why":"event"}]]',
    '{"service.name":"old"}');
INSERT INTO spans VALUES ('22222222222222222222222222222222', '2222222222222222', NULL, 'RUN old',
    'SERVER', 3000, NULL, 'UNSET', '',
    '{"cicd.pipeline.name":"old","cicd.pipeline.action.name":"RUN"}', '[]', '[]',
    '{"service.name":"other"}');
"""


_MIGRATED_BUILD = SpanRecord(
    trace_id="1" * 32,
    span_id="a" * 16,
    parent_span_id="1" * 16,
    name="build",
    kind="INTERNAL",
    start_ns=1100,
    end_ns=1900,
    status_code="ERROR",
    status_message="boom",
    attributes={
        "cicd.pipeline.name": "old",
        "cicd.pipeline.task.name": "build",
        "tags": ("x", "y"),
    },
    events=(SpanEventRecord("exception", 1500, {"exception.type": "ValueError"}),),
    links=(SpanLinkRecord("3" * 32, "3" * 16, {"why": "event"}),),
    resource={"service.name": "old"},
)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_older_database_is_migrated(tmp_path: Path, version: int) -> None:
    """A file of any earlier version opens at the current one: spans keep every field (now
    numbered traces and resources and one JSON body), runs keep their rows, the open run of a v1
    file (no known writer) reads as interrupted, and nothing is left orphaned."""
    db = tmp_path / f"v{version}.db"
    script = _OLD_SPANS[version] + _OLD_RUNS + (_WRITERS_SINCE_V2 if version >= 2 else "")
    with sqlite3.connect(db) as conn:
        conn.executescript(f"{script}{_OLD_ROWS}PRAGMA user_version = {version};")
    with SpanStore(db, retention=RetentionPolicy()) as store:
        statuses = [(s.run_id[0], s.status) for s in store.search()]
        spans = store.get_trace("1" * 32)
        finished = store.get_run("1" * 32).status
    with sqlite3.connect(db) as conn:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        readable = conn.execute(
            "SELECT name, status_code, json_extract(attributes, '$.tags[1]'), resource "
            "FROM spans_readable WHERE span_id = 'aaaaaaaaaaaaaaaa'"
        ).fetchone()
    assert (
        current,
        {"spans", "traces", "resources", "trace_resources", "runs", "writers"} <= tables,
        "spans_v3" in tables,
        statuses,
        finished,
        [s.span_id for s in spans],
        readable,
    ) == (
        SCHEMA_VERSION,
        True,
        False,
        [("2", "interrupted"), ("1", "success")],
        "success",
        ["1" * 16, "a" * 16],
        ("build", "ERROR", "y", '{"service.name":"old"}'),
    )
    assert spans[1] == _MIGRATED_BUILD
    assert orphans_and_integrity(db) == (0, "ok")


def _as_version_8(db: Path) -> None:
    """Put a current file's span rows back in version 8's WITHOUT ROWID tree."""
    with sqlite3.connect(db) as conn:
        view = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'spans_readable'"
        ).fetchone()[0]
        conn.executescript(
            "DROP VIEW spans_readable; ALTER TABLE spans RENAME TO spans_v9;"
            "CREATE TABLE spans (trace_no INTEGER NOT NULL, span_id TEXT NOT NULL,"
            " start_ns INTEGER NOT NULL, end_ns INTEGER, resource_no INTEGER NOT NULL,"
            " body TEXT NOT NULL, PRIMARY KEY (trace_no, span_id)) WITHOUT ROWID;"
            "INSERT INTO spans SELECT * FROM spans_v9; DROP TABLE spans_v9;"
            f"{view}; PRAGMA user_version = 8;"
        )


def _spans_table_sql(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        sql: str = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'spans'").fetchone()[0]
    return sql


def test_version_8_spans_move_to_a_rowid_table(tmp_path: Path) -> None:
    """A version 8 file (span rows in a WITHOUT ROWID tree) opens at the current version with
    its spans in a rowid table: every span and run reads back as before, the readable view
    works, a span's end still replaces its start row, and nothing is orphaned."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider, _ = make_provider(processor)
    ended = write_example_run(provider)
    provider.shutdown()
    with SpanStore(db) as store:
        before = (store.get_trace(ended), store.search())
    _as_version_8(db)
    was = _spans_table_sql(db)
    processor = SqliteSpanProcessor(db)  # migrates, then writes an open and an ended run
    provider, _ = make_provider(processor)
    open_run = write_example_run(provider, pipeline="later", t0=T0 + 100 * S, end_run=False)
    processor.force_flush()
    open_stages = len(SpanStore(db).get_trace(open_run))
    provider.shutdown()
    with SpanStore(db) as store:
        after = (store.get_trace(ended), [s for s in store.search() if s.run_id == ended])
        reopened = store.get_trace(open_run)
    with sqlite3.connect(db) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        readable = conn.execute("SELECT COUNT(*) FROM spans_readable").fetchone()[0]
        rows = conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    assert ("WITHOUT ROWID" in was, "WITHOUT ROWID" in _spans_table_sql(db)) == (True, False)
    assert (version, after, readable, rows) == (
        SCHEMA_VERSION,
        before,
        rows,
        len(before[0]) + len(reopened),
    )
    assert open_stages == len(reopened)
    assert orphans_and_integrity(db) == (0, "ok")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer taskdaemon is refused with a clear error."""
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SpanSourceError, match="newer"):
        SpanStore(db)
