"""Cyclic GC in ``taskdaemon run``: collections and their CPU time per stage.

``.venv/bin/python benchmarks/gc_cost.py [--stages 1001] [--rounds 3] [--baseline SRC]``

Runs ``taskdaemon run -q`` over a chain of ``--stages`` no-op stages and over a chain of 1
(``per_stage.py``'s files, sync and async handlers), each in a child process that counts the
collector's collections per generation and the CPU time spent in them (``gc.callbacks``,
``thread_time`` of the collecting thread). Per stage = (figure of N stages - figure of 1) /
(N - 1), so start-up cancels out. With ``--baseline SRC`` (``git archive main src | tar -x -C
/tmp/base``, then ``--baseline /tmp/base/src``) every measurement is repeated with that tree
first on ``PYTHONPATH``, alternately. Printed per variant: the median over rounds of the GC
CPU a stage, of the collections of a run (gen 0/1/2) and of the process's CPU a stage, and the
peak RSS of the N-stage process.
"""

from __future__ import annotations

import argparse
import gc
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

from per_stage import HANDLERS, chain

HERE = Path(__file__).resolve().parent


def child(out: str, argv: list[str]) -> int:
    """Run the CLI with ``argv`` while counting collections; write the figures to ``out``."""
    counts = [0, 0, 0]
    spent = [0.0]
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            counts[info["generation"]] += 1
            spent[0] += time.thread_time() - started[0]

    gc.callbacks.append(callback)
    from taskdaemon.pipeline.cli import main  # the child's own

    code = main(argv)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures = {
        "collections": counts,
        "gc_cpu": spent[0],
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,
    }
    Path(out).write_text(json.dumps(figures))
    return code


def measure(work: Path, file: str, source: str) -> dict[str, object]:
    """The figures of one ``run -q file`` child (``source`` first on its path)."""
    out = work / "figures.json"
    env = dict(os.environ, TASKDAEMON_HOME=str(work / "home"))
    env["PYTHONPATH"] = os.pathsep.join((source, str(HERE)))
    command = [sys.executable, str(Path(__file__)), "--child", str(out), "run", "-q", file]
    subprocess.run(command, cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(work / "home", ignore_errors=True)
    figures: dict[str, object] = json.loads(out.read_text())
    return figures


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2], sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=1001)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="SRC", help="another checkout's src directory")
    args = parser.parse_args()
    n = args.stages
    # The caller's tree, else this checkout's: never the virtualenv's installed package.
    sources = {"": os.environ.get("PYTHONPATH") or str(HERE.parent / "src")}
    if args.baseline:
        sources["@base"] = str(Path(args.baseline).resolve())
    work = Path(tempfile.mkdtemp(prefix="td-gc-cost-"))
    try:
        (work / "bench_handlers.py").write_text(HANDLERS)
        rows: dict[str, list[tuple[dict[str, object], dict[str, object]]]] = {}
        for kind in ("sync", "async"):
            for size in (1, n):
                (work / f"{kind}{size}.yaml").write_text(chain(kind, size))
        for _ in range(args.rounds):
            for kind in ("sync", "async"):
                for suffix, source in sources.items():
                    one = measure(work, f"{kind}1.yaml", source)
                    many = measure(work, f"{kind}{n}.yaml", source)
                    rows.setdefault(kind + suffix, []).append((one, many))
        print(f"taskdaemon run -q, chain of {n} vs 1 no-op stages, {args.rounds} rounds")
        print(
            f"  {'variant':12s} {'gc µs/stage':>12s} {'collections (0/1/2)':>20s}"
            f" {'cpu µs/stage':>13s} {'peak MiB':>9s}"
        )
        for name, pairs in rows.items():
            gc_cpu = statistics.median(
                (float(m["gc_cpu"]) - float(o["gc_cpu"])) / (n - 1) * 1e6  # type: ignore[arg-type]
                for o, m in pairs
            )
            cpu = statistics.median(
                (float(m["cpu"]) - float(o["cpu"])) / (n - 1) * 1e6  # type: ignore[arg-type]
                for o, m in pairs
            )
            counts = [
                int(statistics.median(m["collections"][g] for _, m in pairs))  # type: ignore[index]
                for g in range(3)
            ]
            peak = statistics.median(float(m["peak_mib"]) for _, m in pairs)  # type: ignore[arg-type]
            shown = "/".join(str(c) for c in counts)
            print(f"  {name:12s} {gc_cpu:12.1f} {shown:>20s} {cpu:13.0f} {peak:9.0f}")
        print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
