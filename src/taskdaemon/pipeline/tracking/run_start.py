"""A run's start written to the embedded store before its telemetry loads.

``taskdaemon run`` starts its first stage while the OTel SDK, the span store's writer and the
monitor load on a thread (``cli/deferred.py``), which takes from half a second to seconds on a
busy host. A process killed meanwhile (``kill -9``, the OOM killer) used to leave nothing of
its run: no row in ``runs``, no trace. :func:`write_run_start` writes, on the caller's thread
and before the run's first stage starts, what a reader needs to show the run:

* a ``writers`` row for this process (pid, host, heartbeat), the one the span store's writer
  later takes over (:func:`adopted_writer`) and renews every second, so that readers judge the
  run's liveness by this process from its first moment (``store``, "Interrupted runs"): a
  process killed before its telemetry loaded reads ``interrupted`` as soon as its pid is gone.
  Until the take-over, :func:`keep_alive` renews it (``early_heartbeat``): a load slower than
  ``store.STALE_AFTER`` does not make the live run read ``interrupted`` meanwhile;
* the run span's start row: the run id and what the monitor's run span records of the
  definition at its start (``monitor._books.pipeline_info``) but its edges, hash and text,
  redacted as the monitor's tracer redacts (``redaction.redact``); not the run's request,
  which only the monitor's payload capture records (masked, bounded). Its span id is the one
  the run span is then started with (``cli/run_ids.py``), and the writer's row of that start
  replaces it (``started_early``: once per run, never per stage), with all the span records.
  Decision: the definition's text and hash and the request stay the writer's to record. Written
  here, a run killed in its first second would replay the same whether or not the writer had
  taken over (replay57 built it), but the text, redacted and stored twice, cost every run
  work in proportion to its definition's size on the first stage's path (benchmarks/README.md,
  "The definition kept out of a run's early row (the lead, 2026-12-07)"); replay says why
  such a run has no definition and asks for the file (``replay/plan_values.py``);
* the run's ``runs`` row, ``running``, as the writer would make it.

And as each of its first ``MAX_EARLY_STAGES`` stage attempts starts before the take-over, its
stage span's start row (:func:`write_stage_start`), and its end as it ends
(:func:`write_stage_end`), so that a process killed meanwhile shows which stage was running
(``interrupted``, with its start) and how the ones before it ended, not ``skipped``. Its span
id is the one the stage span is then started with; the writer's start row replaces it (its
start rows replace an open row of the same span: ``tracking._span_batches``).

The run's rows go in one transaction, so a reader sees the run whole or not at all. What it
costs the first stage: opening the store (what the writer would do on the loading thread; the
schema check's in-memory copy is made once a process, for both) and one small transaction; each
early stage row, one statement on a second connection, opened once. It never waits
long for another process's lock (``BUSY_WAIT``), and never migrates a store of an older
schema (a migration can take long): the loaded writer does, as before, and the start row comes
with it. It says nothing when it cannot write (the writer says why the store cannot open, once).

:func:`withdraw_run_start` takes the rows back when the telemetry did not load: the run then
reads as it did before, not stored, rather than ``interrupted`` though it ran to its end.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.durations import epoch_ns
from taskdaemon.pipeline.redaction import mappings_unchanged, redact, redact_text
from taskdaemon.pipeline.status_rules import FAILED_STAGE_STATUSES
from taskdaemon.pipeline.tracking._schema import SCHEMA_VERSION, connect, rollback
from taskdaemon.pipeline.tracking._tables import INSERT_RUN, insert_writer

if TYPE_CHECKING:
    from taskdaemon.pipeline.events import StageFinished, StageStarted
    from taskdaemon.pipeline.model import Pipeline
    from taskdaemon.pipeline.tracking.early_heartbeat import Heartbeat

__all__ = [
    "BUSY_WAIT",
    "MAX_EARLY_STAGES",
    "adopted_writer",
    "close_stage_rows",
    "keep_alive",
    "stage_rows_left",
    "started_early",
    "stop_heartbeat",
    "withdraw_run_start",
    "write_run_start",
    "write_stage_end",
    "write_stage_start",
]

_log = logging.getLogger("taskdaemon.tracking")

#: Milliseconds the start waits for another process's lock before it gives up (the loaded
#: writer then writes the start, as before), at each step of opening the store and writing:
#: a write lock, or a store another program holds in SQLite's exclusive locking mode, which
#: no one may even read (its default wait, 5 s, and the writer's, 30 s, would hold the stage).
BUSY_WAIT: Final = 250
#: Stage attempts of a process given an early row at most (two statements each, on the engine's
#: thread: one as it starts, one as it ends). A chain of quick stages can start hundreds before
#: the take-over; what a crash leaves unclear is the stages running then, which a handful
#: covers; past the bound a stage reads ``skipped`` (``run interrupted``), as all did before.
#: Decision: 8, not more. Each row is a commit on the engine's thread, a bounded cost a run,
#: and a quick chain pays it for each of its early stages (the lead's count at 64: the session's
#: closing figures in benchmarks/README.md), while the stages a larger bound adds are a quick
#: chain's first ones, not those running when it is killed.
MAX_EARLY_STAGES: Final = 8
#: The resource of an early start row: the SDK's is not known before it loads.
_NO_RESOURCE: Final = "{}"

_lock = threading.Lock()
# Held by a start's write, and by the take-over (before ``_lock``): one waits for the other.
_writing = threading.Lock()
# By store file (absolute path): (pid, writers row id) registered here, until a writer takes it.
_writers: dict[str, tuple[int, int | None]] = {}
# Run ids whose start row was written here and not yet replaced by the writer's: their trace
# and resource numbers and run span id, which their stages' early rows use.
_early_runs: dict[str, tuple[int, int, str]] = {}
# By store file: the heartbeat renewing the row of ``_writers``, until stopped.
_heartbeats: dict[str, Heartbeat] = {}
# By store file: the pid of the process whose span writer opened it (``adopted_writer``), and
# that writer's ``writers`` row when it had one then.
_taken: dict[str, tuple[int, int | None]] = {}
# By store file: the connection writing early stage rows, with the pid that opened it.
_stage_conns: dict[str, tuple[int, sqlite3.Connection]] = {}
# Early stage rows this process wrote (``MAX_EARLY_STAGES``).
_stage_rows = 0


def _key(path: Path) -> str:
    return os.path.abspath(path)


def write_run_start(path: Path, run_id: str, pipeline: Pipeline, at: float) -> str | None:
    """Write run ``run_id``'s start to the store at ``path`` (module docstring): the span id
    of its run span's row, or None when nothing was written (the store missing a schema this
    code writes without migrating, busy, unwritable: said at debug level only), and when
    this process's span writer has opened the store already without a ``writers`` row of its
    own yet (its first batch registers it). Once it has one (a run named after its telemetry
    began to load, before the monitor has the run), the start is written with that row, which
    the writer renews, not with a new one that nobody would renew."""
    with _writing:  # the take-over comes before or after, not in between
        taken = _taken.get(_key(path))
        if taken is None or taken[0] != os.getpid():
            return _write(path, run_id, pipeline, at, taken=None)
        return None if taken[1] is None else _write(path, run_id, pipeline, at, taken=taken[1])


def _write(
    path: Path, run_id: str, pipeline: Pipeline, at: float, *, taken: int | None
) -> str | None:
    """:func:`write_run_start`'s write; ``taken``: the span writer's ``writers`` row, if it
    took over."""
    try:
        if path.exists() and _old_schema(path):
            return None
        conn = connect(path, wait=BUSY_WAIT / 1000)
    except Exception as error:
        _log.debug("%s: run start not written before telemetry: %s", path, error)
        return None
    try:
        with _lock:
            writer_id = taken if taken is not None else _own_row(_writers.get(_key(path)))
        span_id = format(int.from_bytes(os.urandom(8)) or 1, "016x")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if writer_id is None:
                writer_id = insert_writer(conn)
            numbers = _insert(
                conn, run_id, pipeline, span_id=span_id, start_ns=epoch_ns(at), writer=writer_id
            )
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
    except Exception as error:
        _log.debug("%s: run start not written before telemetry: %s", path, error)
        return None
    finally:
        conn.close()
    with _lock:
        if taken is None:
            _writers[_key(path)] = (os.getpid(), writer_id)
        _early_runs[run_id] = (*numbers, span_id)
    return span_id


def _old_schema(path: Path) -> bool:
    """Whether the file at ``path`` holds a store of another schema version than this code's
    (an older one is migrated by the loaded writer; anything else is its to refuse)."""
    conn = sqlite3.connect(
        f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro",
        uri=True,
        timeout=BUSY_WAIT / 1000,
    )
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    finally:
        conn.close()
    return bool(version) and version != SCHEMA_VERSION


def _insert(
    conn: sqlite3.Connection,
    run_id: str,
    pipeline: Pipeline,
    *,
    span_id: str,
    start_ns: int,
    writer: int | None,
) -> tuple[int, int]:
    """The trace, the run span's start row and the ``runs`` row, in the caller's transaction:
    the trace's and the resource's numbers."""
    attributes = {
        # The monitor's run span starts with these (``monitor._books.pipeline_info``), and more
        # that the first stage does not wait for: the edges (``telemetry_codec``, not imported
        # before it), the definition's hash (its canonical text hashed) and text.
        t.CICD_PIPELINE_NAME: pipeline.name,
        t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
        t.PIPELINE_STAGES: [stage.name for stage in pipeline.stages],
        t.PIPELINE_STAGE_LOOPS: [stage.loop for stage in pipeline.stages],
        t.PIPELINE_CONCURRENCY: pipeline.concurrency,
        t.PIPELINE_ERROR_STRATEGY: str(pipeline.error_strategy),
        t.CICD_PIPELINE_RUN_ID: run_id,
    }
    # Shown unchanged by one pre-check of all its texts, as the monitor's run span is
    # (``monitor/_books._redacted_run``), rather than ``redact`` testing each stage name on
    # its own before the first stage starts. The same values either way.
    redacted = attributes if mappings_unchanged((attributes,)) else redact(attributes)
    name = redact_text(t.run_span_name(pipeline.name))
    body: list[Any] = [None, name, "SERVER", "UNSET", "", redacted, [], []]
    conn.execute(
        "INSERT OR IGNORE INTO traces (trace_id, first_ns) VALUES (?, ?)", (run_id, start_ns)
    )
    (trace_no,) = conn.execute(
        "SELECT trace_no FROM traces WHERE trace_id = ?", (run_id,)
    ).fetchone()
    conn.execute("INSERT OR IGNORE INTO resources (attributes) VALUES (?)", (_NO_RESOURCE,))
    (resource_no,) = conn.execute(
        "SELECT resource_no FROM resources WHERE attributes = ?", (_NO_RESOURCE,)
    ).fetchone()
    conn.execute("INSERT OR IGNORE INTO trace_resources VALUES (?, ?)", (trace_no, resource_no))
    conn.execute(
        "INSERT OR IGNORE INTO spans (trace_no, span_id, start_ns, end_ns, resource_no, body) "
        "VALUES (?, ?, ?, NULL, ?, ?)",
        (
            trace_no,
            span_id,
            start_ns,
            resource_no,
            _dumps(body),
        ),
    )
    pipeline_name, stages = redacted[t.CICD_PIPELINE_NAME], len(pipeline.stages)
    conn.execute(INSERT_RUN, (run_id, pipeline_name, start_ns, stages, writer, None, None))
    return trace_no, resource_no


def adopted_writer(path: Path, register: Callable[[], int | None] | None = None) -> int | None:
    """The ``writers`` row this process registered for the store at ``path`` before its span
    writer started, which the writer takes over (once), else ``register()``'s (the writer's
    own, None when not registered yet), or None. Its heartbeat stops: once this returns, the
    caller alone writes the row (``early_heartbeat``); a run's start written later uses it
    (:func:`write_run_start`)."""
    with _writing:
        with _lock:
            known = _own_row(_writers.pop(_key(path), None))
        if known is None and register is not None:
            known = register()
        with _lock:
            _taken[_key(path)] = (os.getpid(), known)
        _close_stage_conn(path)
    stop_heartbeat(path)
    return known


def keep_alive(path: Path) -> None:
    """Renew the heartbeat of the ``writers`` row registered here for the store at ``path``
    (now, or later: each beat asks) until :func:`stop_heartbeat`, on a daemon thread; once a
    process and store."""
    from taskdaemon.pipeline.tracking.early_heartbeat import Heartbeat  # noqa: PLC0415

    key = _key(path)
    with _lock:
        if key in _heartbeats:
            return
        heartbeat = _heartbeats[key] = Heartbeat(path, functools.partial(_registered, key))
    heartbeat.start()


def _registered(key: str) -> int | None:
    """The ``writers`` row this process registered for the store ``key`` and no writer took."""
    with _lock:
        return _own_row(_writers.get(key))


def _own_row(known: tuple[int, int | None] | None) -> int | None:
    """The ``writers`` row of a ``_writers`` entry if this process registered it (a child
    forked since has the parent's entry, and another pid)."""
    return known[1] if known is not None and known[0] == os.getpid() else None


def stop_heartbeat(path: Path, *, timeout: float | None = None) -> None:
    """Stop :func:`keep_alive`'s heartbeat for the store at ``path``, if any: no beat writes
    once this returns (``Heartbeat.stop``: ``timeout`` bounds the wait, and waits for its
    thread too)."""
    with _lock:
        heartbeat = _heartbeats.pop(_key(path), None)
    if heartbeat is not None:
        heartbeat.stop(timeout=timeout)


def started_early(run_id: str) -> bool:
    """Whether ``run_id``'s start row was written here, before its run span existed; asked
    once, by the writer writing that span's start (whose row replaces this one:
    ``_span_batches._START``), and forgotten then."""
    if not _early_runs:
        return False
    with _lock:
        if run_id not in _early_runs:
            return False
        del _early_runs[run_id]
        return True


def withdraw_run_start(path: Path, run_id: str) -> None:
    """Delete what :func:`write_run_start` wrote of ``run_id`` (and its ``writers`` row, unless
    a writer took it over), when no telemetry will ever write the rest; silent on failure."""
    with _lock:
        if _early_runs.pop(run_id, None) is None:
            return
        known = _writers.pop(_key(path), None)
    stop_heartbeat(path)
    try:
        conn = connect(path, create=False)
    except Exception:
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT trace_no FROM traces WHERE trace_id = ?", (run_id,))
            for (trace_no,) in row.fetchall():
                conn.execute("DELETE FROM spans WHERE trace_no = ?", (trace_no,))
                conn.execute("DELETE FROM trace_resources WHERE trace_no = ?", (trace_no,))
                conn.execute("DELETE FROM traces WHERE trace_no = ?", (trace_no,))
            conn.execute("DELETE FROM runs WHERE trace_id = ?", (run_id,))
            if (writer_id := _own_row(known)) is not None:
                conn.execute("DELETE FROM writers WHERE id = ?", (writer_id,))
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
    except Exception as error:
        _log.debug("%s: run start of %s not withdrawn: %s", path, run_id, error)
    finally:
        conn.close()


def stage_rows_left(path: Path, run_id: str) -> bool:
    """Whether :func:`write_stage_start` may still write a row of a run ``run_id`` stage to
    the store at ``path``: its start was written here, the bound is not reached and this
    process's span writer has not taken over (the last two for good once false)."""
    return _stage_rows < MAX_EARLY_STAGES and run_id in _early_runs and not _taken_here(path)


def write_stage_start(path: Path, event: StageStarted, span_id: str) -> bool:
    """Write the start row of ``event``'s stage span, ``span_id``, to the store at ``path``
    (module docstring): whether it was, which it is not after the take-over, for a run whose
    start was not written here, past ``MAX_EARLY_STAGES``, or when the store is busy or fails
    (said at debug level; no more rows are tried then)."""
    global _stage_rows  # noqa: PLW0603 (a count a process)
    with _writing:
        run = _early_runs.get(event.run_id)
        if run is None or _stage_rows >= MAX_EARLY_STAGES or _taken_here(path):
            return False
        _stage_rows += 1
        trace_no, resource_no, parent = run
        attributes = {
            t.CICD_PIPELINE_RUN_ID: event.run_id,
            t.CICD_TASK_NAME: event.stage,
            t.STAGE_LOOP: event.loop,
            t.CICD_TASK_RUN_ID: event.task_run_id,
            t.STAGE_ATTEMPT: event.attempt,
            t.STAGE_INSTANCE: event.instance,
        }
        name = redact_text(t.stage_span_name(event.stage))
        body = [parent, name, "INTERNAL", "UNSET", "", redact(attributes), [], []]
        row = (trace_no, span_id, epoch_ns(event.at), resource_no, _dumps(body))
        return _stage_write(
            path,
            "INSERT OR IGNORE INTO spans (trace_no, span_id, start_ns, end_ns, resource_no, body) "
            "VALUES (?, ?, ?, NULL, ?, ?)",
            row,
        )


def write_stage_end(path: Path, event: StageFinished, span_id: str) -> None:
    """End the row :func:`write_stage_start` wrote of ``event``'s stage span, ``span_id``: its
    end, status (``failure`` and ``timeout`` with status ERROR, as the monitor ends them) and
    whether it is retried, as readers read an ended attempt; not after the take-over."""
    with _writing:
        run = _early_runs.get(event.run_id)
        if run is None or _taken_here(path):
            return
        code = "ERROR" if event.status in FAILED_STAGE_STATUSES else "UNSET"
        _stage_write(
            path,
            "UPDATE spans SET end_ns = ?, body = json_set(body, '$[3]', ?, ?, ?, ?, json(?)) "
            "WHERE trace_no = ? AND span_id = ? AND end_ns IS NULL",
            (
                epoch_ns(event.at),
                code,
                f'$[5]."{t.STAGE_STATUS}"',
                str(event.status),
                f'$[5]."{t.STAGE_WILL_RETRY}"',
                _dumps(event.will_retry),
                run[0],
                span_id,
            ),
        )


def _taken_here(path: Path) -> bool:
    """Whether this process's span writer has taken over the store at ``path``."""
    taken = _taken.get(_key(path))
    return taken is not None and taken[0] == os.getpid()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _stage_write(path: Path, statement: str, parameters: tuple[Any, ...]) -> bool:
    """Run ``statement``, one transaction, on the stage rows' connection (``_writing`` held):
    whether it did. On failure, none is tried again in this process (``MAX_EARLY_STAGES``)."""
    global _stage_rows  # noqa: PLW0603
    key = _key(path)
    try:
        opened = _stage_conns.get(key)
        if opened is None or opened[0] != os.getpid():  # a forked child opens its own
            conn = connect(path, create=False, wait=BUSY_WAIT / 1000)
            _stage_conns[key] = (os.getpid(), conn)
        else:
            conn = opened[1]
        conn.execute(statement, parameters)
    except Exception as error:
        _log.debug("%s: no early stage row: %s", path, error)
        _stage_rows = MAX_EARLY_STAGES
        _close_stage_conn(path)
        return False
    return True


def close_stage_rows(path: Path) -> None:
    """Close the connection :func:`write_stage_start` opened on the store at ``path``, if any
    (at the run's end; the take-over closes it too)."""
    with _writing:
        _close_stage_conn(path)


def _close_stage_conn(path: Path) -> None:
    """:func:`close_stage_rows`, ``_writing`` held."""
    opened = _stage_conns.pop(_key(path), None)
    if opened is not None and opened[0] == os.getpid():
        with contextlib.suppress(Exception):
            opened[1].close()
