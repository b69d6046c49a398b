"""A Python stage's ``cpu_time_s``: the CPU time of the thread that ran its handler, measured
where the handler ran (``loops.python_handler``) and carried on its ``StageFinished`` record to
the span, so neither another thread's work nor time spent waiting counts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

from pipeline_monitor_support import Telemetry
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineEvent, StageFinished
from taskdaemon.pipeline.loops import LoopRegistry, StageContext
from taskdaemon.pipeline.metrics import ResourceSampler
from taskdaemon.pipeline.model import Manual, Pipeline, Stage

BURN = 0.05  # seconds of CPU a burning handler uses


def burn(seconds: float = BURN) -> None:
    """Use ``seconds`` of this thread's CPU."""
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


class Finished:
    """Keeps each stage's ``StageFinished``."""

    def __init__(self) -> None:
        self.by_stage: dict[str, StageFinished] = {}

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, StageFinished):
            self.by_stage[event.stage] = event


def run(
    tel: Telemetry, handlers: Mapping[str, Any], concurrency: int = 4
) -> tuple[dict[str, StageFinished], dict[str, Any]]:
    """Run one stage per handler, all starting with the run, monitored; answer each stage's
    ``StageFinished`` and its span's ``cpu_time_s`` (None when absent)."""
    registry = LoopRegistry()
    for name, handler in handlers.items():
        registry.register(name, handler)
    pipeline = Pipeline(
        name="cpu",
        stages=tuple(Stage(name=n, loop=n, triggers=(Manual(),)) for n in handlers),
        concurrency=concurrency,
    )
    finished = Finished()
    engine = Engine(resolver=registry, observers=[tel.monitor(), finished])
    asyncio.run(engine.run(pipeline))
    spans = {name: tel.by_name(t.stage_span_name(name)) for name in handlers}
    return finished.by_stage, {
        name: span.attributes.get(t.STAGE_CPU_TIME) for name, (span,) in spans.items()
    }


def test_a_sync_handler_reports_its_threads_cpu_not_the_process(tel: Telemetry) -> None:
    """A sync handler burning 50 ms of CPU reports at least 40 ms, while one that waits
    alongside it (blocked, not sleeping on a timer) reports about nothing, though the process
    burned 50 ms while it ran; the span carries the record's figure."""
    burned = threading.Event()

    def hot(ctx: StageContext) -> None:
        burn()
        burned.set()

    def idle(ctx: StageContext) -> None:
        assert burned.wait(30)

    events, spans = run(tel, {"hot": hot, "idle": idle})
    cpu = {name: event.cpu_seconds for name, event in events.items()}
    assert cpu["hot"] is not None
    assert cpu["hot"] >= 0.04
    assert cpu["idle"] is not None
    assert cpu["idle"] < 0.01
    assert spans == cpu


def test_an_async_handler_reports_the_loop_threads_cpu_across_it(tel: Telemetry) -> None:
    """An async handler burning 50 ms on the loop reports at least 40 ms; one that sleeps
    reports about nothing (the loop thread idles while it waits)."""

    async def hot(ctx: StageContext) -> None:
        burn()

    async def nap(ctx: StageContext) -> None:
        await asyncio.sleep(0.05)

    events, spans = run(tel, {"hot": hot}, concurrency=1)
    assert events["hot"].cpu_seconds is not None
    assert events["hot"].cpu_seconds >= 0.04
    events, spans = run(tel, {"nap": nap}, concurrency=1)
    assert spans["nap"] is not None
    assert spans["nap"] < 0.02


def test_a_failing_handler_still_reports_its_cpu(tel: Telemetry) -> None:
    """A sync handler that burns then raises reports the CPU it used on its failed span."""

    def broken(ctx: StageContext) -> None:
        burn()
        raise RuntimeError("boom")

    events, spans = run(tel, {"broken": broken})
    assert str(events["broken"].status) == "failure"
    assert spans["broken"] is not None
    assert spans["broken"] >= 0.04


def test_reported_process_usage_takes_precedence(tel: Telemetry) -> None:
    """A handler that reports a process tree's usage (``report_usage``) gets that figure, not
    its thread's."""

    def reporter(ctx: StageContext) -> None:
        ctx.report_usage(7.5, 1024)

    _, spans = run(tel, {"reporter": reporter})
    assert spans == {"reporter": 7.5}


def test_the_cpu_gauge_of_a_python_stage_is_the_process_since_the_last_collection() -> None:
    """The sampler reads no clock when a Python stage starts: at a collection, every running
    Python stage shows this process's CPU percent since the previous collection, and the next
    collection starts from that reading."""
    now = [100.0]
    sampler = ResourceSampler(clock=lambda: now[0])
    sampler.stage_started(("r", "a.0.1"), "p", "a", is_command=False)
    sampler.stage_started(("r", "b.0.1"), "p", "b", is_command=False)
    burn(0.05)
    now[0] += 0.1  # 50 ms of CPU or more in 100 ms of the fake clock: 50% or more
    first = sampler.cpu_percent()
    now[0] += 1000.0  # next to nothing burned in this much longer interval
    second = sampler.cpu_percent()
    assert set(first) == {("p", "a"), ("p", "b")}
    assert first[("p", "a")] == first[("p", "b")] >= 40.0
    assert second[("p", "a")] < 1.0
