"""What the monitor, and ``run``'s stand-in for it, hold of published payloads: a stage that
publishes faster than their payloads are recorded leaves a bounded number of them waiting,
and every event is still recorded whole (``_record_queue.HEAVY_BOUND``,
``cli/deferred.MAX_KEPT_PAYLOADS``)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline_engine_support import Resolver
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline._record_queue import HEAVY_BOUND
from taskdaemon.pipeline.cli.deferred import MAX_KEPT_PAYLOADS, DeferredMonitor
from taskdaemon.pipeline.cli.run_ids import PresetIdGenerator, preset_span_id, preset_trace_id
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Manual, Pipeline, Stage
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture

#: Events the stage publishes: several times either bound.
EVENTS = 8 * max(HEAVY_BOUND, MAX_KEPT_PAYLOADS)


class Blob(dict[str, str]):
    """A payload part a weak reference can follow (a plain dict cannot have one)."""

    __slots__ = ("__weakref__",)


class Publisher:
    """A sync handler (on a worker thread, as a user's would be) that publishes ``EVENTS``
    events, each with a payload of its own, and counts after each how many of the payloads
    it published are still alive somewhere."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[Blob]] = []
        self.most_alive = 0
        self.payloads: list[dict[str, Any]] = []  # their JSON forms, as recorded

    def __call__(self, ctx: StageContext) -> dict[str, Any]:
        for index in range(EVENTS):
            blob = Blob(text=f"{index:04d}" + "y" * 4096)
            self.refs.append(weakref.ref(blob))
            self.payloads.append({"i": index, "blob": dict(blob)})
            ctx.publish("big", {"i": index, "blob": blob})
            del blob
            alive = sum(ref() is not None for ref in self.refs)
            self.most_alive = max(self.most_alive, alive)
        return {}


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A real tracer provider (the preset id generator, room for every event on a span)
    exporting to memory; shut down after."""
    memory = InMemorySpanExporter()
    limits = SpanLimits(max_events=2 * EVENTS)
    provider = TracerProvider(id_generator=PresetIdGenerator(), span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    provider.shutdown()


PIPELINE = Pipeline(name="published", stages=(Stage("a", "python", (Manual(),), emits=("big",)),))


def recorded_hashes(memory: InMemorySpanExporter) -> list[str]:
    """The payload hashes of the stage span's published events, in order."""
    (span,) = [span for span in memory.get_finished_spans() if span.name == "a"]
    return [
        str(event.attributes[t.PAYLOAD_SHA256])
        for event in span.events
        if event.name == t.EVENT_PUBLISHED and event.attributes is not None
    ]


def expected_hashes(publisher: Publisher) -> list[str]:
    capture = PayloadCapture(max_bytes=0)
    return [capture.capture(payload).sha256 for payload in publisher.payloads]


async def test_the_monitor_holds_at_most_its_bound_of_payloads_waiting(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """With the monitor live, a stage publishing in a loop (each payload costs the monitor
    more than its publisher) never has more than ``HEAVY_BOUND`` of its payloads waiting,
    plus the one the monitor records; every one is gone once recorded, and each is on the
    stage's span, hashed as a whole."""
    provider, memory = exporter
    monitor = PipelineMonitor(
        tracer_provider=provider, capture=PayloadCapture(max_bytes=0), resource_sampling=False
    )
    publisher = Publisher()
    try:
        async with Engine(resolver=Resolver({"a": publisher}), observers=[monitor]) as engine:
            result = await engine.run(PIPELINE, {})
    finally:
        monitor.close()
    assert result.succeeded
    assert publisher.most_alive <= HEAVY_BOUND + 1
    assert [] == [ref for ref in publisher.refs if ref() is not None]
    assert expected_hashes(publisher) == recorded_hashes(memory)


class LateStandIn(DeferredMonitor):
    """``run``'s stand-in whose telemetry loads only once the run waits for it (a slow
    machine): the monitor is handed over on a thread started by the first ``wait``."""

    def __init__(self, monitor: PipelineMonitor) -> None:
        super().__init__(PayloadCapture(max_bytes=0))
        self.loader = threading.Thread(
            target=self.started, args=(monitor, preset_trace_id, preset_span_id)
        )

    def wait(self) -> PipelineMonitor | None:
        if self.loader.ident is None:
            self.loader.start()
        return super().wait()


async def test_the_stand_in_waits_for_telemetry_past_its_bound_of_payloads(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """Before telemetry has loaded, ``run``'s stand-in keeps at most ``MAX_KEPT_PAYLOADS``
    published payloads, then the run waits for the monitor (it used to keep every event, so
    a stage that published thousands of large payloads first held them all); then the live
    monitor's bound holds. Every event is still recorded, in order."""
    provider, memory = exporter
    monitor = PipelineMonitor(
        tracer_provider=provider, capture=PayloadCapture(max_bytes=0), resource_sampling=False
    )
    stand_in = LateStandIn(monitor)
    publisher = Publisher()
    try:
        async with Engine(resolver=Resolver({"a": publisher}), observers=[stand_in]) as engine:
            result = await engine.run(PIPELINE, {})
    finally:
        stand_in.loader.join()
        monitor.close()
    assert result.succeeded
    assert stand_in.lost == 0
    assert publisher.most_alive <= max(MAX_KEPT_PAYLOADS + 1, HEAVY_BOUND + 1)
    assert [] == [ref for ref in publisher.refs if ref() is not None]
    assert expected_hashes(publisher) == recorded_hashes(memory)
