"""Captured output lines into the ``logs`` table: one row per batch, not one per line.

Every line of an :class:`~taskdaemon.pipeline.output_sinks.OutputBatch` has the same ids,
time, level, scope and attributes; only the body differs. So a batch of ``n`` lines is stored
as one row: the (redacted) lines joined by ``\\n`` as its body, ``n`` in its attributes
(``log_read.LINES_ATTRIBUTE``), and the ids of its lines reserved: the row's ``id`` is the id
of its last line, its first line's is ``id - n + 1``, and no other row is given an id in that
range (a new row's id is one above the largest). ``log_read`` gives the lines back as ``n``
records with those ids, so readers, ``--follow`` and the web tail see one record per line as
before. A line never holds a ``\\n`` (the capture splits on it), so the body splits back into
exactly the lines stored.

Why: SQLite's cost is per row (the row, its index entry, the bytes written to the WAL and
checkpointed): 10,000 lines cost 30 ms as rows, 6 ms as the batches they were read in
(``benchmarks/README.md``, "log_capture.py"). A batch of one line is a plain row.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final

from taskdaemon.pipeline.output_sinks import OutputBatch
from taskdaemon.pipeline.redaction import redact_lines
from taskdaemon.pipeline.tracking.log_read import LINES_ATTRIBUTE, OUTPUT_SCOPE

__all__ = ["OUTPUT_SCOPE", "OutputRows"]

# Constant text only: every value is a bound parameter. The id reserves the batch's line ids.
_INSERT: Final = (
    "INSERT INTO logs (id, trace_id, time_ns, severity, level, pipeline, stage, instance,"
    " attempt, span_id, scope, body, attributes)"
    " SELECT coalesce(max(id), 0) + ?, ?, ?, 9, 'INFO', ?, ?, ?, ?, ?, ?, ?, ? FROM logs"
)


class OutputRows:
    """One batch's row, prepared (redacted, encoded) off the write transaction."""

    __slots__ = ("params",)

    def __init__(self, batch: OutputBatch) -> None:
        bodies = redact_lines(list(batch.texts))
        attributes: dict[str, Any] = {"log.iostream": batch.stream}
        if len(bodies) > 1:
            attributes[LINES_ATTRIBUTE] = len(bodies)
        self.params = (
            max(len(bodies), 1),
            batch.run_id,
            batch.time_ns,
            batch.pipeline,
            batch.stage,
            batch.instance,
            batch.attempt,
            batch.span_id,
            OUTPUT_SCOPE,
            "\n".join(bodies),
            json.dumps(attributes),
        )

    def insert(self, conn: sqlite3.Connection) -> None:
        """Insert the row inside the caller's transaction (which makes its ids its own)."""
        conn.execute(_INSERT, self.params)
