"""Per-stage cost of ``taskdaemon run``, all in, against the raw OTel SDK floor.

``.venv/bin/python benchmarks/per_stage.py [--rounds 7] [--stages 301] [--floor-stages 3001]
[--variants sync,async,command] [--baseline SRC] [--live]``

Each measurement is a whole process, as a user runs it: ``taskdaemon run -q FILE`` (engine,
monitor, embedded span store, Prometheus reader: the defaults) over a chain of ``--stages``
no-op stages, and over a chain of 1; per stage = (t_N - t_1) / (N - 1), so start-up and
shut-down cancel out. Variants: ``sync`` (a plain ``def`` Python handler: it runs in a worker
thread), ``async`` (an ``async def`` handler) and ``command`` (``command: ":"``, one ``/bin/sh``
per stage; reported apart, the spawn dominates). Beside them, in the same rounds,
``benchmarks/sdk_floor.py`` (also a subprocess) makes the same spans, span events, links and
metric records through the same SDK set-up with no taskdaemon code: the floor, over a chain of
``--floor-stages`` (3,001: its one-stage process varies by tens of ms, which 300 stages would
turn into a tenth of a millisecond a stage).

Rounds interleave every variant (in a shuffled order each round) so a busy neighbour on the
shared machine hits them alike. Reported per variant: the median and range over rounds of the
wall time per stage; the best-of figure, (fastest N-stage process - fastest 1-stage process) /
(N - 1), the least disturbed by neighbours (a process start varies by seconds on a loaded
machine, which per-round differences divide by N - 1 only); the median CPU time per stage
(user + system of the child, from ``getrusage``); and the ratios to the floor of each: the
wall ratio as the median of each round's ratio, the CPU ratio both as the ratio of the medians
and, paired, as the median (and range) of each round's ratio, which a VM that runs faster or
slower for minutes at a time moves less, since a round's variants run within seconds of each
other. Every process gets a fresh ``TASKDAEMON_HOME``. With
``--baseline SRC`` (e.g. ``git archive main src | tar -x -C /tmp/base``, then
``--baseline /tmp/base/src``) each variant is also timed with that code, in the same rounds.
With ``--live`` each chain's first stage waits for telemetry to load (``chain``), so the
monitor handles the others' records as they run, whatever their kind.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
TASKDAEMON = [PYTHON, "-m", "taskdaemon.pipeline.cli"]
FLOOR = [PYTHON, str(HERE / "sdk_floor.py")]

#: Seconds the first stage of a ``live`` chain waits (``chain``): more than telemetry takes
#: to load beside a run that has started (``cli/deferred.py``).
LIVE_SECONDS = 1.5

HANDLERS = f"""\
import asyncio


def sync_noop(ctx):
    return None


async def async_noop(ctx):
    return None


async def wait_live(ctx):
    await asyncio.sleep({LIVE_SECONDS})
"""


def chain(kind: str, stages: int, live: bool = False) -> str:
    """A chain of ``stages`` no-op stages of ``kind`` (sync, async, command) as YAML.

    ``live``: the first stage waits ``LIVE_SECONDS`` instead, so that the others run with the
    monitor loaded and handling records as they come. Without it, ``taskdaemon run`` loads
    telemetry beside the chain (``cli/deferred.py``): a chain that outruns the load (an async
    one, of thousands of stages) has its records kept and handled in one batch at the end,
    one that does not (a sync one) has them handled while it runs, so the two kinds' figures
    differ by more than their handlers' hop. A chain of 1 is then the waiting stage alone."""
    lines = [f"name: chain-{kind}-{stages}", "stages:"]
    for i in range(stages):
        lines.append(f"  - name: s{i}")
        if live and i == 0:
            lines += ["    loop: python", "    handler: bench_handlers:wait_live"]
        elif kind == "command":
            lines += ["    loop: command", '    command: ":"']
        else:
            lines += ["    loop: python", f"    handler: bench_handlers:{kind}_noop"]
        lines.append("    triggers:")
        if i == 0:
            lines.append("      - manual: {approval_required: false}")
        else:
            lines.append(f"      - on_completion: {{stage: s{i - 1}}}")
    return "\n".join(lines) + "\n"


def absolute_pythonpath() -> None:
    """Make each relative entry of this process's ``PYTHONPATH`` absolute, for the processes it
    starts. They run in a scratch folder, where ``PYTHONPATH=src`` (the tree measured, as
    benchmarks/README.md's commands give it) names nothing: they would import the installed
    ``taskdaemon`` (the checkout the virtualenv was made from) in place of that tree. Also
    used by ``run_thread_cpu.py`` and ``stage_kernel_counts.py``."""
    if "PYTHONPATH" in os.environ:
        entries = os.environ["PYTHONPATH"].split(os.pathsep)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            str(Path(e).resolve()) if e else e for e in entries
        )


