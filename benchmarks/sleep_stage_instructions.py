"""``pipeline_with_monitoring.py``'s 10 ms stages counted in machine instructions, per thread.

Run: ``python benchmarks/sleep_stage_instructions.py [--stages 31] [--rounds 1]
[--baseline SRC] [--row-stages 20] [--profiles DIR] [--python-profile bare|monitored]``
(needs ``valgrind`` and ``setarch``; a few minutes a round and tree).

``pipeline_with_monitoring.py``'s row "10 ms stages, monitored vs bare" is wall time over 10 ms
sleeps on a shared VM: two sittings disagree by more than a change of the monitor moves it.
This script runs the same two variants, ``sleep`` and ``sleep+monitor`` (a chain of async
stages that each sleep 10 ms, on the engine bare or with a ``PipelineMonitor`` over the
embedded span store, the process's providers built alike in both), one child process each,
under ``valgrind --tool=callgrind --separate-threads=yes``, with address-space randomisation
off, a fixed hash seed and no ``.pyc`` written (``engine_stage_instructions.instructions``).
Every child first runs the chain of ``--stages`` stages and the chain of 1, then runs one of
them again, or nothing: (count with the long chain - count with the chain of 1) / (stages -
1) is what a stage costs, and (count with the chain of 1 - count with nothing) what a run
costs beside its stage, start-up and warm-up cancelled; each on the event loop's thread (the
process's first thread, where the engine runs) and in the whole process. The warm-up runs
the same definitions, as ``pipeline_with_monitoring.py`` runs one definition throughout: what
the monitor does once a definition (its span attributes) or once a DAG and process (its
stages' metric series made at 0) is not a stage's nor a run's.

The loop thread's count is the figure issue 14's "under 1%" is about: what the loop executes
delays the next stage, where the monitor's worker and the span store's writer work while the
loop sleeps. A stage's count holds what the loop does between one stage's sleep and the next
(the engine's records and their hand-over to the worker); a run's holds the run's start and
end, which the monitor handles on the loop (``PipelineMonitor.on_event``), and the row shares
it among the chain's stages: ``--row-stages`` (its ``--stages``, 20) says among how many.
This script runs the engine in-process, as ``pipeline_with_monitoring.py`` does, rather than
``taskdaemon run`` over a chain against a chain of 1: ``run`` cannot run a bare engine, so the
two variants would differ by more than the monitor (the deferred loading of telemetry, the
run log, the command's own start), and the row this measures is the in-process one.

The counts are the load-proof part; what they cost in time is the machine's. So the script
also runs the monitored child of this tree without valgrind and reads the loop thread's CPU
time over the counted chain: (its instructions a stage) / (its CPU µs a stage) is the rate at
which this machine ran that code just now (after each sleep the caches are cold, so it is
lower than a busy loop's), and it turns the monitor's loop instructions into µs and a share
of a 10 ms stage. Under valgrind the threads run many times slower beside the same 10 ms
sleeps, so the worker may still be busy when a stage wakes: that changes when the other
threads run, not what the loop executes.

``--gc off`` (the default) disables the cyclic collector in the children from their start:
the collector runs on whichever thread allocates past its threshold, and the worker's
allocations count, so collections would land on the loop in one child and not in the next.
``--profiles DIR`` keeps each child's per-thread callgrind profiles there
(``callgrind_annotate DIR/this-monitored-31.out-01`` names the loop thread's C functions);
which Python code runs on the loop, ``--python-profile`` prints from one child run natively:
the bytecodes each function executed on the loop's thread over the counted chain, a stage,
with what it called and on its own (``sys.settrace``'s opcode events: a count, not a time, so
the load does not move it either).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

from engine_stage_instructions import instructions  # noqa: E402 - the benchmarks directory
from per_stage_instructions import summary, trees_to_count  # noqa: E402 - added above

VARIANTS = ("bare", "monitored")


class BytecodeCount:
    """The Python bytecodes this thread executes while enabled, by function: with what it
    called (``within``) and on its own (``own``), from ``sys.settrace``'s opcode events."""

    def __init__(self) -> None:
        self.within: Counter[str] = Counter()
        self.own: Counter[str] = Counter()

    def _opcode(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "opcode":
            self.own[_where(frame.f_code)] += 1
            seen: set[CodeType] = set()
            walked: FrameType | None = frame
            while walked is not None:
                code = walked.f_code
                if code not in seen:  # a recursive function counts once an opcode
                    seen.add(code)
                    self.within[_where(code)] += 1
                walked = walked.f_back
        return self._opcode

    def _call(self, frame: FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        return self._opcode

    def enable(self) -> None:
        sys.settrace(self._call)

    def disable(self) -> None:
        sys.settrace(None)

    def report(self, stages: int, shown: int = 60) -> None:
        """The functions with the most bytecodes, a stage of ``stages``, on stderr."""
        print("bytecodes a stage: with callees, own, function", file=sys.stderr)
        for where, count in self.within.most_common(shown):
            own = self.own[where] / stages
            print(f"{count / stages:12,.1f} {own:10,.1f}  {where}", file=sys.stderr)


def _where(code: CodeType) -> str:
    """A function as ``file:line(name)``, the file from its package on."""
    path = code.co_filename
    for marker in ("site-packages/", "/src/", "/benchmarks/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{code.co_firstlineno}({code.co_name})"


def _child(variant: str, stages: int, warm_up: int, gc_off: bool, python_profile: bool) -> None:
    """On a fresh engine, run the chains of ``warm_up`` stages and of 1, then the counted one
    of ``stages`` (one of the two, or none for 0); print the loop thread's CPU seconds over the
    counted chain as JSON (and, with ``python_profile``, the bytecodes its functions ran on
    this thread)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from pipeline_with_monitoring import INPUTS, Resolver, _sleep10, chain
    from taskdaemon.pipeline.engine import Engine
    from taskdaemon.pipeline.event_loop import run as run_loop
    from taskdaemon.pipeline.monitor import PipelineMonitor
    from taskdaemon.pipeline.tracking import RetentionPolicy, SqliteSpanProcessor

    async def main(home: str) -> None:
        if gc_off:  # from the start: the worker's allocations would set off collections
            gc.disable()  # on whichever thread allocates next (module doc)
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(
            SqliteSpanProcessor(Path(home) / "spans.db", retention=RetentionPolicy())
        )
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        monitor = PipelineMonitor(tracer_provider=tracer_provider, meter_provider=meter_provider)
        observers = [monitor] if variant == "monitored" else []
        engine = Engine(resolver=Resolver(_sleep10), observers=observers)
        # Both chains in every child, each counted one run again: what the monitor does
        # once a definition (its span attributes) or once a DAG and process (its stages'
        # metric series made at 0) is done before the counted run, as the warm-up of
        # ``pipeline_with_monitoring.py`` does it.
        chains = {size: chain(size) for size in (warm_up, 1)}
        for warm in chains.values():
            await engine.run(warm, INPUTS)
        profile = BytecodeCount() if python_profile else None
        start = time.thread_time()
        if stages:
            if profile is not None:
                profile.enable()
            await engine.run(chains[stages], INPUTS)
            if profile is not None:
                profile.disable()
        cpu = time.thread_time() - start
        await engine.aclose()
        monitor.close()
        tracer_provider.shutdown()
        meter_provider.shutdown()
        print(json.dumps({"loop_cpu": cpu}), flush=True)
        if profile is not None:
            profile.report(max(stages, 1))

    with tempfile.TemporaryDirectory(prefix="td-sleep-stage-") as home:
        run_loop(main(home))


def _command(variant: str, stages: int, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, __file__, "--child", variant, "--stages", str(stages)]
    return [*command, "--warm-up", str(args.stages), "--gc", args.gc]


def _env(source: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join((str(source), str(HERE))))


def thread_counts(command: list[str], source: Path, profile: Path) -> tuple[int, int]:
    """(the loop thread's instructions, the whole process's) for ``command`` run with
    ``source`` first on its ``PYTHONPATH``, its per-thread profiles written at ``profile``."""
    total = instructions(command, _env(source), profile=str(profile))
    text = Path(f"{profile}-01").read_text()
    found = re.search(r"^totals: (\d+)", text, re.MULTILINE)
    if found is None:
        sys.exit(f"{profile}-01: no totals line in callgrind's profile of the first thread")
    return int(found.group(1)), total


def loop_cpu(command: list[str], source: Path) -> float:
    """The loop thread's CPU seconds over the counted chain, ``command`` run natively."""
    done = subprocess.run(command, env=_env(source), check=True, capture_output=True, text=True)
    return float(json.loads(done.stdout.splitlines()[-1])["loop_cpu"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=31)
    parser.add_argument("--rounds", type=int, default=1, help="rounds, interleaved (median)")
    parser.add_argument("--baseline", metavar="SRC", help="also count SRC (a checkout's src)")
    parser.add_argument("--gc", choices=("on", "off"), default="off")
    parser.add_argument(
        "--row-stages",
        type=int,
        default=20,
        help="the chain whose stages share a run's count (pipeline_with_monitoring's --stages)",
    )
    parser.add_argument("--profiles", metavar="DIR", help="keep the callgrind profiles there")
    parser.add_argument(
        "--python-profile",
        choices=VARIANTS,
        help="print the bytecodes each function runs on the loop of one child (no valgrind)",
    )
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--warm-up", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        python_profile = args.python_profile is not None
        _child(args.child, args.stages, args.warm_up, args.gc == "off", python_profile)
        return
    if args.stages < 2:
        parser.error("--stages: at least 2")
    if args.python_profile:
        command = [*_command(args.python_profile, args.stages, args), "--python-profile"]
        command.append(args.python_profile)
        subprocess.run(command, env=_env(SRC), check=True)
        return
    trees = trees_to_count(parser, args.baseline, "sleep_stage_instructions.py")
    n = args.stages
    work = Path(args.profiles) if args.profiles else Path(tempfile.mkdtemp(prefix="td-sleep-"))
    work.mkdir(parents=True, exist_ok=True)
    # figures[(tree, variant)]: per round, the instructions (a stage on the loop thread, a
    # stage in the process, a run on the loop thread, a run in the process)
    figures: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    rates: list[float] = []
    try:
        for _ in range(args.rounds):
            for name, source in trees.items():
                for variant in VARIANTS:
                    long, one, none = (
                        thread_counts(_command(variant, size, args), source,
                                      work / f"{name}-{variant}-{size}.out")
                        for size in (n, 1, 0)
                    )  # fmt: skip
                    stage = [(a - b) / (n - 1) for a, b in zip(long, one, strict=True)]
                    run = [a - b for a, b in zip(one, none, strict=True)]
                    figures.setdefault((name, variant), []).append((*stage, *run))
                    if name == "this" and variant == "monitored":
                        cpu = loop_cpu(_command(variant, n, args), source)
                        cpu -= loop_cpu(_command(variant, 1, args), source)
                        rates.append(stage[0] / (cpu / (n - 1) * 1e6))
    finally:
        if not args.profiles:
            shutil.rmtree(work, ignore_errors=True)
    report(figures, rates, args)


def report(
    figures: dict[tuple[str, str], list[tuple[float, ...]]],
    rates: list[float],
    args: argparse.Namespace,
) -> None:
    """Print the counts a stage and a run, the monitor's share, and what the loop thread's
    share comes to in a chain of ``--row-stages`` at the measured rate."""
    rate = statistics.median(rates)
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(
        f"instructions, chain of {args.stages} vs 1 (a stage) and 1 vs none (a run) of 10 ms "
        f"stages (valgrind, gc {args.gc}{rounds})"
    )
    columns = ("a stage, loop", "a stage, process", "a run, loop", "a run, process")
    print("                  " + "".join(f"{c:>28}" for c in columns))
    trees = dict.fromkeys(name for name, _ in figures)
    added: dict[str, tuple[float, float]] = {}
    for name in trees:
        rows = {variant: figures[(name, variant)] for variant in VARIANTS}
        rows["monitor's"] = [
            tuple(m - b for m, b in zip(mon, bare, strict=True))
            for mon, bare in zip(rows["monitored"], rows["bare"], strict=True)
        ]
        for label, values in rows.items():
            cells = (summary([v[i] for v in values]) for i in range(4))
            print(f"  {name:4} {label:10}  " + "".join(f"{c:>28}" for c in cells))
        mine = rows["monitor's"]
        added[name] = (statistics.median(v[0] for v in mine), statistics.median(v[2] for v in mine))
    print(
        f"  this machine ran the monitored loop thread at {rate:,.0f} instructions/µs "
        f"(its CPU time over the chain without valgrind{rounds}: the load's part)"
    )
    row = args.row_stages
    for name, (stage, run) in added.items():
        share = stage + run / row
        print(
            f"  {name}: the monitor adds {stage:,.0f} loop-thread instructions a stage and "
            f"{run:,.0f} a run; in a chain of {row}, {share:,.0f} a stage, {share / rate:.1f} µs "
            f"at that rate, {share / rate / 10_000:+.2%} of a 10 ms stage"
        )


if __name__ == "__main__":
    main()
