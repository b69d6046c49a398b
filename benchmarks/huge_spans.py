"""Reading a run one of whose spans holds a huge number of events, links or attributes.

Run: ``.venv/bin/python benchmarks/huge_spans.py [--count 1000000] [--cases events,links,
attributes,value,tempo-events] [--ops runs-show,...] [--rounds 3] [--baseline SRC]``.

The store is real: ``taskdaemon run`` of a two-stage pipeline records one run in a temporary
home; copies of its file then have the first stage span's stored row rewritten with ``--count``
more events (``events``), links (``links``) or attributes (``attributes``), or one more
attribute whose text is ``--count`` characters long (``value``: ``--count 104857600`` is the
crafted 100 MB attribute of ``tests/reliability_store_crafted_test.py``), as another tool
writing the file, or someone crafting it, could. ``tempo-events`` serves the run's spans, the
same ``--count`` events added, as Tempo's ``/api/v2/traces`` answer from a local HTTP server
(within the remote sources' size bound for a million events).

Each operation is a whole process, what a user waits for: ``runs show``, ``runs show --json``,
``runs list``, ``report``, ``dag --run``, and ``api-run``, the web page's run data
(``/api/runs/RUN`` through Starlette's test client over a read-only app, as ``taskdaemon ui``
serves it). Each prints the median wall time of ``--rounds`` processes and their largest peak
resident set (the kernel's ``VmHWM``); ``--baseline SRC`` (another checkout's ``src``) runs the
same processes with that tree, side by side, the two trees taking turns to go first, after
an untimed one of each (modules compiled once, kept in the run's folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
TASKDAEMON = Path(sys.executable).with_name("taskdaemon")
TOKEN = "huge-spans-token-0123456789abcdef"

PIPELINE = """\
name: huge
stages:
  - name: a
    command: "echo '{\\"x\\": 1}'"
    triggers: [{manual: {approval_required: false}}]
  - name: b
    command: "true"
    triggers: [{on_completion: {stage: a}}]
"""

#: Each child: the operation, then its peak resident set on stderr's last line.
CHILD = """\
import contextlib, io, sys
op, source, run_id = sys.argv[1:4]
cli = {
    "runs-show": ["runs", "show", run_id],
    "runs-show-json": ["runs", "show", "--json", run_id],
    "runs-list": ["runs", "list"],
    "report": ["report"],
    "dag-run": ["dag", "--run", run_id],
}
if op in cli:
    from taskdaemon.pipeline.cli import main
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main([*cli[op], "--source", source])
    if code != 0 or op in ("runs-show", "dag-run") and run_id not in out.getvalue():
        sys.exit(f"{op}: exit {code}")