def timed(
    command: list[str], cwd: Path, home: Path, source: str | None = None
) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one child process (with ``source``
    first on its ``PYTHONPATH`` when given)."""
    env = dict(os.environ, TASKDAEMON_HOME=str(home))
    # Byte-code caches as a user has them: without them every process compiles every module,
    # seconds of noise in a difference of two whole processes.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if source:
        env["PYTHONPATH"] = source
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shutil.rmtree(home, ignore_errors=True)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--stages", type=int, default=301)
    parser.add_argument(
        "--floor-stages",
        type=int,
        default=3001,
        help="the floor's long chain (its per-stage figure is a difference of two whole "
        "processes, which a larger N divides finer)",
    )
    parser.add_argument(
        "--variants", default="sync,async,command", help="comma list of sync, async, command"
    )
    parser.add_argument(
        "--baseline",
        metavar="SRC",
        help="also time each variant with SRC (another checkout's src directory) first on "
        "PYTHONPATH, in the same rounds, as VARIANT@base",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="each chain's first stage waits for telemetry to load, so the others run with "
        "the monitor live (chain's docstring); the floor is unchanged",
    )
    args = parser.parse_args()
    absolute_pythonpath()
    n: int = args.stages
    variants = [v for v in args.variants.split(",") if v]
    work = Path(tempfile.mkdtemp(prefix="td-per-stage-"))
    try:
        (work / "bench_handlers.py").write_text(HANDLERS)
        commands: dict[str, tuple[list[str], list[str]]] = {
            "floor": ([*FLOOR, "1"], [*FLOOR, str(args.floor_stages)])
        }
        # Each command's long chain, in stages: what a difference of two processes divides by.
        long_chain = dict.fromkeys(("floor", *variants, *(f"{v}@base" for v in variants)), n)
        long_chain["floor"] = args.floor_stages
        sources: dict[str, str | None] = {"floor": None}
        baseline = str(Path(args.baseline).resolve()) if args.baseline else None
        for kind in variants:
            for size in (1, n):
                (work / f"{kind}{size}.yaml").write_text(chain(kind, size, args.live))
            runs = (
                [*TASKDAEMON, "run", "-q", f"{kind}1.yaml"],
                [*TASKDAEMON, "run", "-q", f"{kind}{n}.yaml"],
            )
            commands[kind], sources[kind] = runs, None
            if baseline:
                commands[f"{kind}@base"], sources[f"{kind}@base"] = runs, baseline
        for name, (one, many) in commands.items():  # warm-up: page cache, .pyc files
            timed(one, work, work / "home", sources[name])
            timed(many, work, work / "home", sources[name])
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        # Whole-process wall times of each size, for the best-of figure.
        raw: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in commands}
        ratios: dict[str, list[float]] = {name: [] for name in commands if name != "floor"}
        cpu_ratios: dict[str, list[float]] = {name: [] for name in ratios}
        for round_no in range(args.rounds):
            order = list(commands)
            random.shuffle(order)
            per_round: dict[str, float] = {}
            for name in order:
                one, many = commands[name]
                w1, c1 = timed(one, work, work / "home", sources[name])
                wn, cn = timed(many, work, work / "home", sources[name])
                per_round[name] = (wn - w1) / (long_chain[name] - 1)
                raw[name][0].append(w1)
                raw[name][1].append(wn)
                wall[name].append(per_round[name])
                cpu[name].append((cn - c1) / (long_chain[name] - 1))
            for name, values in ratios.items():
                values.append(per_round[name] / per_round["floor"])
                cpu_ratios[name].append(cpu[name][-1] / cpu["floor"][-1])
            print(
                f"round {round_no + 1}: "
                + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in sorted(per_round.items()))
                + " ms/stage",
                file=sys.stderr,
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    print(
        f"taskdaemon run -q, chain of {n} vs 1 no-op stages{' after a wait' if args.live else ''}"
        f" (the floor {args.floor_stages} vs 1), {args.rounds} interleaved rounds (load average "
        f"{load:.1f} on {os.cpu_count()} CPUs)"
    )

    def best(name: str) -> float:
        ones, manys = raw[name]
        return (min(manys) - min(ones)) / (long_chain[name] - 1)

    print(
        f"  {'variant':<13} {'wall ms/stage: median (range)':<34} {'best':>7} {'cpu':>7}"
        "   x floor: wall median (range), best, cpu, cpu paired (range)"
    )
    for name in commands:
        w = wall[name]
        spread = f"({min(w) * 1e3:.3f}-{max(w) * 1e3:.3f})"
        line = (
            f"  {name:<13} {statistics.median(w) * 1e3:7.3f} {spread:<26} {best(name) * 1e3:7.3f}"
            f" {statistics.median(cpu[name]) * 1e3:7.3f}"
        )
        if name in ratios:
            r, c = ratios[name], cpu_ratios[name]
            cpu_ratio = statistics.median(cpu[name]) / statistics.median(cpu["floor"])
            line += (
                f"   {statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f}), "
                f"{best(name) / best('floor'):.2f}x, {cpu_ratio:.2f}x, "
                f"{statistics.median(c):.2f}x ({min(c):.2f}-{max(c):.2f})"
            )
        print(line)
    print("  target: sync and async at most 1.7x the floor (command stages: the spawn dominates)")


if __name__ == "__main__":
    main()
