"""The stage panel's logs: one stage's stored log records as a bounded live tail.

Records come from the embedded span store's ``logs`` table (``tracking.log_read``), where the
log writer stored them redacted, or from a debug dump's ``logs.otlp.json``
(``tracking.dump_logs``: the store's records, taken when the dump was written); other span
sources (Tempo, Jaeger, OTLP files) keep no run logs, and the routes say so (404).

A tail is a *snapshot*: the stage's last ``TAIL`` records and how many it has in all, so it
fits the event streams of ``web._streams`` unchanged: one feed per (run, stage) polls the
store, every event is a full tail, and a client dropped for being slow or reconnecting loses
only intermediate states. Memory is bounded by ``TAIL`` records of at most ``MAX_BODY``
characters per feed, each poll reads at most ``_BATCH`` new rows, and the stream ends once the
run has ended and its last records were read. A dump's stream is its one tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

from taskdaemon.pipeline.masked_values import MASKED
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.tracking._schema import connect_to_read
from taskdaemon.pipeline.tracking.dump_logs import dump_log_records
from taskdaemon.pipeline.tracking.log_read import (
    LINES_ATTRIBUTE,
    OUTPUT_SCOPE,
    StoredLog,
    columns,
    read_logs,
    row_records,
    run_ended,
)

__all__ = [
    "MAX_BODY",
    "MAX_STAGE_NAME",
    "TAIL",
    "dump_stage_log_tail",
    "dump_stage_logs",
    "follow_stage_logs",
    "stage_log_tail",
]

TAIL: Final = 200  # records a tail carries (the page shows these, and says how many are older)
#: The characters of a record's body a tail carries. A captured output line is stored in
#: pieces of at most 16 KiB, but a ``logging`` record is stored whole: 200 records of 1 MB
#: each would be a 200 MB event, sent again at every new record.
MAX_BODY: Final = 16 * 1024
MAX_STAGE_NAME: Final = 256
_BATCH: Final = 2000


def _record(row: StoredLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": row.time_ns / 1e9,
        "level": row.level,
        "instance": row.instance,
        "attempt": row.attempt,
        "logger": row.scope,
        "body": _body(row.body, row.body_length),
    }


def _body(text: str, length: int | None = None) -> str:
    """``text`` cut to ``MAX_BODY`` characters with a note of the rest; ``length`` is the
    whole body's when ``text`` was read cut."""
    whole = len(text) if length is None else length
    if whole <= MAX_BODY:
        return text
    rest = whole - MAX_BODY
    return f"{text[:MAX_BODY]}… ({rest} more characters: taskdaemon logs shows them)"


def _tail(stage: str, records: deque[dict[str, Any]], total: int, *, live: bool) -> dict[str, Any]:
    return {
        "stage": stage,
        "records": list(records),
        "total": total,
        "hidden": total - len(records),
        "live": live,
    }


def _masked_last(records: deque[dict[str, Any]], count: int) -> None:
    """``records`` with the bodies of the last ``count`` redacted again, in place: a tail keeps
    the records it read, and a value known as a secret since (the stage returned it under
    ``token``) was in clear in them, though the store's rows are masked again
    (``tracking/_remask``). Each tail sent is a copy (``_tail``)."""
    for index in range(max(0, len(records) - count), len(records)):
        record = records[index]
        records[index] = {**record, "body": redact_text(record["body"])}


def _first(conn: sqlite3.Connection, run_id: str, stage: str) -> tuple[deque[Any], int, int]:
    """(the last TAIL records, how many in all, the last row id) of the stage, now. A row of
    several output lines is as many records (``log_read.row_records``)."""
    total, last = conn.execute(
        "SELECT count(*), coalesce(max(id), 0) FROM logs WHERE trace_id = ? AND stage = ?",
        (run_id, stage),
    ).fetchone()
    for (attributes,) in conn.execute(
        "SELECT attributes FROM logs WHERE trace_id = ? AND stage = ? AND id <= ? AND scope = ?"
        " AND attributes LIKE ?",
        (run_id, stage, last, OUTPUT_SCOPE, f'%"{LINES_ATTRIBUTE}"%'),
    ):
        with contextlib.suppress(ValueError, AttributeError):
            lines = json.loads(attributes).get(LINES_ATTRIBUTE)
            if type(lines) is int and lines > 1:
                total += lines - 1
    rows = conn.execute(
        f"SELECT {columns(MAX_BODY + 1)} FROM logs"  # noqa: S608
        " WHERE trace_id = ? AND stage = ? AND id <= ? ORDER BY id DESC LIMIT ?",
        (run_id, stage, last, TAIL),
    ).fetchall()
    tail = (_record(record) for raw in reversed(rows) for record in row_records(raw))
    return deque(tail, maxlen=TAIL), total, last


