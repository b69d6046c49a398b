"""Captured output lines into the ``logs`` table: one statement per batch, not one per line.

Every line of an :class:`~taskdaemon.pipeline.stage_output.OutputBatch` has the same ids,
time, level, scope and attributes; only the body differs. So the batch is written by one
``INSERT … SELECT … FROM json_each(?)`` whose parameter is the JSON array of the (redacted)
bodies: SQLite expands it in C, in order, and Python builds no row per line. Against an
``executemany`` of twelve-value rows this halves the cost of storing a line (figures in
``benchmarks/README.md``, "log_capture.py").

``executemany`` remains the fallback, for each batch where the array form would not store the
same text (a body holding a NUL character, which SQLite's JSON functions end a string at) and
for an SQLite built without its JSON functions.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Final

from taskdaemon.pipeline.redaction import redact_lines
from taskdaemon.pipeline.stage_output import OutputBatch

__all__ = ["OUTPUT_SCOPE", "OutputRows"]

OUTPUT_SCOPE: Final = "taskdaemon.run.output"
_COLUMNS: Final = (
    "trace_id, time_ns, severity, level, pipeline, stage, instance, attempt, span_id, scope,"
    " body, attributes"
)
# Constant text only: every value is a bound parameter.
_FROM_ARRAY: Final = (
    f"INSERT INTO logs ({_COLUMNS}) SELECT ?, ?, 9, 'INFO', ?, ?, ?, ?, ?, ?, value, ?"  # noqa: S608
    " FROM json_each(?)"
)
_ONE_ROW: Final = f"INSERT INTO logs ({_COLUMNS}) VALUES (?,?,9,'INFO',?,?,?,?,?,?,?,?)"  # noqa: S608
_ATTRIBUTES: Final = {
    stream: json.dumps({"log.iostream": stream}) for stream in ("stdout", "stderr")
}
_NUL: Final = "\\u0000"  # how json.dumps writes a NUL character


class OutputRows:
    """One batch's rows, prepared (redacted, encoded) off the write transaction."""

    __slots__ = ("array", "attributes", "bodies", "head")

    def __init__(self, batch: OutputBatch) -> None:
        self.attributes = _ATTRIBUTES.get(batch.stream) or json.dumps(
            {"log.iostream": batch.stream}
        )
        self.head = (
            batch.run_id,
            batch.time_ns,
            batch.pipeline,
            batch.stage,
            batch.instance,
            batch.attempt,
            batch.span_id,
            OUTPUT_SCOPE,
        )
        self.bodies = redact_lines(list(batch.texts))
        array = json.dumps(self.bodies)
        # Parameters of the array form; None when it would not store the same text.
        self.array = None if _NUL in array else (*self.head, self.attributes, array)

    def insert(self, conn: sqlite3.Connection) -> None:
        """Insert the rows, in order, inside the caller's transaction."""
        if self.array is not None and not _Unsupported.seen:
            try:
                conn.execute(_FROM_ARRAY, self.array)
                return
            except sqlite3.OperationalError as error:
                if "json_each" not in str(error):
                    raise
                _Unsupported.seen = True  # no JSON functions in this SQLite: rows from now on
        head, attributes = self.head, self.attributes
        conn.executemany(_ONE_ROW, [(*head, body, attributes) for body in self.bodies])


class _Unsupported:
    seen = False
