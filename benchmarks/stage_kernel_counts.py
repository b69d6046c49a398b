"""What a stage of ``taskdaemon run`` asks of the kernel: system calls, switches, wake-ups.

``.venv/bin/python benchmarks/stage_kernel_counts.py [--stages 1001] [--rounds 3]
[--kinds sync,async] [--baseline SRC] [--threads] [--live]``

Each round runs ``taskdaemon run -q`` over ``per_stage.py``'s chain of ``--stages`` no-op stages
of each kind and over a chain of 1, each a whole process with a fresh ``TASKDAEMON_HOME``,
under ``perf stat`` (the kernel's software counters and tracepoints: every thread of the
process) and ``perf record`` of the scheduler's wake-ups. Per stage = (N-stage count - 1-stage
count) / (N - 1), the median of the rounds. Counts, not times: a loaded machine changes what a
system call or a switch costs, much less how many a stage makes, so two trees compare here in
a sitting whose CPU figures are noise (benchmarks/README.md). Columns:

* ``syscalls``, and the system calls a sync hop is made of: ``futex`` (a lock or the GIL
  handed to a blocked thread), ``epoll_wait`` (the loop's selector), ``read`` and ``write``
  (the loop inbox's ``eventfd``), ``sched_yield`` (the pool thread after a delivery,
  ``_sync_pool``), ``getpid`` (asyncio's running-loop check in Python 3.11), and the span
  store's page reads and writes, ``pread64`` and ``pwrite64`` (the WAL's frames, the
  database file's pages; a WAL checkpoint reads the one and writes the other, on the thread
  whose connection runs it);
* ``switches`` (context switches) and ``migrations`` (a thread moved to another CPU);
* ``wakeups``: threads of the process woken by threads of the process, and of them the share
  woken on another CPU than the waker's (``cross``). On this two-CPU VM a wake-up onto the
  other, idle CPU is the dear kind: the woken thread brings the interpreter's state over to
  its CPU's cache, and each hand-over of the GIL that follows does the same. The share is
  about how busy the machine is as much as about the code: a loaded machine rarely has an idle
  CPU to wake a thread on.

With ``--threads``, each round also runs both chains once more under ``perf record`` of
``futex``, ``pread64`` and ``pwrite64`` calls and context switches, and a second table gives
them a stage by thread, named by the Python thread that the kernel's thread ran
(``MainThread`` is the loop; ``taskdaemon-sync-1`` the pool's hot thread;
``taskdaemon-telemetry-load`` the loader, ``cli/deferred.py``; ``taskdaemon-log-writer`` and
``taskdaemon-span-store`` the store's two writers): which thread a change moved the cost off
or onto. Those processes start through a ``-c`` stub that notes each thread's name
(``threading.setprofile``, once a thread) and hands over to
``python -m taskdaemon.pipeline.cli``; a thread whose name was not noted (the process ended
by ``os._exit``) shows as ``tid N``.

Needs ``perf`` with access to tracepoints (root, or ``kernel.perf_event_paranoid`` at most
1). With ``--baseline SRC`` (another checkout's ``src``) each kind also runs that code, in the
same rounds, as ``KIND@base``. With ``--live``, the chains of ``per_stage.py --live``: the
first stage waits for telemetry to load, so no count is the loader's.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: perf stat events, in the printed order, with their column names.
COUNTED = {
    "raw_syscalls:sys_enter": "syscalls",
    "syscalls:sys_enter_futex": "futex",
    "syscalls:sys_enter_epoll_wait": "epoll_wait",
    "syscalls:sys_enter_read": "read",
    "syscalls:sys_enter_write": "write",
    "syscalls:sys_enter_sched_yield": "sched_yield",
    "syscalls:sys_enter_getpid": "getpid",
    "syscalls:sys_enter_pread64": "pread64",
    "syscalls:sys_enter_pwrite64": "pwrite64",
    "context-switches": "switches",
    "cpu-migrations": "migrations",
}
COLUMNS = [*COUNTED.values(), "wakeups", "cross"]

# ``perf script -F tid,cpu,event,trace`` lines: the current thread and its CPU (the waker's,
# for a wake-up), the event, and its fields (the wakee's tid and the CPU it is woken on).
_LINE = re.compile(r"\s*(\d+)\s+\[(\d+)\]\s+sched:(sched_\w+):\s+(.*)")
_WAKEE = re.compile(r" pid=(\d+) .*target_cpu=(\d+)")


def perf_usable() -> str | None:
    """None when ``perf`` can count this machine's tracepoints, else why not (one line)."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian: apt-get install linux-perf)"
    probe = subprocess.run(
        ["perf", "stat", "-x,", "-e", ",".join(COUNTED), "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0 or "<not supported>" in probe.stderr:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return f"perf cannot count the kernel's tracepoints here: {last}"
    return None


def wakeups(script: str) -> tuple[int, int]:
    """Wake-ups of the process's threads by its threads, and how many were onto another CPU
    than the waker's, from ``perf script`` output of a ``perf record`` of one process (whose
    events all come from its own threads: the current task of each is one of them)."""
    ours: set[int] = set()
    woken: list[tuple[int, bool]] = []  # (wakee tid, onto another CPU)
    for line in script.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        ours.add(int(match[1]))
        if match[3] == "sched_wakeup" and (wakee := _WAKEE.search(match[4])) is not None:
            woken.append((int(wakee[1]), int(wakee[2]) != int(match[2])))
    inside = [cross for tid, cross in woken if tid in ours]
    return len(inside), sum(inside)


#: ``--threads``'s stub: notes ``native id name`` of every thread in ``$TD_THREAD_NAMES`` at exit,
#: then runs ``python -m taskdaemon.pipeline.cli`` with the arguments that follow it.
NAMER = """
import atexit, os, runpy, sys, threading
names = {threading.get_native_id(): threading.current_thread().name}
def note(frame, event, arg):
    names[threading.get_native_id()] = threading.current_thread().name
    sys.setprofile(None)
threading.setprofile(note)
def save():
    with open(os.environ["TD_THREAD_NAMES"], "w") as out:
        out.writelines(f"{tid} {name}\\n" for tid, name in names.items())
atexit.register(save)
sys.argv[0] = "taskdaemon"
runpy.run_module("taskdaemon.pipeline.cli", run_name="__main__", alter_sys=True)
"""

#: ``perf script -F tid,event`` lines of ``--threads``' record.
_THREAD_LINE = re.compile(r"\s*(\d+)\s+(?:syscalls:sys_enter_|sched:sched_)(\w+):")

#: ``--threads``' columns: the event counted (``perf script``'s name after its prefix) and its
#: column.
THREAD_COLUMNS = {
    "futex": "futex",
    "switch": "switches",
    "pread64": "pread64",
    "pwrite64": "pwrite64",
}


def _environment(work: Path, source: str | None) -> dict[str, str]:
    env = dict(os.environ, TASKDAEMON_HOME=str(work / "home"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if source:
        env["PYTHONPATH"] = source
    return env


def by_thread(work: Path, file: str, source: str | None) -> dict[str, dict[str, float]]:
    """``futex``, ``pread64`` and ``pwrite64`` calls and context switches (counted on the
    thread switched out) of one ``taskdaemon run -q FILE`` process, by thread name
    (``--threads``)."""
    env = _environment(work, source)
    names_file, data = work / "threads.txt", work / "threads.data"
    env["TD_THREAD_NAMES"] = str(names_file)
    names_file.unlink(missing_ok=True)
    events = ["-e", "sched:sched_switch"]
    for call in ("futex", "pread64", "pwrite64"):
        events += ["-e", f"syscalls:sys_enter_{call}"]
    command = [sys.executable, "-c", NAMER, "run", "-q", file]
    perf = ["perf", "record", "-q", "-o", str(data), *events, "--"]
    subprocess.run([*perf, *command], cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(work / "home", ignore_errors=True)
    names: dict[int, str] = {}
    if names_file.exists():
        for line in names_file.read_text().splitlines():
            tid, _, name = line.partition(" ")
            names[int(tid)] = name
    script = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "tid,event"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    counts: dict[str, dict[str, float]] = {}
    for line in script.splitlines():
        match = _THREAD_LINE.match(line)
        if match is not None:
            name = names.get(int(match[1]), f"tid {match[1]}")
            row = counts.setdefault(name, dict.fromkeys(THREAD_COLUMNS.values(), 0.0))
            row[THREAD_COLUMNS[match[2]]] += 1
    return counts


def measure(work: Path, file: str, source: str | None) -> dict[str, float]:
    """The counts of ``taskdaemon run -q FILE`` (with ``source`` first on its ``PYTHONPATH``
    when given): two processes, one under ``perf stat``, one under ``perf record`` (whose own
    system calls ``perf stat`` would count)."""
    env = _environment(work, source)
    stat, data = work / "stat.csv", work / "sched.data"
    command = [sys.executable, "-m", "taskdaemon.pipeline.cli", "run", "-q", file]
    counters = ["perf", "stat", "-x,", "-o", str(stat), "-e", ",".join(COUNTED), "--"]
    scheduler = ["perf", "record", "-q", "-o", str(data), "-e", "sched:sched_wakeup", "--"]
    for perf in (counters, scheduler):
        subprocess.run([*perf, *command], cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
        shutil.rmtree(work / "home", ignore_errors=True)
    counts: dict[str, float] = {}
    for line in stat.read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in COUNTED and fields[0].replace(".", "").isdigit():
            counts[COUNTED[fields[2]]] = float(fields[0])
    script = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "tid,cpu,event,trace"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    counts["wakeups"], counts["cross"] = wakeups(script)
    return counts


def _median_of(figures: list[float], rounds: int) -> float:
    """The median over ``rounds`` rounds, a round without the figure counting 0."""
    return statistics.median(figures + [0.0] * (rounds - len(figures)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=1001)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default="sync,async", help="comma list of sync, async")
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument(
        "--threads", action="store_true", help="futex, pread64, pwrite64 calls, switches by thread"
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="the chain's first stage waits for telemetry to load (per_stage.chain)",
    )
    args = parser.parse_args()
    kinds = [kind for kind in args.kinds.split(",") if kind]
    if args.stages < 2 or args.rounds < 1 or not set(kinds) <= {"sync", "async"} or not kinds:
        parser.error("--stages at least 2, --rounds at least 1, --kinds of sync and async")
    trees: dict[str, str | None] = {"": None}
    if args.baseline:
        if not (Path(args.baseline) / "taskdaemon").is_dir():
            parser.error(f"--baseline {args.baseline}: no taskdaemon package there")
        trees["@base"] = str(Path(args.baseline).resolve())
    problem = perf_usable()
    if problem:
        parser.exit(1, f"stage_kernel_counts: {problem}\n")
    sys.path.insert(0, str(HERE))
    from per_stage import HANDLERS, absolute_pythonpath, chain

    absolute_pythonpath()

    n = args.stages
    variants = {f"{kind}{tree}": (kind, source) for kind in kinds for tree, source in trees.items()}
    per_stage: dict[str, dict[str, list[float]]] = {v: {c: [] for c in COLUMNS} for v in variants}
    # variant -> thread name -> column -> a stage, one figure a round
    threads: dict[str, dict[str, dict[str, list[float]]]] = {v: {} for v in variants}
    work = Path(tempfile.mkdtemp(prefix="td-kernel-counts-"))
    try:
        (work / "bench_handlers.py").write_text(HANDLERS)
        for kind in kinds:
            (work / f"{kind}-1.yaml").write_text(chain(kind, 1, args.live))
            (work / f"{kind}-n.yaml").write_text(chain(kind, n, args.live))
        for _ in range(args.rounds):
            order = list(variants.items())
            random.shuffle(order)  # no variant always runs first
            for variant, (kind, source) in order:
                one = measure(work, f"{kind}-1.yaml", source)
                many = measure(work, f"{kind}-n.yaml", source)
                for column in COLUMNS:
                    delta = many.get(column, 0.0) - one.get(column, 0.0)
                    per_stage[variant][column].append(delta / (n - 1))
                if args.threads:
                    one_by = by_thread(work, f"{kind}-1.yaml", source)
                    many_by = by_thread(work, f"{kind}-n.yaml", source)
                    for name in one_by.keys() | many_by.keys():
                        row = threads[variant].setdefault(
                            name, {column: [] for column in THREAD_COLUMNS.values()}
                        )
                        before, after = one_by.get(name, {}), many_by.get(name, {})
                        for column, figures in row.items():
                            delta = after.get(column, 0.0) - before.get(column, 0.0)
                            figures.append(delta / (n - 1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"taskdaemon run -q, chain of {n} vs 1 no-op stages, kernel counts a stage (perf, every "
        f"thread), median of {args.rounds} rounds (load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs)"
    )
    print(f"  {'variant':<11}" + "".join(f" {column:>11}" for column in COLUMNS))
    for variant, columns in per_stage.items():
        figures = "".join(f" {statistics.median(columns[c]):11.2f}" for c in COLUMNS)
        print(f"  {variant:<11}{figures}")
    if args.threads:
        print("by thread, a stage (median of the rounds, a thread missing from one counting 0)")
        print(
            f"  {'variant':<11} {'thread':<38}"
            + "".join(f" {column:>9}" for column in THREAD_COLUMNS.values())
        )
        for variant, rows in threads.items():
            medians = {
                name: [_median_of(figures, args.rounds) for figures in row.values()]
                for name, row in rows.items()
            }
            for name, figures in sorted(medians.items(), key=lambda item: -item[1][0]):
                print(f"  {variant:<11} {name:<38}" + "".join(f" {f:9.2f}" for f in figures))


if __name__ == "__main__":
    main()
