"""The span store's SQLite schema: tables, the version, the migrations, and opening a file.

Schema version 11 (``PRAGMA user_version``):

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
  a replay from the run it replayed;
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
version 10 gains ``runs.replay_of``, filled from the stored run spans (``_add_replay_of``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Final

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.private_file import make_private_dirs
from taskdaemon.pipeline.tracking._aggregates_schema import (
    add_day_tables,
    create_aggregates,
    forget_replays,
)

_logger = logging.getLogger("taskdaemon.tracking")

__all__ = [
    "PIPELINE_NAMES",
    "SCHEMA_VERSION",
    "MissingStoreError",
    "OpenedFile",
    "connect",
    "connect_to_read",
    "create_private",
    "empty_store",
    "file_in_the_way",
    "is_busy",
    "private_copy",
    "rollback",
    "unwritable_file_system",
    "why_unwritten",
]

SCHEMA_VERSION: Final = 11

#: Every pipeline name of the runs table, in order, each found by one seek of the (pipeline,
#: start) index from the name before: as many index reads as pipelines, not as runs.
PIPELINE_NAMES: Final = (
    "WITH RECURSIVE p(name) AS ("
    " SELECT (SELECT min(pipeline) FROM runs)"
    " UNION ALL"
    " SELECT (SELECT min(pipeline) FROM runs WHERE pipeline > p.name) FROM p"
    " WHERE p.name IS NOT NULL"
    ") SELECT name FROM p WHERE name IS NOT NULL"
)

_LOGS_DDL: Final = """
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
_SPANS_DDL: Final = """
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
    + _SPANS_DDL
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
    replay_of TEXT
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
_DDL: Final = _BASE_DDL + ";\n" + _LOGS_DDL


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    # Statement by statement: executescript would commit the caller's transaction half-way.
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


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
    _execute_script(conn, _DDL)
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
    _execute_script(conn, _LOGS_DDL)


def _mark_batched_logs(conn: sqlite3.Connection) -> None:
    """Version 7 to 8 changes no table: the new version tells older taskdaemons that a
    ``logs`` row may hold a batch of lines (see the module docstring)."""


def _spans_to_rowid_table(conn: sqlite3.Connection) -> None:
    """v9 appends span rows to a rowid table instead of a WITHOUT ROWID tree (see the module
    docstring). The view names the table, so it is dropped first and made again with it."""
    conn.execute("DROP VIEW IF EXISTS spans_readable")
    conn.execute("ALTER TABLE spans RENAME TO spans_v8")
    _execute_script(conn, _SPANS_DDL)
    conn.execute(
        "INSERT INTO spans (trace_no, span_id, start_ns, end_ns, resource_no, body) "
        "SELECT trace_no, span_id, start_ns, end_ns, resource_no, body FROM spans_v8 "
        "ORDER BY trace_no, span_id"
    )
    conn.execute("DROP TABLE spans_v8")


def _add_replay_of(conn: sqlite3.Connection) -> None:
    """v11 keeps the run a replay re-executed on its ``runs`` row, read here from the stored run
    spans: one pass over the span rows, whose text test skips the JSON of every span that does
    not name the attribute (only a replay's run span does), then one update a replay. A run
    whose run span is not stored keeps NULL, as ``summarize_run`` would say. Like the other
    migrations, it may run again on a file that has the column (one set back to an older
    version by hand, as the upgrade tests do)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    if "replay_of" not in columns:
        conn.execute("ALTER TABLE runs ADD COLUMN replay_of TEXT")
    conn.execute(
        "UPDATE runs SET replay_of = found.original FROM ("
        " SELECT t.trace_id, max(NULLIF(CAST(json_extract(s.body, "
        "'$[5].\"taskdaemon.pipeline.replay_of\"') AS TEXT), '')) AS original"
        " FROM spans s JOIN traces t USING (trace_no)"
        " WHERE s.body LIKE '%\"taskdaemon.pipeline.replay_of\"%'"
        " AND json_extract(s.body, '$[0]') IS NULL GROUP BY t.trace_id"
        ") AS found WHERE runs.trace_id = found.trace_id AND found.original IS NOT NULL"
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
}
# What each migration brings the file to (2 -> 4 skips the v3 layout: both become v4 alike).
_MIGRATED_TO: Final = {1: 2, 2: 4, 3: 4, 4: 5, 5: 6, 6: 7, 7: 8, 8: 9, 9: 10, 10: 11}


def is_busy(error: sqlite3.Error) -> bool:
    """Whether ``error`` is SQLite's "database is locked" (``SQLITE_BUSY``, any extended code):
    another connection holds a lock this one needed."""
    return error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already done so.

    On some errors (``SQLITE_FULL``: "database or disk is full", ``SQLITE_IOERR``) SQLite rolls
    the transaction back itself; an unconditional ``ROLLBACK`` would then fail with "cannot
    rollback - no transaction is active" and that error would replace the real cause in the
    message. A failing rollback is ignored for the same reason: the caller re-raises the cause.
    """
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def why_unwritten(path: Path) -> str:
    """Why a writer of the store at ``path`` may still be waiting to write, for the line that
    says what it did not write at exit: another process holding the write lock (a long
    ``BEGIN EXCLUSIVE`` in a ``sqlite3`` shell, a ``retention --vacuum``) is asked SQLite itself,
    with a write transaction tried without waiting; otherwise the wait's cause is not known."""
    try:
        probe = sqlite3.connect(
            f"file:{urllib.parse.quote(str(path.absolute()))}?mode=rw",
            uri=True,
            timeout=0,
            isolation_level=None,
        )
    except sqlite3.Error as error:
        return str(error)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
    except sqlite3.OperationalError as error:
        if is_busy(error):
            return f"another process holds the store's write lock ({error})"
        return str(error)
    finally:
        probe.close()
    return "its writer was still busy"


class MissingStoreError(SpanSourceError):
    """There is no store file at the path a reader was given (readers never create one)."""


def empty_store() -> sqlite3.Connection:
    """An in-memory store with the schema and no runs: what ``SpanStore`` reads while the home's
    store file does not exist yet, so that every query answers as over an empty store."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    _execute_script(conn, _DDL)
    create_aggregates(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


def create_private(path: Path) -> None:
    """Create the store file with mode 0600, and its directory with mode 0700, when they do not
    exist yet: spans hold payloads and commands, which other local users must not read.
    SQLite gives the ``-wal`` and ``-shm`` files the mode of the database file. An existing file
    or directory keeps the mode it has (someone chose it), but only this user may have chosen
    it: PermissionError for a file of another user (made in a shared checkout's ``.taskdaemon``
    before our first run, 0666, it would collect our runs for them to read) or a folder anyone
    may write (``/tmp``: anyone may make the ``-wal`` file there first, or swap the store)."""
    make_private_dirs(path.parent)
    if path.parent.stat().st_mode & 0o002:
        raise PermissionError(errno.EPERM, "its folder may be written by any user", str(path))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        if (owner := path.stat().st_uid) != os.geteuid():
            raise PermissionError(
                errno.EPERM, f"it belongs to another user (uid {owner})"
            ) from None
        return
    os.close(fd)


class OpenedFile:
    """The store file a writer opened, to tell when its path names another file (the store
    deleted or replaced under the writer: SQLite would go on writing into the unlinked file,
    which no reader sees). Made right after the connection is opened."""

    __slots__ = ("_absolute", "_identity", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._absolute = Path(os.path.abspath(path))  # a handler's chdir must not move it
        self._identity = self._now()

    def _now(self) -> tuple[int, int] | None:
        """(device, inode) of the file at the path now, None when there is none."""
        try:
            status = os.stat(self._absolute)
        except OSError:
            return None
        return status.st_dev, status.st_ino

    def check(self) -> None:
        """SpanSourceError when the path no longer names the opened file (one ``stat``)."""
        if self._now() != self._identity:
            raise SpanSourceError(
                f"{self.path} was deleted or replaced while this process wrote to it"
            )


def file_in_the_way(path: Path) -> Path | None:
    """The nearest existing folder above ``path`` when it is not a directory (a file where
    ``TASKDAEMON_HOME`` should be), else None."""
    for parent in path.absolute().parents:
        if os.path.lexists(parent):
            return None if parent.is_dir() else parent
    return None


#: Free bytes under which a file system counts as full for readers (:func:`connect_to_read`):
#: less than a WAL store's ``-shm`` file and the pages a read may need to spill.
FULL_BELOW: Final = 1 << 20


def unwritable_file_system(path: Path) -> str | None:
    """``"read-only"`` when ``path`` is on a file system mounted read-only, ``"full"`` when
    that file system has less than :data:`FULL_BELOW` bytes free, else None (also when it
    cannot be told)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return "read-only"
    return "full" if stat.f_bavail * stat.f_frsize < FULL_BELOW else None


def private_copy(path: Path) -> Path:
    """A copy of the store at ``path`` that can be written, in a new directory private to its
    owner (0700, the copy 0600) under the temporary directory: for ``taskdaemon report`` on a
    read-only file system, whose aggregates must be written somewhere. The caller removes the
    directory (``copy.parent``). The copy is taken through SQLite's backup, from what
    :func:`connect_to_read` reads; SpanSourceError (one line) when it cannot be made (a full
    temporary directory)."""
    import shutil  # noqa: PLC0415 - the readers import this module: kept off their start-up
    import tempfile  # noqa: PLC0415

    try:
        folder = Path(tempfile.mkdtemp(prefix="taskdaemon-report-"))
    except OSError as error:
        raise SpanSourceError(f"{path}: cannot copy the store to report from: {error}") from None
    copy = folder / path.name
    try:
        create_private(copy)
        source = connect_to_read(path)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
    except (OSError, sqlite3.Error) as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise SpanSourceError(
            f"{path}: cannot copy the store to {folder} to report from: {error}"
        ) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return copy


def connect_to_read(path: Path) -> sqlite3.Connection:
    """:func:`connect`, or for a store on a read-only file system (a backup's snapshot, a
    container's read-only volume) or a full one a connection that only reads it.

    A store in WAL mode cannot be opened as usual there: SQLite must create its ``-shm`` file
    even to read. Nobody can write the file on such a file system, so it is opened
    ``immutable`` (no locks, no ``-shm``), which only holds for a file that cannot change. On a
    full file system that holds too: a process writing the store has its ``-shm`` file made
    (readers then open the store as usual and never come here), and one starting now cannot
    make it either. What a
    writer left in a ``-wal`` file it did not checkpoint (a crashed process) is not read then:
    one warning says so. For the commands that only read the store (``runs``, ``logs``,
    ``dag --run``, the web page); writers keep :func:`connect`. It never creates the file: a
    missing one is MissingStoreError (a mistyped path must not become an empty store)."""
    try:
        return connect(path, create=False)
    except MissingStoreError:
        raise
    except SpanSourceError as error:
        kind = unwritable_file_system(path)
        if kind is None:
            raise
        try:
            conn = sqlite3.connect(
                f"file:{urllib.parse.quote(str(path.absolute()))}?immutable=1",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error:
            raise error from None
        try:
            _refuse_crafted(conn, path, version)
        except SpanSourceError:
            conn.close()
            raise
        if version != SCHEMA_VERSION:  # it cannot be migrated here
            conn.close()
            raise SpanSourceError(
                f"{path}: span store schema version {version} on a {kind} file system "
                f"(this taskdaemon reads {SCHEMA_VERSION} and cannot migrate it there)"
            ) from None
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            _logger.warning(
                "%s: on a %s file system, read without its write-ahead log %s: the "
                "runs written last may be missing",
                path,
                kind,
                wal,
            )
        return conn


def _refuse_foreign(conn: sqlite3.Connection, path: Path) -> None:
    """SpanSourceError when a file without a schema version holds tables: another program's
    database (a mistyped ``--source``), which must not gain the store's tables nor WAL mode."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite%' ORDER BY name LIMIT 4"
        )
    ]
    if names:
        shown = ", ".join(cut(name, 40) for name in names[:3]) + (", ..." if len(names) > 3 else "")
        raise SpanSourceError(
            f"{path}: not a taskdaemon span store (no schema version, and tables of its own: "
            f"{shown}); name another file"
        )


def _use_wal(conn: sqlite3.Connection, wait: float = 30.0) -> None:
    """Switch the file to WAL mode, waiting up to ``wait`` seconds for other connections: the
    switch needs the file to itself and SQLite answers "database is locked" at once, without
    its busy timeout, when another process opening the file holds it for a moment (three
    processes creating one store failed so about once in 300 races on a loaded machine)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if not is_busy(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)


#: The versions from which a store's own trigger and view read as this code makes them: the
#: migration to 7 makes the trigger again (``add_day_tables``), the one to 9 the view.
_SAME_TRIGGER_SINCE: Final = 7
_SAME_VIEW_SINCE: Final = 9


@functools.cache
def _own_objects() -> frozenset[tuple[str, str, str]]:
    """(type, name, SQL) of each view and trigger this code makes, as SQLite keeps them."""
    conn = empty_store()
    try:
        return frozenset(
            conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE type IN ('view', 'trigger')"
            )
        )
    finally:
        conn.close()


def _refuse_crafted(conn: sqlite3.Connection, path: Path, version: int) -> None:
    """SpanSourceError when the file holds a view or trigger that is not the store's own: a
    view's SQL runs when it is read, a trigger's when a migration changes its table, and a store
    file may come from anyone (a view named ``runs`` that counts for ever hung ``runs list``).
    Before the migrations that make them again, the own ones are known by name alone."""
    own = _own_objects()
    named = {(kind, name) for kind, name, _sql in own}
    for kind, name, sql in conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('view', 'trigger')"
    ):
        since = _SAME_TRIGGER_SINCE if kind == "trigger" else _SAME_VIEW_SINCE
        if (kind, name, sql) in own or (version < since and (kind, name) in named):
            continue
        raise SpanSourceError(
            f"{path}: not a taskdaemon span store (a {kind} {cut(str(name), 40)!r} taskdaemon "
            "does not make); name another file"
        )


def connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """A connection in WAL mode with the schema at ``SCHEMA_VERSION`` (created or migrated);
    SpanSourceError naming the file when it cannot be opened, is newer than this code, or is
    another program's database (left untouched).

    A missing file is created 0600 in a 0700 directory (``create_private``); with ``create``
    False it is MissingStoreError instead, and SQLite is told not to create it either (a file
    removed after the check is not made again), and so is a file that holds no store yet (a
    zero-byte file): a reader never writes a store into it."""
    conn: sqlite3.Connection | None = None
    _own_objects()  # made in memory before the file is opened, not while it is held open
    try:
        if create:
            create_private(path)
            conn = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        else:
            if not path.exists():
                raise MissingStoreError(f"{path}: no span store here")
            conn = sqlite3.connect(
                f"file:{urllib.parse.quote(str(path.absolute()))}?mode=rw",
                uri=True,
                timeout=30.0,
                isolation_level=None,
                check_same_thread=False,
            )
        conn.execute("PRAGMA busy_timeout = 30000")
        # The version and the tables in one read transaction: another process creating the
        # store commits both at once, and two reads apart could see its tables without its
        # version, and refuse the store as another program's.
        conn.execute("BEGIN")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            _refuse_foreign(conn, path)
        conn.execute("COMMIT")
        if version == 0 and not create:
            # An empty file (or a database with no tables): a reader leaves it as it found it,
            # as it leaves a missing file missing, rather than writing a store into it.
            raise MissingStoreError(f"{path}: no span store here (the file holds none)")
        if version == 0:  # auto_vacuum must be chosen before the first table exists
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        if version > 0:  # in WAL mode: the read does not hold off another opener's switch to it
            _refuse_crafted(conn, path, version)
        if version > SCHEMA_VERSION:
            raise SpanSourceError(
                f"{path}: span store schema version {version} is newer than this taskdaemon "
                f"understands ({SCHEMA_VERSION}); upgrade taskdaemon"
            )
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Re-read inside the write lock: another process may have migrated meanwhile.
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    _execute_script(conn, _DDL)
                    create_aggregates(conn)
                else:
                    if version < _SAME_TRIGGER_SINCE:  # made again by the migration to 7
                        conn.execute("DROP TRIGGER IF EXISTS traces_drop_aggregates")
                    while version < SCHEMA_VERSION:
                        _MIGRATIONS[version](conn)
                        version = _MIGRATED_TO[version]
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error | OSError):
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            if isinstance(exc, OSError) and (blocker := file_in_the_way(path)) is not None:
                reason = f"{blocker} is not a directory"  # not the "File exists" of its mkdir
            raise SpanSourceError(f"{path}: cannot open span store: {reason}") from exc
        raise
    return conn
