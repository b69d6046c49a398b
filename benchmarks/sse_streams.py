"""Live-update latency of the web page's event streams: 1 stream against 200, side by side.

    .venv/bin/python benchmarks/sse_streams.py [--streams 200] [--changes 30] [--interval 0.1]

An engine in this process runs a chain of ``--changes`` stages, each held until the driver
releases it every ``--interval`` seconds; the server (its own thread, as in ``serve``) streams
the run's state. A separate process (its CPU is not the server's) opens the streams and records
when each stage's ``success`` first arrives on each of them. Latency = arrival time minus the
time the engine emitted that stage's finish (``time.monotonic``, one clock for both processes
on Linux). Reported per scenario: p50, p99 and max over every (stream, change) pair, and
events lost (a change a stream never showed: coalescing may merge two changes into one event,
which is still an arrival for both).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Mapping
from typing import Any

TOKEN = "sse-benchmark-token-0123456789"

# --- the clients (a child process) ---------------------------------------------------------------


async def _stream(url: str, names: list[str], arrivals: dict[str, float]) -> None:
    """One stream over a raw connection: the first arrival of each stage's success, found by
    the compact JSON's fixed key order, so the client's own cost stays small next to the
    server's (parsing 200 JSON documents per change would measure the client)."""
    rest = url.split("://", 1)[1]
    hostport, path = rest.split("/", 1)
    host, port = hostport.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    patterns = {
        name: f'"name":"{name}","title":"{name.upper()}","state":"success"'.encode()
        for name in names
    }
    tail = b""
    try:
        while len(arrivals) < len(names):
            data = await reader.read(1 << 16)
            if not data:
                return
            now = time.monotonic()
            window = tail + data
            for name, pattern in patterns.items():
                if name not in arrivals and pattern in window:
                    arrivals[name] = now
            tail = window[-256:]
    finally:
        writer.close()


async def _clients(url: str, count: int, names: list[str]) -> None:
    results: list[dict[str, float]] = [{} for _ in range(count)]
    await asyncio.gather(*(_stream(url, names, r) for r in results))
    json.dump(results, sys.stdout)


# --- the server and the run ----------------------------------------------------------------------


class _Release:
    """Each stage's handler waits for its own release."""

    def __init__(self, names: list[str]) -> None:
        self.events = {name: asyncio.Event() for name in names}

    def resolve(self, pipeline: Any, stage: Any) -> Any:
        async def handler(ctx: Any) -> Mapping[str, Any]:
            await self.events[stage.name].wait()
            return {}

        return handler


class _Finished:
    """Records when the engine emitted each stage's finish."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def on_event(self, event: Any) -> None:
        from taskdaemon.pipeline.events import StageFinished

        if isinstance(event, StageFinished):
            self.at[event.stage] = time.monotonic()


def _pipeline(names: list[str]) -> Any:
    from taskdaemon.pipeline.config import parse_pipeline

    stages = []
    for i, name in enumerate(names):
        trigger = (
            "[{manual: {approval_required: false}}]"
            if i == 0
            else f"[{{on_completion: {{stage: {names[i - 1]}}}}}]"
        )
        stages.append(f"  - name: {name}\n    loop: work\n    triggers: {trigger}\n")
    text = "name: sse-bench\nloops: {work: {handler: 'unused:unused'}}\nstages:\n" + "".join(stages)
    return parse_pipeline(text)


async def _scenario(streams: int, changes: int, interval: float) -> dict[str, Any]:
    from taskdaemon.pipeline.engine import Engine
    from taskdaemon.pipeline.http_security import ApiAuth
    from taskdaemon.pipeline.server import MonitorServer, create_app
    from taskdaemon.pipeline.web import WebOptions

    names = [f"s{i:03d}" for i in range(changes)]
    cpu_server, cpu_clients = time.process_time(), _children_cpu()
    release, finished = _Release(names), _Finished()
    async with Engine(resolver=release, observers=[finished]) as engine:
        app = create_app(
            engine=engine, auth=ApiAuth.configured(TOKEN), web=WebOptions(max_streams=streams + 8)
        )
        server = MonitorServer(app, host="127.0.0.1", port=0)
        await server.start()
        try:
            handle = await engine.start_run(_pipeline(names), {})
            url = f"{server.url}/api/runs/{handle.run_id}/stream"
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--client",
                url,
                str(streams),
                ",".join(names),
                stdout=asyncio.subprocess.PIPE,
            )
            reader = asyncio.create_task(child.communicate())
            # Every stream is open when the hub counts it: wait for that (bounded), then pace.
            deadline = time.monotonic() + 60
            while app.state.web.hub.stats().open < streams and time.monotonic() < deadline:  # noqa: ASYNC110 - polls another thread's counter
                await asyncio.sleep(0.05)
            opened = app.state.web.hub.stats().open
            for name in names:
                await asyncio.sleep(interval)
                release.events[name].set()
            await handle.wait()
            out, _ = await reader
        finally:
            await server.aclose()
    cpu_server, cpu_clients = time.process_time() - cpu_server, _children_cpu() - cpu_clients
    results: list[dict[str, float]] = json.loads(out)
    latencies = [
        (arrivals[name] - finished.at[name]) * 1000
        for arrivals in results
        for name in names
        if name in arrivals
    ]
    lost = streams * changes - len(latencies)
    latencies.sort()
    return {
        "streams": streams,
        "opened": opened,
        "samples": len(latencies),
        "lost": lost,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "max_ms": latencies[-1],
        "dropped": app.state.web.hub.stats().dropped,
        "server_cpu_s": cpu_server,
        "client_cpu_s": cpu_clients,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(_clients(args.client[0], int(args.client[1]), args.client[2].split(",")))
        return
    print(f"{args.changes} state changes, one every {args.interval * 1000:.0f} ms")
    print(
        f"{'streams':>8} {'p50':>9} {'p99':>9} {'max':>9} {'lost':>6} {'dropped':>8} "
        f"{'server CPU':>11} {'client CPU':>11}"
    )
    rows = []
    for streams in (1, args.streams):
        row = asyncio.run(_scenario(streams, args.changes, args.interval))
        rows.append(row)
        print(
            f"{row['streams']:>8} {row['p50_ms']:>7.1f}ms {row['p99_ms']:>7.1f}ms "
            f"{row['max_ms']:>7.1f}ms {row['lost']:>6} {row['dropped']:>8} "
            f"{row['server_cpu_s']:>10.2f}s {row['client_cpu_s']:>10.2f}s"
        )
    print(
        f"p50 ratio {args.streams}/1: {rows[1]['p50_ms'] / rows[0]['p50_ms']:.2f}x; "
        f"p99 ratio: {rows[1]['p99_ms'] / rows[0]['p99_ms']:.2f}x"
    )


if __name__ == "__main__":
    main()
