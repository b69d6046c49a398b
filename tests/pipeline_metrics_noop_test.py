"""PipelineMetrics on the API's no-op meter provider (``taskdaemon run`` without a reader)."""

from __future__ import annotations

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from taskdaemon.pipeline.metrics import LabelGuard, PipelineMetrics


class CountingGuard(LabelGuard):
    """A label guard that counts the values it is asked to fold."""

    def __init__(self) -> None:
        super().__init__()
        self.folds = 0

    def fold(self, label: str, value: str) -> str:
        self.folds += 1
        return super().fold(label, value)


def _record_a_stage(metrics: PipelineMetrics) -> None:
    metrics.run_started("p")
    metrics.trigger_evaluated("p", "s1", "manual")
    metrics.stage_started("p", "s1", 0.5, 0.25)
    metrics.stage_finished("p", "s1", "success", 1.0)
    metrics.run_finished("p", "success", "success", 2.0, "boom")


def test_no_op_provider_folds_no_labels() -> None:
    """With the no-op provider every record would be dropped, so no label is folded."""
    guard = CountingGuard()
    metrics = PipelineMetrics(
        meter_provider=NoOpMeterProvider(), label_guard=guard, resource_sampling=False
    )
    _record_a_stage(metrics)
    assert metrics.recording is False
    assert guard.folds == 0


def test_sdk_provider_still_records_every_metric() -> None:
    """With a real provider the same calls fold their labels and record every instrument."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        guard = CountingGuard()
        metrics = PipelineMetrics(
            meter_provider=provider, label_guard=guard, resource_sampling=False
        )
        _record_a_stage(metrics)
        data = reader.get_metrics_data()
        assert data is not None
        names = {
            m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }
    finally:
        provider.shutdown()
    assert metrics.recording is True
    assert guard.folds > 0
    assert {
        "pipeline.stage.executions",
        "pipeline.stage.duration",
        "pipeline.stage.queue.time",
        "pipeline.trigger.evaluations",
        "pipeline.trigger.wait.time",
        "pipeline.executions",
        "cicd.pipeline.run.errors",
    } <= names
