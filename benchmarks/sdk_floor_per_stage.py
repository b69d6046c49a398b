"""The raw SDK floor's CPU a stage, steadier than ``per_stage.py``'s floor column.

``.venv/bin/python benchmarks/sdk_floor_per_stage.py [--stages 3001] [--runs 1] [--processes 3]
[--prometheus] [--no-store] [--tuned-gc]``

Runs ``sdk_floor.py STAGES`` and ``sdk_floor.py 1`` ``--processes`` times each (alternating, a
fresh ``TASKDAEMON_HOME`` each) and prints (median CPU of the long ones - median CPU of the
short ones) / (STAGES - 1): the CPU time (user + system of the child) the raw SDK calls cost a
stage. A process start varies by tens of milliseconds on a shared machine; over 3,000 stages
that moves the figure by a few µs, where ``per_stage.py``'s 300 stages move it by a tenth of a
millisecond. ``--prometheus`` adds the metrics SDK with a Prometheus reader (what ``serve`` and
``concurrent_runs.py`` have); ``--no-store`` leaves out the span store's processor (the SDK's
own work alone); ``--tuned-gc`` runs the calls under the collector's set-up that ``run``,
``serve`` and ``concurrent_runs.py`` have (``heap.tuned_collector``), which matters once many
runs are open at once.

``--runs R`` (R > 1) weighs the floor of a concurrent workload: ``sdk_floor.py --runs R
STAGES`` (R interleaved runs sharing their stage names), ``sdk_floor.py --runs R 1`` and
``sdk_floor.py 1``, alternating, and prints three figures from their medians:

* **all in**: CPU(R runs of STAGES) - CPU(1 run of 1 stage), in seconds and divided by
  R * STAGES - 1. Everything the telemetry of the R runs costs past the process's start and
  imports, each run's own span and records included. This is the one to set beside
  ``concurrent_runs.py``'s CPU (its CPU / (runs * 22) a stage), which holds each run's own
  work too and no process start (it times after a warm-up run);
* **a stage**: (CPU(R runs of STAGES) - CPU(R runs of 1)) / (R * (STAGES - 1)), a stage's own
  telemetry in that workload, the runs' share left out: the figure to set beside a chain's;
* **a run**: (CPU(R runs of 1) - CPU(1 run of 1)) / (R - 1): a run span, its run-level
  records and one stage.

With one run the first two are the same figure, the one printed as before.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FLOOR = Path(__file__).resolve().parent / "sdk_floor.py"


def _cpu(runs: int, stages: int, options: list[str]) -> float:
    """CPU seconds of one ``sdk_floor.py`` process of ``runs`` runs of ``stages`` stages."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as home:
        argv = [sys.executable, str(FLOOR), str(stages), *options]
        if runs != 1:
            argv += ["--runs", str(runs)]
        subprocess.run(
            argv, env={**os.environ, "TASKDAEMON_HOME": home}, capture_output=True, check=True
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=3001)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--prometheus", action="store_true")
    parser.add_argument("--no-store", action="store_true")
    parser.add_argument("--tuned-gc", action="store_true")
    args = parser.parse_args()
    options = ["--prometheus"] * args.prometheus + ["--no-store"] * args.no_store
    options += ["--tuned-gc"] * args.tuned_gc
    runs, stages = args.runs, args.stages
    shapes = [(runs, stages), (1, 1)] + ([(runs, 1)] if runs > 1 else [])
    cpu: dict[tuple[int, int], list[float]] = {shape: [] for shape in shapes}
    for _ in range(args.processes):
        for shape in shapes:
            cpu[shape].append(_cpu(*shape, options))
    median = {shape: statistics.median(values) for shape, values in cpu.items()}
    setup = ("no span store" if args.no_store else "store") + (
        " and metrics SDK" if args.prometheus else ""
    )
    setup += ", tuned collector" if args.tuned_gc else ""
    load = os.getloadavg()[0]
    if runs == 1:
        per_stage = (median[1, stages] - median[1, 1]) / (stages - 1)
        print(
            f"raw SDK floor ({setup}), {stages} vs 1 stages, {args.processes} processes each "
            f"(load average {load:.1f}): {per_stage * 1000:.3f} ms CPU a stage"
        )
        return
    all_in = median[runs, stages] - median[1, 1]
    own = (median[runs, stages] - median[runs, 1]) / (runs * (stages - 1))
    a_run = (median[runs, 1] - median[1, 1]) / (runs - 1)
    spread = ", ".join(f"{r}x{s} {min(v):.2f}-{max(v):.2f}" for (r, s), v in cpu.items())
    print(
        f"raw SDK floor ({setup}), {runs} interleaved runs of {stages} stages, "
        f"{args.processes} processes of each shape (load average {load:.1f}):\n"
        f"  all in {all_in:.2f} s CPU for {runs * stages} stages, "
        f"{all_in / (runs * stages - 1) * 1000:.3f} ms a stage\n"
        f"  a stage's own {own * 1000:.3f} ms, a run (its span, records and one stage) "
        f"{a_run * 1000:.3f} ms\n"
        f"  CPU s of a process, range: {spread}"
    )


if __name__ == "__main__":
    main()
