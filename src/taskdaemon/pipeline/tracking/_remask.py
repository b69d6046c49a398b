"""A run's stored log and span rows masked again, for values that became known as secrets
after them.

A stage that prints a secret it fetched, then returns it under ``token``, wrote the line before
the value was known (``secret_values``). The store's log writer (``tracking.log_writer``)
listens for the values a run's data brings and queues one :class:`Remask` after the rows
already queued: every row of the run is then in the table or redacted on its way in, since
the writer redacts each row when it writes it, with the values known then.

The run's spans: the writer first waits until the process's span writers have written the
spans they hold (``log_writer.written_spans``), so a span ended before the value was known is
in the ``spans`` table; its row is rewritten as the tracer would redact it now. A span still
open keeps in memory what was recorded on it, and its next row is written from that.

Bounds: only that run's rows are read (its ``logs`` rows through the ``logs_trace`` index,
its spans by their trace), and only those holding one of the values as written (or
JSON-escaped, in JSON text) are rewritten. A log row is masked as it would be written now: its
body by ``redaction.redact_text``; a batch of captured lines by replacing the values in it
(each line was redacted when written, with the values known then; a value holding no line
break replaced in the batch is replaced in each line), so it splits back into as many lines;
its attributes through ``redaction.redact`` and encoded again. The cost is one pass over that
run's stored text per value learnt, only when a run's data brings a value not masked before
(``benchmarks/remask_instructions.py``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Final

import orjson

from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.masked_values import holds_any, holds_needle, masked_text
from taskdaemon.pipeline.redaction import REDACTED, redact, redact_lines, redact_text
from taskdaemon.pipeline.tracking.log_read import OUTPUT_SCOPE

__all__ = ["Remask", "masked_span_body"]

# The run's rows, in the order of the ``logs_trace`` index; which hold a value is tested here:
# Python's substring search reads the text a few times faster than SQLite's ``instr``
# (which compares at every position).
_RUN_ROWS: Final = "SELECT id, scope, body, attributes FROM logs WHERE trace_id = ?"
_UPDATE: Final = "UPDATE logs SET body = ?, attributes = ? WHERE id = ?"
_RUN_SPANS: Final = (
    "SELECT span_id, body FROM spans"
    " WHERE trace_no = (SELECT trace_no FROM traces WHERE trace_id = ?)"
)
_UPDATE_SPAN: Final = (
    "UPDATE spans SET body = ?"
    " WHERE span_id = ? AND trace_no = (SELECT trace_no FROM traces WHERE trace_id = ?)"
)


@frozen
class Remask:
    """Mask ``values`` again in the stored log rows of run ``run_id`` (see the module)."""

    run_id: str
    values: tuple[str, ...]

    def apply(self, conn: sqlite3.Connection) -> int:
        """Update the rows inside the caller's transaction; how many changed."""
        values = self.values
        # As JSON text holds them (the same text for most values): the attributes' JSON
        # escapes every character beyond ASCII (``json.dumps``), the spans' (``orjson``) only
        # quotes, backslashes and control characters, so a value holding both kinds differs.
        escaped = tuple(
            {json.dumps(value)[1:-1] for value in values}
            | {orjson.dumps(value).decode()[1:-1] for value in values}
            | set(values)
        )
        updates = []
        for row_id, scope, body, attributes in conn.execute(_RUN_ROWS, (self.run_id,)):
            in_body = holds_any(values, body)
            if not in_body and not holds_any(escaped, attributes):
                continue
            masked = body
            if in_body:
                masked = _masked_lines(body, values) if scope == OUTPUT_SCOPE else redact_text(body)
            encoded = _masked_attributes(attributes)
            if masked != body or encoded != attributes:
                updates.append((masked, encoded, row_id))
        conn.executemany(_UPDATE, updates)
        return len(updates) + self._apply_to_spans(conn, escaped)

    def _apply_to_spans(self, conn: sqlite3.Connection, escaped: tuple[str, ...]) -> int:
        """The run's stored span rows holding a value (as their JSON holds it), redacted as
        the tracer redacts what is recorded on a span (``redaction.redact``)."""
        updates = []
        for span_id, body in conn.execute(_RUN_SPANS, (self.run_id,)):
            if holds_any(escaped, body):
                masked = _redacted_span_body(body)
                if masked is not body:
                    updates.append((masked, span_id))
        conn.executemany(_UPDATE_SPAN, [(*update, self.run_id) for update in updates])
        return len(updates)


def masked_span_body(body: str) -> str:
    """A span row's ``body`` written again from a span that recorded texts before a value was
    known as a secret (the run span's events, a long stage's attributes): redacted as the
    tracer redacts what is recorded now when it holds a value known (``body`` itself when
    not). Else the row the writer writes from the span's memory after this run's rows were
    masked again would hold the value in clear again."""
    if not holds_needle(body):  # every written form of a value holds its needle
        return body
    return _redacted_span_body(body)


def _redacted_span_body(body: str) -> str:
    fields = orjson.loads(body)
    masked = redact(fields)
    return body if masked is fields else orjson.dumps(masked).decode()


def _masked_lines(body: str, values: tuple[str, ...]) -> str:
    """A batch of captured lines with ``values`` masked (the rest of each line was redacted
    when written), as many lines after. A value without a line break is replaced in the batch
    at once: it is in no other place than inside a line; one holding a line break, as
    ``redact_lines`` finds it across the lines."""
    if any("\n" in value for value in values):  # it spans lines: found in them joined
        return "\n".join(redact_lines(body.split("\n")))
    return masked_text(body, values, REDACTED)  # overlapping values go whole


def _masked_attributes(text: str) -> str:
    try:
        attributes = json.loads(text)
    except ValueError:
        return text
    masked = redact(attributes)
    return text if masked is attributes else json.dumps(masked, default=str)
