"""Engine overhead: the cost of scheduling no-op stages, per stage and per (stage + edge).

Run: ``python benchmarks/engine_overhead.py [--quick]``.

Shapes, each at 1,000 and 10,000 stages (no observers unless ``--observer``, no-op handlers,
``concurrency`` = 8):

* ``wide``: every stage is an entry stage;
* ``fan-in``: every stage is an entry stage plus one final stage waiting for all (mode ``all``);
* ``deep``: a chain, each stage waits for the one before;
* ``random``: each stage waits (mode ``all``) for ~3 random earlier stages.

The ratio 10k/1k of µs per stage shows whether the cost grows linearly (≈1.0). ``--gc-off``
shows how much of the growth is CPython's cyclic GC (its full collections only start once a
run has allocated enough objects, so a 1,000-stage run barely sees them).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
from collections.abc import Mapping
from typing import Any

from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage, TriggerMode

ENTRY = (Manual(approval_required=False),)


async def _noop(ctx: StageContext) -> Mapping[str, Any]:
    return {}


class _NullObserver:
    """Receives every record and drops it: the cost of building the event stream."""

    def on_event(self, event: object) -> None:
        pass


class _Resolver:
    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return _noop


def _stages_wide(n: int) -> list[Stage]:
    return [Stage(f"s{i}", "python", ENTRY) for i in range(n)]


def _stages_fan_in(n: int) -> list[Stage]:
    stages = _stages_wide(n - 1)
    triggers = tuple(OnCompletion(s.name) for s in stages)
    return [*stages, Stage("sink", "python", triggers, trigger_mode=TriggerMode.ALL)]


def _stages_deep(n: int) -> list[Stage]:
    stages = [Stage("s0", "python", ENTRY)]
    stages += [Stage(f"s{i}", "python", (OnCompletion(f"s{i - 1}"),)) for i in range(1, n)]
    return stages


def _stages_random(n: int, edges: int = 3, seed: int = 7) -> list[Stage]:
    rng = random.Random(seed)
    stages = [Stage("s0", "python", ENTRY)]
    for i in range(1, n):
        parents = sorted(set(rng.sample(range(i), min(i, edges))))
        triggers = tuple(OnCompletion(f"s{p}") for p in parents)
        stages.append(Stage(f"s{i}", "python", triggers, trigger_mode=TriggerMode.ALL))
    return stages


SHAPES = {
    "wide": _stages_wide,
    "fan-in": _stages_fan_in,
    "deep": _stages_deep,
    "random": _stages_random,
}


async def _measure(pipeline: Pipeline, repeat: int, gc_off: bool, observe: bool) -> float:
    """Best CPU time of ``repeat`` runs (the compiled plan is warmed by a first run).

    CPU time of this process (``process_time``), not wall time: the machine is shared, and the
    engine does no I/O, so CPU time is the overhead without the neighbours' noise."""
    engine = Engine(resolver=_Resolver(), observers=[_NullObserver()] if observe else ())
    result = await engine.run(pipeline)
    assert result.succeeded, result.error
    times = []
    for _ in range(repeat):
        gc.collect()
        if gc_off:
            gc.disable()
        start = time.process_time()
        result = await engine.run(pipeline)
        times.append(time.process_time() - start)
        gc.enable()
        assert result.succeeded
    return min(times)


async def main(quick: bool, gc_off: bool, observe: bool) -> None:
    sizes = (1_000, 10_000)
    repeat = 1 if quick else 5
    print(
        f"{'shape':<8} {'stages':>7} {'edges':>7} {'ms':>9} {'µs/stage':>9} "
        f"{'µs/(s+e)':>9} {'ratio 10k/1k':>12}"
    )
    for shape, build in SHAPES.items():
        per_stage: dict[int, float] = {}
        for n in sizes:
            pipeline = Pipeline(name=f"bench-{shape}", stages=tuple(build(n)), concurrency=8)
            edges = len(pipeline.edges)
            seconds = await _measure(pipeline, repeat, gc_off, observe)
            per_stage[n] = seconds / n * 1e6
            ratio = f"{per_stage[n] / per_stage[sizes[0]]:.2f}" if n != sizes[0] else ""
            print(
                f"{shape:<8} {n:>7} {edges:>7} {seconds * 1e3:>9.1f} {per_stage[n]:>9.1f} "
                f"{seconds / (n + edges) * 1e6:>9.1f} {ratio:>12}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed run per size")
    parser.add_argument(
        "--gc-off", action="store_true", help="disable the cyclic GC while timing (to isolate it)"
    )
    parser.add_argument(
        "--observer", action="store_true", help="register a no-op observer (events are built)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.quick, args.gc_off, args.observer))
