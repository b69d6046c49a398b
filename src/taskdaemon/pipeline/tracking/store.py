"""The embedded span store, reading side: runs, traces and retention over the SQLite file that
``SqliteSpanProcessor`` (``tracking.writer``) writes. The tables are
``tracking._tables``, its migrations ``tracking._migrations``.

``runs`` rows. One per run (trace), denormalized from the root span: pipeline, status, start,
end, stage count, failed stages, and the id of the writer that started it. ``status`` is
``running`` until the root span ends; the counts are exact once the run has ended (they are
computed from the spans, as ``reconstruct_run`` sees them).

Interrupted runs. A run whose root span is still open is ``interrupted`` when no live process can
still end it: its writer row is closed (the processor shut down with the run open), or the writer
ran on this host and its pid is gone (or a zombie), or the writer's heartbeat (renewed every
second while the processor lives) is more than ``STALE_AFTER`` seconds away from the reader's
clock (a writer on another host, or a reused pid). Every stage span that ended more than one
flush interval before a SIGKILL is in the file; open stage spans of an interrupted run read as
``interrupted``.

Retention (``apply_retention``): per pipeline, runs older than ``max_age`` and beyond the newest
``keep`` are deleted with all their spans in one transaction (runs still being written are never
deleted), then freed pages are returned with ``PRAGMA incremental_vacuum`` outside it; traces of
other services (no run row) go by ``max_age`` only, never by ``keep``. The store
applies ``TASKDAEMON_RETENTION_MAX_AGE`` / ``TASKDAEMON_RETENTION_KEEP`` when it opens.
``vacuum`` compacts the whole file on demand (``taskdaemon retention --vacuum``).

A store this process may read but not write (a folder of another user, a read-only mount:
``_schema.connect_to_read``) is read as any other. The retention of the environment is not
applied to it on open (a reader must not fail for a setting meant for the store's writer), and
``apply_retention`` and ``vacuum`` refuse it in one line saying why.

A missing file. The store never creates its file (writers do: ``tracking.writer``), so a
mistyped path is not turned into an empty store: opening one is MissingStoreError, naming the
path. Opened with ``missing_ok`` (``open_source`` does so for the home's own store, which no
run may have made yet), a missing file reads as a store without runs, and each query looks for
it again, so a long-lived reader (``watch``, the web page) sees the runs of a writer started
after it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

from taskdaemon.pipeline.ascii_number import ascii_only
from taskdaemon.pipeline.durations import parse_age
from taskdaemon.pipeline.errors import (
    RunNotFoundError,
    SettingsError,
    SpanSourceError,
    SpanStoreError,
)
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.records import RunRecord, RunSummary
from taskdaemon.pipeline.run_id_form import RUN_ID_DIGITS, run_id_problem
from taskdaemon.pipeline.status_rules import INTERRUPTED, OPEN_RUN_STATUSES
from taskdaemon.pipeline.tracking._retention import delete_expired
from taskdaemon.pipeline.tracking._rows import RowTypes
from taskdaemon.pipeline.tracking._schema import (
    PIPELINE_NAMES,
    SCHEMA_VERSION,
    MissingStoreError,
    connect_to_read,
    empty_store,
    reads_only,
    rollback,
    why_read_only,
)
from taskdaemon.pipeline.tracking._trace_read import select_trace
from taskdaemon.pipeline.tracking.reconstruct import reconstruct_run, summarize_run
from taskdaemon.pipeline.tracking.spans import SpanRecord, epoch_seconds
from taskdaemon.pipeline.variables import reader
from taskdaemon.pipeline.wording import counted

__all__ = [
    "SCHEMA_VERSION",
    "STALE_AFTER",
    "RetentionPolicy",
    "RetentionResult",
    "SpanStore",
    "retention_from_env",
    "select_trace",
    "why_read_only",
]

logger = logging.getLogger(__name__)

#: Seconds between a writer's heartbeat and the reader's clock, either way, past which the
#: writer is presumed dead (``SpanStore.writer_alive``).
STALE_AFTER: Final = 30.0


# --- retention -------------------------------------------------------------------------------


#: The largest count of runs retention keeps (``TASKDAEMON_RETENTION_KEEP``, ``retention
#: --keep``): far past any history, and within SQLite's integers (past them, a traceback).
MAX_KEEP = 1_000_000_000


@frozen
class RetentionPolicy:
    """What to keep, per pipeline: runs younger than ``max_age`` seconds, the newest ``keep``."""

    max_age: float | None = None
    keep: int | None = None

    @property
    def is_active(self) -> bool:
        """True when the policy would delete anything at all."""
        return self.max_age is not None or self.keep is not None


@frozen
class RetentionResult:
    """What one retention pass deleted."""

    deleted_runs: int
    deleted_spans: int


def retention_from_env(environ: dict[str, str] | None = None) -> RetentionPolicy:
    """The policy of ``TASKDAEMON_RETENTION_MAX_AGE`` (``30d``, ``12h``, seconds) and
    ``TASKDAEMON_RETENTION_KEEP`` (a count); unset means no limit. ``SettingsError`` naming
    each invalid variable, as ``settings.load_settings`` does: every command that opens the
    store then exits 2 with one line per variable."""
    lookup = reader(environ)
    raw_age = (lookup("TASKDAEMON_RETENTION_MAX_AGE") or "").strip()
    raw_keep = (lookup("TASKDAEMON_RETENTION_KEEP") or "").strip()
    problems: list[tuple[str, str]] = []
    max_age: float | None = None
    keep: int | None = None
    try:
        max_age = parse_age(raw_age, bare_seconds=True) if raw_age else None
    except ValueError as exc:
        problems.append(("TASKDAEMON_RETENTION_MAX_AGE", str(exc)))
    try:
        keep = int(ascii_only(raw_keep)) if raw_keep else None
    except ValueError:
        problems.append(("TASKDAEMON_RETENTION_KEEP", f"not a count: {quote(raw_keep)}"))
    if keep is not None and not 0 <= keep <= MAX_KEEP:
        reason = f"must be 0 to {MAX_KEEP}, not {quote(raw_keep)}"
        problems.append(("TASKDAEMON_RETENTION_KEEP", reason))
    if problems:
        raise SettingsError(problems)
    return RetentionPolicy(max_age=max_age, keep=keep)


# --- the store (reading side) ----------------------------------------------------------------


#: A ``runs`` row as ``search`` reads it: SQLite keeps any value in any column, and one of
#: another type failed ``runs list`` and the web page's list of runs with a traceback.
_RUN_COLUMNS: Final = RowTypes(
    (
        ("trace_id", str, False),
        ("pipeline", str, False),
        ("status", str, False),
        ("start_ns", int, False),
        ("end_ns", int, True),
        ("stage_count", int, False),
        ("failed_stages", int, False),
        ("writer_id", int, True),
        ("replay_of", str, True),
        ("scheduled_ns", int, True),
    )
)


class SpanStore:
    """The SQLite span store as a ``SpanSource`` (plus retention and summaries).

    Thread-safe (one connection behind a lock). ``retention``: a policy applied once on open;
    None reads it from the environment (``retention_from_env``). ``missing_ok``: a missing
    file reads as an empty store until it appears (see the module docstring); else it is
    MissingStoreError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: RetentionPolicy | None = None,
        clock: Any = time.time,
        missing_ok: bool = False,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        # Read first: an invalid setting is reported before whatever the file's state is.
        policy = retention if retention is not None else retention_from_env()
        self._waiting = False  # the file is missing: _conn is an empty in-memory store
        try:
            self._conn = connect_to_read(self.path)
        except MissingStoreError:
            if not missing_ok:
                raise
            self._conn, self._waiting = empty_store(), True
        if policy.is_active and reads_only(self._conn) is None:
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

    @property
    def missing(self) -> bool:
        """True while the file does not exist (a store opened with ``missing_ok``)."""
        with self._lock:
            return self._look_again()

    def _look_again(self) -> bool:
        """While waiting for the file, open it if it exists now; whether it is still missing.
        Called with the lock held."""
        if self._waiting:
            try:
                conn = connect_to_read(self.path)
            except MissingStoreError:
                return True
            self._conn.close()
            self._conn, self._waiting = conn, False
        return False

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._look_again()
                yield self._conn
            except sqlite3.Error as exc:
                raise SpanSourceError(f"{self.path}: {exc}") from exc

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """``_cursor`` in one read transaction: every statement sees the file as one commit of
        a writer left it. In autocommit each statement sees the latest commit, and ``get_run``
        read a run's spans before the batch that ended it and its ``runs`` row after it: the
        run read ``interrupted``, its last stages (no span yet) ``skipped``, and ``watch``
        ended on that picture of a run that went on to succeed."""
        with self._cursor() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                rollback(conn)  # it only read: ends the transaction, keeps any error raised

    def _refuse_read_only(self, verb: str) -> None:
        """SpanSourceError in one line when this process only reads the store (opened by
        ``_schema.connect_to_read`` where it cannot write), before SQLite's "attempt to write
        a readonly database"."""
        with self._lock:
            why = reads_only(self._conn)
        if why is not None:
            raise SpanStoreError(f"{self.path}: cannot {verb} this span store: {why}")

    # -- liveness

    def writer_alive(self, conn: sqlite3.Connection, writer_id: int | None) -> bool:
        """Whether the writer ``writer_id`` (read through ``conn``, a connection to this
        store's file or a copy of it) can still end the runs it started (see the module
        docstring).

        The heartbeat is the writer's clock, the reader's is its own: one number cannot tell a
        clock that runs ahead from a writer that lives. So the skew is bounded, the same both
        ways: a heartbeat more than ``STALE_AFTER`` seconds ahead of the reader's clock is no
        more a sign of life than one as far behind, which already counted as dead. Before, a
        writer on a host whose clock ran an hour ahead was taken for alive an hour after it
        died, and one that wrote 2**63-1 (a clock or a file gone wrong) for good: its runs read
        ``running``, and retention never deleted them. A live writer is at most a heartbeat
        interval behind, so hosts whose clocks agree within about half a minute (NTP keeps them
        within milliseconds) are read right; a host further off is misread either way, and
        saying its runs ended is the mistake that ends. A heartbeat that is not a number (a
        file edited) is no sign of life either."""
        if writer_id is None:
            return False
        row = conn.execute(
            "SELECT pid, host, heartbeat_ns, closed_ns FROM writers WHERE id = ?", (writer_id,)
        ).fetchone()
        if row is None or row[3] is not None:
            return False
        pid, host, heartbeat_ns = row[0], row[1], row[2]
        if not isinstance(heartbeat_ns, int):
            return False
        if abs(self._clock() - heartbeat_ns / 1e9) > STALE_AFTER:
            return False
        # Imported here: reading runs needs no socket module unless a writer is live.
        import socket  # noqa: PLC0415

        if host == socket.gethostname():
            import psutil  # noqa: PLC0415 - only a run with a live writer needs it (start-up time)

            try:
                return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                return False
        return True

    def is_interrupted(self, run_id: str, *, or_ended: bool = False) -> bool:
        """True when the run is open and no live writer can end it (see the module docstring);
        with ``or_ended``, also when its row says it ended: no writer will end its spans."""
        with self._cursor() as conn:
            return self._interrupted(conn, run_id, or_ended=or_ended)

    def _interrupted(self, conn: sqlite3.Connection, run_id: str, *, or_ended: bool) -> bool:
        """``is_interrupted`` read through ``conn``."""
        row = conn.execute(
            "SELECT end_ns, writer_id FROM runs WHERE trace_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return False
        if row[0] is not None:
            return or_ended
        return not self.writer_alive(conn, row[1])

    # -- SpanSource

    def resolve_run_id(self, run_id: str) -> str:
        """The full run id (trace id) ``run_id`` names: itself when it has all 32 hex digits,
        else the one stored trace it is a prefix of (at least 4 digits, as ``git`` takes
        commits). RunNotFoundError when it is not hex, too short, matches nothing, or matches
        several (they are listed, so the next try can be longer)."""
        wanted = run_id.strip()
        if (problem := run_id_problem(wanted)) is not None:
            raise RunNotFoundError(problem)
        wanted = wanted.lower()
        if len(wanted) == RUN_ID_DIGITS:
            return wanted
        with self._cursor() as conn:
            # Hex digits all sort below "g": the ids starting with the prefix form one range.
            matches: list[str] = [
                row[0]
                for row in conn.execute(
                    "SELECT trace_id FROM traces WHERE trace_id >= ? AND trace_id < ? "
                    "ORDER BY trace_id LIMIT 6",
                    (wanted, wanted + "g"),
                )
            ]
        if not matches:
            raise RunNotFoundError(f"no run starting with {wanted} in {self.path}")
        if len(matches) > 1:
            listed = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise RunNotFoundError(f"run id prefix {wanted} is ambiguous: {listed}")
        return matches[0]

    def get_trace(self, run_id: str) -> list[SpanRecord]:
        """Every stored span of the run (a full id or a unique prefix, see
        ``resolve_run_id``), by start time; RunNotFoundError when there is none."""
        return self._read_run(run_id, judged=False)[0]

    def get_run(self, run_id: str) -> RunRecord:
        """The run rebuilt from its spans, ``interrupted`` when no writer will end it: its
        writer is gone, or its row says it ended though its ended run span could not be read.
        The writer stores both in one transaction, so only damage parts them (a run span row
        of the wrong type, skipped), and ``watch`` then waited for ever on a run shown running.
        The spans and the row are read as one commit left them (``_read_run``).
        """
        spans, ended = self._read_run(run_id, judged=True)
        run = reconstruct_run(spans, interrupted=ended)
        if run.status != INTERRUPTED:
            return run
        with self._cursor() as conn:
            return _seen_later(conn, run, self._clock())

    def _read_run(self, run_id: str, *, judged: bool) -> tuple[list[SpanRecord], bool]:
        """The run's spans (RunNotFoundError when none) and, when ``judged``, whether no writer
        will end it (``is_interrupted(or_ended=True)``), read in one transaction
        (``_snapshot``): a run still running reads as running, never as one whose row ended
        without its last spans, and a trace read in several queries (a large body:
        ``tracking._trace_read``) is read as one commit left it."""
        trace_id = self.resolve_run_id(run_id)
        with self._snapshot() as conn:
            spans = select_trace(conn, trace_id, where=self.path)
            ended = judged and bool(spans) and self._interrupted(conn, trace_id, or_ended=True)
        if not spans:
            raise RunNotFoundError(f"no run {run_id} in {self.path}")
        return spans, ended

    def search(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        *,
        before: str | None = None,
    ) -> list[RunSummary]:
        """Runs, newest first (runs of one start by descending run id), filtered by pipeline,
        status and start time (epoch seconds); ``before``: only those listed after that run
        (a page's last row: the next page), RunNotFoundError when no run has that id.

        ``before`` is a keyset on ``(start_ns, trace_id)``, exact to the nanosecond: runs
        stored with one start (imported, replayed) are each on one page, none skipped."""
        where, params = self._where(pipeline, status, since, until)
        query = (
            "SELECT trace_id, pipeline, status, start_ns, end_ns, stage_count, failed_stages, "  # noqa: S608
            f"writer_id, replay_of, scheduled_ns FROM runs {where}"
        )
        open_filter = status in OPEN_RUN_STATUSES
        out: list[RunSummary] = []
        skipped: list[str] = []
        # One read transaction (``_snapshot``): an open-run filter reads pages by offset, and
        # a run ending between two pages shifted the next one past an open run it then left out.
        with self._snapshot() as conn:
            if before is not None:
                start_ns = self._start_ns(conn, before)
                query += (" AND " if where else " WHERE ") + (
                    "start_ns <= ? AND (start_ns < ? OR trace_id < ?)"
                )
                params = [*params, start_ns, start_ns, before]
            query += " ORDER BY start_ns DESC, trace_id DESC LIMIT ?"
            # An open-run filter may drop rows after liveness checks: read in pages until full.
            offset = 0
            while len(out) < limit:
                page = max(limit, 1) if not open_filter else max(limit, 50)
                rows = conn.execute(f"{query} OFFSET ?", (*params, page, offset)).fetchall()
                if not rows:
                    break
                offset += len(rows)
                for row in rows:
                    problem = _RUN_COLUMNS.problem(row)
                    if problem is not None:
                        skipped.append(problem)
                        continue
                    summary = self._summary(conn, row)
                    if status is None or summary.status == status:
                        out.append(summary)
                        if len(out) >= limit:
                            break
                if not open_filter:
                    break
        if skipped:
            logger.warning(
                "%s: skipped %s (first: %s)",
                self.path,
                counted(len(skipped), "corrupt runs row"),
                skipped[0],
            )
        return out

    def run_start(self, run_id: str) -> float:
        """The start of run ``run_id`` (its whole id) from its row alone, not its spans (a page
        after a run of thousands of stages would rebuild it); RunNotFoundError without one."""
        with self._cursor() as conn:
            return epoch_seconds(self._start_ns(conn, run_id))

    def _start_ns(self, conn: sqlite3.Connection, run_id: str) -> int:
        row = conn.execute("SELECT start_ns FROM runs WHERE trace_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no run {quote(run_id)} in {self.path}")
        return int(row[0])

    def count(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int | None:
        """How many runs :meth:`search` would find without a limit; None for the ``running`` and
        ``interrupted`` filters, whose answer needs each open run's spans."""
        if status in OPEN_RUN_STATUSES:
            return None
        where, params = self._where(pipeline, status, since, until)
        with self._cursor() as conn:
            row = conn.execute(f"SELECT COUNT(*) FROM runs {where}", params).fetchone()  # noqa: S608
        return int(row[0])

    def pipeline_counts(self, limit: int = 1000) -> dict[str, int]:
        """Each pipeline with runs (the first ``limit`` by name) and how many runs it has:
        every name, however long ago it last ran, found through the (pipeline, start) index."""
        with self._cursor() as conn:
            names = [row[0] for row in conn.execute(f"{PIPELINE_NAMES} LIMIT ?", (limit,))]
            return {
                name: conn.execute(
                    "SELECT COUNT(*) FROM runs WHERE pipeline = ?", (name,)
                ).fetchone()[0]
                for name in names
            }

    @staticmethod
    def _where(
        pipeline: str | None, status: str | None, since: float | None, until: float | None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if pipeline is not None:
            clauses.append("pipeline = ?")
            params.append(pipeline)
        if status in OPEN_RUN_STATUSES:
            # An open run's row says 'running' until the upsert that sets its end also sets its
            # final status: the status names lead SQLite to the open runs through runs_status,
            # where "end_ns IS NULL" alone walked every run of the history.
            clauses.append("status = 'running' AND end_ns IS NULL")
        elif status is not None:
            clauses.append("status = ?")
            params.append(status)
        if since is not None:
            clauses.append("start_ns >= ?")
            params.append(int(since * 1e9))
        if until is not None:
            clauses.append("start_ns <= ?")
            params.append(int(until * 1e9))
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params

    def _summary(self, conn: sqlite3.Connection, row: Sequence[Any]) -> RunSummary:
        trace_id, pipeline, status, start_ns, end_ns, stages, failed, writer_id, original, due = row
        if end_ns is None:
            # Open runs are few: their live counts and interrupted state come from the spans.
            interrupted = not self.writer_alive(conn, writer_id)
            spans = select_trace(conn, trace_id, where=self.path)
            if spans:
                summary = summarize_run(reconstruct_run(spans, interrupted=interrupted))
                return _seen_later(conn, summary, self._clock())  # as ``get_run``
            status = "interrupted" if interrupted else "running"
        return RunSummary(
            run_id=trace_id,
            pipeline=pipeline,
            status=status,
            start=epoch_seconds(start_ns),  # as a rebuilt run's (``reconstruct_run``)
            end=None if end_ns is None else epoch_seconds(end_ns),
            stage_count=stages,
            failed_stages=failed,
            replay_of=original,
            scheduled_at=None if due is None else due / 1e9,  # as ``landing.scheduled_at``
        )

    # -- retention

    def vacuum(self) -> tuple[int, int]:
        """Rewrite the file without its free pages (``VACUUM``) and truncate the log; returns
        the file size in bytes before and after. Trace and resource numbers are rowid aliases,
        which VACUUM keeps, so every reference survives. Writers in other processes wait (up to
        the 30 s busy timeout) while it runs. A missing file has nothing to compact: (0, 0)."""
        if self.missing:
            return 0, 0
        self._refuse_read_only("compact")
        before = self.path.stat().st_size
        with self._cursor() as conn:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return before, self.path.stat().st_size

    def apply_retention(
        self, policy: RetentionPolicy, *, now: float | None = None
    ) -> RetentionResult:
        """Delete, per pipeline, runs older than ``policy.max_age`` or beyond the newest
        ``policy.keep``, with their spans and log records, in one transaction; never a run
        still being written. Traces that have no run row (foreign spans) whose first span is
        older than ``max_age`` go too, and resources no remaining trace uses; ``keep`` counts
        runs and leaves those traces, so only ``max_age`` bounds them: they have no pipeline
        to count them by, and finding the newest ``keep`` of them would read every trace in
        the store on every open (no index tells them from runs). Freed pages are then
        released with an incremental vacuum. What a pass reads grows with what it deletes and
        with ``keep``, not with the whole history, and a store whose runs all fit within
        ``keep`` is not walked at all (``tracking._retention``)."""
        if not policy.is_active:
            return RetentionResult(0, 0)
        self._refuse_read_only("delete runs from")
        now = self._clock() if now is None else now
        cutoff = None if policy.max_age is None else int((now - policy.max_age) * 1e9)
        with self._cursor() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                runs, spans = delete_expired(
                    conn, cutoff_ns=cutoff, keep=policy.keep, writer_alive=self.writer_alive
                )
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
            # Outside the transaction: incremental_vacuum cannot run inside one.
            conn.execute("PRAGMA incremental_vacuum")
        return RetentionResult(deleted_runs=runs, deleted_spans=spans)


_Seen = TypeVar("_Seen", RunRecord, RunSummary)


def _seen_later(conn: sqlite3.Connection, run: _Seen, now: float) -> _Seen:
    """``run`` (an interrupted run, rebuilt from its spans) with its ``last_seen`` moved to its
    process's last sign of life when the store knows a later one than its records: the writer's
    last heartbeat (renewed every second while it lived), or the end its row records (a run span
    that could not be read: the writer lived on after the run, to other runs). Not one after
    ``now``: a writer whose clock ran ahead (another host's, or a file edited) wrote it, and
    ``at least`` is a floor; a heartbeat of 2**63-1 made a run killed at once last ``at least``
    centuries. Its records, which nothing contradicts, are the floor then."""
    if run.last_seen is None:
        return run
    row = conn.execute(
        "SELECT runs.end_ns, writers.heartbeat_ns FROM runs "
        "LEFT JOIN writers ON writers.id = runs.writer_id WHERE runs.trace_id = ?",
        (run.run_id,),
    ).fetchone()
    ns = None if row is None else row[0] if row[0] is not None else row[1]
    if not isinstance(ns, int) or epoch_seconds(ns) > now:
        return run
    return replace(run, last_seen=max(run.last_seen, epoch_seconds(ns)))
