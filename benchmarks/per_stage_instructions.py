"""``per_stage.py`` counted in machine instructions: ``taskdaemon run`` a stage against the floor.

Run: ``python benchmarks/per_stage_instructions.py [--stages 301] [--variants async,sync]
[--baseline SRC] [--rounds 1]`` (needs ``valgrind`` and ``setarch``; about half a minute a
process).

``per_stage.py`` times whole processes, and on a shared VM their CPU time moves by tens of
percent with the neighbours' load and with which CPU each thread wakes on. This script runs
the same processes (``taskdaemon run -q`` over ``per_stage.py``'s chain of ``--stages`` no-op
stages and over a chain of 1, a fresh ``TASKDAEMON_HOME`` each; ``sdk_floor.py`` over the same
two lengths) under ``valgrind --tool=callgrind``, with address-space randomisation off, a fixed
hash seed and no ``.pyc`` written, and reports (count of the long chain - count of the chain of
1) / (stages - 1): the instructions a stage, every thread of the process included, start-up
and shut-down cancelled. Each tree's ``.pyc`` are compiled first (``compileall``): which
modules the deferred monitoring has loaded when a short run ends depends on timing, and a
module one chain imports and the other does not must cost its load, not its compilation
(benchmarks/README.md, "Per-run walks of the definition, cut where done twice or per stage for
nothing (start40, 2026-12-05)", "Noticed").

The count does not follow the machine's speed as a time does, but it is not fixed either: the
threads beside the loop (the SDK's batch processor, the monitor's worker, the writers) do work
per batch, and how many batches a run makes depends on when each thread ran, so two runs of
the same tree differ by a little (benchmarks/README.md, "Instruction counts between runs
(2026-12-02)"). So does how many of the long chain's stages run while telemetry loads on its
thread (``cli/deferred.py``): their events are kept and handed to the monitor later, a swap
at a time, and a run that kept more of them counts fewer instructions. That number follows
how the loop, the sync worker and the loading thread share the GIL, whose switch interval is
wall-clock time, so it moves with the machine's load (benchmarks/README.md, inst59's
section). Compare trees within one run, and give ``--rounds`` (each round runs every
tree, interleaved; the median is printed with the range) for a steadier figure.

What it leaves out is what ``per_stage.py`` shows: instructions are not time. valgrind runs
one thread at a time, so the cost of threads waking each other across CPUs and handing the
GIL over (most of what a sync stage costs beyond an async one on this VM) is not counted,
nor cache misses or system call time. Read the two together: this one says which tree does
less work, ``per_stage.py`` what a stage costs on the machine.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

from engine_stage_instructions import instructions  # noqa: E402 - the benchmarks directory
from per_stage import HANDLERS, chain  # noqa: E402 - added above


def count(command: list[str], cwd: Path, source: Path) -> int:
    """The instructions valgrind counts for ``command`` run in ``cwd`` with ``source`` first on
    its ``PYTHONPATH`` and a fresh ``TASKDAEMON_HOME``."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=cwd))
    env = dict(os.environ, TASKDAEMON_HOME=str(home))
    env["PYTHONPATH"] = os.pathsep.join((str(source), str(cwd)))
    try:
        return instructions(command, env, str(cwd))
    finally:
        shutil.rmtree(home, ignore_errors=True)


def per_stage(
    command: list[str], chains: tuple[str, str], work: Path, source: Path, n: int
) -> float:
    """(the count of ``command`` over the long chain - its count over the chain of 1) / (n - 1),
    ``chains`` being (long, chain of 1)."""
    long, short = chains
    return (count([*command, long], work, source) - count([*command, short], work, source)) / (
        n - 1
    )


def summary(values: list[float]) -> str:
    """The median, and the range when there are several."""
    shown = f"{statistics.median(values):11,.0f}"
    if len(values) > 1:
        shown += f" [{min(values):,.0f}-{max(values):,.0f}]"
    return shown


def trees_to_count(
    parser: argparse.ArgumentParser, baseline: str | None, script: str
) -> dict[str, Path]:
    """This checkout's ``src`` as "this" and, with ``baseline``, that one as "base", each
    compiled first (module doc), once valgrind and setarch are found; else a one-line error.
    Also ``sleep_stage_instructions.py``'s."""
    for tool in ("valgrind", "setarch"):
        if shutil.which(tool) is None:
            sys.exit(f"{script} needs {tool} (apt-get install valgrind util-linux)")
    trees = {"this": SRC}
    if baseline:
        if not (Path(baseline) / "taskdaemon").is_dir():
            parser.error(f"--baseline {baseline}: no taskdaemon package there")
        trees["base"] = Path(baseline).resolve()
    for source in trees.values():
        compileall.compile_dir(source, quiet=1)
    return trees


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=301)
    parser.add_argument("--variants", default="async,sync", help="comma list of async, sync")
    parser.add_argument("--baseline", metavar="SRC", help="also count SRC (a checkout's src)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, interleaved (median)")
    args = parser.parse_args()
    trees = trees_to_count(parser, args.baseline, "per_stage_instructions.py")
    n = args.stages
    variants = [v for v in args.variants.split(",") if v]
    work = Path(tempfile.mkdtemp(prefix="td-per-stage-instructions-"))
    try:
        (work / "bench_handlers.py").write_text(HANDLERS)
        for kind in variants:
            for size in (1, n):
                (work / f"{kind}{size}.yaml").write_text(chain(kind, size))
        floor_command = [sys.executable, str(HERE / "sdk_floor.py")]
        run = [sys.executable, "-m", "taskdaemon.pipeline.cli", "run", "-q"]
        floors: list[float] = []
        figures: dict[str, dict[str, list[float]]] = {k: {t: [] for t in trees} for k in variants}
        for _ in range(args.rounds):
            floors.append(per_stage(floor_command, (str(n), "1"), work, SRC, n))
            for kind in variants:
                for name, source in trees.items():
                    value = per_stage(run, (f"{kind}{n}.yaml", f"{kind}1.yaml"), work, source, n)
                    figures[kind][name].append(value)
        floor = statistics.median(floors)
        rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
        print(
            f"instructions a stage, chain of {n} vs 1 (valgrind, every thread of the process"
            f"{rounds})"
        )
        print(f"  floor (sdk_floor.py)   {summary(floors)}")
        for kind in variants:
            medians = {name: statistics.median(values) for name, values in figures[kind].items()}
            line = f"  {kind:5}                  " + "   ".join(
                f"{name} {summary(figures[kind][name])} ({medians[name] / floor:.2f}x the floor)"
                for name in trees
            )
            if "base" in medians:
                line += f"   {medians['this'] / medians['base'] - 1:+.1%}"
            print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
