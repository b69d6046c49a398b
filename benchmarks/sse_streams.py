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

    .venv/bin/python benchmarks/sse_streams.py --run-cost [--viewers 0,20,200] [--stages 400]
        [--chains sync,10ms] [--servers 'serve,run --serve'] [--reading stalled|slow] [--rounds 3]

Does watching a run slow it? Real processes, as users run them: a ``taskdaemon run`` of a chain
(a gate, then ``--stages`` commands one after another: ``true``, or ``sleep 0.01``) watched by
``--viewers`` streams of the run's page (``?delta=true``), served by ``taskdaemon serve`` in its
own process (which follows the run from the store) or by the run's own ``run --serve``. A viewer
has a 1 KiB receive buffer and reads nothing after the status line (``stalled``), or 1 KiB
every half second (``slow``). Every viewer is in before the driver approves the gate; from the
approval to the run's exit: the run's wall and CPU seconds, its main thread's CPU seconds, and
``serve``'s. Every scenario runs once a round, the rounds interleaved (each starts one scenario
further on), so the machine's load falls on all of them alike; medians at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TOKEN = "sse-benchmark-token-0123456789"
#: ``taskdaemon`` from this process's PYTHONPATH.
CLI = (
    "import sys; from taskdaemon.pipeline.cli import main; "
    "sys.argv[0] = 'taskdaemon'; sys.exit(main())"
)

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


# --- the run's own cost with viewers (--run-cost: real processes) --------------------------------

GATE = (
    "  - name: gate\n    loop: command\n    command: 'true'\n"
    "    triggers: [{manual: {approval_required: true}}]\n"
)
STAGE = "  - name: s{i}\n    loop: command\n    command: '{command}'\n    triggers: [{trigger}]\n"
CHAINS = {"sync": "true", "10ms": "sleep 0.01"}


def _chain(command: str, stages: int) -> str:
    """A gate the driver approves once every viewer is in, then ``stages`` commands in a row."""
    body = [GATE]
    for i in range(stages):
        before = f"s{i - 1}" if i else "gate"
        trigger = f"{{on_completion: {{stage: {before}}}}}"
        body.append(STAGE.format(i=i, command=command, trigger=trigger))
    return "name: watched\nstages:\n" + "".join(body)


