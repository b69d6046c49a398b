"""The embedded span store: one SQLite file, written by a span processor, read as a span source.

Writing (``SqliteSpanProcessor``): ``on_start`` and ``on_end`` only put the span on a queue; one
writer thread turns queued spans into rows and commits a batch at least every
``flush_interval`` (100 ms) while spans arrive, so a running run is visible from another process
within that delay. A span is written when it starts (``end_ns`` NULL) and again when it ends;
when both happen inside one batch only the ended row is written. ``force_flush`` and
``shutdown`` write everything queued before they were called.

Schema (``PRAGMA user_version`` = ``SCHEMA_VERSION``):

- ``spans``: one row per span, unique by (trace id, span id); attributes, events, links and
  resource attributes as JSON;
- ``runs``: one row per run (trace), denormalized from the root span: pipeline, status, start,
  end, stage count, failed stages, and the id of the writer that started it. ``status`` is
  ``running`` until the root span ends; the counts are exact once the run has ended (they are
  recomputed from the spans, as ``reconstruct_run`` sees them);
- ``writers``: one row per processor (pid, host, start, heartbeat, clean close).

Interrupted runs. A run whose root span is still open is ``interrupted`` when no live process can
still end it: its writer row is closed (the processor shut down with the run open), or the writer
ran on this host and its pid is gone (or a zombie), or the writer's heartbeat (renewed every
second while the processor lives) is older than ``STALE_AFTER`` seconds (a writer on another host,
or a reused pid). Every stage span that ended more than one flush interval before a SIGKILL is in
the file; open stage spans of an interrupted run read as ``interrupted``.

Migrations: version 1 had no ``writers`` table and no ``runs.writer_id``; ``_migrate_1_to_2``
adds them (open v1 runs, having no known writer, read as interrupted) plus the status index.
Version 2 kept span rows in a WITHOUT ROWID table keyed by (trace id, span id), so every insert
of a random trace id moved a whole row into the middle of the tree; ``_migrate_2_to_3`` copies
them into an append-ordered rowid table with a unique index on the key (ingest stays flat as
the file grows).

Retention (``apply_retention``): per pipeline, runs older than ``max_age`` and beyond the newest
``keep`` are deleted with all their spans in one transaction (runs still being written are never
deleted), then freed pages are returned with ``PRAGMA incremental_vacuum`` outside it. The store
applies ``TASKDAEMON_RETENTION_MAX_AGE`` / ``TASKDAEMON_RETENTION_KEEP`` when it opens.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import psutil
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError
from taskdaemon.pipeline.records import RunRecord, RunSummary
from taskdaemon.pipeline.tracking.history import parse_age
from taskdaemon.pipeline.tracking.reconstruct import (
    FAILED_STAGE_STATUSES,
    ended_attempt_status,
    ended_run_status,
    find_root,
    is_skip,
    reconstruct_run,
    stage_status_of,
    summarize_run,
)
from taskdaemon.pipeline.tracking.spans import (
    SpanEventRecord,
    SpanLinkRecord,
    SpanRecord,
    normalize_value,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

__all__ = [
    "SCHEMA_VERSION",
    "STALE_AFTER",
    "RetentionPolicy",
    "RetentionResult",
    "SpanStore",
    "SqliteSpanProcessor",
    "retention_from_env",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 3
STALE_AFTER: Final = 30.0  # seconds without a heartbeat after which a writer is presumed dead
HEARTBEAT_EVERY: Final = 1.0

# Span rows live in a rowid table, appended in write order, with a unique index on (trace id,
# span id): random trace ids then scatter only small index entries, not whole rows (v2 kept the
# rows themselves in a WITHOUT ROWID tree keyed by trace id, which got slower as the file grew).
_SPANS_DDL: Final = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    status_code TEXT NOT NULL,
    status_message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    links TEXT NOT NULL,
    resource TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS spans_id ON spans (trace_id, span_id);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);"""

