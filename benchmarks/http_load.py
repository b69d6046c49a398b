"""HTTP server under scrape load: engine throughput, loop lag, /healthz, sequential latency.

    .venv/bin/python benchmarks/http_load.py [--scrapers 200] [--seconds 5] [--rounds 2]

A monitored engine runs a 20-stage pipeline over and over (4 runs at a time) while the server
exposes its metrics (~335 KiB of /metrics). Each round has three phases, side by side in one
process:

* **idle**: no HTTP traffic; stage executions per second of the engine;
* **control**: the same load-generator process, but scraping a static server of its own (same
  bytes per scrape, same 20/s pace): the machine is as busy as under load, our process is not;
* **loaded**: a separate process holds ``--scrapers`` keep-alive connections each scraping
  ``/metrics`` in a loop (with ``Accept-Encoding: gzip``, as Prometheus does; ``--no-gzip``
  not), and probes ``/healthz`` on a fresh connection every 0.25 s (2 s timeout).

The scrapers run on the same two cores, so wall throughput mixes our server's cost with theirs
and with the machine's load. The figures that charge our server alone use CPU time: process CPU
per stage execution (the HTTP threads' CPU counted in full, as if the process had one core:
the interpreter lock makes it nearly so), the HTTP threads' share of the process's CPU, and their
wake-ups (context switches; each takes the interpreter lock). Also: the engine loop's worst lag
(a 50 ms ticker), the /healthz statuses, scrapes served.

Then **sequential latency**: 500 ``GET /healthz`` one after the other on one keep-alive
connection, with the engine idle (median and p99).

Only APIs that predate the HTTP hardening are used (``create_app(registry=, health=)``,
``MonitorServer(app, host=, port=0, lag=)``), so the same script measures an older checkout:
``PYTHONPATH=<old checkout>/src .venv/bin/python benchmarks/http_load.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --- the load generator (a child process: its CPU is not the server's) ---------------------------


async def _scraper(port: int, stop: float, counts: list[int], compressed: bool) -> None:
    # Prometheus asks for gzip; --no-gzip measures uncompressed scrapes.
    encoding = b"Accept-Encoding: gzip\r\n" if compressed else b""
    request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + encoding + b"\r\n"
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


async def _static_server(size: int, per_second: float) -> asyncio.Server:
    """The control phase's stand-in: answers every request with ``size`` bytes, at most
    ``per_second`` responses a second, like the real server's paced ``/metrics``."""
    body = b"# padding\n" * (size // 10)
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body)
    next_slot = 0.0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal next_slot
        try:
            while request := await reader.readuntil(b"\r\n\r\n"):
                if b"/healthz" not in request:
                    now = time.monotonic()
                    slot = max(now, next_slot)
                    next_slot = slot + 1.0 / per_second
                    await asyncio.sleep(slot - now)
                writer.write(head + body)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _load(
    port: int,
    scrapers: int,
    seconds: float,
    static: tuple[int, float] | None = None,
    compressed: bool = True,
) -> dict[str, Any]:
    """Scrape ``port`` (or, with ``static=(size, per_second)``, a static server of our own)."""
    if static is not None:
        server = await _static_server(*static)
        port = server.sockets[0].getsockname()[1]
    stop = time.monotonic() + seconds
    counts = [0, 0]
    statuses: list[str] = []
    await asyncio.gather(
        _prober(port, stop, statuses),
        *(_scraper(port, stop, counts, compressed) for _ in range(scrapers)),
    )
    if static is not None:
        server.close()
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


