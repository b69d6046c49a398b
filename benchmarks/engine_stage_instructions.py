"""The engine's machine instructions a stage, counted under valgrind: an A/B that load ignores.

Run: ``python benchmarks/engine_stage_instructions.py [--kind async,sync]
[--observer none,keep] [--runs 3] [--gc on|off] [--baseline SRC]`` (needs ``valgrind`` and
``setarch``).

Timing figures on this shared VM move by tens of percent with the neighbours' load; an
instruction count does not. Each child process (``engine_stage_cpu.py``'s chain, handler and
observers) runs two warm-up pairs of a chain of 301 no-op stages and of a chain of 1, then
``--runs`` more of one of them; run under ``valgrind --tool=callgrind`` with address-space
randomisation off, a fixed hash seed and no ``.pyc`` written, its instruction count repeats
to the instruction. The figure is (count with the long chains - count with the short ones) /
(runs x 300): the instructions a stage, start-up and warm-up cancelled. ``--gc off``
disables the cyclic collector for the counted runs (what it collects depends on where the
counted code's objects land, which moves the count by a few percent between two versions of
unrelated code).
Instructions are not time (cache misses, system calls), so measure time too
(``engine_stage_cpu.py``); they show which change does less work.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
STAGES = 301


def _child(kind: str, observer: str, which: str, runs: int, gc_off: bool) -> None:
    from engine_stage_cpu import chain, runner

    run = runner(kind, observer)
    big, small = chain(STAGES), chain(1)
    for _ in range(2):
        asyncio.run(run(big))
        asyncio.run(run(small))
    if gc_off:
        gc.collect()
        gc.disable()
    for _ in range(runs):
        asyncio.run(run(big if which == "big" else small))


def instructions(
    command: list[str], env: dict[str, str], cwd: str | None = None, *, profile: str = ""
) -> int:
    """The instructions valgrind counts for ``command``, run with address-space randomisation
    off, a fixed hash seed and no ``.pyc`` written (``env`` plus those); exits with valgrind's
    output when it gives no count. Also ``per_stage_instructions.py``'s counter.

    With ``profile``, callgrind writes one profile a thread, ``{profile}-01`` for the first
    (``sleep_stage_instructions.py`` reads each thread's total there)."""
    # No .pyc written: else the first child compiles and writes them, the next one reads them,
    # and the difference of two children counts the compiling.
    env = dict(env, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    valgrind = ["setarch", "-R", "valgrind", "--tool=callgrind", "--cache-sim=no"]
    valgrind += ["--branch-sim=no", f"--callgrind-out-file={profile or '/dev/null'}"]
    if profile:
        valgrind.append("--separate-threads=yes")
    done = subprocess.run(
        [*valgrind, *command], cwd=cwd, env=env, check=False, capture_output=True, text=True
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"{' '.join(command)}: no instruction count from valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def _count(source: str, kind: str, observer: str, which: str, args: argparse.Namespace) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((source, HERE)))
    command = [sys.executable, __file__, "--child", kind, "--observer", observer]
    command += ["--which", which, "--runs", str(args.runs), "--gc", args.gc]
    return instructions(command, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="async,sync", help="comma list of sync, async")
    parser.add_argument("--observer", default="none,keep", help="comma list of none, keep")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gc", choices=("on", "off"), default="off")
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--which", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.observer, args.which, args.runs, args.gc == "off")
        return
    trees = {"this": os.environ.get("PYTHONPATH") or SRC}
    if args.baseline:
        trees["base"] = os.path.abspath(args.baseline)
    print(f"instructions a stage, chain of {STAGES} vs 1, {args.runs} runs, gc {args.gc}")
    for kind in args.kind.split(","):
        for observer in args.observer.split(","):
            counts = {}
            for name, source in trees.items():
                big = _count(source, kind, observer, "big", args)
                small = _count(source, kind, observer, "small", args)
                counts[name] = (big - small) / (args.runs * (STAGES - 1))
            line = f"  {kind:5} {observer:5} " + "  ".join(
                f"{name} {value:9,.0f}" for name, value in counts.items()
            )
            if "base" in counts:
                line += f"  ({counts['this'] / counts['base'] - 1:+.1%})"
            print(line, flush=True)


if __name__ == "__main__":
    main()
