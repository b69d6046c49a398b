"""Debug-mode overhead per no-op stage: off, on with no breakpoint, on with a breakpoint that never
hits (a stage name not in the pipeline), and on with a false CEL condition on every stage.

Run: ``python benchmarks/debug_overhead.py [--stages N] [--rounds R]``.

Each round runs the same 2,000-stage chain (each stage waits for the one before, no observers,
no-op handlers) once per mode, in an interleaved order, on one fresh engine per run; the table
gives the median µs per stage over the rounds and each mode's ratio to "off" in the same round
(the median ratio), which is what a loaded machine can still measure. Times are the process's
CPU time (the engine is CPU-bound on one thread), which other processes disturb less than wall
time. "off" has no gate at all
(``Engine._pause_gate`` is None), so its figure is the engine's own; the contract is "on, no
hit" < 1.05. "off, again" is "off" measured as if it were another mode: its distance from 1.000
is the noise of the machine at the time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Mapping
from typing import Any

from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage

MODES = (
    "off",
    "off, again",  # the noise floor: the same as "off", measured as another mode
    "on, no breakpoint",
    "on, breakpoint elsewhere",
    "on, false condition",
)


async def _noop(ctx: StageContext) -> Mapping[str, Any]:
    return {}


class _Resolver:
    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return _noop


def _chain(n: int) -> Pipeline:
    stages = [Stage("s0", "python", (Manual(approval_required=False),))]
    stages += [Stage(f"s{i}", "python", (OnCompletion(f"s{i - 1}"),)) for i in range(1, n)]
    return Pipeline(name="chain", stages=tuple(stages), concurrency=8)


async def _one(pipeline: Pipeline, mode: str) -> float:
    async with Engine(resolver=_Resolver()) as engine:
        if mode.startswith("on"):
            debug = engine.with_debug(True)
            if mode == "on, breakpoint elsewhere":
                debug.set_breakpoint("no-such-stage")
            elif mode == "on, false condition":
                debug.set_breakpoint(None, when="request.stop == true")
        gc.collect()
        started = time.process_time()
        result = await engine.run(pipeline, {"stop": False})
        elapsed = time.process_time() - started
    assert result.succeeded
    return elapsed / len(pipeline.stages) * 1e6


async def main(stages: int, rounds: int) -> None:
    pipeline = _chain(stages)
    await _one(pipeline, "off")  # warm-up: plan compilation, imports
    per_mode: dict[str, list[float]] = {mode: [] for mode in MODES}
    ratios: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_no in range(rounds):
        order = MODES[round_no % len(MODES) :] + MODES[: round_no % len(MODES)]
        figures = {mode: await _one(pipeline, mode) for mode in order}
        for mode in MODES:
            per_mode[mode].append(figures[mode])
            ratios[mode].append(figures[mode] / figures["off"])
    print(f"{stages}-stage chain, {rounds} rounds, median µs per no-op stage and ratio to off")
    print(f"{'mode':<26} {'µs/stage':>9} {'ratio':>7}")
    for mode in MODES:
        median = statistics.median(per_mode[mode])
        ratio = statistics.median(ratios[mode])
        print(f"{mode:<26} {median:>9.1f} {ratio:>7.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()
    asyncio.run(main(options.stages, options.rounds))
