"""The engine's CPU a stage, with sync or async Python stages, without the monitor.

Run: ``python benchmarks/engine_stage_cpu.py [--kind sync,async] [--children 8]
[--observer keep|none|monitor] [--baseline SRC] [--pin CPU]``.

A chain of ``--stages`` no-op stages against a chain of one, each run in ``asyncio.run`` with
an ``Engine`` whose one observer keeps every record (so every record is built, as under the
monitor), the handlers wrapped by ``loops.python_handler`` as the ``python`` loop type wraps
them (a sync one hops to a worker thread). ``--observer none`` runs the engine without any
observer (no record is built); ``--observer monitor`` attaches a ``PipelineMonitor`` over a
tracer provider whose batch processor drops the spans and an in-memory metric reader (its
hooks on the loop's thread count in ``main``; its worker thread's share only in ``process``,
as far as it kept up). Each child process times ``--pairs`` pairs after three warm-up pairs
and reports the median of the pairs' difference, a stage:

* ``main``: the CPU of the thread that runs the loop (``time.thread_time``);
* ``process``: the process's CPU, every thread (``time.process_time``): the sync handlers'
  worker thread included.

With ``--baseline SRC`` (e.g. ``git archive main src | tar -x -C /tmp/base``, then
``--baseline /tmp/base/src``) the children alternate between this tree and SRC (first on
``PYTHONPATH``), and the table shows the median, low and high over the children of each.
With ``--pin CPU`` every tree's children alternate with children of the same tree whose
threads all run on that one CPU (``taskset -c CPU``), a row ``@pin`` each: a sync stage's
hand-overs cost far more when the loop's thread and the worker's each have a CPU (the state
they share moves between the CPUs' caches) than when they share one, so the two cases are best
read side by side, from one sitting. A diagnostic only: ``run`` never binds threads to a CPU.
Under ``chrt -f 10`` (root) a woken thread nearly always goes to the other CPU, the idle
machine's case; without it, a busy machine's threads share CPUs with other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


def sync_noop(ctx: Any) -> None:
    return None


async def async_noop(ctx: Any) -> None:
    return None


def _observers(observer: str) -> list[object]:
    if observer == "none":
        return []
    if observer == "keep":

        class Keep:
            def __init__(self) -> None:
                self.records: list[object] = []

            def on_event(self, event: object) -> None:
                self.records.append(event)

        return [Keep()]
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from taskdaemon.pipeline.monitor import PipelineMonitor

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return [PipelineMonitor(tracer_provider=tracer_provider, meter_provider=meter_provider)]


def chain(n: int) -> Any:
    """A chain of ``n`` python stages, each waiting for the one before (the tree under test's
    model, imported here: PYTHONPATH picks the tree)."""
    from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage

    return Pipeline(
        name=f"chain-{n}",
        stages=tuple(
            Stage(
                name=f"s{i}",
                loop="python",
                triggers=(Manual(),) if i == 0 else (OnCompletion(stage=f"s{i - 1}"),),
            )
            for i in range(n)
        ),
    )


def runner(kind: str, observer: str) -> Callable[[Any], Awaitable[None]]:
    """``run(pipeline)``: one run on a fresh engine with no-op ``kind`` handlers, wrapped as
    the ``python`` loop type wraps them, and the ``observer`` variant's observers."""
    from taskdaemon.pipeline.engine import Engine  # the tree under test (PYTHONPATH)
    from taskdaemon.pipeline.loops import python_handler

    handler = python_handler(sync_noop if kind == "sync" else async_noop)

    class Resolver:
        def resolve(self, pipeline: Any, stage: Any) -> Any:
            return handler

    observers = _observers(observer)

    async def run(definition: Any) -> None:
        async with Engine(resolver=Resolver(), observers=observers) as engine:
            await engine.run(definition, {})

    return run


def _child(kind: str, stages: int, pairs: int, observer: str = "keep") -> dict[str, float]:
    run = runner(kind, observer)

    def once(definition: Any) -> tuple[float, float]:
        thread, process = time.thread_time(), time.process_time()
        asyncio.run(run(definition))
        return time.thread_time() - thread, time.process_time() - process

    big, small = chain(stages), chain(1)
    for _ in range(3):
        once(big)
        once(small)
    main: list[float] = []
    whole: list[float] = []
    for _ in range(pairs):
        long, short = once(big), once(small)
        main.append((long[0] - short[0]) / (stages - 1) * 1e6)
        whole.append((long[1] - short[1]) / (stages - 1) * 1e6)
    return {"main": statistics.median(main), "process": statistics.median(whole)}


def _spawn(
    source: str | None, kind: str, stages: int, pairs: int, observer: str, *, pin: str | None
) -> Mapping[str, float]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = source
    command = ["taskset", "-c", pin] if pin else []
    command += [sys.executable, __file__, "--child", kind, "--stages", str(stages)]
    command += ["--pairs", str(pairs), "--observer", observer]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    result: Mapping[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="sync,async", help="comma list of sync, async")
    parser.add_argument("--stages", type=int, default=301)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--children", type=int, default=8)
    parser.add_argument("--observer", choices=("keep", "none", "monitor"), default="keep")
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument("--pin", metavar="CPU", help="also run each tree under taskset -c CPU")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.stages, args.pairs, args.observer)))
        return
    if args.pin and not shutil.which("taskset"):
        parser.error("--pin needs taskset (util-linux)")
    sources = {"this": os.environ.get("PYTHONPATH") or SRC}
    if args.baseline:
        sources["base"] = os.path.abspath(args.baseline)
    # row -> (source, pin)
    trees: dict[str, tuple[str, str | None]] = {}
    for name, source in sources.items():
        trees[name] = (source, None)
        if args.pin:
            trees[f"{name}@pin"] = (source, args.pin)
    print(
        f"engine, observer {args.observer}, chain of {args.stages} vs 1, CPU µs a stage: "
        f"median (low-high) over {args.children} children x {args.pairs} pairs "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    width = max(5, *map(len, trees))
    print(f"  {'kind':6} {'tree':{width}} {'main':>24} {'process':>24}")
    for kind in args.kind.split(","):
        seen: dict[str, list[Mapping[str, float]]] = {name: [] for name in trees}
        for _ in range(args.children):
            for name, (source, pin) in trees.items():
                seen[name].append(
                    _spawn(source, kind, args.stages, args.pairs, args.observer, pin=pin)
                )
        for name, rows in seen.items():
            cells = []
            for key in ("main", "process"):
                values = [row[key] for row in rows]
                cells.append(
                    f"{statistics.median(values):7.1f} ({min(values):.1f}-{max(values):.1f})"
                )
            print(f"  {kind:6} {name:{width}} {cells[0]:>24} {cells[1]:>24}")


if __name__ == "__main__":
    main()
