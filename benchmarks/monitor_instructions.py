"""The monitor's hand-over of an async run, counted in machine instructions a stage.

Run: ``python benchmarks/monitor_instructions.py [--without PART,...] [--baseline SRC]
[--stages N]``
(needs ``valgrind`` and ``setarch``; four processes of about a minute each, run two at a
time, per tree and part).

``per_stage_instructions.py`` counts whole ``taskdaemon run`` processes; this script counts
one piece of them: what the monitor does with an async chain's records once it has them, as
``taskdaemon run`` hands them over (``monitor_records.py --deferred``: the engine's records of
``per_stage.py``'s chain kept by a ``cli.deferred.DeferredMonitor``, then handed to the monitor
that ``cli.monitoring.build_monitor`` builds, the span store's processor and the run log
included, and the store's writer flushed). Each child process records the run with the engine
and builds the monitor; the one that also hands the records over is counted against the one
that does not, for a chain of 301 (``--stages``) and a chain of 1, so that start-up, the
engine's run and the first use of every module cancel: (hand-over of 301 - hand-over of 1) /
300. The count moves by 1-2% between two runs of the same tree (the store's writer thread
batches by time).

``--without`` switches one part off in the counted child (patched in the child, so the source
is never touched) and counts again; the difference from the full count is that part's cost:

* ``redaction``: span_redaction's and the monitor modules' redaction of attributes, names and
  links (``REDACTION_NAMES``: a name no longer there stops the count; the payload capture's
  own redaction stays);
* ``capture``: the payload events' capture (no stage.input / stage.output events);
* ``hooks``: the event hooks (the run log);
* ``tracer``: spans (a non-recording tracer: the SDK, the span store and everything the
  monitor builds only for a recording span).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
PARTS = ("redaction", "capture", "hooks", "tracer")


#: Where the monitor reaches redaction, as ``module: names`` (each bound by an import, so each
#: module's own name is replaced): ``--without redaction`` replaces every one by the identity.
REDACTION_NAMES = {
    "span_redaction": ("redact_attributes", "redact_text", "redact"),
    "monitor._books": ("redact_attributes", "mappings_unchanged"),
    "monitor._spans": ("redact_attributes", "redact_text"),
    "monitor._stage_spans": ("redact_attributes", "redact_text"),
    "monitor._worker": ("redact_attributes",),
}


def _replace(owner: Any, name: str, value: Any) -> None:
    """Set ``owner.name``, which must exist: a switch that no longer reaches its code would
    otherwise count everything and call it the part switched off."""
    if not hasattr(owner, name):
        where = getattr(owner, "__name__", type(owner).__name__)
        sys.exit(f"monitor_instructions.py: {where} has no {name}: update the switch")
    setattr(owner, name, value)


def _switch_off(part: str, monitor: Any) -> None:
    if part == "redaction":
        import importlib

        def same(value: Any) -> Any:
            return value

        for module, names in REDACTION_NAMES.items():
            owner = importlib.import_module(f"taskdaemon.pipeline.{module}")
            for name in names:
                if name == "mappings_unchanged":  # the books' joined pre-check: all unchanged
                    _replace(owner, name, lambda mappings: True)
                else:
                    _replace(owner, name, same)
    elif part == "capture":
        off = type(monitor.capture)(enabled=False)
        _replace(monitor, "capture", off)
        _replace(monitor._recorder, "capture", off)
    elif part == "hooks":
        _replace(monitor._recorder, "hooks", ())
    elif part == "tracer":
        from opentelemetry.trace import NoOpTracer

        from taskdaemon.pipeline.span_redaction import RedactingTracer

        _replace(monitor._recorder, "tracer", RedactingTracer(NoOpTracer()))


def child(stages: int, hand_over: bool, without: str) -> None:
    """Record an async chain's run, build the monitor, and hand the records over or not."""
    sys.path.insert(0, str(HERE))
    from per_stage import HANDLERS, chain

    work = Path(tempfile.mkdtemp(prefix="td-monitor-instructions-"))
    os.environ["TASKDAEMON_HOME"] = str(work / "home")
    (work / "bench_handlers.py").write_text(HANDLERS)
    (work / "chain.yaml").write_text(chain("async", stages))
    sys.path.insert(0, str(work))
    from taskdaemon.pipeline.cli.deferred import DeferredMonitor
    from taskdaemon.pipeline.cli.monitoring import build_monitor
    from taskdaemon.pipeline.config import load_pipeline
    from taskdaemon.pipeline.engine import Engine
    from taskdaemon.pipeline.logs import configure_logging
    from taskdaemon.pipeline.run_log_scope import wants
    from taskdaemon.pipeline.settings import load_settings

    kept: list[Any] = []

    class Keep:
        def on_event(self, event: Any) -> None:
            kept.append(event)

    asyncio.run(Engine(observers=[Keep()]).run(load_pipeline(str(work / "chain.yaml")), {}))
    settings = load_settings()
    configure_logging(settings)
    logging.getLogger("taskdaemon.pipeline.monitor").setLevel(logging.ERROR)
    try:
        with contextlib.ExitStack() as stack:
            telemetry, monitor, _ = build_monitor(settings, serve_metrics=False, stack=stack)
            if without:
                _switch_off(without, monitor)
            deferred = DeferredMonitor(monitor.capture, hooks_want=wants)
            *records, last = kept
            for record in records:
                if deferred.wants_record(type(record)):
                    deferred.on_event(record)
            gc.collect()
            if hand_over:
                deferred.started(
                    monitor,
                    lambda run_id: contextlib.nullcontext(),
                    lambda span_id: contextlib.nullcontext(),
                )
                deferred.on_event(last)
            telemetry.tracer_provider.force_flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def count(source: Path, without: str, stages: int) -> float:
    """Instructions a stage of the hand-over with ``source`` first on the path."""
    from engine_stage_instructions import instructions

    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(source), str(HERE))))
    jobs = [(size, hand_over) for size in (stages, 1) for hand_over in (True, False)]

    def one(job: tuple[int, bool]) -> int:
        size, hand_over = job
        command = [sys.executable, __file__, "--child", str(size)]
        command += ["--hand-over" if hand_over else "--keep", f"--without={without}"]
        return instructions(command, env)

    with ThreadPoolExecutor(2) as pool:
        got = dict(zip(jobs, pool.map(one, jobs), strict=True))
    long = got[stages, True] - got[stages, False]
    return (long - (got[1, True] - got[1, False])) / (stages - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--without", default="", help=f"comma list of {', '.join(PARTS)}")
    parser.add_argument("--baseline", metavar="SRC", help="also count SRC (a checkout's src)")
    parser.add_argument("--stages", type=int, default=301, help="the long chain (default 301)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hand-over", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.hand_over, args.without)
        return
    for tool in ("valgrind", "setarch"):
        if shutil.which(tool) is None:
            sys.exit(f"monitor_instructions.py needs {tool} (apt-get install valgrind util-linux)")
    if args.stages < 2:
        parser.error("--stages: at least 2")
    parts = [p for p in args.without.split(",") if p]
    for part in parts:
        if part not in PARTS:
            parser.error(f"--without {part}: not one of {', '.join(PARTS)}")
    sys.path.insert(0, str(HERE))
    trees = {"this": SRC}
    if args.baseline:
        trees["base"] = Path(args.baseline).resolve()
    print(f"the monitor's hand-over of an async chain, instructions a stage ({args.stages} vs 1)")
    for name, source in trees.items():
        full = count(source, "", args.stages)
        print(f"  {name:5} everything          {full:11,.0f}", flush=True)
        for part in parts:
            value = count(source, part, args.stages)
            line = f"  {name:5} without {part:11} {value:11,.0f}  (the part: {full - value:,.0f})"
            print(line, flush=True)


if __name__ == "__main__":
    main()
