"""The resource sampler keeps books of running stages only when its gauges can report them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from pipeline_monitor_support import chain_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import StageFinished, StageStarted
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.monitor import PipelineMonitor


class _Resolver:
    """Resolves every stage to a no-op async handler."""

    def resolve(self, pipeline: Any, stage: Any) -> Any:
        async def handler(ctx: StageContext) -> dict[str, Any]:
            return {}

        return handler


def _records() -> list[Any]:
    kept: list[Any] = []

    class Keep:
        def on_event(self, event: Any) -> None:
            kept.append(event)

    engine = Engine(resolver=_Resolver(), observers=[Keep()])  # type: ignore[arg-type]
    asyncio.run(engine.run(chain_pipeline(), {}))
    return kept


@pytest.mark.parametrize(
    ("metered", "sampling", "tracked"),
    [(True, True, 1), (True, False, 0), (False, True, 0)],
)
def test_the_sampler_tracks_a_running_stage_only_for_its_gauges(
    metered: bool, sampling: bool, tracked: int
) -> None:
    """Fed by hand up to a stage's start, the sampler tracks that stage when a real meter
    provider and resource sampling can report it, and tracks nothing otherwise; the stage's
    end leaves nothing tracked either way."""
    records = _records()
    first_start = next(i for i, r in enumerate(records) if type(r) is StageStarted)
    first_end = next(i for i, r in enumerate(records) if type(r) is StageFinished)
    tracer_provider = TracerProvider()
    meter_provider: Any = (
        MeterProvider(metric_readers=[InMemoryMetricReader()]) if metered else NoOpMeterProvider()
    )
    try:
        monitor = PipelineMonitor(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            resource_sampling=sampling,
        )
        for record in records[: first_start + 1]:
            monitor.on_event(record)
        assert monitor.sampler.active() == tracked
        for record in records[first_start + 1 : first_end + 1]:
            monitor.on_event(record)
        assert monitor.sampler.active() == 0
        for record in records[first_end + 1 :]:
            monitor.on_event(record)
        monitor.close()
    finally:
        tracer_provider.shutdown()
        if metered:
            meter_provider.shutdown()
