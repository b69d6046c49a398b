"""A replay's machine instructions a fed stage, counted under valgrind: an A/B that load ignores.

Run: ``python benchmarks/replay_fed_instructions.py [--stages 100] [--replays 2]
[--shapes wide,chain] [--rounds 1] [--baseline SRC]`` (needs ``valgrind`` and ``setarch``).

Each child process records one run in process (engine, monitor and the OTel SDK with an
in-memory exporter) of ``--stages`` no-op stages and a last one, ``z``, after all of them:
``wide``, every stage ready at the start, so that their stand-ins wait for their turns all at
once, or ``chain``, each after the one before. It then replays the run from ``z`` (every other
stage fed) ``--replays`` times, or not at all. The figure is (count with the replays - count
without) / (replays x stages): the instructions a fed stage costs a replay, the recording and
start-up cancelled. ``engine_stage_instructions.instructions`` runs each child (address-space
randomisation off, a fixed hash seed, no ``.pyc`` written); ``--rounds`` repeats each count,
and the median is printed with the range.

Instructions are not time; they show which tree does less work.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import statistics
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
sys.path.insert(0, HERE)

from engine_stage_instructions import instructions  # noqa: E402 - the benchmarks directory


def _child(shape: str, stages: int, replays: int) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from taskdaemon.pipeline.engine import Engine
    from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage, TriggerMode
    from taskdaemon.pipeline.monitor import PipelineMonitor
    from taskdaemon.pipeline.replay import build_plan, read_recorded_run
    from taskdaemon.pipeline.replay.run import execute_plan
    from taskdaemon.pipeline.tracking import span_record_from_sdk

    async def noop(ctx: Any) -> dict[str, int]:
        return {"instance": ctx.instance}

    class Resolver:
        def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
            return noop

    names = [f"s{i}" for i in range(stages)]
    if shape == "wide":
        defs = [Stage(name, "noop", (Manual(),)) for name in names]
        last = tuple(OnCompletion(name) for name in names)
    else:
        defs = [Stage(names[0], "noop", (Manual(),))]
        follows = itertools.pairwise(names)
        defs += [Stage(name, "noop", (OnCompletion(before),)) for before, name in follows]
        last = (OnCompletion(names[-1]),)
    defs.append(Stage("z", "noop", last, trigger_mode=TriggerMode.ALL))
    pipeline = Pipeline("bench", tuple(defs), concurrency=stages + 1)
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monitor = PipelineMonitor(
        tracer_provider=provider, meter_provider=MeterProvider(), resource_sampling=False
    )

    async def record() -> str:
        async with Engine(resolver=Resolver(), observers=[monitor]) as engine:
            return (await engine.run(pipeline, {"goal": "bench"})).run_id

    run_id = asyncio.run(record())
    monitor.flush()
    spans = [span_record_from_sdk(s) for s in exporter.get_finished_spans()]
    recorded = read_recorded_run([span for span in spans if span.trace_id == run_id])
    gc.collect()
    gc.disable()  # what it collects depends on where objects land, not on the code counted
    for _ in range(replays):
        plan = build_plan(recorded, from_stage="z")
        outcome = asyncio.run(execute_plan(plan, resolver=Resolver(), monitor=monitor))
        if len(plan.fed) != stages or str(outcome.result.status) != "success":
            sys.exit(f"the replay fed {len(plan.fed)} stages and ended {outcome.result.status}")
    monitor.close()
    provider.shutdown()


def _count(source: str, shape: str, args: argparse.Namespace, replays: int) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((source, HERE)))
    command = [sys.executable, __file__, "--child", shape, "--stages", str(args.stages)]
    return instructions([*command, "--replays", str(replays)], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=100)
    parser.add_argument("--replays", type=int, default=2)
    parser.add_argument("--shapes", default="wide,chain", help="comma list of wide, chain")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.stages, args.replays)
        return
    trees = {"this": os.environ.get("PYTHONPATH") or SRC}
    if args.baseline:
        trees["base"] = os.path.abspath(args.baseline)
    print(f"instructions a fed stage ({args.stages} stages, {args.replays} replays)")
    for shape in args.shapes.split(","):
        for name, source in trees.items():
            figures = []
            for _ in range(args.rounds):
                replayed = _count(source, shape, args, args.replays)
                recorded = _count(source, shape, args, 0)
                figures.append((replayed - recorded) / (args.replays * args.stages))
            low, high = min(figures), max(figures)
            print(
                f"  {shape:<5}  {name:<4}  {statistics.median(figures):>12,.0f}"
                f"  (range {low:,.0f} to {high:,.0f})"
            )


if __name__ == "__main__":
    main()
