"""HTTP server under scrape load: engine throughput, loop lag, /healthz, sequential latency.

    .venv/bin/python benchmarks/http_load.py [--scrapers 200] [--seconds 5] [--rounds 2]

A monitored engine runs a 20-stage pipeline over and over (4 runs at a time) while the server
exposes its metrics (~335 KiB of /metrics). Phases alternate, side by side in one process:

* **idle**: no HTTP traffic; stage executions per second of the engine;
* **loaded**: a separate process holds ``--scrapers`` keep-alive connections each scraping
  ``/metrics`` in a loop, and probes ``/healthz`` on a fresh connection every 0.25 s (2 s
  timeout). Reported: the engine's throughput relative to the idle phases, the engine loop's
  worst lag (a 50 ms ticker), the /healthz statuses, scrapes served.

Then **sequential latency**: 500 ``GET /healthz`` one after the other on one keep-alive
connection, with the engine idle (median and p99).

Only APIs that predate the HTTP hardening are used (``create_app(registry=, health=)``,
``MonitorServer(app, host=, port=0, lag=)``), so the same script measures an older checkout:
``PYTHONPATH=<old checkout>/src .venv/bin/python benchmarks/http_load.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

# --- the load generator (a child process: its CPU is not the server's) ---------------------------


async def _scraper(port: int, stop: float, counts: list[int]) -> None:
    request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts[1] += 1
            await asyncio.sleep(0.05)
            continue
        try:
            while time.monotonic() < stop:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                counts[0] += 1
                if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
                    counts[1] += 1
                    break
        except (OSError, asyncio.IncompleteReadError):
            counts[1] += 1
        finally:
            writer.close()


async def _prober(port: int, stop: float, statuses: list[str]) -> None:
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2.0)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 2.0)
            statuses.append(data.split(b" ", 2)[1].decode() if data else "closed")
            writer.close()
        except (TimeoutError, OSError):
            statuses.append("timeout")
        await asyncio.sleep(max(0.0, 0.25 - (time.monotonic() - started)))


async def _load(port: int, scrapers: int, seconds: float) -> dict[str, Any]:
    stop = time.monotonic() + seconds
    counts = [0, 0]
    statuses: list[str] = []
    await asyncio.gather(
        _prober(port, stop, statuses), *(_scraper(port, stop, counts) for _ in range(scrapers))
    )
    return {"scrapes": counts[0], "errors": counts[1], "healthz": statuses}


# --- the server side -----------------------------------------------------------------------------


def _pipeline(stages: int) -> Any:
    from taskdaemon.pipeline.config import parse_pipeline

    lines = [
        "name: scraped",
        "timeout: 60s",
        'loops: {work: {handler: "unused:unused"}}',
        "stages:",
    ]
    for i in range(stages):
        lines += [f"  - name: s{i:03d}", "    loop: work", "    triggers: [{manual: {}}]"]
    return parse_pipeline("\n".join(lines))


class _Resolver:
    def resolve(self, pipeline: Any, stage: Any) -> Any:
        async def handler(ctx: Any) -> Mapping[str, Any]:
            return {}

        return handler


class _Ticker:
    """The engine loop's worst lateness, measured by a 50 ms sleeper."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            expected = time.monotonic() + 0.05
            await asyncio.sleep(0.05)
            self.worst = max(self.worst, time.monotonic() - expected)


async def _engine_phase(engine: Any, pipeline: Any, seconds: float) -> int:
    """Stage executions completed in ``seconds`` with 4 runs in flight."""
    stop = time.monotonic() + seconds
    executions = 0

    async def worker() -> None:
        nonlocal executions
        while time.monotonic() < stop:
            handle = await engine.start_run(pipeline, {})
            await handle.wait()
            executions += len(pipeline.stages)

    await asyncio.gather(*(worker() for _ in range(4)))
    return executions


