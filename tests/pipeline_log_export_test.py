"""``log_export``: captured output lines sent as OTel log records, in the stage span's context."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from taskdaemon.pipeline.log_export import OUTPUT_SCOPE, OTelOutputSink
from taskdaemon.pipeline.stage_output import CaptureLimits, OutputBatch

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
TOKEN = "ghp_" + "T3st" * 9  # a GitHub token's shape, not a real one
IDS = {
    "taskdaemon.run_id": "r" * 32,
    "taskdaemon.pipeline": "p",
    "taskdaemon.stage": "build",
    "taskdaemon.instance": 2,
    "taskdaemon.attempt": 3,
    "log.iostream": "stderr",
}


def _batch(
    *texts: str, trace_id: str | None = TRACE_ID, span_id: str | None = SPAN_ID, **more: Any
) -> OutputBatch:
    """A batch of ``texts`` from stage ``build`` (instance 2, attempt 3) on stderr."""
    return OutputBatch("r" * 32, "p", "build", 2, 3, trace_id, span_id, "stderr", texts, **more)


@pytest.fixture
def exported() -> Iterator[tuple[OTelOutputSink, InMemoryLogRecordExporter]]:
    """A sink on a provider whose records are kept in memory; shut down at the end."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    try:
        yield OTelOutputSink(provider), exporter
    finally:
        provider.shutdown()


def _records(
    exported: tuple[OTelOutputSink, InMemoryLogRecordExporter], batch: OutputBatch
) -> list[Any]:
    """The records ``batch`` became."""
    sink, exporter = exported
    sink.write_output(batch)
    return [data.log_record for data in exporter.get_finished_logs()]


def test_each_line_is_one_info_record_at_the_batchs_time(
    exported: tuple[OTelOutputSink, InMemoryLogRecordExporter],
) -> None:
    """Every line becomes an INFO record, in order, stamped with the time it was read."""
    records = _records(exported, _batch("first", "second", time_ns=1_700_000_000_000_000_123))
    assert [
        ("first", 1_700_000_000_000_000_123, SeverityNumber.INFO, "INFO"),
        ("second", 1_700_000_000_000_000_123, SeverityNumber.INFO, "INFO"),
    ] == [(r.body, r.timestamp, r.severity_number, r.severity_text) for r in records]


def test_a_secret_in_a_line_is_redacted(
    exported: tuple[OTelOutputSink, InMemoryLogRecordExporter],
) -> None:
    """A token-shaped text in a line is exported as ``[REDACTED]``."""
    (record,) = _records(exported, _batch(f"using {TOKEN}"))
    assert "using [REDACTED]" == record.body


def test_a_line_carries_the_stage_ids(
    exported: tuple[OTelOutputSink, InMemoryLogRecordExporter],
) -> None:
    """A line's attributes are the run, pipeline, stage, instance, attempt and stream."""
    (record,) = _records(exported, _batch("x"))
    assert IDS == dict(record.attributes or {})


def test_a_line_is_in_the_stage_spans_sampled_context(
    exported: tuple[OTelOutputSink, InMemoryLogRecordExporter],
) -> None:
    """A line links to the stage span by its trace and span ids, sampled."""
    (record,) = _records(exported, _batch("x"))
    assert (int(TRACE_ID, 16), int(SPAN_ID, 16), True) == (
        record.trace_id,
        record.span_id,
        bool(record.trace_flags and record.trace_flags.sampled),
    )


@pytest.mark.parametrize(("trace_id", "span_id"), [(TRACE_ID, None), (None, SPAN_ID)])
def test_a_line_without_both_ids_links_to_no_span(
    exported: tuple[OTelOutputSink, InMemoryLogRecordExporter],
    trace_id: str | None,
    span_id: str | None,
) -> None:
    """Without a trace id and a span id, a line is exported outside any span."""
    (record,) = _records(exported, _batch("x", trace_id=trace_id, span_id=span_id))
    assert (0, 0) == (record.trace_id or 0, record.span_id or 0)


def test_lines_are_exported_under_the_output_scope(
    exported: tuple[OTelOutputSink, InMemoryLogRecordExporter],
) -> None:
    """The records' instrumentation scope is ``taskdaemon.run.output``."""
    sink, exporter = exported
    sink.write_output(_batch("x"))
    (data,) = exporter.get_finished_logs()
    scope = data.instrumentation_scope
    assert "taskdaemon.run.output" == OUTPUT_SCOPE == (scope.name if scope else None)


def test_dropped_lines_are_one_warning_with_the_counts(
    exported: tuple[OTelOutputSink, InMemoryLogRecordExporter],
) -> None:
    """The end-of-capture marker is one WARNING record naming the bound, with the dropped lines
    and bytes as attributes beside the stage ids, in the stage span's context."""
    batch = _batch(
        dropped_lines=7, dropped_bytes=700, limits=CaptureLimits(max_lines=5, max_bytes=50)
    )
    (record,) = _records(exported, batch)
    assert (
        SeverityNumber.WARN,
        "WARNING",
        "[taskdaemon] 7 output lines (700 bytes) dropped past the capture bound of 5 lines"
        " / 50 bytes per stage",
        {**IDS, "taskdaemon.log.dropped_lines": 7, "taskdaemon.log.dropped_bytes": 700},
        int(SPAN_ID, 16),
    ) == (
        record.severity_number,
        record.severity_text,
        record.body,
        dict(record.attributes or {}),
        record.span_id,
    )
