"""What the stage log tests share: the ids every captured log record carries."""

from __future__ import annotations

#: The ids on every record of a stage's captured output, in the order the tests read them.
IDS = ("run_id", "pipeline", "stage", "instance", "attempt", "trace_id", "span_id")
