"""The raw SDK floor's CPU a stage, steadier than ``per_stage.py``'s floor column.

``.venv/bin/python benchmarks/sdk_floor_per_stage.py [--stages 3001] [--processes 3]
[--prometheus] [--no-store]``

Runs ``sdk_floor.py STAGES`` and ``sdk_floor.py 1`` ``--processes`` times each (alternating, a
fresh ``TASKDAEMON_HOME`` each) and prints (median CPU of the long ones - median CPU of the
short ones) / (STAGES - 1): the CPU time (user + system of the child) the raw SDK calls cost a
stage. A process start varies by tens of milliseconds on a shared machine; over 3,000 stages
that moves the figure by a few µs, where ``per_stage.py``'s 300 stages move it by a tenth of a
millisecond. ``--prometheus`` adds the metrics SDK with a Prometheus reader (what ``serve`` and
``concurrent_runs.py`` have); ``--no-store`` leaves out the span store's processor (the SDK's
own work alone).
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


def _cpu(stages: int, options: list[str]) -> float:
    """CPU seconds of one ``sdk_floor.py`` process of ``stages`` stages."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as home:
        argv = [sys.executable, str(FLOOR), str(stages), *options]
        subprocess.run(
            argv, env={**os.environ, "TASKDAEMON_HOME": home}, capture_output=True, check=True
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=3001)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--prometheus", action="store_true")
    parser.add_argument("--no-store", action="store_true")
    args = parser.parse_args()
    options = ["--prometheus"] * args.prometheus + ["--no-store"] * args.no_store
    long, short = [], []
    for _ in range(args.processes):
        long.append(_cpu(args.stages, options))
        short.append(_cpu(1, options))
    per_stage = (statistics.median(long) - statistics.median(short)) / (args.stages - 1)
    setup = ("no span store" if args.no_store else "store") + (
        " and metrics SDK" if args.prometheus else ""
    )
    load = os.getloadavg()[0]
    print(
        f"raw SDK floor ({setup}), {args.stages} vs 1 stages, {args.processes} processes each "
        f"(load average {load:.1f}): {per_stage * 1000:.3f} ms CPU a stage"
    )


if __name__ == "__main__":
    main()