def stage_log_tail(
    path: Path, run_id: str, stage: str, *, ended: bool | None = None
) -> dict[str, Any]:
    """The stage's tail now (blocking: call it in a worker thread). ``ended`` is whether the
    run has ended, from a caller that knows better than the store (see ``follow_stage_logs``);
    None asks the store."""
    conn = connect_to_read(path)
    try:
        records, total, _ = _first(conn, run_id, stage)
        if ended is None:
            ended = run_ended(conn, run_id)
        return _tail(stage, records, total, live=not ended)
    finally:
        conn.close()


def dump_stage_log_tail(path: Path, run_id: str, stage: str) -> dict[str, Any]:
    """The stage's tail in the debug dump at ``path`` (blocking): never live, a dump is
    written once. Its records carry no store ids: they are numbered from 1, in order."""
    rows = dump_log_records(path, run_id, stage=stage)
    records = deque(
        ({**_record(row), "id": number} for number, row in enumerate(rows, 1)), maxlen=TAIL
    )
    return _tail(stage, records, len(rows), live=False)


async def dump_stage_logs(path: Path, run_id: str, stage: str) -> AsyncIterator[dict[str, Any]]:
    """The stream of a stage's tail in a debug dump: the one tail, then the end."""
    yield await asyncio.to_thread(dump_stage_log_tail, path, run_id, stage)


async def follow_stage_logs(
    path: Path,
    run_id: str,
    stage: str,
    *,
    interval: float = 0.5,
    ended: Callable[[], bool] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The stage's tail, then a new tail each time records arrive, polling every ``interval``
    seconds; ends one poll after the run was seen ended with nothing more to read (the log
    writer commits on its own thread, a moment after the run's end), or at the first poll for a
    run that had ended before.

    ``ended()`` (cheap, called on the loop) says whether the run has ended; by default the
    store's run row does. A caller whose engine holds the run passes its word: the row is
    written by the span store's writer a moment after the run starts, and "no row" reads as
    ended (a run the store no longer holds)."""

    async def has_ended() -> bool:
        if ended is not None:
            return ended()
        return await asyncio.to_thread(run_ended, conn, run_id)

    masked = MASKED.generation  # read before the rows: a value learnt after is masked below
    since_learnt = False
    conn = await asyncio.to_thread(connect_to_read, path)
    try:
        records, total, last = await asyncio.to_thread(_first, conn, run_id, stage)
        ended_before = await has_ended()
        waited = ended_before  # ended before the stream began: what is stored is all there is
        yield _tail(stage, records, total, live=True)
        more = False
        while True:
            if not (waited or more):
                await asyncio.sleep(interval)
            waited = False
            # The end is read before the records: whatever was written before it is read now.
            now_ended = await has_ended()
            rows = await asyncio.to_thread(
                read_logs,
                conn,
                run_id,
                stage=stage,
                after=last,
                limit=_BATCH,
                max_body=MAX_BODY + 1,
            )
            if rows:
                last = rows[-1].id
                total += len(rows)
                records.extend(_record(row) for row in rows)
            learnt = masked != MASKED.generation
            if learnt or since_learnt:
                # Rows stored before the value was known may be read before the store masks
                # them again: every record read after a change is redacted as it comes.
                masked = MASKED.generation
                _masked_last(records, len(records) if learnt else len(rows))
                since_learnt = True
            more = len(rows) == _BATCH
            done = now_ended and ended_before and not more
            if rows or done or learnt:
                yield _tail(stage, records, total, live=not done)
            if done:
                return
            ended_before = now_ended and not more
    finally:
        await asyncio.to_thread(conn.close)
