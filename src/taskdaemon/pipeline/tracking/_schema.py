"""The span store file opened: created with its tables or migrated, refused when it is not one.

:func:`connect` opens a store file for writing and reading (created 0600 when missing, in WAL
mode, its tables made by ``tracking._tables`` or an older file brought to them by
``tracking._migrations``); :func:`connect_to_read` also opens one this user may read but
not write (a read-only mount, another user's folder, a full file system) when that is safe,
and :func:`private_copy` copies such a store where a report can write. A file that is
another program's database, or holds a view or trigger the store does not make, is refused and
left as it is. The file's helpers without SQLite (its identity while a writer holds it, what
stands in the way of its folder, why this process cannot write it) are ``_store_file``'s;
here, why a writer may still wait to write.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Final

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.errors import SpanSourceError, SpanStoreError
from taskdaemon.pipeline.tracking._aggregates_schema import create_aggregates
from taskdaemon.pipeline.tracking._store_file import (
    OpenedFile,
    create_private,
    file_in_the_way,
    nobody_writes,
    unwritable_file_system,
    why_read_only,
)
from taskdaemon.pipeline.tracking._tables import DDL, SCHEMA_VERSION, execute_script

_logger = logging.getLogger("taskdaemon.tracking")

__all__ = [
    "PIPELINE_NAMES",
    "SCHEMA_VERSION",
    "MissingStoreError",
    "OpenedFile",
    "ReadOnlyConnection",
    "connect",
    "connect_to_read",
    "create_private",
    "empty_store",
    "file_in_the_way",
    "is_busy",
    "private_copy",
    "reads_only",
    "rollback",
    "unwritable_file_system",
    "why_read_only",
    "why_unwritten",
]

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


class MissingStoreError(SpanStoreError):
    """There is no store file at the path a reader was given (readers never create one)."""


def empty_store() -> sqlite3.Connection:
    """An in-memory store with the schema and no runs: what ``SpanStore`` reads while the home's
    store file does not exist yet, so that every query answers as over an empty store."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    execute_script(conn, DDL)
    create_aggregates(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


class ReadOnlyConnection(sqlite3.Connection):
    """A connection :func:`connect_to_read` opened only to read (``mode=ro`` or
    ``immutable``); ``why`` says why this process cannot write the store."""

    why = ""


def reads_only(conn: sqlite3.Connection) -> str | None:
    """Why ``conn`` (from :func:`connect_to_read`) only reads its store, None when it may
    write: a command that must write says it in one line rather than SQLite's "attempt to
    write a readonly database"."""
    return conn.why if isinstance(conn, ReadOnlyConnection) else None


def connect_to_read(path: Path) -> sqlite3.Connection:
    """:func:`connect`, or for a store this process cannot write (a read-only or full file
    system, a folder of another user, a copy on a CD) a :class:`ReadOnlyConnection` that only
    reads it, when that is safe; SpanSourceError in one line saying why and what to do when
    it is not.

    A store in WAL mode is read with its ``-shm`` file, which SQLite makes beside it even to
    read, and which tells a reader what a writer in another process committed. So:

    * the ``-shm`` file exists (a writer has the store open): opened ``mode=ro``, SQLite reads
      along with that writer as usual;
    * it is missing and nobody can make it (``_store_file.nobody_writes``: a file system
      read-only in every mount or full, a folder without any write bit): opened ``immutable``
      (no locks, no ``-shm``), which only holds for a file that cannot change, and here it
      cannot;
    * it is missing and the folder's owner may still write there (another user's home, a
      read-only bind mount of a folder written elsewhere): refused, as ``immutable`` could read
      the file while its writer changes it. The line says to read a copy.

    What a writer left in a ``-wal`` file it did not checkpoint (a crashed process) is not read
    ``immutable``: one warning says so. For the commands that only read the store (``runs``,
    ``logs``, ``dag --run``, the web page); writers keep :func:`connect`. It never creates the
    file: a missing one is MissingStoreError (a mistyped path must not become an empty store).
    A full file system is tried as usual first: a writer running there has its ``-shm`` file."""
    if os.path.exists(path) and (why := why_read_only(path)) is not None:
        return _connect_read_only(path, why)
    try:
        return connect(path, create=False)
    except MissingStoreError:
        raise
    except SpanSourceError as error:
        if unwritable_file_system(path) != "full":
            raise
        return _connect_read_only(path, "on a full file system", error)


def _connect_read_only(
    path: Path, why: str, error: SpanSourceError | None = None
) -> sqlite3.Connection:
    """The :class:`ReadOnlyConnection` of :func:`connect_to_read`, checked as :func:`connect`
    checks a store; ``error``: what the usual open failed with, said for SQLite's failures."""
    shm = path.with_name(path.name + "-shm")
    kind = unwritable_file_system(path)
    if kind == "full" and (error is not None or not os.path.exists(shm)):
        # Full, and the usual open failed (a writer running here would have let it) or no
        # writer has the store open: one starting now cannot make its -shm file either. A
        # -shm left by a failed open may be too short to read with.
        flag = "immutable=1"
    elif os.path.exists(shm) or (kind is None and os.access(path.parent, os.W_OK)):
        flag = "mode=ro"  # SQLite reads along with any writer (making the -shm if need be)
    elif nobody_writes(path):
        flag = "immutable=1"
    else:
        raise SpanStoreError(
            f"{path}: cannot read this span store safely: {why}, so SQLite cannot make its "
            f"{shm.name} file to read it while its owner may write it; copy it into a folder "
            "of yours and read the copy"
        )
    conn: ReadOnlyConnection | None = None
    try:
        conn = sqlite3.connect(
            f"file:{urllib.parse.quote(str(path.absolute()))}?{flag}",
            uri=True,
            timeout=30.0,
            isolation_level=None,
            check_same_thread=False,
            factory=ReadOnlyConnection,
        )
        conn.why = why
        conn.execute("PRAGMA busy_timeout = 30000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:  # as connect does: another program's database, or no store yet
            _refuse_foreign(conn, path)
            raise MissingStoreError(f"{path}: no span store here (the file holds none)")
        _refuse_crafted(conn, path, version)
        if version > SCHEMA_VERSION:
            raise SpanStoreError(
                f"{path}: span store schema version {version} is newer than this taskdaemon "
                f"understands ({SCHEMA_VERSION}); upgrade taskdaemon"
            )
        if version != SCHEMA_VERSION:  # it cannot be migrated here
            raise SpanStoreError(
                f"{path}: span store schema version {version}, {why} (this taskdaemon reads "
                f"{SCHEMA_VERSION} and cannot migrate it there)"
            )
        _refuse_incomplete(conn, path)
    except (SpanSourceError, sqlite3.Error, UnicodeDecodeError) as refused:
        if conn is not None:
            conn.close()
        if isinstance(refused, SpanSourceError):
            raise
        if error is not None:
            raise error from None
        raise SpanStoreError(f"{path}: cannot open span store: {refused}") from None
    wal = path.with_name(path.name + "-wal")
    if flag != "mode=ro" and wal.exists() and wal.stat().st_size > 0:
        _logger.warning(
            "%s: %s, read without its write-ahead log %s: the runs written last may be missing",
            path,
            why,
            wal,
        )
    return conn


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


def _cannot_write(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's refusal to write the file or make the ones beside it
    ("attempt to write a readonly database", "unable to open database file")."""
    return isinstance(error, sqlite3.Error) and (
        error.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)
    )


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
        raise SpanStoreError(
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


#: Each table of a store file, with the SQL SQLite keeps of it.
_TABLES: Final = "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
#: (table, column) of each column of each table in a store file.
_COLUMNS: Final = (
    "SELECT m.name, c.name FROM sqlite_master m JOIN pragma_table_info(m.name) c"
    " WHERE m.type = 'table'"
)


@functools.cache
def _own_tables() -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """The (name, SQL) of each table this code makes, and the (table, column) of each of
    their columns."""
    conn = empty_store()
    try:
        return frozenset(conn.execute(_TABLES)), frozenset(conn.execute(_COLUMNS))
    finally:
        conn.close()


def _refuse_incomplete(conn: sqlite3.Connection, path: Path) -> None:
    """SpanSourceError when a file at this schema version lacks a table or column the store
    makes (dropped by hand, or the version set on another layout): each reader failed on it in
    its own query, with a traceback, some after printing part of their answer. A column of its
    own is left alone, as SQLite leaves it. Tables made as this code makes them are known by
    their SQL alone: reading every table's columns costs a millisecond, most of an open."""
    tables, columns = _own_tables()
    if tables <= set(conn.execute(_TABLES)):
        return
    missing = sorted(columns - set(conn.execute(_COLUMNS)))
    if missing:
        table, column = missing[0]
        more = f", and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise SpanStoreError(
            f"{path}: not a taskdaemon span store (no column {table}.{column}{more}); "
            "name another file"
        )


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
        raise SpanStoreError(
            f"{path}: not a taskdaemon span store (a {kind} {cut(str(name), 40)!r} taskdaemon "
            "does not make); name another file"
        )


def connect(path: Path, *, create: bool = True, wait: float = 30.0) -> sqlite3.Connection:
    """A connection in WAL mode with the schema at ``SCHEMA_VERSION`` (created or migrated);
    SpanSourceError naming the file when it cannot be opened, is newer than this code, or is
    another program's database (left untouched). ``wait``: the seconds it waits for another
    connection's lock, at each step and as the connection's busy timeout after.

    A missing file is created 0600 in a 0700 directory (``create_private``); with ``create``
    False it is MissingStoreError instead, and SQLite is told not to create it either (a file
    removed after the check is not made again), and so is a file that holds no store yet (a
    zero-byte file): a reader never writes a store into it."""
    conn: sqlite3.Connection | None = None
    _own_objects()  # made in memory before the file is opened, not while it is held open
    _own_tables()
    try:
        if create:
            create_private(path)
            conn = sqlite3.connect(
                path, timeout=wait, isolation_level=None, check_same_thread=False
            )
        else:
            if not path.exists():
                raise MissingStoreError(f"{path}: no span store here")
            conn = sqlite3.connect(
                f"file:{urllib.parse.quote(str(path.absolute()))}?mode=rw",
                uri=True,
                timeout=wait,
                isolation_level=None,
                check_same_thread=False,
            )
        conn.execute(f"PRAGMA busy_timeout = {round(wait * 1000)}")
        # The version and the tables in one read transaction: another process creating the
        # store commits both at once, and two reads apart could see its tables without its
        # version, and refuse the store as another program's.
        conn.execute("BEGIN")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            _refuse_foreign(conn, path)
        if version < 0:  # SQLite's user_version is signed; no store had one below 0
            raise SpanStoreError(
                f"{path}: not a taskdaemon span store (schema version {version}); name another file"
            )
        conn.execute("COMMIT")
        if version == 0 and not create:
            # An empty file (or a database with no tables): a reader leaves it as it found it,
            # as it leaves a missing file missing, rather than writing a store into it.
            raise MissingStoreError(f"{path}: no span store here (the file holds none)")
        if version == 0:  # auto_vacuum must be chosen before the first table exists
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        _use_wal(conn, wait)
        conn.execute("PRAGMA synchronous = NORMAL")
        if version > 0:  # in WAL mode: the read does not hold off another opener's switch to it
            _refuse_crafted(conn, path, version)
        if version > SCHEMA_VERSION:
            raise SpanStoreError(
                f"{path}: span store schema version {version} is newer than this taskdaemon "
                f"understands ({SCHEMA_VERSION}); upgrade taskdaemon"
            )
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Re-read inside the write lock: another process may have migrated meanwhile.
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    execute_script(conn, DDL)
                    create_aggregates(conn)
                else:
                    # Imported here: it reads stored traces (``reconstruct``), which a store at
                    # this version never needs (``run`` opens one before its first stage).
                    from taskdaemon.pipeline.tracking._migrations import migrate  # noqa: PLC0415

                    if version < _SAME_TRIGGER_SINCE:  # made again by the migration to 7
                        conn.execute("DROP TRIGGER IF EXISTS traces_drop_aggregates")
                    migrate(conn, version)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
        _refuse_incomplete(conn, path)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        # A damaged page can hold text that is not UTF-8, which Python fails to decode.
        if isinstance(exc, sqlite3.Error | OSError | UnicodeDecodeError):
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            if isinstance(exc, OSError) and (blocker := file_in_the_way(path)) is not None:
                reason = f"{blocker} is not a directory"  # not the "File exists" of its mkdir
            if _cannot_write(exc) and (why := why_read_only(path)) is not None:
                reason = f"this user cannot write it: {why}"  # not "attempt to write a ..."
            raise SpanStoreError(f"{path}: cannot open span store: {reason}") from exc
        raise
    return conn
