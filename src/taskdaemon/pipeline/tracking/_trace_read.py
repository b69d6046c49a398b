"""One trace's span rows read from the store file, decoded (``select_trace``).

Apart from ``store`` so that the migrations (``tracking._migrations``, which ``store`` reaches
through ``tracking._schema``) can rebuild a run from its spans without an import cycle.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from typing import Any, Final

from taskdaemon.pipeline.tracking._rows import LARGE_BODY, decode_resource, decode_span
from taskdaemon.pipeline.tracking.spans import SpanRecord
from taskdaemon.pipeline.wording import counted

__all__ = ["select_trace"]

logger = logging.getLogger(__name__)

_TRACE_QUERY: Final = (
    "SELECT s.span_id, s.start_ns, s.end_ns, s.body, s.resource_no, r.attributes "
    "FROM spans s JOIN resources r USING (resource_no) "
    "WHERE s.trace_no = (SELECT trace_no FROM traces WHERE trace_id = ?)"
)
_IN_ORDER: Final = " ORDER BY s.span_id"  # the primary key's order: no sorting
_AFTER: Final = " AND s.span_id > ?"


def _trace_rows(conn: sqlite3.Connection, trace_id: str) -> Iterator[tuple[Any, ...]]:
    """The rows of ``_TRACE_QUERY``, by span id. A row whose body is longer than
    ``LARGE_BODY`` is handed over once its query is closed, and the rows after it are read by
    a query of their own: SQLite keeps the buffer it read a column into, as large as the
    largest value so far, until its query is done, so a 100 MB body read in the middle of a
    trace was held twice while it was decoded (its text, and SQLite's copy of it)."""
    query = _TRACE_QUERY + _IN_ORDER
    args: tuple[str, ...] = (trace_id,)
    while True:
        cursor = conn.execute(query, args)
        for row in cursor:
            if type(row[3]) is str and len(row[3]) > LARGE_BODY:
                cursor.close()
                yield row
                query, args = _TRACE_QUERY + _AFTER + _IN_ORDER, (trace_id, row[0])
                break
            yield row
        else:
            return


def select_trace(
    conn: sqlite3.Connection, trace_id: str, *, where: object = "span store"
) -> list[SpanRecord]:
    """Every stored span of one trace (``trace_id`` in lower-case hex), by start time.

    A damaged row (``tracking._rows``: not JSON, wrong shape, wrong column type) is skipped; one
    warning line names the trace, the file (``where``) and how many rows were skipped."""
    resources: dict[int, Any] = {}
    spans = []
    skipped: list[str] = []
    for span_id, start_ns, end_ns, body, resource_no, resource_json in _trace_rows(conn, trace_id):
        try:
            resource = resources.get(resource_no)
            if resource is None:
                resource = resources[resource_no] = decode_resource(resource_json)
            spans.append(decode_span(trace_id, (span_id, start_ns, end_ns, body), resource))
        except (ValueError, RecursionError) as exc:
            skipped.append(f"{span_id}: {exc}")
    if skipped:
        logger.warning(
            "%s: skipped %s of run %s (first: %s)",
            where,
            counted(len(skipped), "corrupt span row"),
            trace_id,
            skipped[0],
        )
    spans.sort(key=lambda s: (s.start_ns, s.span_id))
    return spans
