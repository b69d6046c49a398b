"""Where a stage's CPU goes in ``taskdaemon run``, thread by thread.

``.venv/bin/python benchmarks/run_thread_cpu.py [--stages 301] [--rounds 5] [--kind async]
[--baseline SRC] [--pin CPU] [--live]``

Each round runs ``taskdaemon run -q`` over ``per_stage.py``'s chain of ``--stages`` no-op stages
of ``--kind`` (``sync`` or ``async``) and over a chain of 1, each a whole process with a fresh
``TASKDAEMON_HOME``, under a wrapper that notes every thread's CPU time (``time.thread_time``
read as the thread's ``run`` returns; the main thread's at exit; a thread still running at exit
from ``/proc``, in clock ticks) and the process's total (``getrusage``); of each, the share
spent in the kernel (``sys``: ``getrusage(RUSAGE_THREAD)``'s system time as the thread ends,
``/proc``'s for one still running, the process's own): system calls, futex waits and wakes,
switches. Linux splits a thread's exact CPU time into user and system time by where the timer
ticks found it, so ``sys`` is a sampled share, read over several rounds. Beside each, its
voluntary and involuntary context switches (``/proc/self/task/<tid>/status``): a voluntary
switch is the thread blocking (on a lock, a queue, the GIL), so they count the cross-thread
wake-ups a stage causes. Per stage = (N-stage figure - 1-stage figure) / (N - 1), the median of
the rounds, by thread name (pool threads summed): the engine and the YAML parse on ``main``, the
monitor on ``taskdaemon-telemetry-load`` for an async chain (it finishes before telemetry has
loaded, so the kept records are handled there in one batch; ``cli/deferred.py``) or on its
worker thread for a sync one (with ``--live``, the chains of ``per_stage.py --live``, on the
loop or the worker for both kinds), the span store and run log writers on theirs. With
``--baseline SRC`` (another checkout's ``src``), the same rounds also run that code, beside
this one, as a second column. With ``--pin CPU``, each tree also runs under ``taskset -c CPU``
(every thread on one CPU), in the same rounds, as a column ``@pin``: a diagnostic of how much
of a tree's cost is threads waking each other across CPUs (dear on this VM), not a setting
``run`` would use (it would bind users' handlers and their processes to one CPU). Rounds run
the variants in a shuffled order.

Run under ``chrt -f 10`` (root, or ``CAP_SYS_NICE``), every thread of the processes measured
runs ahead of the machine's other work, and nearly every wake-up of one thread by another lands
on the other CPU, as on an idle machine: the two-CPU case, which a busy machine otherwise never
shows, where its threads share a CPU with other processes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: A thread's figures where a process has no such thread.
NONE = (0.0, 0, 0, 0.0)

WRAPPER = """\
import atexit, json, os, resource, sys, threading, time
cpu = {}
TICK = os.sysconf("SC_CLK_TCK")
def switches(tid):
    voluntary = involuntary = 0
    try:
        with open(f"/proc/self/task/{tid}/status") as status:
            for line in status:
                if line.startswith("voluntary_ctxt_switches"):
                    voluntary = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    involuntary = int(line.split()[1])
    except OSError:
        pass
    return voluntary, involuntary
def note(name, seconds, system, tid):
    if name.startswith(("ThreadPoolExecutor", "asyncio_")):
        name = "(executor threads)"
    voluntary, involuntary = switches(tid)
    old = cpu.get(name, (0.0, 0, 0, 0.0))
    cpu[name] = (old[0] + seconds, old[1] + voluntary, old[2] + involuntary, old[3] + system)
def own():
    return time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD).ru_stime
_run = threading.Thread.run
def run(self):
    try:
        _run(self)
    finally:
        self._cpu_noted = True
        note(self.name, *own(), threading.get_native_id())
threading.Thread.run = run
def report():
    note("main", *own(), threading.get_native_id())
    for thread in threading.enumerate():  # still running at exit: CPU from /proc (in ticks)
        if thread is threading.main_thread() or getattr(thread, "_cpu_noted", False):
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            seconds, system = (int(fields[11]) + int(fields[12])) / TICK, int(fields[12]) / TICK
        except (OSError, TypeError):
            continue
        note(thread.name + " (alive)", seconds, system, thread.native_id)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu["(process)"] = (
        usage.ru_utime + usage.ru_stime, usage.ru_nvcsw, usage.ru_nivcsw, usage.ru_stime
    )
    with open(os.environ["THREAD_CPU_OUT"], "w") as out:
        json.dump(cpu, out)