else:
    from starlette.testclient import TestClient
    from taskdaemon.pipeline.http_security import ApiAuth
    from taskdaemon.pipeline.server import create_app
    from taskdaemon.pipeline.web import WebOptions
    app = create_app(
        auth=ApiAuth.configured(sys.argv[4]), web=WebOptions(source_url=source, read_only=True)
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        answer = client.get(
            f"/api/runs/{run_id}",
            headers={"Authorization": f"Bearer {sys.argv[4]}", "Host": "127.0.0.1"},
        )
    if answer.status_code != 200:
        sys.exit(f"{op}: {answer.status_code} {answer.text[:300]}")
status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
print(status, file=sys.stderr)
"""

OPS = ("runs-show", "runs-show-json", "runs-list", "report", "dag-run", "api-run")
CASES = ("events", "links", "attributes", "value", "tempo-events")


def _record(home: Path) -> tuple[Path, str]:
    """A store in ``home`` holding one finished run of ``PIPELINE``, and the run's id."""
    (home / "huge.yaml").write_text(PIPELINE)
    env = dict(os.environ, TASKDAEMON_HOME=str(home), PYTHONPATH=str(SRC))
    env.pop("TASKDAEMON_SPAN_SOURCE", None)
    subprocess.run(
        [str(TASKDAEMON), "run", "-q", str(home / "huge.yaml")],
        env=env,
        cwd=home,
        capture_output=True,
        check=True,
    )
    with sqlite3.connect(home / "spans.db") as conn:
        ((run_id,),) = conn.execute("SELECT trace_id FROM runs").fetchall()
    conn.close()
    return home / "spans.db", str(run_id)


def _crafted(source: Path, case: str, count: int) -> Path:
    """A copy of ``source`` whose first ended stage span holds ``count`` more of ``case``."""
    db = source.with_name(f"{case}.db")
    shutil.copy(source, db)
    with sqlite3.connect(db) as conn:
        rowid, body = conn.execute(
            "SELECT s.rowid, s.body FROM spans s WHERE s.end_ns IS NOT NULL "
            "AND s.body LIKE '%cicd.pipeline.task.name%' ORDER BY s.rowid LIMIT 1"
        ).fetchone()
        fields = json.loads(body)
        if case == "events":
            fields[6] = [["e", i, {"i": i}] for i in range(count)] + fields[6]
        elif case == "links":
            fields[7] = [["ab" * 16, f"{i:016x}", {"i": i}] for i in range(count)] + fields[7]
        elif case == "attributes":
            fields[5] = {**{f"a{i}": i for i in range(count)}, **fields[5]}
        else:
            fields[5] = {**fields[5], "big": "x" * count}
        conn.execute(
            "UPDATE spans SET body = ? WHERE rowid = ?",
            (json.dumps(fields, separators=(",", ":")), rowid),
        )
    conn.close()
    return db


def _tempo_answer(db: Path, run_id: str, count: int) -> bytes:
    """Tempo's v2 answer for the run, its first stage span holding ``count`` more events."""
    sys.path.insert(0, str(SRC))
    from taskdaemon.pipeline.record_fields import replace
    from taskdaemon.pipeline.tracking.otlp_json import encode_traces
    from taskdaemon.pipeline.tracking.spans import SpanEventRecord
    from taskdaemon.pipeline.tracking.store import SpanStore

    with SpanStore(db) as store:
        spans = store.get_trace(run_id)
    stage = next(i for i, span in enumerate(spans) if span.parent_span_id is not None)
    more = tuple(SpanEventRecord("e", i, {}) for i in range(count))
    spans[stage] = replace(spans[stage], events=more + tuple(spans[stage].events))
    return json.dumps({"trace": encode_traces(spans)}, separators=(",", ":")).encode()


class _Tempo:
    """A local HTTP server answering every GET with one body (a trace of Tempo's API)."""

    def __init__(self, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if "/api/search" in self.path:
                    self._send(b'{"traces": []}')
                else:
                    self._send(body)

            def _send(self, data: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"tempo+http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _child(tree: str, op: str, source: str, run_id: str, home: Path) -> tuple[float, float]:
    """Wall seconds and peak MiB of one operation in a fresh process of ``tree``."""
    env = dict(os.environ, TASKDAEMON_HOME=str(home), PYTHONPATH=tree)
    env.pop("TASKDAEMON_SPAN_SOURCE", None)
    # Compiled modules kept for every child, in the run's folder: a tree whose own folders
    # hold none (PYTHONDONTWRITEBYTECODE) would otherwise compile its modules in each child.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, op, source, run_id, TOKEN],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{tree}: {op} on {source}: {done.stderr.strip()[-2000:]}")
    return seconds, int(done.stderr.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="SRC")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    ops = [o for o in args.ops.split(",") if o]
    unknown = sorted({*cases} - {*CASES}) + sorted({*ops} - {*OPS})
    if unknown:
        parser.error(f"unknown cases or ops: {', '.join(unknown)}")
    trees = {"this": str(SRC)}
    if args.baseline:
        trees["base"] = os.path.abspath(args.baseline)
    with tempfile.TemporaryDirectory(prefix="huge-spans-") as folder:
        home = Path(folder)
        store, run_id = _record(home)
        print(f"one span with {args.count} more of each case; seconds and peak MiB a process")
        print(f"{'case':13} {'operation':15} " + "  ".join(f"{t:>16}" for t in trees))
        for case in cases:
            tempo = None
            if case == "tempo-events":
                tempo = _Tempo(_tempo_answer(store, run_id, args.count))
                source = tempo.url
            else:
                source = f"sqlite:///{_crafted(store, case, args.count)}"
            try:
                for op in ops:
                    if case == cases[0]:  # untimed: each tree's modules compiled for this op
                        for tree in trees.values():
                            _child(tree, op, source, run_id, home)
                    runs: dict[str, list[tuple[float, float]]] = {tree: [] for tree in trees}
                    for round_ in range(args.rounds):
                        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
                        for tree in order:
                            runs[tree].append(_child(trees[tree], op, source, run_id, home))
                    cells = "  ".join(
                        f"{statistics.median(s for s, _ in runs[tree]):6.2f} s "
                        f"{max(m for _, m in runs[tree]):6.0f} MiB"
                        for tree in trees
                    )
                    print(f"{case:13} {op:15} {cells}", flush=True)
            finally:
                if tempo is not None:
                    tempo.close()


if __name__ == "__main__":
    main()
