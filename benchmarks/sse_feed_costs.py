"""What one change of a big run costs the server's event-stream feed for N gzip viewers.

    .venv/bin/python benchmarks/sse_feed_costs.py [--clients 1,10,100] [--changes 4]
        [--chains 10] [--length 50] [--baseline SRC]

(needs ``valgrind`` and ``setarch``.) A pipeline of a root and ``--chains`` chains of
``--length`` stages (501 by default: ``web_live_bandwidth.py``'s, stages of no work) is run
once with ``taskdaemon run``; its stored run is the state every change renders. A child
process reads that run from the span store, opens N gzip subscriptions to one feed of the
web page's hub (``web/_streams.py``) and lets the feed render and send ``--changes`` changes,
each client's queue drained; it is counted by ``valgrind --tool=cachegrind`` (instructions)
against a child that sends none, so start-up and the store's read cancel: (changes - none) /
changes is the feed's cost of one change, render and compression for every client included.
The feed's pauses are skipped (each would only delay the next change). Also printed: the
state's size rendered and on a gzip client's wire, and the memory (``tracemalloc``) a gzip
subscription adds. With ``--baseline SRC`` (a tree's ``src``) the same children run with that
code first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from web_live_bandwidth import HERE_SRC, write_pipeline


async def _feed(db: str, clients: int, changes: int) -> dict[str, Any]:
    """Run one feed of the stored run's state to ``clients`` gzip subscriptions."""
    from taskdaemon.pipeline.web._data import RunData
    from taskdaemon.pipeline.web._streams import Pace, StreamHub
    from taskdaemon.pipeline.web._views import run_state

    with contextlib.closing(sqlite3.connect(db)) as store:
        (run_id,) = store.execute("SELECT trace_id FROM runs").fetchone()
    snapshot = await RunData(source_url=f"sqlite:///{db}").snapshot(run_id)

    async def no_pause(seconds: float) -> None:
        return None

    async def source() -> Any:
        for _ in range(changes):
            yield snapshot

    def render(item: Any) -> Any:
        return run_state(item, now=0.0, can_control=False)

    hub = StreamHub(
        max_streams=clients + 1,
        queue_size=changes + 2,
        pace=Pace(64 * 1024, 512 * 1024, sleep=no_pause),
    )
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    subscriptions = [hub.subscribe("run", render, source, gzip=True) for _ in range(clients)]
    memory = (tracemalloc.get_traced_memory()[0] - before) / clients
    tracemalloc.stop()
    wire = []
    for subscription in subscriptions:
        while (chunk := await subscription.next(60.0)) is not None:
            wire.append(len(chunk))
        subscription.close()
    rendered = len(json.dumps(render(snapshot), separators=(",", ":")).encode())
    return {"rendered": rendered, "wire": max(wire, default=0), "bytes_a_client": round(memory)}


def child(db: str, clients: int, changes: int) -> None:
    print(json.dumps(asyncio.run(_feed(db, clients, changes))))


def counted(src: str, db: str, clients: int, changes: int) -> tuple[int, dict[str, Any]]:
    """Instructions of a child sending ``changes`` changes to ``clients``, and what it says."""
    env = {**os.environ, "PYTHONPATH": f"{src}:{Path(__file__).parent}"}
    done = subprocess.run(
        [
            *("setarch", "-R", "valgrind", "--tool=cachegrind", "--cache-sim=no"),
            "--cachegrind-out-file=/dev/null",
            *(sys.executable, __file__, "--child", db, str(clients), str(changes)),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    refs = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    assert refs is not None, done.stderr[-2000:]
    return int(refs.group(1).replace(",", "")), json.loads(done.stdout.strip().splitlines()[-1])


def stored_run(where: Path, chains: int, length: int) -> str:
    """The span store of one finished run of the pipeline (stages of no work)."""
    pipeline = write_pipeline(where, chains, length, 0.0)
    home = where / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKDAEMON_", "OTEL_"))}
    env.update(
        TASKDAEMON_HOME=str(home), OTEL_METRICS_EXPORTER="none", PYTHONPATH=f"{HERE_SRC}:{where}"
    )
    subprocess.run(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "run", str(pipeline), "-q"],
        env=env,
        cwd=where,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return str(home / "spans.db")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,10,100", help="counts of viewers, by commas")
    parser.add_argument("--changes", type=int, default=4)
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--baseline", metavar="SRC", help="a tree's src to count first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="feed-costs-") as where:
        db = stored_run(Path(where), args.chains, args.length)
        for src in [args.baseline, HERE_SRC] if args.baseline else [HERE_SRC]:
            for clients in (int(count) for count in args.clients.split(",")):
                none, _ = counted(src, db, clients, 0)
                some, said = counted(src, db, clients, args.changes)
                per_change = (some - none) / args.changes
                print(
                    json.dumps(
                        {
                            "src": src,
                            "stages": 1 + args.chains * args.length,
                            "clients": clients,
                            "instructions_a_change": round(per_change),
                            **said,
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
