"""``per_stage.py`` counted in machine instructions: ``taskdaemon run`` a stage against the floor.

Run: ``python benchmarks/per_stage_instructions.py [--stages 301] [--variants async,sync]
[--baseline SRC]`` (needs ``valgrind`` and ``setarch``; about half a minute a process).

``per_stage.py`` times whole processes, and on a shared VM their CPU time moves by tens of
percent with the neighbours' load and with which CPU each thread wakes on. This script runs
the same processes (``taskdaemon run -q`` over ``per_stage.py``'s chain of ``--stages`` no-op
stages and over a chain of 1, a fresh ``TASKDAEMON_HOME`` each; ``sdk_floor.py`` over the same
two lengths) under ``valgrind --tool=callgrind``, with address-space randomisation off, a fixed
hash seed and no ``.pyc`` written, and reports (count of the long chain - count of the chain of
1) / (stages - 1): the instructions a stage, every thread of the process included, start-up
and shut-down cancelled. The count repeats to a fraction of a percent, whatever the load.

What it leaves out is what ``per_stage.py`` shows: instructions are not time. valgrind runs
one thread at a time, so the cost of threads waking each other across CPUs and handing the
GIL over (most of what a sync stage costs beyond an async one on this VM) is not counted,
nor cache misses or system call time. Read the two together: this one says which tree does
less work, ``per_stage.py`` what a stage costs on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=301)
    parser.add_argument("--variants", default="async,sync", help="comma list of async, sync")
    parser.add_argument("--baseline", metavar="SRC", help="also count SRC (a checkout's src)")
    args = parser.parse_args()
    for tool in ("valgrind", "setarch"):
        if shutil.which(tool) is None:
            sys.exit(
                f"per_stage_instructions.py needs {tool} (apt-get install valgrind util-linux)"
            )
    n = args.stages
    variants = [v for v in args.variants.split(",") if v]
    trees = {"this": SRC}
    if args.baseline:
        if not (Path(args.baseline) / "taskdaemon").is_dir():
            parser.error(f"--baseline {args.baseline}: no taskdaemon package there")
        trees["base"] = Path(args.baseline).resolve()
    work = Path(tempfile.mkdtemp(prefix="td-per-stage-instructions-"))
    try:
        (work / "bench_handlers.py").write_text(HANDLERS)
        for kind in variants:
            for size in (1, n):
                (work / f"{kind}{size}.yaml").write_text(chain(kind, size))
        floor_command = [sys.executable, str(HERE / "sdk_floor.py")]
        many, one = (count([*floor_command, str(size)], work, SRC) for size in (n, 1))
        floor = (many - one) / (n - 1)
        print(f"instructions a stage, chain of {n} vs 1 (valgrind, every thread of the process)")
        print(f"  floor (sdk_floor.py)   {floor:11,.0f}")
        run = [sys.executable, "-m", "taskdaemon.pipeline.cli", "run", "-q"]
        for kind in variants:
            figures = {}
            for name, source in trees.items():
                many = count([*run, f"{kind}{n}.yaml"], work, source)
                one = count([*run, f"{kind}1.yaml"], work, source)
                figures[name] = (many - one) / (n - 1)
            line = f"  {kind:5}                  " + "   ".join(
                f"{name} {value:11,.0f} ({value / floor:.2f}x the floor)"
                for name, value in figures.items()
            )
            if "base" in figures:
                line += f"   {figures['this'] / figures['base'] - 1:+.1%}"
            print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