@dataclass(frozen=True)
class _Phase:
    """One phase's stage executions and the CPU time spent meanwhile, per thread group."""

    executions: int
    wall: float
    engine_cpu: float  # the engine's thread (this one)
    process_cpu: float  # every thread of this process: engine + HTTP + renders + monitor
    http_cpu: float  # the HTTP server's thread and its render workers
    http_wakeups: int  # their context switches

    @property
    def http_share(self) -> float:
        """The HTTP threads' part of the process's CPU: the throughput the engine would lose
        if the process had one core to itself (the interpreter lock makes it nearly so)."""
        return self.http_cpu / self.process_cpu

    @property
    def rate(self) -> float:
        return self.executions / self.wall

    @property
    def process_cost(self) -> float:
        """Process CPU seconds per stage execution: the HTTP threads' CPU charged in full."""
        return self.process_cpu / self.executions

    @property
    def engine_cost(self) -> float:
        return self.engine_cpu / self.executions


async def _engine_phase(engine: Any, pipeline: Any, seconds: float) -> _Phase:
    """Stage executions completed in ``seconds`` with 4 runs in flight, and the CPU they took."""
    started = time.monotonic()
    stop = started + seconds
    executions = 0
    thread0, process0, http0, wakeups0 = (
        time.thread_time(),
        time.process_time(),
        _http_cpu(),
        _http_wakeups(),
    )

    async def worker() -> None:
        nonlocal executions
        while time.monotonic() < stop:
            handle = await engine.start_run(pipeline, {})
            await handle.wait()
            executions += len(pipeline.stages)

    await asyncio.gather(*(worker() for _ in range(4)))
    return _Phase(
        executions,
        time.monotonic() - started,
        time.thread_time() - thread0,
        time.process_time() - process0,
        _http_cpu() - http0,
        _http_wakeups() - wakeups0,
    )


def _http_cpu() -> float:
    """CPU seconds of the HTTP server's threads: Uvicorn's (``taskdaemon-http``) and the worker
    threads of its loop's executor (``asyncio_N``, where /metrics renders; the engine's loop
    starts none in this benchmark). Threads that ended are not counted."""
    total = 0.0
    for thread in _http_threads():
        with contextlib.suppress(OSError):
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident or 0))
    return total


def _http_wakeups() -> int:
    """Context switches of the HTTP server's threads (Linux): each wake-up takes the interpreter
    lock from the engine, which on an oversubscribed machine costs far more than its CPU."""
    total = 0
    for thread in _http_threads():
        with contextlib.suppress(OSError):
            status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
            total += sum(
                int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
            )
    return total


def _http_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.ident is not None
        and (thread.name == "taskdaemon-http" or thread.name.startswith("asyncio_"))
    ]


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
            # The control server sends as many bytes per scrape as ours does.
            sent = len(gzip.compress(generate_latest(registry), 1)) if args.gzip else size
            print(f"server module: {server_module.__file__}")
            print(
                f"/metrics {size / 1024:.0f} KiB; {args.stages}-stage pipeline, 4 runs in flight;"
                f" {args.scrapers} scrapers{' (gzip)' if args.gzip else ''}; {args.rounds} x "
                f"({args.seconds:g} s idle{' + control' if args.control else ''} + loaded)"
            )
            idle: list[_Phase] = []
            control: list[_Phase] = []
            loaded: list[_Phase] = []
            worst_idle, worst_loaded = [], []
            healthz: list[str] = []
            scrapes = errors = 0
            load_seconds = 0.0
            per_second = getattr(app.state.limits, "metrics_per_second", 20.0)
            for _ in range(args.rounds):
                ticker.worst = 0.0
                idle.append(await _engine_phase(engine, pipeline, args.seconds))
                worst_idle.append(ticker.worst)
                if args.control:
                    phase, _r = await _under_load(
                        engine, pipeline, args, ["--static", str(sent), str(per_second)]
                    )
                    control.append(phase)
                ticker.worst = 0.0
                started = time.monotonic()
                phase, report = await _under_load(
                    engine, pipeline, args, ["--load", str(server.port)]
                )
                loaded.append(phase)
                load_seconds += time.monotonic() - started
                worst_loaded.append(ticker.worst)
                healthz += report["healthz"]
                scrapes += report["scrapes"]
                errors += report["errors"]
            _report(idle, control, loaded)
            counted = {s: healthz.count(s) for s in sorted(set(healthz))}
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


