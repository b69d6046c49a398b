"""A Tempo answer of few bytes and many values: what ``get_trace`` costs before it is refused.

``.venv/bin/python benchmarks/dense_answers.py [--mib 64] [--baseline SRC]``

For each kind of answer, a child process serves ``--mib`` MiB of it from a local HTTP server
(a thread of the child) and asks ``TempoSource.get_trace`` for a trace; it prints the seconds
the query took, the child's peak RSS (``VmHWM``, the served body included) and how the query
ended. The kinds: ``lists`` (``[[],[],...]``), ``zeros`` (``[0,0,...]``), ``nested`` (lists 90
deep, within the depth limit, side by side), ``attributes`` (one span with tiny attributes of
23 bytes) and ``attributes-at-bound`` (attributes of 32 bytes, one value per 8 bytes: the
densest answer still decoded). With ``--baseline SRC`` (``git archive main src | tar -x -C
/tmp/base``, then ``--baseline /tmp/base/src``) each kind is measured with SRC too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
KINDS = ("lists", "zeros", "nested", "attributes", "attributes-at-bound")
TRACE = "0" * 31 + "1"


def answer(kind: str, size: int) -> bytes:
    """About ``size`` bytes of the answer ``kind``."""
    if kind in ("lists", "zeros", "nested"):
        unit = {"lists": b"[],", "zeros": b"0,", "nested": b"[" * 90 + b"]" * 90 + b","}[kind]
        return b"[" + unit * (size // len(unit)) + b"[]]"
    key = b"k" if kind == "attributes" else b"k" * 10
    unit = b'{"key":"' + key + b'","value":{}},'
    head = b'{"batches":[{"resource":{"attributes":[]},"scopeSpans":[{"spans":[{"traceId":"'
    span = TRACE.encode() + b'","spanId":"00000000000000aa","name":"x","attributes":['
    return head + span + unit * (size // len(unit)) + b'{"key":"k","value":{}}]}]}]}]}'


def one(kind: str, size: int) -> None:
    """Serve the answer and query it in this process; print one line of figures."""
    took, ended = tempo_query(answer(kind, size), {"Content-Type": "application/json"})
    with open("/proc/self/status") as status:
        peak = int(status.read().split("VmHWM:")[1].split()[0]) // 1024
    print(f"{took:.2f}\t{peak}\t{ended}")


def tempo_query(body: bytes, headers: Mapping[str, str]) -> tuple[float, str]:
    """Serve ``body`` with ``headers`` from a local HTTP server (a thread of this process) and
    ask ``TempoSource.get_trace`` (the tree of ``PYTHONPATH``) for a trace: the seconds the
    query took and how it ended (``N spans``, or the exception's type). Also used by
    ``hostile_clients.py``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    from taskdaemon.pipeline.tracking import TempoSource  # the tree of PYTHONPATH

    began = time.perf_counter()
    try:
        with TempoSource(f"http://127.0.0.1:{httpd.server_address[1]}") as source:
            ended = f"{len(source.get_trace(TRACE))} spans"
    except Exception as exc:  # how the query ended is a figure
        ended = type(exc).__name__
    took = time.perf_counter() - began
    httpd.shutdown()
    httpd.server_close()
    thread.join()
    return took, ended


def measure(kind: str, size: int, src: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(src))
    done = subprocess.run(
        [sys.executable, __file__, "--one", kind, "--bytes", str(size)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=64.0)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--one", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--bytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.bytes)
        return
    size = int(args.mib * 2**20) - 256
    trees = [("this", SRC)] + ([("baseline", args.baseline)] if args.baseline else [])
    print(f"answers of {args.mib:g} MiB; seconds, peak MiB (the served body included), outcome")
    print("kind\ttree\tseconds\tpeak MiB\toutcome")
    for kind in KINDS:
        for name, src in trees:
            print(f"{kind}\t{name}\t{measure(kind, size, src)}", flush=True)


if __name__ == "__main__":
    main()
