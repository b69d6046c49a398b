"""What the server's work for one change of a run of this process costs its live stream's
delta: the whole state rendered and diffed (before) against the change built from the stages
that changed (``web/_live_document``).

    .venv/bin/python benchmarks/sse_change_costs.py [--chains 10] [--length 50] [--changes 40]

A pipeline of a root and ``--chains`` chains of ``--length`` stages (``web_live_bandwidth.py``'s
shape: 501 stages by default, ``--chains 100`` makes 5,001) is run in this process as its
engine's events alone: the root, then each chain's stages one level at a time, concurrency 8
(no engine, no handler: the events are the only input the watcher takes). At ``--changes``
moments spread over the run, one stage's start or end is the change measured, the stream of
each path having taken every change before it:

* ``whole``: what a feed did at each change before: the engine watcher's whole snapshot
  (``DagWatcher.watch``), ``run_state`` of it, its event encoded and diffed with the last
  (``state_delta``), the delta encoded;
* ``changed``: the watcher's change (``DagWatcher.changes``), ``LiveDocument.update``, the
  delta encoded.

It prints, per path, the Python function calls (Python and C: ``sys.setprofile``'s ``call``
and ``c_call``) of one change, median and most, which do not depend on the machine's load,
and the CPU seconds of all the measured changes (``time.process_time``, on a loaded machine
a rough figure), and that every measured change made the same delta both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from web_live_bandwidth import HERE_SRC

sys.path.insert(0, HERE_SRC)

from taskdaemon.pipeline.events import (
    EngineEvent,
    RunStarted,
    StageFinished,
    StageQueued,
    StageStarted,
)
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.visualization import DagWatcher
from taskdaemon.pipeline.web._deltas import state_delta
from taskdaemon.pipeline.web._live_document import LiveDocument
from taskdaemon.pipeline.web._streams import encode_event
from taskdaemon.pipeline.web._views import run_state

RUN = "0" * 31 + "1"


def definition(chains: int, length: int) -> Pipeline:
    """``web_live_bandwidth.write_pipeline``'s pipeline, as a model."""
    stages = [Stage("root", "work", (Manual(),))]
    for chain in range(chains):
        before = "root"
        for step in range(length):
            name = f"c{chain:03d}_{step:03d}"
            stages.append(Stage(name, "work", (OnCompletion(before),)))
            before = name
    return Pipeline("bandwidth", tuple(stages), concurrency=8)


def events(pipeline: Pipeline) -> Iterator[EngineEvent]:
    """The run's events: the root, then each level of the chains, eight stages at a time."""
    clock = iter(range(1, 1 << 30))

    def at() -> float:
        return 1_000.0 + next(clock) / 1000

    def ids(stage: str) -> dict[str, Any]:
        return {
            "run_id": RUN,
            "pipeline": pipeline.name,
            "stage": stage,
            "instance": 0,
            "attempt": 1,
            "task_run_id": f"{stage}.0.1",
        }

    yield RunStarted(run_id=RUN, pipeline=pipeline, request={}, at=at())
    names = [stage.name for stage in pipeline.stages]
    levels = [names[:1]] + [
        [n for n in names[1:] if n.endswith(f"_{step:03d}")]
        for step in range(len(names))
        if any(n.endswith(f"_{step:03d}") for n in names[1:])
    ]
    for level in levels:
        for stage in level:
            yield StageQueued(**ids(stage), at=at())
        for first in range(0, len(level), 8):
            batch = level[first : first + 8]
            for stage in batch:
                now = at()
                yield StageStarted(
                    **ids(stage),
                    loop="work",
                    at=now,
                    queued_at=now - 0.01,
                    considered_at=now - 0.02,
                    inputs={},
                )
            for stage in batch:
                yield StageFinished(**ids(stage), status=StageStatus.SUCCESS, at=at())


def calls(call: Callable[[], Any]) -> tuple[int, Any]:
    """The functions ``call()`` calls, Python or C, and what it returns."""
    count = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        result = call()
    finally:
        sys.setprofile(None)
    return count, result


def measure(chains: int, length: int, changes: int) -> dict[str, Any]:
    """Both paths' costs at ``changes`` changes of the run (module docstring)."""
    pipeline = definition(chains, length)
    stream = list(events(pipeline))
    now = [0.0]

    def render(snapshot: Any, quiet: Any = None, rows: int | None = None) -> Any:
        extra = {} if rows is None else {"max_rows": rows}
        return run_state(snapshot, now=now[0], can_control=True, quiet_since=quiet, **extra)

    watcher = DagWatcher()
    watcher.on_event(stream[0])
    loop = asyncio.new_event_loop()
    snapshots = watcher.watch(RUN)
    changed = watcher.changes(RUN)
    document = LiveDocument(render)
    last: list[Any] = [None]
    counter = [0]

    def whole_path() -> bytes:
        snapshot = loop.run_until_complete(anext(snapshots))
        new = render(snapshot)
        encode_event(counter[0], new)
        delta = state_delta(last[0], new, counter[0] - 1)
        last[0] = new
        return encode_event(counter[0], delta, event="delta")

    def changed_path() -> bytes:
        delta = document.update(loop.run_until_complete(anext(changed)), counter[0] - 1)
        return encode_event(counter[0], delta, event="delta")

    def take() -> None:
        """Both streams' items for the changes so far, unmeasured."""
        counter[0] += 1
        last[0] = render(loop.run_until_complete(anext(snapshots)))
        document.update(loop.run_until_complete(anext(changed)), counter[0] - 1)

    take()
    step = max(1, (len(stream) - 2) // (2 * changes))
    costs: dict[str, list[int]] = {"whole": [], "changed": []}
    cpu = {"whole": 0.0, "changed": 0.0}
    same = 0
    index = 1
    while index + 1 < len(stream) - 1 and len(costs["whole"]) < changes:
        for event in stream[index : index + step]:  # changes taken unmeasured
            watcher.on_event(event)
        index += step
        now[0] = stream[index - 1].at
        take()
        # One change timed, both paths from the same state of the watcher's run; the next
        # one counted (profiling slows what it counts).
        made = {}
        for name, path in (("whole", whole_path), ("changed", changed_path)):
            if name == "whole":
                now[0] = stream[index].at
                watcher.on_event(stream[index])
                counter[0] += 1
            started = time.process_time()
            made[name] = path()
            cpu[name] += time.process_time() - started
        same += made["whole"] == made["changed"]
        now[0] = stream[index + 1].at
        watcher.on_event(stream[index + 1])
        counter[0] += 1
        for name, path in (("whole", whole_path), ("changed", changed_path)):
            count, made[name] = calls(path)
            costs[name].append(count)
        same += made["whole"] == made["changed"]
        index += 2
    loop.run_until_complete(snapshots.aclose())  # type: ignore[attr-defined]
    loop.run_until_complete(changed.aclose())  # type: ignore[attr-defined]
    loop.close()
    return {
        "stages": len(pipeline.stages),
        "changes": len(costs["whole"]),
        "whole_calls_median": statistics.median(costs["whole"]),
        "whole_calls_max": max(costs["whole"]),
        "changed_calls_median": statistics.median(costs["changed"]),
        "changed_calls_max": max(costs["changed"]),
        "whole_cpu_ms_a_change": round(1000 * cpu["whole"] / len(costs["whole"]), 2),
        "changed_cpu_ms_a_change": round(1000 * cpu["changed"] / len(costs["changed"]), 2),
        "same_delta": f"{same} of {2 * len(costs['whole'])}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    print(json.dumps(measure(args.chains, args.length, args.changes)))


if __name__ == "__main__":
    main()