atexit.register(report)
from taskdaemon.pipeline.cli import main
sys.argv = ["taskdaemon", "run", "-q", sys.argv[1]]
try:
    main()
except SystemExit:
    pass
"""


def measure(
    work: Path, file: str, source: str | None, pin: str | None = None
) -> dict[str, list[float]]:
    """Each thread's [CPU seconds, voluntary switches, involuntary switches, system CPU
    seconds] in one ``taskdaemon run -q FILE`` process (with ``source`` first on its
    ``PYTHONPATH`` when given, under ``taskset -c PIN`` when ``pin`` is)."""
    home = work / "home"
    out = work / "cpu.json"
    env = dict(os.environ, TASKDAEMON_HOME=str(home), THREAD_CPU_OUT=str(out))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if source:
        env["PYTHONPATH"] = source
    taskset = ["taskset", "-c", pin] if pin else []
    subprocess.run(
        [*taskset, sys.executable, str(work / "wrapper.py"), file],
        cwd=work, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)
    figures: dict[str, list[float]] = json.loads(out.read_text())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=301)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kind", choices=("sync", "async"), default="async")
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument("--pin", metavar="CPU", help="also run each tree under taskset -c CPU")
    parser.add_argument(
        "--live",
        action="store_true",
        help="the chain's first stage waits for telemetry to load (per_stage.chain)",
    )
    args = parser.parse_args()
    trees: dict[str, str | None] = {"this": None}
    if args.baseline:
        if not (Path(args.baseline) / "taskdaemon").is_dir():
            parser.error(f"--baseline {args.baseline}: no taskdaemon package there")
        trees["base"] = str(Path(args.baseline).resolve())
    if args.pin and not shutil.which("taskset"):
        parser.error("--pin needs taskset (util-linux)")
    # variant -> (source, pin)
    sources: dict[str, tuple[str | None, str | None]] = {
        name: (source, None) for name, source in trees.items()
    }
    if args.pin:
        sources.update({f"{name}@pin": (source, args.pin) for name, source in trees.items()})
    sys.path.insert(0, str(HERE))
    from per_stage import HANDLERS, absolute_pythonpath, chain

    absolute_pythonpath()

    n = args.stages
    work = Path(tempfile.mkdtemp(prefix="td-thread-cpu-"))
    # variant -> thread -> one list per figure (CPU, voluntary, involuntary, system CPU) of
    # per-stage deltas
    per_stage: dict[str, dict[str, list[list[float]]]] = {
        variant: defaultdict(lambda: [[], [], [], []]) for variant in sources
    }
    try:
        (work / "wrapper.py").write_text(WRAPPER)
        (work / "bench_handlers.py").write_text(HANDLERS)
        (work / "one.yaml").write_text(chain(args.kind, 1, args.live))
        (work / "many.yaml").write_text(chain(args.kind, n, args.live))
        for source in trees.values():  # warm-up: page cache, .pyc files
            measure(work, "one.yaml", source)
        for _ in range(args.rounds):
            order = list(sources.items())
            random.shuffle(order)  # no variant always runs first
            for variant, (source, pin) in order:
                one = measure(work, "one.yaml", source, pin)
                many = measure(work, "many.yaml", source, pin)
                for name in one.keys() | many.keys():
                    lists = per_stage[variant][name]
                    for i in range(4):
                        before = one.get(name, NONE)[i]
                        lists[i].append((many.get(name, NONE)[i] - before) / (n - 1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"taskdaemon run -q, {args.kind} chain of {n} vs 1 no-op stages, a stage by thread: "
        f"CPU µs, of it in the kernel (sys), voluntary and involuntary context switches; "
        f"median of {args.rounds} rounds "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(
        f"  {'thread':<34}"
        + "".join(
            f" {variant + ' cpu':>9} {'sys':>6} {'vol':>6} {'invol':>6}" for variant in sources
        )
    )

    def figures(variant: str, name: str) -> str:
        lists = per_stage[variant].get(name) or [[0.0]] * 4
        cpu, vol, invol, system = (statistics.median(values) for values in lists)
        return f" {cpu * 1e6:9.1f} {system * 1e6:6.1f} {vol:6.2f} {invol:6.2f}"

    this = per_stage["this"]
    for name in sorted(this, key=lambda name: -statistics.median(this[name][0])):
        print(f"  {name:<34}" + "".join(figures(v, name) for v in sources))


if __name__ == "__main__":
    main()
