"""Many concurrent monitored runs in one process: throughput and peak memory.

``.venv/bin/python benchmarks/concurrent_runs.py [--runs 2000] [--rounds 3] [--handler async]``

Starts ``--runs`` runs of a 22-stage pipeline at once on one engine, monitored as
``taskdaemon serve`` monitors them, less the HTTP server (``cli/telemetry.build_telemetry`` with
the default settings and its Prometheus reader: the embedded span store, the metrics SDK, in a
fresh ``TASKDAEMON_HOME``; ``PipelineMonitor`` with the settings' payload capture), and
waits until every run ended and every span is written (``force_flush``). The pipeline: one entry
stage, four branches of five stages after it, one stage joining them (mode ``all``); each stage
is a no-op Python handler (``async def``, or a plain ``def`` with ``--handler sync``, which runs
in a worker thread).

Each round runs in a fresh child process, so the peak resident memory (``ru_maxrss``) is the
run's own. With ``--baseline SRC`` every round also runs the same workload with ``SRC`` (a
``src`` directory of another checkout, e.g. ``git archive main src | tar -x -C /tmp/base``)
first on ``PYTHONPATH``, interleaved, so the two are compared side by side on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STAGES_PER_BRANCH = 5
BRANCHES = 4


async def async_noop(ctx: Any) -> None:
    return None


def sync_noop(ctx: Any) -> None:
    return None


def pipeline_yaml(handler: str) -> str:
    """The 22-stage pipeline: entry, 4 branches of 5, join."""
    target = f"concurrent_runs:{handler}_noop"
    lines = ["name: fan", "concurrency: 22", "stages:"]

    def add(name: str, triggers: list[str], mode: str = "any") -> None:
        lines.extend([f"  - name: {name}", "    loop: python", f"    handler: {target}"])
        if mode != "any":
            lines.append(f"    trigger_mode: {mode}")
        lines.append("    triggers:")
        lines.extend(f"      - {trigger}" for trigger in triggers)

    add("entry", ["manual: {approval_required: false}"])
    ends = []
    for b in range(BRANCHES):
        previous = "entry"
        for s in range(STAGES_PER_BRANCH):
            name = f"b{b}s{s}"
            add(name, [f"on_completion: {{stage: {previous}}}"])
            previous = name
        ends.append(previous)
    add("join", [f"on_completion: {{stage: {end}}}" for end in ends], mode="all")
    return "\n".join(lines) + "\n"


async def child_main(runs: int, handler: str, home: Path) -> dict[str, float]:
    import inspect

    from taskdaemon.pipeline.cli.telemetry import build_telemetry
    from taskdaemon.pipeline.config import parse_pipeline
    from taskdaemon.pipeline.engine import Engine
    from taskdaemon.pipeline.loops import LoopRegistry
    from taskdaemon.pipeline.monitor import PipelineMonitor
    from taskdaemon.pipeline.payloads import PayloadCapture
    from taskdaemon.pipeline.settings import load_settings

    os.environ["TASKDAEMON_HOME"] = str(home)
    settings = load_settings()
    definition = parse_pipeline(pipeline_yaml(handler), source="fan.yaml")
    # What ``taskdaemon serve`` monitors with, less the HTTP server: the store and a Prometheus
    # reader (older checkouts build the reader without being asked).
    options: dict[str, Any] = {}
    if "serve_metrics" in inspect.signature(build_telemetry).parameters:
        options["serve_metrics"] = True
    telemetry = build_telemetry(settings, **options)
    monitor = PipelineMonitor(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        capture=PayloadCapture(
            max_bytes=settings.payload_max_bytes, redact_patterns=settings.redact_patterns
        ),
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(telemetry.shutdown)
        engine = Engine(resolver=LoopRegistry.default(), observers=[monitor])
        async with engine:
            await engine.run(definition, {})  # warm-up: imports, caches
            await asyncio.to_thread(telemetry.tracer_provider.force_flush)
            cpu = time.process_time()
            start = time.perf_counter()
            handles = [await engine.start_run(definition, {}) for _ in range(runs)]
            results = [await handle.wait() for handle in handles]
            ran = time.perf_counter() - start
            await asyncio.to_thread(telemetry.tracer_provider.force_flush)
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
        failed = sum(1 for result in results if not result.succeeded)
    return {"ran": ran, "wall": wall, "cpu": cpu, "failed": failed}


def child(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="td-concurrent-"))
    try:
        # The collector as ``taskdaemon serve`` tunes it (heap.py; older checkouts have none).
        try:
            from taskdaemon.pipeline.heap import tuned_collector
        except ImportError:
            tuned_collector = contextlib.nullcontext
        with tuned_collector():
            figures = asyncio.run(child_main(args.runs, args.handler, home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    figures["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def one_round(args: argparse.Namespace, source: str | None) -> dict[str, float]:
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, here) if p)
    command = [sys.executable, __file__, "--child", "--runs", str(args.runs)]
    command += ["--handler", args.handler]
    done = subprocess.run(command, env=env, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the child failed:\n{done.stderr}")
    output = done.stdout
    figures: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--handler", choices=("async", "sync"), default="async")
    parser.add_argument("--baseline", metavar="SRC", help="also run with SRC first on the path")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    variants: dict[str, str | None] = {"this": None}
    if args.baseline:
        variants["baseline"] = str(Path(args.baseline).resolve())
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for round_no in range(args.rounds):
        for name, source in variants.items():
            figures = one_round(args, source)
            samples[name].append(figures)
            print(f"round {round_no + 1} {name}: {figures}", file=sys.stderr, flush=True)
    stages = args.runs * (1 + BRANCHES * STAGES_PER_BRANCH + 1)
    print(
        f"{args.runs} concurrent runs x 22 stages ({args.handler} no-op handlers, monitored, "
        f"embedded store), {args.rounds} rounds, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    for name, rounds in samples.items():
        wall = [r["wall"] for r in rounds]
        cpu = [r["cpu"] for r in rounds]
        peak = [r["peak_mib"] for r in rounds]
        print(
            f"  {name:<9} wall {statistics.median(wall):6.2f} s ({min(wall):.2f}-{max(wall):.2f}), "
            f"cpu {statistics.median(cpu):6.2f} s, {stages / statistics.median(wall):7.0f} "
            f"stages/s, peak RSS {statistics.median(peak):5.0f} MiB "
            f"({min(peak):.0f}-{max(peak):.0f})"
        )
    if "baseline" in samples:
        this = statistics.median(r["wall"] for r in samples["this"])
        base = statistics.median(r["wall"] for r in samples["baseline"])
        print(f"  throughput vs baseline: {base / this:.2f}x")


if __name__ == "__main__":
    main()
