"""Live run state: what the watcher (web page, ``taskdaemon watch``, the server's approvals) costs.

A real engine runs an N-stage chain of no-op stages once with a recording observer; the recorded
events are then fed, in interleaved rounds, to a fresh ``DagWatcher`` (``on_event`` per event:
``run_state.apply`` under the watcher's lock) and the run's record is taken (``record()``, what
each live snapshot builds). CPU time of this process (``time.process_time``), median of the
rounds.

Run: ``.venv/bin/python benchmarks/live_state.py [--stages 200] [--rounds 15]``. To compare with
another checkout, run the same script with ``PYTHONPATH=<checkout>/src``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineEvent
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.visualization import DagWatcher


async def _noop(ctx: Any) -> dict[str, Any]:
    return {}


class _Resolver:
    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return _noop


class _Recorder:
    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def on_event(self, event: EngineEvent) -> None:
        self.events.append(event)


def chain(n: int) -> Pipeline:
    """``s0 -> s1 -> ... -> s{n-1}``, each a no-op python stage."""
    stages = [Stage("s0", "python", (Manual(),))]
    stages += [Stage(f"s{i}", "python", (OnCompletion(f"s{i - 1}"),)) for i in range(1, n)]
    return Pipeline("bench", tuple(stages), concurrency=4)


def record_events(n: int) -> list[EngineEvent]:
    """The events of one run of an ``n``-stage chain."""
    recorder = _Recorder()
    engine = Engine(resolver=_Resolver(), observers=[recorder])
    asyncio.run(engine.run(chain(n)))
    return recorder.events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    events = record_events(args.stages)
    run_id = events[0].run_id
    feed: list[float] = []
    snap: list[float] = []
    for _ in range(args.rounds):
        watcher = DagWatcher()
        start = time.process_time()
        for event in events:
            watcher.on_event(event)
        feed.append(time.process_time() - start)
        start = time.process_time()
        for _ in range(20):
            watcher.record(run_id)
        snap.append((time.process_time() - start) / 20)
    per_event = statistics.median(feed) / len(events) * 1e6
    per_record = statistics.median(snap) * 1e3
    print(f"{args.stages} stages, {len(events)} events, median of {args.rounds} rounds (CPU)")
    print(f"  on_event   {per_event:7.2f} us per event")
    print(f"  record()   {per_record:7.3f} ms per record ({args.stages} stages)")


if __name__ == "__main__":
    main()
