"""The monitor's CPU a stage: a real run's engine records, handled as ``taskdaemon run`` does.

``.venv/bin/python benchmarks/monitor_records.py [--stages 301] [--rounds 7] [--pairs 3]
[--cold N] [--baseline SRC] [--no-run-log] [--deferred]``

Each measurement is a child process that runs ``per_stage.py``'s async chain of ``--stages``
no-op stages once through the engine (no observer) to record its engine records, builds the
monitor as ``taskdaemon run`` builds it (``cli.monitoring.build_monitor``: the embedded span
store's processor, the run log, the default settings, a fresh ``TASKDAEMON_HOME``), and then
feeds it the records ``--rounds`` + 1 times on a thread without an event loop, so that it
handles each record inline, as the deferred monitor's loading thread does after an async chain
(``cli/deferred.py``). It reports that thread's CPU time (``time.thread_time``) per stage: the
first feed (``first``: every stage new to the label guard, the definition's attributes built,
as in one ``taskdaemon run``), and the best and median of the later ones (warm). The span
store's writer thread is not counted (the SDK floor pays it alike). The run log writes its
lifecycle rows at INFO, as in ``taskdaemon run`` (``--no-run-log``: off); the log writer's
thread that stores them is not counted either.

``--deferred`` feeds the records as ``taskdaemon run`` hands them over after an async chain:
kept by a ``cli.deferred.DeferredMonitor`` (not timed, the engine's side; the records it
declines, as the engine would not build them, left out), then handed to the monitor by its
``started`` on the feeding thread, ``RunFinished`` last (timed). Without it each
record goes to ``monitor.on_event`` one by one, as the stand-in did before it handed batches.

``--cold N`` (default 0) adds ``cold``: the median of N more cold feeds in the same child, each
to a new monitor (``build_monitor`` again) fed the records of a new run of a freshly loaded
definition, with the process-wide memos emptied (``redaction._clean``, ``payloads._small``):
what a new ``taskdaemon run`` process pays, bar the interpreter's own first-use costs. One
``first`` per child is a single sample; the median of N is steadier.

With ``--baseline SRC`` (``git archive main src | tar -x -C /tmp/base``, then ``--baseline
/tmp/base/src``) children alternate between this checkout and SRC, ``--pairs`` times; the
figures are CPU time, so a loaded machine disturbs them less than wall time, but they still
move by 10-20% between children under load: compare the pairs, not single children.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gc
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def child(
    stages: int, rounds: int, cold: int = 0, run_log: bool = True, deferred: bool = False
) -> dict[str, float]:
    """In the child: record a run's records, build the monitor, feed them; µs a stage."""
    sys.path.insert(0, str(HERE))
    from per_stage import HANDLERS, chain

    work = Path(tempfile.mkdtemp(prefix="td-monitor-records-"))
    atexit.register(shutil.rmtree, work, True)
    os.environ["TASKDAEMON_HOME"] = str(work / "home")
    (work / "bench_handlers.py").write_text(HANDLERS)
    (work / "chain.yaml").write_text(chain("async", stages))
    sys.path.insert(0, str(work))
    from taskdaemon.pipeline.cli.monitoring import build_monitor
    from taskdaemon.pipeline.config import load_pipeline
    from taskdaemon.pipeline.engine import Engine
    from taskdaemon.pipeline.logs import configure_logging
    from taskdaemon.pipeline.settings import load_settings

    def record_a_run() -> list[Any]:
        pipeline = load_pipeline(str(work / "chain.yaml"))
        kept: list[Any] = []

        class Keep:
            def on_event(self, event: Any) -> None:
                kept.append(event)

        asyncio.run(Engine(observers=[Keep()]).run(pipeline, {}))
        return kept

    records = record_a_run()
    settings = load_settings()
    configure_logging(settings)
    # Only the monitor's own logger is quietened (the foreign run id warning: the records are
    # fed again). The run log stays at the settings' level (INFO), as in ``taskdaemon run``,
    # which writes two lifecycle rows a stage; ``--no-run-log`` turns it off, as this script
    # did before round 8 (it quietened the whole ``taskdaemon`` logger).
    logging.getLogger("taskdaemon.pipeline.monitor").setLevel(logging.ERROR)
    if not run_log:
        logging.getLogger("taskdaemon.run").setLevel(logging.ERROR)
    samples: list[float] = []
    feed = _feed_deferred if deferred else _feed
    with contextlib.ExitStack() as stack:
        telemetry, monitor, _ = build_monitor(settings, serve_metrics=False, stack=stack)
        for _ in range(rounds + 1):
            thread = threading.Thread(target=feed, args=(monitor, records, stages, samples))
            thread.start()
            thread.join()
            telemetry.tracer_provider.force_flush()
    warm = samples[1:]
    figures = {"first": samples[0], "best": min(warm), "median": statistics.median(warm)}
    if cold:
        figures["cold"] = statistics.median(cold_feeds(cold, stages, settings, record_a_run, feed))
    return figures