_DDL: Final = (
    _SPANS_DDL
    + """
CREATE TABLE IF NOT EXISTS runs (
    trace_id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    status TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    stage_count INTEGER NOT NULL DEFAULT 0,
    failed_stages INTEGER NOT NULL DEFAULT 0,
    writer_id INTEGER
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


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """v2 records which writer started each run (to tell running from interrupted)."""
    # Plain execute calls: executescript would commit the migration's transaction half-way.
    conn.execute("ALTER TABLE runs ADD COLUMN writer_id INTEGER")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS writers (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, "
        "host TEXT NOT NULL, started_ns INTEGER NOT NULL, heartbeat_ns INTEGER NOT NULL, "
        "closed_ns INTEGER)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS runs_status ON runs (status, start_ns)")


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """v3 keeps span rows in a rowid table with a unique (trace id, span id) index."""
    conn.execute("ALTER TABLE spans RENAME TO spans_v2")
    conn.execute("DROP INDEX IF EXISTS spans_start")
    for statement in _SPANS_DDL.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(
        f"INSERT INTO spans ({_SPAN_COLUMNS}) SELECT {_SPAN_COLUMNS} FROM spans_v2 "  # noqa: S608
        "ORDER BY start_ns"
    )
    conn.execute("DROP TABLE spans_v2")


_MIGRATIONS: Final = {1: _migrate_1_to_2, 2: _migrate_2_to_3}


def _connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with the schema at ``SCHEMA_VERSION`` (created or migrated)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            # auto_vacuum must be chosen before the first table exists.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
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
                    for statement in _DDL.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                else:
                    while version < SCHEMA_VERSION:
                        _MIGRATIONS[version](conn)
                        version += 1
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except sqlite3.Error as exc:
        raise SpanSourceError(f"{path}: cannot open span store: {exc}") from exc
    return conn


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _dumps(value: Any) -> str:
    """Compact JSON text. orjson, because encoding attributes is most of the writer's per-span
    cost: ~0.6 µs against ~5.7 µs for the standard library on a stage span's attributes."""
    return orjson.dumps(value, default=_json_default).decode()


# --- retention -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What to keep, per pipeline: runs younger than ``max_age`` seconds, the newest ``keep``."""

    max_age: float | None = None
    keep: int | None = None

    @property
    def is_active(self) -> bool:
        """True when the policy would delete anything at all."""
        return self.max_age is not None or self.keep is not None


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one retention pass deleted."""

    deleted_runs: int
    deleted_spans: int


def retention_from_env(environ: dict[str, str] | None = None) -> RetentionPolicy:
    """The policy of ``TASKDAEMON_RETENTION_MAX_AGE`` (``30d``, ``12h``, seconds) and
    ``TASKDAEMON_RETENTION_KEEP`` (a count); unset means no limit. ValueError when invalid."""
    env = os.environ if environ is None else environ
    raw_age = env.get("TASKDAEMON_RETENTION_MAX_AGE", "").strip()
    raw_keep = env.get("TASKDAEMON_RETENTION_KEEP", "").strip()
    try:
        keep = int(raw_keep) if raw_keep else None
    except ValueError:
        raise ValueError(f"TASKDAEMON_RETENTION_KEEP: not a count: {raw_keep!r}") from None
    if keep is not None and keep < 0:
        raise ValueError(f"TASKDAEMON_RETENTION_KEEP: must be >= 0, not {keep}")
    try:
        max_age = parse_age(raw_age) if raw_age else None
    except ValueError as exc:
        raise ValueError(f"TASKDAEMON_RETENTION_MAX_AGE: {exc}") from None
    return RetentionPolicy(max_age=max_age, keep=keep)


# --- the store (reading side) ----------------------------------------------------------------


def _row_to_span(row: Sequence[Any]) -> SpanRecord:
    events = tuple(
        SpanEventRecord(e[0], e[1], normalize_value(e[2])) for e in orjson.loads(row[10])
    )
    links = tuple(
        SpanLinkRecord(lk[0], lk[1], normalize_value(lk[2])) for lk in orjson.loads(row[11])
    )
    return SpanRecord(
        trace_id=row[0],
        span_id=row[1],
        parent_span_id=row[2],
        name=row[3],
        kind=row[4],
        start_ns=row[5],
        end_ns=row[6],
        status_code=row[7],
        status_message=row[8],
        attributes=normalize_value(orjson.loads(row[9])),
        events=events,
        links=links,
        resource=normalize_value(orjson.loads(row[12])),
    )


_SPAN_COLUMNS: Final = (
    "trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, "
    "status_message, attributes, events, links, resource"
)
_PLACEHOLDERS: Final = ",".join("?" * 13)
# A start never overwrites a row (the end may already be there); an end always does.
_INSERT_START: Final = f"INSERT OR IGNORE INTO spans ({_SPAN_COLUMNS}) VALUES ({_PLACEHOLDERS})"  # noqa: S608
_INSERT_END: Final = f"INSERT OR REPLACE INTO spans ({_SPAN_COLUMNS}) VALUES ({_PLACEHOLDERS})"  # noqa: S608


_UPSERT_RUN: Final = (
    "INSERT INTO runs (trace_id, pipeline, status, start_ns, end_ns, stage_count, "
    "failed_stages, writer_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (trace_id) DO UPDATE SET pipeline = excluded.pipeline, "
    "status = excluded.status, end_ns = excluded.end_ns, "
    "stage_count = excluded.stage_count, failed_stages = excluded.failed_stages"
)


class SpanStore:
    """The SQLite span store as a ``SpanSource`` (plus retention and summaries).

    Thread-safe (one connection behind a lock). ``retention``: a policy applied once on open;
    None reads it from the environment (``retention_from_env``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: RetentionPolicy | None = None,
        clock: Any = time.time,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = _connect(self.path)
        self._host = socket.gethostname()
        policy = retention if retention is not None else retention_from_env()
        if policy.is_active:
            self.apply_retention(policy)

    # -- lifecycle

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SpanStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise SpanSourceError(f"{self.path}: {exc}") from exc

    # -- liveness

    def _writer_alive(self, conn: sqlite3.Connection, writer_id: int | None) -> bool:
        if writer_id is None:
            return False
        row = conn.execute(
            "SELECT pid, host, heartbeat_ns, closed_ns FROM writers WHERE id = ?", (writer_id,)
        ).fetchone()
        if row is None or row[3] is not None:
            return False
        pid, host, heartbeat_ns = row[0], row[1], row[2]
        if self._clock() - heartbeat_ns / 1e9 > STALE_AFTER:
            return False
        if host == self._host:
            try:
                return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                return False
        return True

    def is_interrupted(self, run_id: str) -> bool:
        """True when the run is open and no live writer can end it (see the module docstring)."""
        with self._cursor() as conn:
            row = conn.execute(
                "SELECT end_ns, writer_id FROM runs WHERE trace_id = ?", (run_id,)
            ).fetchone()
            if row is None or row[0] is not None:
                return False
            return not self._writer_alive(conn, row[1])

    # -- SpanSource

    def get_trace(self, run_id: str) -> list[SpanRecord]:
        """Every stored span of the run, by start time; RunNotFoundError when there is none."""
        with self._cursor() as conn:
            rows = conn.execute(
                f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id",  # noqa: S608
                (run_id.lower(),),
            ).fetchall()
        if not rows:
            raise RunNotFoundError(f"no run {run_id} in {self.path}")
        return [_row_to_span(row) for row in rows]

    def get_run(self, run_id: str) -> RunRecord:
        """The run rebuilt from its spans, ``interrupted`` when its writer is gone."""
        spans = self.get_trace(run_id)
        return reconstruct_run(spans, interrupted=self.is_interrupted(run_id.lower()))

    def search(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[RunSummary]:
        """Runs, newest first, filtered by pipeline, status and start time (epoch seconds)."""
        clauses: list[str] = []
        params: list[Any] = []
        if pipeline is not None:
            clauses.append("pipeline = ?")
            params.append(pipeline)
        if status in ("running", "interrupted"):
            clauses.append("end_ns IS NULL")
        elif status is not None:
            clauses.append("status = ?")
            params.append(status)
        if since is not None:
            clauses.append("start_ns >= ?")
            params.append(int(since * 1e9))
        if until is not None:
            clauses.append("start_ns <= ?")
            params.append(int(until * 1e9))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = (
            "SELECT trace_id, pipeline, status, start_ns, end_ns, stage_count, failed_stages, "  # noqa: S608
            f"writer_id FROM runs {where} ORDER BY start_ns DESC, trace_id LIMIT ?"
        )
        open_filter = status in ("running", "interrupted")
        out: list[RunSummary] = []
        with self._cursor() as conn:
            # An open-run filter may drop rows after liveness checks: read in pages until full.
            offset = 0
            while len(out) < limit:
                page = max(limit, 1) if not open_filter else max(limit, 50)
                rows = conn.execute(f"{query} OFFSET ?", (*params, page, offset)).fetchall()
                if not rows:
                    break
                offset += len(rows)
                for row in rows:
                    summary = self._summary(conn, row)
                    if status is None or summary.status == status:
                        out.append(summary)
                        if len(out) >= limit:
                            break
                if not open_filter:
                    break
        return out

    def _summary(self, conn: sqlite3.Connection, row: Sequence[Any]) -> RunSummary:
        trace_id, pipeline, status, start_ns, end_ns, stages, failed, writer_id = row
        if end_ns is None:
            # Open runs are few: their live counts and interrupted state come from the spans.
            interrupted = not self._writer_alive(conn, writer_id)
            spans = [
                _row_to_span(r)
                for r in conn.execute(
                    f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ?",  # noqa: S608
                    (trace_id,),
                )
            ]
            if spans:
                return summarize_run(reconstruct_run(spans, interrupted=interrupted))
            status = "interrupted" if interrupted else "running"
        return RunSummary(
            run_id=trace_id,
            pipeline=pipeline,
            status=status,
            start=start_ns / 1e9,
            end=None if end_ns is None else end_ns / 1e9,
            stage_count=stages,
            failed_stages=failed,
        )

    # -- retention

    def apply_retention(
        self, policy: RetentionPolicy, *, now: float | None = None
    ) -> RetentionResult:
        """Delete, per pipeline, runs older than ``policy.max_age`` or beyond the newest
        ``policy.keep``, with all their spans, in one transaction; never a run still being
        written. Spans of traces that have no run row (foreign spans) older than ``max_age`` go
        too. Freed pages are then released with an incremental vacuum."""
        if not policy.is_active:
            return RetentionResult(0, 0)
        now = self._clock() if now is None else now
        with self._cursor() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (trace_id TEXT PRIMARY KEY)")
                conn.execute("DELETE FROM temp.doomed")
                cutoff = None
                if policy.max_age is not None:
                    cutoff = int((now - policy.max_age) * 1e9)
                    conn.execute(
                        "INSERT OR IGNORE INTO temp.doomed SELECT trace_id FROM runs "
                        "WHERE start_ns < ?",
                        (cutoff,),
                    )
                if policy.keep is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO temp.doomed SELECT trace_id FROM ("
                        " SELECT trace_id, ROW_NUMBER() OVER ("
                        "  PARTITION BY pipeline ORDER BY start_ns DESC, trace_id) AS n"
                        " FROM runs) WHERE n > ?",
                        (policy.keep,),
                    )
                open_rows = conn.execute(
                    "SELECT r.trace_id, r.writer_id FROM runs r JOIN temp.doomed d "
                    "ON d.trace_id = r.trace_id WHERE r.end_ns IS NULL"
                ).fetchall()
                for trace_id, writer_id in open_rows:
                    if self._writer_alive(conn, writer_id):
                        conn.execute("DELETE FROM temp.doomed WHERE trace_id = ?", (trace_id,))
                spans = conn.execute(
                    "DELETE FROM spans WHERE trace_id IN (SELECT trace_id FROM temp.doomed)"
                ).rowcount
                runs = conn.execute(
                    "DELETE FROM runs WHERE trace_id IN (SELECT trace_id FROM temp.doomed)"
                ).rowcount
                if cutoff is not None:
                    spans += conn.execute(
                        "DELETE FROM spans WHERE start_ns < ? AND trace_id NOT IN "
                        "(SELECT trace_id FROM runs)",
                        (cutoff,),
                    ).rowcount
                conn.execute(
                    "DELETE FROM writers WHERE closed_ns IS NOT NULL AND id NOT IN "
                    "(SELECT writer_id FROM runs WHERE writer_id IS NOT NULL)"
                )
                conn.execute("DELETE FROM temp.doomed")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            # Outside the transaction: incremental_vacuum cannot run inside one.
            conn.execute("PRAGMA incremental_vacuum")
        return RetentionResult(deleted_runs=runs, deleted_spans=spans)


# --- the processor (writing side) ------------------------------------------------------------

_FLUSH = object()
_STOP = object()


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """The span store writer's verdict for ``/readyz``."""

    ok: bool
    detail: str


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


def _sdk_row(span: ReadableSpan, attributes: dict[str, Any], resource_json: str) -> tuple[Any, ...]:
    """The row of an ended span; ``attributes`` is the caller's one copy of its attributes."""
    context = span.get_span_context()
    parent = span.parent
    status = span.status
    assert context is not None
    events = span.events
    links = span.links
    return (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        None if parent is None else format(parent.span_id, "016x"),
        span.name,
        _KIND_NAMES[span.kind],
        span.start_time or 0,
        span.end_time,
        _STATUS_NAMES[status.status_code],
        status.description or "",
        _dumps(attributes),
        _dumps([[e.name, e.timestamp, dict(e.attributes or {})] for e in events])
        if events
        else "[]",
        _dumps(
            [
                [
                    format(link.context.trace_id, "032x"),
                    format(link.context.span_id, "016x"),
                    dict(link.attributes or {}),
                ]
                for link in links
            ]
        )
        if links
        else "[]",
        resource_json,
    )


# Enum ``.name`` is a descriptor lookup per call; the writer asks it twice per span.
_KIND_NAMES: Final = {kind: kind.name for kind in SpanKind}
_STATUS_NAMES: Final = {code: code.name for code in StatusCode}


def _start_row(span: Span, attributes: dict[str, Any], resource_json: str) -> tuple[Any, ...]:
    """The row of a span that just started, from immutable parts and the copied attributes
    (a live span is being changed by its own thread meanwhile)."""
    context = span.get_span_context()
    parent = span.parent
    return (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        None if parent is None else format(parent.span_id, "016x"),
        span.name,
        _KIND_NAMES[span.kind],
        span.start_time or 0,
        None,
        "UNSET",
        "",
        _dumps(attributes),
        "[]",
        "[]",
        resource_json,
    )


def _is_run_span(parent: object, attributes: Any) -> bool:
    return (
        parent is None
        and bool(attributes)
        and (attributes.get(t.CICD_PIPELINE_ACTION_NAME) == t.RUN_ACTION)
    )


class SqliteSpanProcessor(SpanProcessor):
    """An OTel ``SpanProcessor`` writing every span to the SQLite store at start and at end.

    Never blocks the caller beyond a queue put; a failing write is logged and the batch dropped
    (telemetry never breaks the pipeline). Register it with
    ``tracer_provider.add_span_processor(SqliteSpanProcessor(path))``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = 0.1,
        max_batch: int = 4096,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self.path = Path(path)
        self._interval = flush_interval
        self._max_batch = max_batch
        self._retention = retention
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._resource_json: dict[int, tuple[Any, str]] = {}
        # Per open run started here: stage name -> [(start_ns, instance, status)] of ended
        # attempts, so a run's summary needs no read-back when its run span ends.
        self._tally: dict[str, dict[str, list[tuple[int, int, str]]]] = {}
        self._shutdown = False
        self._writer_id: int | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._last_write_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="taskdaemon-span-store", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise SpanSourceError(f"{self.path}: cannot open span store: {self._error}")

    # -- SpanProcessor interface (hot path: enqueue only)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Queue the span's start. Its attributes are copied by the writer, off the caller's
        thread: by then the span may have more of them, which is all the better."""
        if not self._shutdown:
            self._queue.put((False, span))

    def _on_ending(self, span: Span) -> None:
        """Nothing to do before the span is frozen."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the ended span (immutable from now on, so no copy)."""
        if not self._shutdown:
            self._queue.put((True, span))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write everything queued so far; False if that took longer than the timeout."""
        if not self._thread.is_alive():
            return not self._shutdown
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Flush, mark this writer closed, stop the thread; safe to call twice."""
        if self._shutdown:
            return
        self._shutdown = True
        marker = _Flush()
        self._queue.put(marker)
        self._queue.put(_STOP)
        self._thread.join()

    def health(self) -> StoreHealth:
        """Whether spans are being written: the writer thread is alive and its last write
        succeeded (``/readyz`` reports this as the ``span_store`` component)."""
        if self._shutdown:
            return StoreHealth(False, f"{self.path}: span store closed")
        if not self._thread.is_alive():
            return StoreHealth(False, f"{self.path}: span store writer thread died")
        if self._last_write_error is not None:
            return StoreHealth(False, f"{self.path}: last write failed: {self._last_write_error}")
        return StoreHealth(True, f"{self.path}: writing")

    # -- writer thread

    def _resource(self, span: ReadableSpan) -> str:
        resource = span.resource
        cached = self._resource_json.get(id(resource))
        if cached is None or cached[0] is not resource:
            cached = (resource, _dumps(dict(resource.attributes)))
            self._resource_json[id(resource)] = cached
        return cached[1]

    def _run(self) -> None:
        try:
            conn = _connect(self.path)
            now = time.time_ns()
            self._writer_id = conn.execute(
                "INSERT INTO writers (pid, host, started_ns, heartbeat_ns) VALUES (?, ?, ?, ?)",
                (os.getpid(), socket.gethostname(), now, now),
            ).lastrowid
        except BaseException as exc:  # reported to the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            policy = self._retention if self._retention is not None else retention_from_env()
            if policy.is_active:
                SpanStore(self.path, retention=policy).close()
        except Exception:
            logger.exception("span store retention failed; continuing without it")
        last_beat = time.monotonic()
        stop = False
        while not stop:
            batch: list[tuple[bool, Any]] = []
            flushes: list[_Flush] = []
            deadline = time.monotonic() + HEARTBEAT_EVERY
            while len(batch) < self._max_batch:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                if isinstance(item, _Flush):
                    flushes.append(item)
                    break
                if not batch:
                    # First span of a batch: write it at most one interval from now.
                    deadline = time.monotonic() + self._interval
                batch.append(item)
            beat = time.monotonic() - last_beat >= HEARTBEAT_EVERY
            if batch or beat or stop:
                try:
                    self._write(conn, batch, closing=stop)
                    self._last_write_error = None
                except Exception as exc:
                    self._last_write_error = f"{type(exc).__name__}: {exc}"
                    logger.exception("span store write failed; %d span rows dropped", len(batch))
                last_beat = time.monotonic()
            for flush in flushes:
                flush.done.set()
        conn.close()

    def _write(
        self, conn: sqlite3.Connection, batch: list[tuple[bool, Any]], *, closing: bool
    ) -> None:
        rows: dict[int, tuple[bool, Any]] = {}
        for item in batch:
            # Keyed by the span object (the SDK hands the same one to on_start and on_end); an
            # end supersedes a start of the same batch.
            if item[0] or id(item[1]) not in rows:
                rows[id(item[1])] = item
        started: list[tuple[Any, ...]] = []
        ended: list[tuple[Any, ...]] = []
        new_runs: list[tuple[Any, ...]] = []
        ended_root_spans: list[tuple[str, Any]] = []
        for is_end, span in rows.values():
            if not is_end and span.end_time is not None:
                continue  # ended meanwhile: its end is queued right behind, write only that
            # The one copy this span costs (a live span's is taken under its own lock).
            attrs = dict(span.attributes or {})
            is_run = _is_run_span(span.parent, attrs)
            if is_end:
                row = _sdk_row(span, attrs, self._resource(span))
                ended.append(row)
                if is_run:
                    ended_root_spans.append((row[0], span))
                else:
                    self._count(row[0], row[5], row[6], row[7], attrs)
            else:
                row = _start_row(span, attrs, self._resource(span))
                started.append(row)
            if is_run:
                self._tally.setdefault(row[0], {})
                stages = attrs.get(t.PIPELINE_STAGES) or ()
                new_runs.append(
                    (
                        row[0],
                        str(attrs.get(t.CICD_PIPELINE_NAME, "")),
                        row[5],
                        len(stages),
                        self._writer_id,
                    )
                )
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_INSERT_START, started)
            conn.executemany(_INSERT_END, ended)
            conn.executemany(
                "INSERT OR IGNORE INTO runs (trace_id, pipeline, status, start_ns, stage_count, "
                "writer_id) VALUES (?, ?, 'running', ?, ?, ?)",
                new_runs,
            )
            finished = (self._finished_run_row(conn, run, span) for run, span in ended_root_spans)
            conn.executemany(_UPSERT_RUN, [row for row in finished if row is not None])
            now = time.time_ns()
            conn.execute(
                "UPDATE writers SET heartbeat_ns = ?, closed_ns = ? WHERE id = ?",
                (now, now if closing else None, self._writer_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _count(
        self,
        trace_id: str,
        start: int,
        end: int | None,
        status_code: str,
        attrs: dict[str, Any],
    ) -> None:
        """Tally an ended stage span of a run this processor saw start."""
        tally = self._tally.get(trace_id)
        name = attrs.get(t.CICD_TASK_NAME)
        if tally is None or not isinstance(name, str) or not name:
            return
        entries = tally.setdefault(name, [])
        if is_skip(attrs, start, end):
            return
        instance = attrs.get(t.STAGE_INSTANCE, 0)
        status = ended_attempt_status(attrs, status_code)
        entries.append((start, instance if isinstance(instance, int) else 0, status))

    def _finished_run_row(
        self, conn: sqlite3.Connection, trace_id: str, root: ReadableSpan
    ) -> tuple[Any, ...] | None:
        """The ended run's summary row (None if its run span is not stored): from the
        in-memory tally of its stage spans when this processor saw the run start, else by
        rebuilding the run from its stored spans."""
        tally = self._tally.pop(trace_id, None)
        attrs = root.attributes or {}
        if tally is None:
            spans = [
                _row_to_span(r)
                for r in conn.execute(
                    f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ?",  # noqa: S608
                    (trace_id,),
                )
            ]
            if find_root(spans) is None:
                return None
            summary = summarize_run(reconstruct_run(spans))
            status, stage_count, failed = (
                summary.status,
                summary.stage_count,
                summary.failed_stages,
            )
        else:
            declared = attrs.get(t.PIPELINE_STAGES)
            names = [str(n) for n in declared] if isinstance(declared, tuple | list) else []
            names += [name for name in tally if name not in names]
            stage_count = len(names)
            failed = 0
            for name in names:
                entries = sorted(tally.get(name, []))
                if stage_status_of((i, s) for _, i, s in entries) in FAILED_STAGE_STATUSES:
                    failed += 1
            status = ended_run_status(attrs, root.status.status_code.name)
        return (
            trace_id,
            str(attrs.get(t.CICD_PIPELINE_NAME, "")),
            status,
            root.start_time or 0,
            root.end_time,
            stage_count,
            failed,
            self._writer_id,
        )


def iter_rows_for_bulk(spans: Iterable[SpanRecord]) -> Iterator[tuple[Any, ...]]:
    """``spans`` as rows of the ``spans`` table (for tools and benchmarks that bulk-load)."""
    for s in spans:
        yield (
            s.trace_id,
            s.span_id,
            s.parent_span_id,
            s.name,
            s.kind,
            s.start_ns,
            s.end_ns,
            s.status_code,
            s.status_message,
            _dumps(dict(s.attributes)),
            _dumps([[e.name, e.time_ns, dict(e.attributes)] for e in s.events]),
            _dumps([[lk.trace_id, lk.span_id, dict(lk.attributes)] for lk in s.links]),
            _dumps(dict(s.resource)),
        )
