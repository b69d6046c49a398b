"""A run's stored log rows masked again, for values that became known as secrets after them.

A stage that prints a secret it fetched, then returns it under ``token``, wrote the line before
the value was known (``secret_values``). The store's log writer (``tracking.log_writer``)
listens for the values a run's data brings and queues one :class:`Remask` after the rows
already queued: every row of the run is then in the table or redacted on its way in, since
the writer redacts each row when it writes it, with the values known then.

Bounds: only the ``logs`` rows of that run (its ``trace_id``, through the ``logs_trace``
index) that hold one of the values as written, or JSON-escaped in the attributes. A row
is masked as it would be written now: its body by ``redaction.redact_text``; a batch of
captured lines by replacing the values in it (each line was redacted when written, with the
values known then; a value holding no line break replaced in the batch is replaced in each
line), so it splits back into as many lines; its attributes through ``redaction.redact`` and
encoded again. The cost is one pass over that run's
stored text per value learnt, only when a run's data brings a value not masked before
(``benchmarks/remask_instructions.py``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Final

from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.redaction import REDACTED, redact, redact_text
from taskdaemon.pipeline.tracking.log_read import OUTPUT_SCOPE

__all__ = ["Remask"]

_FIND: Final = (
    "SELECT id, scope, body, attributes FROM logs"
    " WHERE trace_id = ? AND (instr(body, ?) > 0 OR instr(attributes, ?) > 0)"
)
_UPDATE: Final = "UPDATE logs SET body = ?, attributes = ? WHERE id = ?"


@frozen
class Remask:
    """Mask ``values`` again in the stored log rows of run ``run_id`` (see the module)."""

    run_id: str
    values: tuple[str, ...]

    def apply(self, conn: sqlite3.Connection) -> int:
        """Update the rows inside the caller's transaction; how many changed."""
        seen: set[int] = set()
        changed = 0
        for value in self.values:
            escaped = json.dumps(value)[1:-1]  # as the attributes' JSON holds it
            for row_id, scope, body, attributes in conn.execute(
                _FIND, (self.run_id, value, escaped)
            ).fetchall():
                if row_id in seen:
                    continue
                seen.add(row_id)
                if scope == OUTPUT_SCOPE:
                    masked = _masked_lines(body, self.values)
                else:
                    masked = redact_text(body)
                encoded = _masked_attributes(attributes)
                if masked != body or encoded != attributes:
                    conn.execute(_UPDATE, (masked, encoded, row_id))
                    changed += 1
        return changed


def _masked_lines(body: str, values: tuple[str, ...]) -> str:
    """A batch of captured lines with ``values`` masked in each line (the rest of each line was
    redacted when written). A value without a line break is replaced in the batch at once:
    it is in no other place than inside a line."""
    if any("\n" in value for value in values):  # it could join two lines: each on its own
        return "\n".join(redact_text(line) for line in body.split("\n"))
    for value in sorted(values, key=len, reverse=True):  # one holding another goes whole
        body = body.replace(value, REDACTED)
    return body


def _masked_attributes(text: str) -> str:
    try:
        attributes = json.loads(text)
    except ValueError:
        return text
    masked = redact(attributes)
    return text if masked is attributes else json.dumps(masked, default=str)