def cold_feeds(count: int, stages: int, settings: Any, record_a_run: Any, feed: Any) -> list[float]:
    """``count`` cold feeds (see ``--cold``): µs a stage of each."""
    from taskdaemon.pipeline import payloads, redaction
    from taskdaemon.pipeline.cli.monitoring import build_monitor

    samples: list[float] = []
    for _ in range(count):
        records = record_a_run()
        redaction._clean.clear()
        getattr(payloads, "_small", {}).clear()  # absent from trees before the memo
        with contextlib.ExitStack() as stack:
            telemetry, monitor, _ = build_monitor(settings, serve_metrics=False, stack=stack)
            thread = threading.Thread(target=feed, args=(monitor, records, stages, samples))
            thread.start()
            thread.join()
            telemetry.tracer_provider.force_flush()
    return samples


def _feed(monitor: Any, records: list[Any], stages: int, samples: list[float]) -> None:
    """Feed ``records`` to ``monitor`` on this thread; append its CPU µs a stage."""
    gc.collect()
    on_event = monitor.on_event
    started = time.thread_time()
    for record in records:
        on_event(record)
    samples.append((time.thread_time() - started) / stages * 1e6)


def _feed_deferred(monitor: Any, records: list[Any], stages: int, samples: list[float]) -> None:
    """Keep ``records`` in a stand-in monitor, then time its hand-over to ``monitor`` on this
    thread (``--deferred``); append the CPU µs a stage."""
    from taskdaemon.pipeline.cli.deferred import DeferredMonitor

    try:  # the stand-in declines what the run log will not write (trees from a6e8bc2 on)
        from taskdaemon.pipeline.run_log_scope import wants

        deferred = DeferredMonitor(monitor.capture, hooks_want=wants)
    except ImportError:
        deferred = DeferredMonitor(monitor.capture)
    *kept, last = records  # RunFinished waits for the monitor: handed over once it is live
    for record in kept:
        if deferred.wants_record(type(record)):  # else the engine would not have built it
            deferred.on_event(record)
    gc.collect()
    started = time.thread_time()
    deferred.started(
        monitor, lambda run_id: contextlib.nullcontext(), lambda span_id: contextlib.nullcontext()
    )
    deferred.on_event(last)
    samples.append((time.thread_time() - started) / stages * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=301)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--cold", type=int, default=0)
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument(
        "--no-run-log", action="store_true", help="the run log off (the figures before round 8)"
    )
    parser.add_argument(
        "--deferred", action="store_true", help="hand the records over as `run`'s stand-in does"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(
                child(args.stages, args.rounds, args.cold, not args.no_run_log, args.deferred)
            )
        )
        return
    sources = {"this": str(SRC)}
    if args.baseline:
        if not (Path(args.baseline) / "taskdaemon").is_dir():
            parser.error(f"--baseline {args.baseline}: no taskdaemon package there")
        sources["base"] = str(Path(args.baseline).resolve())
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
    for pair in range(args.pairs):
        order = list(sources.items())
        if pair % 2:  # ABBA: neither tree always runs first in a pair
            order.reverse()
        for name, source in order:
            env = dict(os.environ, PYTHONPATH=source)
            out = subprocess.run(
                [sys.executable, __file__, "--child", f"--stages={args.stages}",
                 f"--rounds={args.rounds}", f"--cold={args.cold}",
                 *(["--no-run-log"] if args.no_run_log else []),
                 *(["--deferred"] if args.deferred else [])],
                env=env, check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            figures = json.loads(out.splitlines()[-1])
            results[name].append(figures)
            cold = f", cold {figures['cold']:.1f}" if "cold" in figures else ""
            print(
                f"  {name}: first {figures['first']:.1f}{cold}, best {figures['best']:.1f}, "
                f"median {figures['median']:.1f} µs/stage",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"monitor handling a {args.stages}-stage async run's records"
        f"{' (handed over by the stand-in)' if args.deferred else ''}, thread CPU µs a stage, "
        f"{args.pairs} alternating children (load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs)"
    )
    cold_header = f" {'cold median':>12}" if args.cold else ""
    print(
        f"  {'variant':<8} {'first (cold)':>14}{cold_header} {'warm best':>10} {'warm median':>12}"
    )
    for name, rows in results.items():
        cold = f" {statistics.median(r['cold'] for r in rows):12.1f}" if args.cold else ""
        print(
            f"  {name:<8} {statistics.median(r['first'] for r in rows):14.1f}{cold}"
            f" {min(r['best'] for r in rows):10.1f}"
            f" {statistics.median(r['median'] for r in rows):12.1f}"
        )


if __name__ == "__main__":
    main()
