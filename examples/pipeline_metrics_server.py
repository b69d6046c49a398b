"""Serve taskdaemon's metrics while ``feature_delivery.yaml`` runs over and over.

Run from the repository root::

    .venv/bin/python examples/pipeline_metrics_server.py
    curl -s localhost:9090/metrics | grep pipeline_      # every pipeline_* name within 30 s

The server listens on ``TASKDAEMON_METRICS_HOST:TASKDAEMON_METRICS_PORT`` (127.0.0.1:9090 by
default) and also serves ``/healthz``, ``/readyz`` and ``/api/runs``. A new run starts every
``--every`` seconds (default 0.5) while at most ``--overlap`` runs (default 3) are open, so runs
overlap and one of them is always inside the ``implementation`` stage's heavy instance (about
1.5 s of real CPU work in a subprocess): the memory and CPU gauges, which show stages while they
run, always have values. Approvals are granted automatically. Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from taskdaemon.pipeline.cli.monitoring import start_monitoring
from taskdaemon.pipeline.config import load_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import ApprovalRequested, EngineEvent
from taskdaemon.pipeline.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("examples.pipeline_metrics_server")


class AutoApprove:
    """Grants each approval right after it is requested."""

    engine: Engine | None = None

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, ApprovalRequested) and self.engine is not None:
            engine = self.engine
            asyncio.get_running_loop().call_soon(
                lambda: engine.approve(event.run_id, event.stage, "example")
            )


async def main(every: float, overlap: int) -> None:
    settings = load_settings()
    sys.path.insert(0, str(ROOT))  # examples.loops:plan and friends
    pipeline = load_pipeline(ROOT / "examples" / "feature_delivery.yaml")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        address = (settings.metrics_host, settings.metrics_port)
        monitoring = start_monitoring(settings, serve=address, stack=stack)
        approver = AutoApprove()
        engine = Engine(
            observers=[*monitoring.observers, approver],
            workspace=(settings.home / "workspaces").absolute(),
        )
        approver.engine = engine
        monitoring.bind(engine)
        assert monitoring.server is not None
        log.info("metrics on %s/metrics", monitoring.server.url)
        async with engine:
            open_runs: set[asyncio.Future[object]] = set()
            while not stop.is_set():
                if len(open_runs) < overlap:
                    handle = await engine.start_run(pipeline, {}, started_by="schedule")
                    waiter: asyncio.Future[object] = asyncio.ensure_future(handle.wait())
                    open_runs.add(waiter)
                    waiter.add_done_callback(open_runs.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=every)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="It serves on TASKDAEMON_METRICS_HOST:TASKDAEMON_METRICS_PORT (127.0.0.1:9090).",
    )
    parser.add_argument(
        "--every",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="a new run starts every SECONDS while fewer than RUNS are open (default: %(default)s)",
    )
    parser.add_argument(
        "--overlap",
        type=int,
        default=3,
        metavar="RUNS",
        help="the most runs open at once (default: %(default)s)",
    )
    options = parser.parse_args()
    asyncio.run(main(options.every, options.overlap))