async def _under_load(
    engine: Any, pipeline: Any, args: argparse.Namespace, target: list[str]
) -> tuple[_Phase, dict[str, Any]]:
    """An engine phase while a load-generator process scrapes ``target``."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        *target,
        "--scrapers",
        str(args.scrapers),
        "--seconds",
        str(args.seconds + 1.0),
        *([] if args.gzip else ["--no-gzip"]),
        stdout=subprocess.PIPE,
    )
    await asyncio.sleep(0.5)  # let the scrapers connect
    phase = await _engine_phase(engine, pipeline, args.seconds)
    out, _ = await child.communicate()
    return phase, json.loads(out)


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def _change(before: list[_Phase], after: list[_Phase], cost: str) -> str:
    """Median over rounds of the throughput change implied by a per-execution ``cost``
    (paired phases of one round: the machine's load drifts slowly), and each round's."""
    ratios = [getattr(b, cost) / getattr(a, cost) - 1 for b, a in zip(before, after, strict=True)]
    rounds = ", ".join(f"{100 * r:+.1f}%" for r in ratios)
    return f"{100 * statistics.median(ratios):+.1f}%  (rounds: {rounds})"


def _report(idle: list[_Phase], control: list[_Phase], loaded: list[_Phase]) -> None:
    """Wall throughput (shared cores: noisy), then CPU-charged figures."""
    phases = [("idle", idle), ("control", control), ("loaded", loaded)]
    for name, runs in phases:
        if runs:
            mean = statistics.mean(p.rate for p in runs)
            print(
                f"engine {name + ':':8} {mean:6.0f} stage executions/s  "
                f"(rounds: {_fmt([p.rate for p in runs])})"
            )
    base = statistics.mean(p.rate for p in idle)
    print(
        "wall throughput change, loaded vs idle: "
        f"{100 * (statistics.mean(p.rate for p in loaded) / base - 1):+.1f}%"
    )
    print("process CPU per stage execution (engine + HTTP threads, us):", end="")
    for name, runs in phases:
        if runs:
            print(f" {name} {1e6 * statistics.median(p.process_cost for p in runs):.0f}", end="")
    print()
    print(
        "CPU-charged throughput change, loaded vs idle (HTTP threads charged in full): "
        + _change(idle, loaded, "process_cost")
    )
    if control:
        print(
            "CPU-charged throughput change, loaded vs control (the server's own share): "
            + _change(control, loaded, "process_cost")
        )
    print("engine thread CPU per stage execution (us):", end="")
    for name, runs in phases:
        if runs:
            print(f" {name} {1e6 * statistics.median(p.engine_cost for p in runs):.0f}", end="")
    print()
    http = statistics.mean(p.http_cpu / p.wall for p in loaded)
    print(
        f"HTTP server threads under load: {100 * http:.1f}% of a core, "
        f"{100 * statistics.median(p.http_share for p in loaded):.1f}% of the process's CPU "
        f"(rounds: {', '.join(f'{100 * p.http_share:.1f}%' for p in loaded)}); "
        f"{statistics.mean(p.http_wakeups / p.wall for p in loaded):.0f} wake-ups/s"
    )


def main() -> None:
    """Run the benchmark (or, with --load, the load generator)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scrapers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stages", type=int, default=20)
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="skip the control phase (the same load against a static server in another process)",
    )
    parser.add_argument(
        "--no-gzip",
        dest="gzip",
        action="store_false",
        help="scrape without Accept-Encoding: gzip (Prometheus sends it)",
    )
    parser.add_argument("--load", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--static", nargs=2, metavar=("SIZE", "RATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load or args.static:
        static = (int(args.static[0]), float(args.static[1])) if args.static else None
        result = asyncio.run(_load(args.load or 0, args.scrapers, args.seconds, static, args.gzip))
        print(json.dumps(result))
        return
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
