"""The store's report aggregates keep what they read of a run's ended stage spans, not the spans."""

from __future__ import annotations

import gc
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import set_span_in_context

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.tracking import RetentionPolicy, SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.tracking.aggregates import StoreReportData


def test_an_open_runs_ended_stage_spans_are_not_kept_and_its_aggregates_are_written(
    tmp_path: Path,
) -> None:
    """While a run is open, its ended stage span (attributes, payload events) can be freed: the
    aggregator keeps its attempt only; at the run's end the attempt row is still written."""
    db = tmp_path / "spans.db"
    provider = TracerProvider()
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider.add_span_processor(processor)
    try:
        tracer = provider.get_tracer("test")
        run = tracer.start_span(
            "RUN p",
            attributes={t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION, t.CICD_PIPELINE_NAME: "p"},
        )
        stage = tracer.start_span(
            "STAGE a",
            context=set_span_in_context(run),
            attributes={t.CICD_TASK_NAME: "a", t.CICD_TASK_RUN_ID: "a.0.1", t.STAGE_ATTEMPT: 1},
        )
        stage.add_event(t.EVENT_STAGE_OUTPUT, {t.PAYLOAD_JSON: "x" * 10_000})
        stage.end()
        assert processor.force_flush()
        del stage
        gc.collect()
        kept = [o for o in gc.get_objects() if type(o) is ReadableSpan and o.name == "STAGE a"]
        assert kept == []  # the SDK's frozen copy the processor got, not held any more
        run.end()
        assert processor.force_flush()
    finally:
        provider.shutdown()
    store = SpanStore(db)
    try:
        data = StoreReportData(store)
        try:
            sample = data.sample("p", 0.0, 4e9)
        finally:
            data.close()
    finally:
        store.close()
    assert data.aggregated == 0  # written from what was kept, not rebuilt from the spans
    assert [(s.stage, s.executions) for s in sample.stages] == [("a", 1)]