async def _sequential(port: int, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    times = []
    for _ in range(count):
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        times.append(time.perf_counter() - started)
    writer.close()
    return times


async def _main(args: argparse.Namespace) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import CollectorRegistry, generate_latest

    import taskdaemon.pipeline.server as server_module
    from taskdaemon.pipeline.engine import Engine
    from taskdaemon.pipeline.monitor import PipelineMonitor
    from taskdaemon.pipeline.server import (
        HealthSources,
        LoopLagMonitor,
        MonitorServer,
        create_app,
    )

    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry, disable_target_info=True)
    meters = MeterProvider(metric_readers=[reader])
    tracer = TracerProvider()
    monitor = PipelineMonitor(tracer_provider=tracer, meter_provider=meters)
    pipeline = _pipeline(args.stages)
    lag = LoopLagMonitor()
    app = create_app(registry=registry, health=HealthSources(lag=lag))
    server = MonitorServer(app, host="127.0.0.1", port=0, lag=lag)
    ticker = _Ticker()
    async with Engine(resolver=_Resolver(), observers=[monitor]) as engine:
        await server.start()
        ticker_task = asyncio.ensure_future(ticker.run())
        try:
            await _engine_phase(engine, pipeline, 1.0)  # warm-up; fills the series
            size = len(generate_latest(registry))
            print(f"server module: {server_module.__file__}")
            print(
                f"/metrics {size / 1024:.0f} KiB; {args.stages}-stage pipeline, 4 runs in flight;"
                f" {args.scrapers} scrapers; {args.rounds} x ({args.seconds:g} s idle + "
                f"{args.seconds:g} s loaded)"
            )
            idle, loaded, worst_idle, worst_loaded = [], [], [], []
            healthz: list[str] = []
            scrapes = errors = 0
            load_seconds = 0.0
            for _ in range(args.rounds):
                ticker.worst = 0.0
                idle.append(await _engine_phase(engine, pipeline, args.seconds) / args.seconds)
                worst_idle.append(ticker.worst)
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--load",
                    str(server.port),
                    "--scrapers",
                    str(args.scrapers),
                    "--seconds",
                    str(args.seconds + 1.0),
                    stdout=subprocess.PIPE,
                )
                child_started = time.monotonic()
                await asyncio.sleep(0.5)  # let the scrapers connect
                ticker.worst = 0.0
                loaded.append(await _engine_phase(engine, pipeline, args.seconds) / args.seconds)
                worst_loaded.append(ticker.worst)
                out, _ = await child.communicate()
                load_seconds += time.monotonic() - child_started
                report = json.loads(out)
                healthz += report["healthz"]
                scrapes += report["scrapes"]
                errors += report["errors"]
            base, under = statistics.mean(idle), statistics.mean(loaded)
            counted = {s: healthz.count(s) for s in sorted(set(healthz))}
            print(f"engine idle:   {base:8.0f} stage executions/s  (rounds: {_fmt(idle)})")
            print(f"engine loaded: {under:8.0f} stage executions/s  (rounds: {_fmt(loaded)})")
            print(f"throughput change under load: {100 * (under / base - 1):+.1f}%")
            print(
                f"engine loop worst lag: idle {1000 * max(worst_idle):.0f} ms, "
                f"loaded {1000 * max(worst_loaded):.0f} ms"
            )
            print(f"/healthz during load: {counted}")
            print(
                f"scrapes served: {scrapes} in {load_seconds:.0f} s of load "
                f"({scrapes / load_seconds:.0f}/s, {errors} errors; in-flight scrapes finish "
                "after the loaded phase)"
            )
            times = await _sequential(server.port, args.sequential)
            times.sort()
            print(
                f"sequential GET /healthz on one keep-alive connection, {len(times)} requests: "
                f"median {1000 * statistics.median(times):.2f} ms, "
                f"p99 {1000 * times[int(len(times) * 0.99) - 1]:.2f} ms"
            )
        finally:
            ticker_task.cancel()
            await server.aclose()
    meters.shutdown()
    tracer.shutdown()


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def main() -> None:
    """Run the benchmark (or, with --load, the load generator)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scrapers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stages", type=int, default=20)
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--load", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(_load(args.load, args.scrapers, args.seconds))))
        return
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
