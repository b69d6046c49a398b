"""Many concurrent monitored runs in one process: throughput and peak memory.

``.venv/bin/python benchmarks/concurrent_runs.py [--runs 2000] [--rounds 3] [--handler async]``

Starts ``--runs`` runs of a 22-stage pipeline at once on one engine, monitored as
``taskdaemon serve`` monitors them, less the HTTP server (``cli/telemetry.build_telemetry`` with
the default settings and its Prometheus reader: the embedded span store, the metrics SDK, in a
fresh ``TASKDAEMON_HOME``; ``PipelineMonitor`` with the settings' payload capture; the event
loop ``serve`` makes, ``event_loop.new_event_loop``, where the code has one), and waits until
every run ended and every span is written (``force_flush``). The pipeline: one entry
stage, four branches of five stages after it, one stage joining them (mode ``all``); each stage
is a no-op Python handler (``async def``, or a plain ``def`` with ``--handler sync``, which runs
in a worker thread).

Each round runs in a fresh child process, so the peak resident memory (``ru_maxrss``) is the
run's own. The child also reports where its CPU went: each thread's CPU time (read from
``/proc/self/task`` once a second and after the runs; Linux only) and the cyclic collector's
(``gc.callbacks``, with its collections by generation). The workload runs under the GIL, so
the process's CPU time is what its throughput costs.

The tree measured is the caller's ``PYTHONPATH`` when set, else this checkout's ``src``: never
the package the virtualenv happens to have installed (another checkout's, for a worktree).
With ``--baseline SRC`` every round also runs the same workload with ``SRC`` (a ``src``
directory of another checkout, e.g. ``git archive main src | tar -x -C /tmp/base``) first on
``PYTHONPATH``, interleaved, so the two are compared side by side on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
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


class CpuBooks:
    """The child's CPU by thread name (sampled from ``/proc/self/task``) and the collector's
    CPU and collections by generation (``gc.callbacks``), from ``start()`` on."""

    def __init__(self) -> None:
        self.gc_seconds = 0.0
        self.collections = [0, 0, 0]
        self._gc_started = 0.0
        self._base: dict[int, float] = {}
        self._seen: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.thread_time()
        else:
            self.gc_seconds += time.thread_time() - self._gc_started
            self.collections[info["generation"]] += 1

    def _cpu_by_thread(self) -> dict[int, float]:
        found: dict[int, float] = {}
        with contextlib.suppress(OSError):
            for tid in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    with open(f"/proc/self/task/{tid}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                    found[int(tid)] = (int(fields[11]) + int(fields[12])) / self._tick
        return found

    def sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        for tid, cpu in self._cpu_by_thread().items():
            name = names.get(tid) or self._seen.get(tid, ("(ended)", 0.0))[0]
            self._seen[tid] = (name, cpu - self._base.get(tid, 0.0))

    def _sampler(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def start(self) -> None:
        self._base = self._cpu_by_thread()
        gc.callbacks.append(self._on_gc)
        threading.Thread(target=self._sampler, name="cpu-books", daemon=True).start()

    def stop(self) -> dict[str, Any]:
        self.sample()
        self._stop.set()
        gc.callbacks.remove(self._on_gc)
        threads: dict[str, float] = {}
        for name, cpu in self._seen.values():
            threads[name] = round(threads.get(name, 0.0) + cpu, 2)
        return {"gc_s": self.gc_seconds, "gc_collections": self.collections, "threads": threads}


async def child_main(runs: int, handler: str, home: Path) -> dict[str, Any]:
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
            books = CpuBooks()
            books.start()
            cpu = time.process_time()
            start = time.perf_counter()
            handles = [await engine.start_run(definition, {}) for _ in range(runs)]
            results = [await handle.wait() for handle in handles]
            ran = time.perf_counter() - start
            await asyncio.to_thread(telemetry.tracer_provider.force_flush)
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
            where = books.stop()
        failed = sum(1 for result in results if not result.succeeded)
    return {"ran": ran, "wall": wall, "cpu": cpu, "failed": failed, **where}


def child(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="td-concurrent-"))
    try:
        # The collector as ``taskdaemon serve`` tunes it (heap.py; older checkouts have none).
        try:
            from taskdaemon.pipeline.heap import tuned_collector
        except ImportError:
            tuned_collector = contextlib.nullcontext
        # The event loop ``serve`` runs its runs on (event_loop.py; older checkouts: asyncio's).
        try:
            from taskdaemon.pipeline.event_loop import run as run_loop
        except ImportError:
            run_loop = asyncio.run
        with tuned_collector():
            figures = run_loop(child_main(args.runs, args.handler, home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    figures["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def one_round(args: argparse.Namespace, source: str) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join((source, str(HERE)))
    command = [sys.executable, __file__, "--child", "--runs", str(args.runs)]
    command += ["--handler", args.handler]
    done = subprocess.run(command, env=env, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the child failed:\n{done.stderr}")
    output = done.stdout
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
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
    variants = {"this": os.environ.get("PYTHONPATH") or str(SRC)}
    if args.baseline:
        variants["baseline"] = str(Path(args.baseline).resolve())
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
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
    for name, rounds in samples.items():
        gc_s = statistics.median(r["gc_s"] for r in rounds)
        collections = "/".join(
            f"{statistics.median(r['gc_collections'][g] for r in rounds):g}" for g in range(3)
        )
        threads: dict[str, list[float]] = {}
        for r in rounds:
            for thread, cpu in r["threads"].items():
                threads.setdefault(thread, []).append(cpu)
        split = ", ".join(
            f"{thread} {statistics.median(cpus):.2f}"
            for thread, cpus in sorted(threads.items(), key=lambda item: -max(item[1]))
            if max(cpus) >= 0.05
        )
        print(f"  {name:<9} cpu s by thread: {split}; gc {gc_s:.2f} s ({collections} collections)")
    if "baseline" in samples:
        this = statistics.median(r["wall"] for r in samples["this"])
        base = statistics.median(r["wall"] for r in samples["baseline"])
        print(f"  throughput vs baseline: {base / this:.2f}x")


if __name__ == "__main__":
    main()
