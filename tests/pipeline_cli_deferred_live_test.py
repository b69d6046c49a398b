"""``taskdaemon run``'s stand-in monitor once telemetry is live: events go straight through."""

from __future__ import annotations

import threading

from taskdaemon.pipeline.cli.deferred import DeferredMonitor
from taskdaemon.pipeline.cli.run_ids import preset_span_id, preset_trace_id
from taskdaemon.pipeline.events import EngineEvent
from taskdaemon.pipeline.payloads import PayloadCapture


class ListMonitor:
    """A monitor that notes the events it is handed."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    def on_event(self, event: EngineEvent) -> None:
        self.seen.append(event)

    def on_events(self, events: list[EngineEvent]) -> None:
        self.seen.extend(events)


def test_once_loaded_events_skip_the_handover_lock() -> None:
    """After the kept events are handed over, an engine event reaches the monitor without the
    stand-in's hand-over lock (held here by another thread): the engine's loop pays no lock
    and no ``threading.Event`` calls per event while telemetry is live, and order is kept."""
    deferred = DeferredMonitor(PayloadCapture())
    monitor = ListMonitor()
    kept, live = object(), object()
    deferred.on_event(kept)  # type: ignore[arg-type]
    deferred.started(monitor, preset_trace_id, preset_span_id)  # type: ignore[arg-type]
    passed = threading.Event()

    def emit() -> None:
        deferred.on_event(live)  # type: ignore[arg-type]
        passed.set()

    with deferred._lock:
        engine = threading.Thread(target=emit)
        engine.start()
        went_through = passed.wait(10)
    engine.join()
    assert (True, [kept, live]) == (went_through, monitor.seen)
