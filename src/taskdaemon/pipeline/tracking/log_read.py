"""Reading runs' log records from the span store.

* :func:`read_logs` answers a run's records in order, optionally from one stage, at or above a
  level, after a row id (``taskdaemon logs --follow`` polls with the last id it saw);
* :func:`run_log_records` is the one-call form for other tools (the debugger's ``logs STAGE``
  and its dumps);
* :func:`row_records` turns one stored row into its records: captured output is stored one row
  per batch of lines (``tracking._output_rows``) and read back one record per line.

The records written as OTLP JSON logs are ``otlp_logs``' job.

Reads only SQLite: no OTel SDK, so ``taskdaemon logs`` starts fast.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from taskdaemon.pipeline.durations import log_time
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.log_levels import level_number, severity_number
from taskdaemon.pipeline.run_log_scope import LIFECYCLE_LOGGER
from taskdaemon.pipeline.tracking._rows import RowTypes
from taskdaemon.pipeline.tracking._schema import connect_to_read
from taskdaemon.pipeline.tracking.source_urls import store_path
from taskdaemon.pipeline.wording import counted

__all__ = [
    "COLUMNS",
    "LINES_ATTRIBUTE",
    "OUTPUT_SCOPE",
    "StoredLog",
    "columns",
    "connect_store",
    "read_logs",
    "row_records",
    "run_end_logged",
    "run_ended",
    "run_log_records",
]

#: The logger (scope) name of captured command output.
OUTPUT_SCOPE: Final = "taskdaemon.run.output"
#: On an output row holding several lines (``tracking._output_rows``): how many.
LINES_ATTRIBUTE: Final = "taskdaemon.log.lines"
COLUMNS: Final = (
    "id, trace_id, time_ns, severity, level, pipeline, stage, instance, attempt, span_id, scope,"
    " body, attributes"
)

#: A row of :data:`COLUMNS` as :func:`read_logs` takes it (``attributes`` is JSON text).
_COLUMN_TYPES: Final = RowTypes(
    (
        ("id", int, False),
        ("trace_id", str, False),
        ("time_ns", int, False),
        ("severity", int, False),
        ("level", str, False),
        ("pipeline", str, True),
        ("stage", str, True),
        ("instance", int, True),
        ("attempt", int, True),
        ("span_id", str, True),
        ("scope", str, False),
        ("body", str, False),
        ("attributes", str, False),
    )
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredLog:
    """One log record read back from the store, with its row id (``run_id`` is its trace id).

    The write side is :class:`taskdaemon.pipeline.log_rows.LogRow`: the row before it is stored.
    """

    id: int
    run_id: str
    time_ns: int
    severity: int  # OTel severity number
    level: str
    pipeline: str | None
    stage: str | None
    instance: int | None
    attempt: int | None
    span_id: str | None
    scope: str  # the logger's name
    body: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    #: The body's whole length when it was read cut (``read_logs(max_body=...)``), else None.
    body_length: int | None = None

    @property
    def trace_id(self) -> str:
        """The run's trace id (the run id)."""
        return self.run_id

    def as_json(self) -> dict[str, Any]:
        """The row as one JSON object (``taskdaemon logs --json``): ids, level, body, fields.
        Its time is ``ts`` as a JSON log line writes it (``logs.JsonFormatter``), so one record
        reads the same in both, and ``ts_ns``, the nanoseconds stored."""
        entry: dict[str, Any] = {
            "ts": log_time(self.time_ns),
            "ts_ns": self.time_ns,
            "level": self.level,
            "logger": self.scope,
            "msg": self.body,
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "stage": self.stage,
            "instance": self.instance,
            "attempt": self.attempt,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
        }
        entry.update({k: v for k, v in self.attributes.items() if k not in entry})
        return entry


def columns(max_body: int | None = None) -> str:
    """:data:`COLUMNS`, with each body cut to ``max_body`` characters by SQLite and its whole
    length as a last column (None: the body whole): a reader of a tail then never holds a
    megabyte ``logging`` record to keep its first lines. A row of several output lines is read
    whole, to be split into them: its lines were each cut to ``MAX_LINE_BYTES`` when captured,
    and a row holds one read of the pipe."""
    if max_body is None:
        return COLUMNS
    limit = int(max_body)
    several = f"scope = '{OUTPUT_SCOPE}' AND attributes LIKE '%\"{LINES_ATTRIBUTE}\"%'"
    body = f"CASE WHEN {several} THEN body ELSE substr(body, 1, {limit}) END"
    return COLUMNS.replace(" body,", f" {body},") + ", length(body)"


def connect_store(store: str | Path) -> sqlite3.Connection:
    """A connection that reads the store's logs (the file, or its ``sqlite:///`` URL), on a
    read-only file system too (``_schema.connect_to_read``); SpanSourceError when there is
    none."""
    return connect_to_read(store_path(store))


