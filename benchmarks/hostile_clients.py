"""Hostile clients against the control socket, the HTTP server and the remote span readers.

``.venv/bin/python benchmarks/hostile_clients.py [--parts control,idle,http,gzip] [--baseline SRC]``

Each part runs in child processes using the source tree of their ``PYTHONPATH`` (this one, and
with ``--baseline SRC`` that one too: ``git archive main src | tar -x -C /tmp/base``, then
``--baseline /tmp/base/src``):

* ``control``: a real ``taskdaemon run`` waiting for an approval; ``--connections`` clients
  connect to its control socket and each send 1 MiB of a request line that never ends. Prints
  the run's peak RSS (``VmHWM``), its open descriptors 2 s after the flood, and the seconds
  until ``taskdaemon status`` is answered while the flood's connections stay open.
* ``idle``: the same, with 32 clients (the socket's cap) that connect and send nothing.
* ``http``: a server (``--cap`` connections) whose ``/metrics`` is 8 MB; ``--cap`` clients ask
  for it and never read. Prints the seconds until another client's ``/healthz`` is answered
  200 (given up after ``--wait`` seconds).
* ``gzip``: a Tempo answer of ``--mib`` MiB of zeros gzipped once, and gzipped twice (named
  ``Content-Encoding: gzip, gzip``), asked for with ``TempoSource.get_trace``. Prints the
  seconds, the child's peak RSS and how the query ended.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PARTS = ("control", "idle", "http", "gzip")
#: ``taskdaemon`` from the child's PYTHONPATH; its exit code is what tells a refusal.
CLI = (
    "import sys; from taskdaemon.pipeline.cli import main; "
    "sys.argv[0] = 'taskdaemon'; sys.exit(main())"
)
GATED = """\
name: gated
stages:
  - name: deploy
    command: "true"
    triggers: [{manual: {approval_required: true}}]
"""


def _peak_mib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(status.read().split("VmHWM:")[1].split()[0]) // 1024


def control(connections: int, line: int) -> str:
    """Flood a real run's control socket with ``connections`` clients that each send ``line``
    bytes of a request line that never ends; its peak MiB, descriptors, seconds to a status."""
    home = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    (home / "gated.yaml").write_text(GATED)
    env = dict(os.environ, TASKDAEMON_HOME=str(home))
    run = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", "-q", "gated.yaml"],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    control_dir = home / "control"
    while not (control_dir.exists() and any(control_dir.glob("*.sock"))):
        time.sleep(0.05)
    (sock,) = control_dir.glob("*.sock")
    flood = []
    for _ in range(connections):
        client = socket.socket(socket.AF_UNIX)
        flood.append(client)
        client.connect(str(sock))
        with contextlib.suppress(OSError):  # refused
            client.sendall(b"x" * line)
    time.sleep(2.0)
    descriptors = len(os.listdir(f"/proc/{run.pid}/fd"))
    began = time.perf_counter()
    status = [sys.executable, "-c", CLI, "status", sock.stem]
    while subprocess.run(status, cwd=home, env=env, capture_output=True, check=False).returncode:
        time.sleep(0.2)
    answered = time.perf_counter() - began
    peak = _peak_mib(run.pid)
    for client in flood:
        client.close()
    cancel = [*status[:-2], "cancel", sock.stem]
    subprocess.run(cancel, cwd=home, env=env, capture_output=True, check=False)
    run.wait()
    shutil.rmtree(home, ignore_errors=True)
    return f"{peak}\t{descriptors}\t{answered:.1f}"


async def http(cap: int, wait: float) -> str:
    """Seconds until a client is served while ``cap`` clients never read an 8 MB answer."""
    from prometheus_client import CollectorRegistry, Counter

    from taskdaemon.pipeline.http_limits import HttpLimits
    from taskdaemon.pipeline.server import MonitorServer, create_app

    registry = CollectorRegistry()
    counter = Counter("wide", "a wide family", ["label"], registry=registry)
    for number in range(8_000):
        counter.labels(f"{'x' * 1000}{number}").inc()
    app = create_app(registry=registry, limits=HttpLimits(max_connections=cap))
    server = MonitorServer(app, host="127.0.0.1", port=0)
    await server.start()
    stuck = []
    for _ in range(cap):
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", server.port))
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        stuck.append(client)
    await asyncio.sleep(2.0)
    began = time.perf_counter()
    served = "not within"
    while time.perf_counter() - began < wait:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        if answer.startswith(b"HTTP/1.1 200"):
            served = f"{time.perf_counter() - began:.1f}"
            break
        await asyncio.sleep(0.5)
    for client in stuck:
        client.close()
    await server.aclose()
    return served if served != "not within" else f"not within {wait:g}"


def bomb(mib: int, layers: int) -> str:
    """Ask a Tempo source for a trace answered by a gzip bomb; seconds, peak MiB, outcome."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    body = b"".join(compressor.compress(zeros) for _ in range(mib)) + compressor.flush()
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)

    from dense_answers import tempo_query

    took, ended = tempo_query(
        body,
        {"Content-Type": "application/json", "Content-Encoding": ", ".join(["gzip"] * layers)},
    )
    return f"{took:.2f}\t{_peak_mib()}\t{ended}"


def _child(src: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, __file__, "--one", *args],
        env=dict(os.environ, PYTHONPATH=str(src)),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--cap", type=int, default=8)
    parser.add_argument("--wait", type=float, default=60.0)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        part, *rest = args.one
        if part == "control":
            print(control(int(rest[0]), int(rest[1])))
        elif part == "http":
            print(asyncio.run(http(int(rest[0]), float(rest[1]))))
        else:
            print(bomb(int(rest[0]), int(rest[1])))
        return
    parts = [part for part in args.parts.split(",") if part]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts: {', '.join(unknown)} (known: {', '.join(PARTS)})")
    trees = [("this", SRC)] + ([("baseline", args.baseline)] if args.baseline else [])
    for name, src in trees:
        if "control" in parts:
            figures = _child(src, "control", str(args.connections), str((1 << 20) - 1))
            print(f"control\t{name}\t{args.connections} connections\t{figures}", flush=True)
        if "idle" in parts:
            figures = _child(src, "control", "32", "0")
            print(f"idle\t{name}\t32 silent connections\t{figures}", flush=True)
        if "http" in parts:
            figures = _child(src, "http", str(args.cap), str(args.wait))
            print(f"http\t{name}\t{args.cap} non-readers\tserved after {figures} s", flush=True)
        if "gzip" in parts:
            for layers in (1, 2):
                figures = _child(src, "gzip", str(args.mib), str(layers))
                print(f"gzip\t{name}\t{args.mib} MiB, {layers} layers\t{figures}", flush=True)
    print(
        "control, idle: peak MiB, descriptors, seconds to a status; "
        "gzip: seconds, peak MiB, outcome"
    )


if __name__ == "__main__":
    main()
