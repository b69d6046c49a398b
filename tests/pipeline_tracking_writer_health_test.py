"""What the span store writer says of itself: ``health()`` while it writes, while writes fail
and once closed, the one line that says writes fail, and a run lost to a failing write leaves no
tally behind."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.tracking import SqliteSpanProcessor
from taskdaemon.pipeline.tracking._health import StoreHealth


def test_a_run_span_lost_to_a_failing_write_is_said_once_and_forgotten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store file deleted under the writer while a run is open: the run span's end is
    dropped, one warning line names the store and the cause, ``health()`` says the store is
    down and why, and the run's tally (kept for its summary row) is forgotten, as the run can
    never end in the store."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    healthy = processor.health()
    root = tracer.start_span(
        t.run_span_name("p"),
        attributes={
            t.CICD_PIPELINE_NAME: "p",
            t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
            t.PIPELINE_STAGES: ["a"],
        },
    )
    processor.force_flush()  # the run's start row: its tally is opened
    tallied = set(processor._tally.runs)
    for path in tmp_path.glob("spans.db*"):
        path.unlink()
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking.writer"):
        root.end()
        processor.force_flush()
    failing = processor.health()
    left = dict(processor._tally.runs)
    provider.shutdown()
    gone = f"{db} was deleted or replaced while this process wrote to it"
    expected = (
        StoreHealth(True, f"{db}: writing"),
        {format(root.get_span_context().trace_id, "032x")},
        [f"span store {db}: write failed, spans are dropped until writes succeed again: {gone}"],
        StoreHealth(False, f"{db}: writes failing ({gone}); 1 span dropped"),
        {},
        StoreHealth(False, f"{db}: span store closed"),
    )
    actual = (
        healthy,
        tallied,
        [r.getMessage() for r in caplog.records],
        failing,
        left,
        processor.health(),
    )
    assert expected == actual