def _ticks(pid: int, task: str = "") -> float:
    """CPU seconds (user + system) of a process, or of one of its threads."""
    path = f"/proc/{pid}/task/{task}/stat" if task else f"/proc/{pid}/stat"
    with open(path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        return client.recv(64)


def _viewer(port: int, run_id: str) -> socket.socket:
    """A stream of the run as the page opens it, on a socket with a small receive buffer; its
    status line is read (the stream is open), then nothing more unless the caller reads."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    client.settimeout(30)
    client.connect(("127.0.0.1", port))
    client.sendall(
        f"GET /api/runs/{run_id}/stream?delta=true HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    status = client.recv(12)
    if status != b"HTTP/1.1 200":
        raise SystemExit(f"a viewer was answered {status!r}")
    client.setblocking(False)
    return client


def _trickle(viewers: list[socket.socket], stop: threading.Event) -> None:
    """Slow viewers: each takes 1 KiB every half second."""
    while not stop.wait(0.5):
        for client in viewers:
            with contextlib.suppress(OSError):
                client.recv(1024)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.returncode is None:
        process.terminate()
        process.wait()


def _until_healthy(port: int) -> None:
    while True:
        with contextlib.suppress(OSError):
            if _get(port, "/healthz").startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.02)


def run_cost(chain: str, stages: int, server: str, viewers: int, reading: str) -> dict[str, Any]:
    """One ``taskdaemon run`` of a chain watched by ``viewers`` streams of ``serve`` (its own
    process) or of ``run --serve``; from the gate's approval to the run's exit: the run's wall
    and CPU seconds, its main thread's (the engine's loop; sampled every 20 ms until the run
    exits) and ``serve``'s CPU seconds (``run --serve``'s server is in the run's process: its
    cost is in the run's CPU, outside the main thread's)."""
    import taskdaemon

    with contextlib.ExitStack() as cleanup:
        # In /tmp, not TMPDIR: a control socket's path must fit in 108 bytes.
        home = Path(tempfile.mkdtemp(prefix="td-viewers-", dir="/tmp"))
        cleanup.callback(shutil.rmtree, home, True)
        (home / "chain.yaml").write_text(_chain(CHAINS[chain], stages))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPORTER_OTLP")}
        # The tree this process imports, found from here: a relative PYTHONPATH names nothing
        # in the scratch folder the processes run in.
        tree = str(Path(taskdaemon.__file__).resolve().parents[1])
        env.update(TASKDAEMON_HOME=str(home), TASKDAEMON_API_TOKEN=TOKEN, PYTHONPATH=tree)
        port = _free_port()
        cli = [sys.executable, "-c", CLI]
        quiet = {
            "cwd": home,
            "env": env,
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
        }
        daemon = None
        if server == "serve":
            daemon = subprocess.Popen([*cli, "serve", "--port", str(port)], **quiet)
            cleanup.callback(_stop, daemon)
            _until_healthy(port)
        extra = ["--serve", f"127.0.0.1:{port}"] if server == "run --serve" else []
        run = subprocess.Popen([*cli, "run", "-q", *extra, "chain.yaml"], **quiet)
        cleanup.callback(_stop, run)
        control_dir = home / "control"
        while not (control_dir.exists() and any(control_dir.glob("*.sock"))):
            time.sleep(0.02)
        run_id = next(control_dir.glob("*.sock")).stem
        _until_healthy(port)
        held: list[socket.socket] = []
        cleanup.callback(lambda: [client.close() for client in held])
        held += [_viewer(port, run_id) for _ in range(viewers)]
        stop = threading.Event()
        if reading == "slow":
            trickle = threading.Thread(target=_trickle, args=(held, stop))
            trickle.start()
            cleanup.callback(trickle.join)
        cleanup.callback(stop.set)
        approve = [*cli, "approve", run_id, "gate"]
        for _ in range(300):  # refused until the gate asks for its approval
            asked = subprocess.run(approve, cwd=home, env=env, capture_output=True, check=False)
            if not asked.returncode:
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"the gate was never approved: {asked.stderr.decode()[-500:]}")
        main_thread = str(run.pid)  # the engine's event loop
        began, run_cpu = time.perf_counter(), _ticks(run.pid)
        main_cpu = main_end = _ticks(run.pid, main_thread)
        served = _ticks(daemon.pid) if daemon else 0.0
        while True:
            with contextlib.suppress(OSError):  # gone once the run exits: keep the last figure
                main_end = _ticks(run.pid, main_thread)
            pid, status, usage = os.wait4(run.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
        wall = time.perf_counter() - began
        run.returncode = os.waitstatus_to_exitcode(status)
        if daemon is not None:
            served = _ticks(daemon.pid) - served
    return {
        "exit": run.returncode,
        "wall_s": wall,
        "run_cpu_s": usage.ru_utime + usage.ru_stime - run_cpu,
        "main_cpu_s": main_end - main_cpu,
        "server_cpu_s": served,
    }


def _run_costs(args: argparse.Namespace) -> None:
    """Every scenario once a round, rounds interleaved, so the machine's load falls on all."""
    scenarios = [
        (chain, server, int(viewers))
        for chain in args.chains.split(",")
        for server in args.servers.split(",")
        for viewers in args.viewers.split(",")
    ]
    rows: dict[tuple[str, str, int], list[dict[str, Any]]] = {key: [] for key in scenarios}
    print(f"{args.stages} stages a chain, {args.reading} viewers, {args.rounds} rounds")
    print(
        "round\tchain\tserver\tviewers\texit\twall s\trun CPU s\tmain thread s\tserve CPU s",
        flush=True,
    )
    for round_ in range(args.rounds):
        for key in scenarios[round_ % len(scenarios) :] + scenarios[: round_ % len(scenarios)]:
            row = run_cost(key[0], args.stages, key[1], key[2], args.reading)
            rows[key].append(row)
            print(
                f"{round_}\t{key[0]}\t{key[1]}\t{key[2]}\t{row['exit']}\t{row['wall_s']:.2f}"
                f"\t{row['run_cpu_s']:.2f}\t{row['main_cpu_s']:.2f}\t{row['server_cpu_s']:.2f}",
                flush=True,
            )
    print("medians:\nchain\tserver\tviewers\twall s\trun CPU s\tmain thread s\tserve CPU s")
    for key, runs in rows.items():
        figures = "\t".join(
            f"{statistics.median(run[what] for run in runs):.2f}"
            for what in ("wall_s", "run_cpu_s", "main_cpu_s", "server_cpu_s")
        )
        print(f"{key[0]}\t{key[1]}\t{key[2]}\t{figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--run-cost", action="store_true", help="the run's own cost instead")
    parser.add_argument("--viewers", default="0,20,200")
    parser.add_argument("--stages", type=int, default=400)
    parser.add_argument("--chains", default="sync,10ms")
    parser.add_argument("--servers", default="serve,run --serve")
    parser.add_argument("--reading", choices=("stalled", "slow"), default="stalled")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.client:
        asyncio.run(_clients(args.client[0], int(args.client[1]), args.client[2].split(",")))
        return
    if args.run_cost:
        _run_costs(args)
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
