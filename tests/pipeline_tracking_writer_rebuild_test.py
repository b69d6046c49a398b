"""A run whose run span ends in a writer that never saw it start (another process started it):
the writer rebuilds it from its stored spans once, for its ``runs`` row and its report
aggregates both, and a damaged span row of it is warned about once."""

from __future__ import annotations

import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline_tracking_support import T0, kept_and_rebuilt, make_provider, write_run
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.tracking import SqliteSpanProcessor
from taskdaemon.pipeline.tracking.reconstruct import reconstruct_run


def _count_rebuilds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Wrap ``reconstruct_run`` wherever a tracking module imported it; the list returned gets
    the trace id of each run rebuilt (the rebuild itself is the real one)."""
    rebuilt: list[str] = []

    def counted(spans: Any) -> RunRecord:
        record = reconstruct_run(spans)
        rebuilt.append(record.run_id)
        return record

    for name, module in list(sys.modules.items()):
        if name.startswith("taskdaemon.pipeline.tracking") and (
            getattr(module, "reconstruct_run", None) is reconstruct_run
        ):
            monkeypatch.setattr(module, "reconstruct_run", counted)
    return rebuilt


def test_a_run_another_writer_started_is_rebuilt_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer that sees the run span end rebuilds the run once, warns once (naming the
    file) about the damaged stage row it skips, and writes the ``runs`` row and the same report
    aggregates as a later rebuild from the stored spans."""
    db = tmp_path / "spans.db"
    recorder, exporter = make_provider()
    run_id = write_run(recorder, T0, 100)
    recorder.shutdown()
    spans = exporter.get_finished_spans()
    root = next(span for span in spans if span.parent is None)
    first = SqliteSpanProcessor(db)  # the process that ran the stages, gone before the end
    for span in spans:
        if span is not root:
            first.on_end(span)
    first.shutdown()
    fast = next(s for s in spans if (s.attributes or {}).get(t.CICD_TASK_NAME) == "fast")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE spans SET body = 'not json' WHERE span_id = ?",
            (format(fast.context.span_id, "016x"),),
        )
    rebuilt = _count_rebuilds(monkeypatch)
    second = SqliteSpanProcessor(db)
    with caplog.at_level(logging.WARNING, logger="taskdaemon"):
        second.on_end(root)
        second.shutdown()
    warned = [r.getMessage().split(" (first:")[0] for r in caplog.records]
    monkeypatch.undo()
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT status, stage_count, failed_stages FROM runs WHERE trace_id = ?", (run_id,)
        ).fetchone()
        written, again, from_spans = kept_and_rebuilt(conn)
    finally:
        conn.close()
    expected = ([run_id], [f"{db}: skipped 1 corrupt span row of run {run_id}"], ("success", 4, 0))
    assert expected == (rebuilt, warned, row)
    assert (1, from_spans) == (again, written)
