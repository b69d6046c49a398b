"""What the watchdog's search for a spawn's token costs, and what listing each spawn costs.

``.venv/bin/python benchmarks/watchdog_token_scan.py [--rounds 21] [--extra 0,200] [--spawns N]``

The search (``_watchdog_process._signal_carriers``) runs only when taskdaemon dies between a
command's fork and its group's report, once, then at each look while the grace lasts. Here it
looks for a fresh random token that no process carries, with signal 0 (so it signals nothing),
over this machine's processes and then with ``--extra`` more processes of this user (sleeping,
each with this process's environment): per search, the median wall time over ``--rounds``
searches (and the least: the machine's load moves the median), with the processes in ``/proc``
and those of this user (whose environments it reads).

Listing each spawn: ``--spawns`` (20000) times ``spawning``, ``started(pgid, token)`` and ``ended``
against a running watchdog process (three lines in three writes: one write more than before)
against ``started(pgid)`` and ``ended`` alone, alternately in rounds; the median of the
per-spawn CPU time of this process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

from taskdaemon.pipeline._watchdog_process import _signal_carriers
from taskdaemon.pipeline.group_watchdog import GroupWatchdog


def _processes() -> tuple[int, int]:
    """The processes in ``/proc``, and those of this user."""
    pids = [name for name in os.listdir("/proc") if name.isdigit()]
    uid = os.getuid()
    mine = 0
    for pid in pids:
        try:
            mine += os.stat(f"/proc/{pid}").st_uid == uid
        except OSError:
            continue
    return len(pids), mine


def search(rounds: int, extra: int) -> None:
    sleepers = [subprocess.Popen(["sleep", "600"]) for _ in range(extra)]
    try:
        token = {os.urandom(16).hex().encode()}
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            found = _signal_carriers(token, os.getppid(), 0, set())
            times.append(time.perf_counter() - start)
            assert found == 0
        total, mine = _processes()
        print(
            f"search  +{extra:4d} sleepers  {total:5d} processes, {mine:5d} of this user  "
            f"{statistics.median(times) * 1000:7.2f} ms median, {min(times) * 1000:7.2f} ms "
            f"least of {rounds}"
        )
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


def spawns(count: int, rounds: int) -> None:
    watchdog = GroupWatchdog(grace=1.0)
    # A group id no process has: the watchdog lists and unlists it, and never signals it.
    pgid = 2**22 + 1
    cpu: dict[str, list[float]] = {"started/ended": [], "spawning/started/ended": []}
    try:
        watchdog.started(pgid)
        watchdog.ended(pgid)
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(count):
                watchdog.started(pgid)
                watchdog.ended(pgid)
            cpu["started/ended"].append((time.process_time() - start) / count)
            start = time.process_time()
            for _ in range(count):
                watchdog.started(pgid, watchdog.spawning())
                watchdog.ended(pgid)
            cpu["spawning/started/ended"].append((time.process_time() - start) / count)
    finally:
        watchdog.close()
    for name, figures in cpu.items():
        print(f"listing  {name:24s} {statistics.median(figures) * 1e6:6.2f} µs CPU a spawn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--extra", default="0,200", help="comma-separated sleeper counts")
    parser.add_argument("--spawns", type=int, default=20000)
    args = parser.parse_args()
    for extra in (int(n) for n in args.extra.split(",")):
        search(args.rounds, extra)
    spawns(args.spawns, 5)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