def _row(raw: Sequence[Any]) -> StoredLog:
    try:
        attributes = json.loads(raw[12]) if raw[12] else {}
    except ValueError:
        attributes = {}
    return StoredLog(
        id=raw[0],
        run_id=raw[1],
        time_ns=raw[2],
        severity=raw[3],
        level=raw[4],
        pipeline=raw[5],
        stage=raw[6],
        instance=raw[7],
        attempt=raw[8],
        span_id=raw[9],
        scope=raw[10],
        body=raw[11],
        attributes=attributes if isinstance(attributes, dict) else {},
        body_length=raw[13] if len(raw) > 13 and raw[13] > len(raw[11]) else None,
    )


def row_records(raw: Sequence[Any]) -> list[StoredLog]:
    """The records of one row of :data:`COLUMNS`: one, or for an output row holding ``n``
    lines, ``n`` records with ids ``id - n + 1`` to ``id`` (``tracking._output_rows``). A row
    whose body does not split into the lines it announces is kept whole (never mis-split). A
    row with a column of the wrong type (edited outside taskdaemon) has none."""
    return [] if _COLUMN_TYPES.problem(raw) is not None else _records(raw)


def _records(raw: Sequence[Any]) -> list[StoredLog]:
    """:func:`row_records` of a row whose columns have their types."""
    row = _row(raw)
    count = row.attributes.get(LINES_ATTRIBUTE) if row.scope == OUTPUT_SCOPE else None
    if type(count) is not int or count < 2:
        return [row]
    texts = row.body.split("\n")
    if len(texts) != count:
        return [row]
    attributes = {k: v for k, v in row.attributes.items() if k != LINES_ATTRIBUTE}
    first = row.id - count + 1
    return [
        StoredLog(
            first + index,
            row.run_id,
            row.time_ns,
            row.severity,
            row.level,
            row.pipeline,
            row.stage,
            row.instance,
            row.attempt,
            row.span_id,
            row.scope,
            text,
            attributes,
        )
        for index, text in enumerate(texts)
    ]


def read_logs(
    store: str | Path | sqlite3.Connection,
    run_id: str,
    *,
    stage: str | None = None,
    level: str | None = None,
    after: int = 0,
    limit: int | None = None,
    max_body: int | None = None,
    attempt: int | None = None,
) -> list[StoredLog]:
    """The run's records with ``id > after``, in order, at most ``limit``; ``stage`` and
    ``level`` (a name such as ``warning``: that severity and above) filter them, and so does
    ``attempt`` (the records of that attempt of any stage and instance). ``store`` is
    the file, its ``sqlite:///`` URL or an open connection. ValueError for an unknown level.
    A row of several output lines gives one record per line (:func:`row_records`). With
    ``max_body``, bodies are read cut (:func:`columns`), their whole length in
    ``body_length``. A row with a column of the wrong type (edited outside taskdaemon) is
    skipped, with one warning counting them."""
    where = ["trace_id = ?", "id > ?"]
    params: list[Any] = [run_id, after]
    if stage is not None:
        where.append("stage = ?")
        params.append(stage)
    if attempt is not None:
        where.append("attempt = ?")
        params.append(attempt)
    if level is not None:
        where.append("severity >= ?")
        params.append(severity_number(level_number(level)))
    sql = f"SELECT {columns(max_body)} FROM logs WHERE {' AND '.join(where)} ORDER BY id"  # noqa: S608
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    own = not isinstance(store, sqlite3.Connection)
    conn = connect_store(store) if not isinstance(store, sqlite3.Connection) else store
    try:
        rows = conn.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise SpanSourceError(f"cannot read run logs: {exc}") from exc
    finally:
        if own:
            conn.close()
    sound, skipped = [], []
    for raw in rows:  # each row's types checked once: the bad ones counted, the rest read
        problem = _COLUMN_TYPES.problem(raw)
        if problem is None:
            sound.append(raw)
        else:
            skipped.append(problem)
    if skipped:
        logger.warning(
            "skipped %s of run %s (first: %s)",
            counted(len(skipped), "corrupt log row"),
            run_id,
            skipped[0],
        )
    # A row holds one record or more: ``limit`` rows hold at least ``limit`` records, and the
    # first row may hold some at or below ``after``.
    found = [record for raw in sound for record in _records(raw) if record.id > after]
    return found if limit is None else found[:limit]


def run_ended(conn: sqlite3.Connection, run_id: str) -> bool:
    """True when the run's row says it ended (or no run row exists)."""
    row = conn.execute("SELECT end_ns FROM runs WHERE trace_id = ?", (run_id,)).fetchone()
    return row is None or row[0] is not None


def run_end_logged(conn: sqlite3.Connection, run_id: str) -> bool:
    """True when the run's last lifecycle record (``run ... finished``) is stored. The log
    records and the run's span are written by two threads: a run can read as ended before
    its last records are in the store."""
    row = conn.execute(
        "SELECT 1 FROM logs WHERE trace_id = ? AND stage IS NULL AND scope = ?"
        " AND json_extract(attributes, '$.event') = 'run.finished' LIMIT 1",
        (run_id, LIFECYCLE_LOGGER),
    ).fetchone()
    return row is not None


def run_log_records(
    store: str | Path, run_id: str, *, stage: str | None = None, level: str | None = None
) -> list[StoredLog]:
    """Every stored record of ``run_id`` (a full id), in order: for the debugger and dumps."""
    return read_logs(store, run_id, stage=stage, level=level)
