"""What one sync handler's thread hop costs: asyncio's default executor against ``SyncPool``.

``.venv/bin/python benchmarks/thread_hop.py [--hops 2000] [--rounds 5] [--engine-context]``

Each round runs ``--hops`` sequential ``_threads.in_thread`` hops of a no-op handler (as a chain
of sync stages makes them) on a fresh event loop, once for each default executor: a
``ThreadPoolExecutor`` (what asyncio makes), a ``_sync_pool.SyncPool`` set by hand (its results
through ``call_soon_threadsafe``) and "(installed)", none set: what ``in_thread`` installs (a
``SyncPool`` whose results come through the loop's ``_loop_inbox``, since round 17), in turns
that alternate which goes first. Per hop: the process's CPU time, voluntary and involuntary
context switches (``getrusage``: a thread woken on the loop's CPU preempts it, an involuntary
switch of the loop's), the loop thread's CPU (``time.thread_time``) and the number of pool
threads the hops used. Medians of the rounds; all in one process, side by side.

The handler's context has plain functions as callbacks and a plain environment, so each hop
also pays ``_threads.thread_safe``'s copy of it. With ``--engine-context`` it is shaped as the
engine's (bound methods of an object whose ``loop_safe`` is the loop, as
``engine/_callbacks.Callbacks``), which a stage's hop passes through as it is: the hop a
``taskdaemon run`` stage makes.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable

from taskdaemon.pipeline._sync_pool import SyncPool
from taskdaemon.pipeline._threads import in_thread
from taskdaemon.pipeline.loops import StageContext

CONTEXT = StageContext(
    run_id="r",
    pipeline="p",
    stage="s",
    loop="python",
    instance=0,
    attempt=1,
    inputs={},
    publish=lambda kind, payload: None,
    report_process=lambda pid: None,
)


def noop(ctx: StageContext) -> str:
    return threading.current_thread().name


class _LoopSafe:
    """Callbacks safe from any thread for ``loop`` (as the engine's own say they are)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop_safe = loop

    def publish(self, kind: str, payload: object) -> None:
        return None

    def report_process(self, pid: int) -> None:
        return None

    def report_usage(self, cpu: float | None, peak: int | None) -> None:
        return None


async def hops(
    n: int, executor: concurrent.futures.ThreadPoolExecutor | None, engine_context: bool = False
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    context = CONTEXT
    if engine_context:
        safe = _LoopSafe(loop)
        context = dataclasses.replace(
            CONTEXT,
            publish=safe.publish,
            report_process=safe.report_process,
            report_usage=safe.report_usage,
        )
    if executor is not None:  # None: the pool ``in_thread`` installs itself
        loop.set_default_executor(executor)
    for _ in range(50):  # warm-up: the pool's threads exist
        await in_thread(noop, context)
    names: set[str] = set()
    before = resource.getrusage(resource.RUSAGE_SELF)
    thread_cpu = time.thread_time()
    for _ in range(n):
        names.add(await in_thread(noop, context))
    thread_cpu = time.thread_time() - thread_cpu
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "cpu": cpu / n * 1e6,
        "loop": thread_cpu / n * 1e6,
        "switches": (after.ru_nvcsw - before.ru_nvcsw) / n,
        "preempted": (after.ru_nivcsw - before.ru_nivcsw) / n,
        "threads": len(names),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--engine-context", action="store_true", help="callbacks shaped as the engine's"
    )
    args = parser.parse_args()
    pools: dict[str, Callable[[], concurrent.futures.ThreadPoolExecutor | None]] = {
        "ThreadPoolExecutor": concurrent.futures.ThreadPoolExecutor,
        "SyncPool": SyncPool,
        "(installed)": lambda: None,
    }
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in pools}
    for round_no in range(args.rounds):
        order = list(pools)
        if round_no % 2:
            order.reverse()
        for name in order:
            figures[name].append(asyncio.run(hops(args.hops, pools[name](), args.engine_context)))
    print(
        f"{args.hops} sequential sync hops of a no-op, median of {args.rounds} rounds "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(
        f"  {'executor':<20} {'cpu µs':>8} {'loop µs':>8} {'vol sw':>7} {'invol sw':>8}"
        f" {'threads':>8}"
    )
    for name, rounds in figures.items():
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        print(
            f"  {name:<20} {med['cpu']:8.1f} {med['loop']:8.1f} {med['switches']:7.2f}"
            f" {med['preempted']:8.2f} {med['threads']:8.0f}"
        )


if __name__ == "__main__":
    main()
