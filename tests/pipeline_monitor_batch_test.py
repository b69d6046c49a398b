"""Records handed to the monitor in a batch (``PipelineMonitor.on_events``, what ``run``'s
stand-in does with the records it kept while telemetry loaded) are recorded as one by one."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_trace_id

from pipeline_engine_support import Recorder, Resolver
from pipeline_monitor_support import Telemetry, chain_pipeline
from taskdaemon.pipeline._record_queue import INLINE_BATCH, RecordQueue
from taskdaemon.pipeline.cli.deferred import DeferredMonitor
from taskdaemon.pipeline.cli.run_ids import PresetIdGenerator, preset_span_id, preset_trace_id
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineEvent, RunFinished, StageQueued, StageWaiting
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture


class _Hook:
    """Keeps the type of each record it is called with; wants no waiting records."""

    def __init__(self) -> None:
        self.kinds: list[type] = []

    def __call__(self, event: EngineEvent, span: Any) -> None:
        self.kinds.append(type(event))

    @staticmethod
    def wants(kind: type) -> bool:
        return kind not in {StageQueued, StageWaiting}


def _records(runs: int = 1, allocate: Any = None) -> list[EngineEvent]:
    keep = Recorder()
    if allocate is not None:  # the engine asks its observers for the run id
        keep.allocate_run_id = allocate  # type: ignore[attr-defined]

    async def play() -> None:
        engine = Engine(resolver=Resolver(), observers=[keep])
        for _ in range(runs):
            await engine.run(chain_pipeline(("a", "b", "c", "d")), {})

    asyncio.run(play())
    return keep.events


def _shape(telemetry: Telemetry) -> list[tuple[Any, ...]]:
    """Each span's name, attributes bar the span-specific ids, event names and link count."""
    return [
        (
            span.name,
            sorted(key for key in (span.attributes or {})),
            [event.name for event in span.events],
            len(span.links),
            span.start_time,
            span.end_time,
        )
        for span in telemetry.spans()
    ]


class _CountingLock:
    """A re-entrant lock counting its acquisitions."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.acquired = 0

    def acquire(self, blocking: bool = True) -> bool:
        got = self._lock.acquire(blocking)
        self.acquired += got
        return got

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@pytest.fixture
def records() -> list[EngineEvent]:
    return _records(runs=2)


def test_a_batch_is_recorded_as_its_records_one_by_one(records: list[EngineEvent]) -> None:
    """Two runs' records, fed one by one and in one batch to two monitors: the same spans, in
    the same order, and the hook gets the same records in the same order, without the
    waiting records it declines."""
    results = []
    for batch in (False, True):
        telemetry = Telemetry()
        try:
            monitor = telemetry.monitor()
            hook = _Hook()
            monitor.add_event_hook(hook)
            if batch:
                monitor.on_events(records)
            else:
                for record in records:
                    monitor.on_event(record)
            monitor.flush()
            results.append((_shape(telemetry), hook.kinds))
        finally:
            telemetry.shutdown()
    assert results[0] == results[1]
    spans, kinds = results[1]
    assert (10, True) == (len(spans), {StageQueued, StageWaiting}.isdisjoint(kinds))


def test_a_batch_takes_the_queue_lock_once_a_slice_after_the_queued_records() -> None:
    """``handle_batch`` handles what was queued first, then the batch in order, taking the
    queue's lock once per ``INLINE_BATCH`` records rather than once a record."""
    handled: list[int] = []
    queue = RecordQueue(handled.append)
    lock = _CountingLock()
    queue.lock._lock = lock  # type: ignore[assignment]
    try:
        queue._pending.extend((-2, -1))  # queued, not yet handled by a worker
        batch = list(range(2 * INLINE_BATCH + 1))
        queue.handle_batch(batch)
        acquisitions = lock.acquired  # close() settles: one more
    finally:
        queue.close()
    assert [-2, -1, *batch] == handled
    assert 3 == acquisitions


def test_kept_runs_take_their_drawn_run_ids_as_trace_ids_in_a_batch() -> None:
    """Two runs kept by ``run``'s stand-in, each with a run id it drew, are handed over in one
    batch: each run's spans are in the trace named by its run id (its start goes alone,
    under its preset), and nothing is lost."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=PresetIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    deferred = DeferredMonitor(PayloadCapture())
    monitor = PipelineMonitor(tracer_provider=provider, resource_sampling=False)
    try:
        records = _records(runs=2, allocate=deferred.allocate_run_id)
        finished = [r for r in records if isinstance(r, RunFinished)]
        for record in records:
            if not isinstance(record, RunFinished):  # it would wait for the monitor
                deferred.on_event(record)
        deferred.started(monitor, preset_trace_id, preset_span_id)
        for record in finished:
            deferred.on_event(record)
    finally:
        monitor.close()
        provider.shutdown()
    by_trace: dict[str, set[str]] = {}
    for span in exporter.get_finished_spans():
        assert span.context is not None
        by_trace.setdefault(format_trace_id(span.context.trace_id), set()).add(span.name)
    assert ({r.run_id for r in finished}, 2, 0) == (set(by_trace), len(finished), deferred.lost)
    assert [5, 5] == [len(names) for names in by_trace.values()]  # the run span and 4 stages
