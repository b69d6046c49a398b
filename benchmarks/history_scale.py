"""How the commands and pages that read history grow with it: 10,000 runs against 50,000.

Run: ``.venv/bin/python benchmarks/history_scale.py [--sizes 10000,50000] [--ops A,B]
[--baseline SRC] [--dir DIR] [--memory]`` (needs ``valgrind`` and ``setarch``; the stores,
built by ``history_store.py`` on first use and kept in ``--dir``, take about 44 KB a run).

Every operation runs in a fresh child process over each store, under ``valgrind
--tool=callgrind`` (``engine_stage_instructions.instructions``: address-space randomisation
off, a fixed hash seed, the ``.pyc`` files compiled first and written by no child), once with
the operation done once and once with it done twice in a row; the difference is the
operation's own instructions, the interpreter's start-up, imports and first-use work
cancelled. A time an operation names (``--since``, ``--until``) is fixed by the store's own
runs, not by the clock (``sample_ids``): the stores are built at different times, and each must
be read for the same runs, a report's previous window whole in each (``report_window``). Each
size's figure is printed with the ratio of the largest size to the smallest: 1.0 is an
operation whose cost does not depend on the history, 5.0 one that reads all of it.
``--memory`` adds each child's peak resident set (``ru_maxrss``, one run of the operation, no
valgrind); ``--memory-only`` measures that alone.

``--baseline SRC`` (another checkout's ``src``) counts the same operations with that tree
first on the path, side by side. Each operation is what a user runs: the CLI in-process
(``taskdaemon.pipeline.cli.main``, output to a buffer), and the web page's and API's routes
through Starlette's test client over a read-only app, as ``taskdaemon ui`` serves them.
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import contextlib
import io
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

from engine_stage_instructions import instructions  # noqa: E402 - the benchmarks directory

TOKEN = "history-scale-token-0123456789"
DAY = 86400.0


def _cli(*argv: str) -> Callable[[Path, dict[str, str]], None]:
    def run(db: Path, ids: dict[str, str]) -> None:
        from taskdaemon.pipeline.cli import main

        args = [a.format(db=db, **ids) for a in argv]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(args)
        if code != 0:
            sys.exit(f"{' '.join(args)}: exit {code}")

    return run


def _web(path: str) -> Callable[[Path, dict[str, str]], None]:
    def run(db: Path, ids: dict[str, str]) -> None:
        client = _client(db)
        answer = client.get(
            path.format(**ids), headers={"Authorization": f"Bearer {TOKEN}", "Host": "127.0.0.1"}
        )
        if answer.status_code != 200:
            sys.exit(f"{path}: {answer.status_code} {answer.text[:500]}")

    return run


_CLIENTS: dict[Path, Any] = {}


def _client(db: Path) -> Any:
    """One app per store and process, as a server keeps one (its first request opens the
    store: that cost is the first repetition's, as a server's first page pays it)."""
    if db not in _CLIENTS:
        from starlette.testclient import TestClient

        from taskdaemon.pipeline.http_security import ApiAuth
        from taskdaemon.pipeline.server import create_app
        from taskdaemon.pipeline.web import WebOptions

        app = create_app(
            auth=ApiAuth.configured(TOKEN),
            web=WebOptions(source_url=f"sqlite:///{db}", read_only=True),
        )
        _CLIENTS[db] = TestClient(app, base_url="http://127.0.0.1")
    return _CLIENTS[db]


class StopWhenScheduleDone(logging.Handler):
    """``serve`` goes on serving after its last run: its own stop signal, once it says so."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("schedule done"):
            os.kill(os.getpid(), signal.SIGTERM)


def _serve_start(db: Path, ids: dict[str, str]) -> None:
    """``taskdaemon serve`` on the store (its home) running one one-stage run, then exiting."""
    pipeline = Path(tempfile.mkdtemp(prefix="history-serve-")) / "one.yaml"
    pipeline.write_text(
        "name: one\nloops: {noop: {handler: 'examples.loops:plan'}}\n"
        "stages:\n  - name: only\n    loop: noop\n"
        "    triggers: [{manual: {approval_required: false}}]\n"
        "    inputs: {goal: {from: request.goal, required: false}}\n"
    )
    serve_log = logging.getLogger("taskdaemon.serve")
    if not any(isinstance(h, StopWhenScheduleDone) for h in serve_log.handlers):
        serve_log.addHandler(StopWhenScheduleDone())
    _cli("serve", "--port", "0", "--pipeline", str(pipeline), "--max-runs", "1")(db, ids)


# The report's window: ``report_window``, the same in every store, not the default 7 days.
WINDOW = ("--since", "{report_since}", "--until", "{report_until}")
OPS: dict[str, Callable[[Path, dict[str, str]], None]] = {
    "runs-list": _cli("runs", "list"),
    "runs-list-50": _cli("runs", "list", "--limit", "50"),
    "runs-list-pipeline": _cli("runs", "list", "--pipeline", "nightly-build", "--limit", "50"),
    "runs-list-failure": _cli("runs", "list", "--status", "failure", "--limit", "50"),
    "runs-list-running": _cli("runs", "list", "--status", "running", "--limit", "50"),
    "runs-list-since-1h": _cli("runs", "list", "--since", "{hour_back}"),
    "runs-list-page-old": _cli("runs", "list", "--until", "{old_start}", "--limit", "50"),
    "runs-show": _cli("runs", "show", "{middle}"),
    "runs-show-prefix": _cli("runs", "show", "{middle_prefix}"),
    "runs-show-json": _cli("runs", "show", "--json", "{middle}"),
    "dag-run": _cli("dag", "examples/feature_delivery.yaml", "--run", "{middle}"),
    "dump": _cli("dump", "{middle}", "-o", "{tmp}/dump.tar.gz"),
    "logs": _cli("logs", "{middle}"),
    "report": _cli("report", *WINDOW),
    "report-12h": _cli("report", "--since", "{half_day}", "--until", "{report_until}"),
    "report-html": _cli("report", *WINDOW, "--format", "html", "-o", "{tmp}/report.html"),
    "retention-none": _cli("retention", "--max-age", "400d", "--keep", "1000000"),
    "runs-list-env-retention": _cli("runs", "list", "--limit", "50"),
    "web-runs": _web("/"),
    "web-run": _web("/runs/{middle}"),
    "api-recent": _web("/api/runs/recent"),
    "api-pipelines": _web("/api/pipelines"),
    "api-run": _web("/api/runs/{middle}"),
    "api-dag": _web("/api/runs/{middle}/dag?format=svg"),
    "api-logs": _web("/api/runs/{middle}/logs?stage=planning"),
    "serve-start": _serve_start,
}
# Settings each operation runs under beside the store's (a user's retention in the environment).
ENV: dict[str, dict[str, str]] = {
    "runs-list-env-retention": {
        "TASKDAEMON_RETENTION_MAX_AGE": "400d",
        "TASKDAEMON_RETENTION_KEEP": "1000000",
    },
}
# Operations that write the store: they run on a copy.
WRITES = {"serve-start"}


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def report_window(newest_s: float) -> tuple[float, float]:
    """The report's window over a store whose newest run started at ``newest_s``: the two days
    to the last noon (UTC) before it. Every store then holds the same runs in it, cut days of
    the same length (half days) at its ends, and the previous window whole once the history is
    five days long (10,000 runs, one a minute, are 6.9 days: too short for the default 7-day
    window's previous one, which made a report of it look like one that grows with history)."""
    until = (newest_s - DAY / 2) // DAY * DAY + DAY / 2
    return until - 2 * DAY, until


def sample_ids(db: Path) -> dict[str, str]:
    """What the operations name: the run in the middle of the history, a prefix of it, the
    start of a run 90% back (a page of old runs), the hour before the newest run, and the
    report's windows (``report_window``, and its last 12 hours), all fixed by the store's runs,
    not by the clock, so each store is read for the same runs whenever it was built."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    (total,) = conn.execute("SELECT count(*) FROM runs").fetchone()
    (middle,) = conn.execute(
        "SELECT trace_id FROM runs ORDER BY start_ns LIMIT 1 OFFSET ?", (total // 2,)
    ).fetchone()
    (old_ns,) = conn.execute(
        "SELECT start_ns FROM runs ORDER BY start_ns LIMIT 1 OFFSET ?", (total // 10,)
    ).fetchone()
    (newest_ns,) = conn.execute("SELECT max(start_ns) FROM runs").fetchone()
    conn.close()
    since, until = report_window(newest_ns / 1e9)
    return {
        "middle": middle,
        "middle_prefix": middle[:8],
        "old_start": _iso(old_ns / 1e9),
        "hour_back": _iso(newest_ns / 1e9 - 3600),
        "report_since": _iso(since),
        "half_day": _iso(until - DAY / 2),
        "report_until": _iso(until),
    }


def holds_report_windows(db: Path) -> bool:
    """Whether ``db`` holds the report's window and the previous one whole (a report of a
    store that does not compares nothing, less work than one that does)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        oldest_ns, newest_ns = conn.execute(
            "SELECT min(start_ns), max(start_ns) FROM runs"
        ).fetchone()
    since, until = report_window(newest_ns / 1e9)
    return bool(oldest_ns / 1e9 <= since - (until - since))


def child(op: str, db: Path, reps: int) -> None:
    """Do ``op`` ``reps`` times over ``db`` (in this process)."""
    ids = {**sample_ids(db), "tmp": tempfile.mkdtemp(prefix="history-op-")}
    atexit.register(shutil.rmtree, ids["tmp"], True)
    for _ in range(reps):
        OPS[op](db, ids)


def _env(source: str, db: Path, op: str) -> dict[str, str]:
    home = Path(tempfile.mkdtemp(prefix="history-home-"))
    atexit.register(shutil.rmtree, home, True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((source, str(HERE.parent))))
    env.update(TASKDAEMON_HOME=str(home), TASKDAEMON_SPAN_SOURCE=f"sqlite:///{db}")
    env.update(ENV.get(op, {}))
    for name in ("TASKDAEMON_RETENTION_MAX_AGE", "TASKDAEMON_RETENTION_KEEP"):
        if name not in ENV.get(op, {}):
            env.pop(name, None)
    if op in WRITES:
        env["TASKDAEMON_HOME"] = str(db.parent)
    return env


def _command(op: str, db: Path, reps: int) -> list[str]:
    return [sys.executable, __file__, "--child", op, "--db", str(db), "--reps", str(reps)]


def _store_for(op: str, db: Path) -> Path:
    """The store ``op`` reads: ``db`` itself, or for an operation that writes, a copy of it
    named ``spans.db`` in a folder of its own (that folder is its ``TASKDAEMON_HOME``)."""
    if op not in WRITES:
        return db
    folder = Path(tempfile.mkdtemp(prefix="history-copy-", dir=db.parent))
    copy = folder / "spans.db"
    subprocess.run(["cp", "--reflink=auto", str(db), str(copy)], check=True)
    return copy


def own_instructions(source: str, op: str, db: Path) -> int:
    """Instructions of ``op`` itself over ``db``: twice - once."""
    counts = []
    for reps in (1, 2):
        store = _store_for(op, db)
        try:
            counts.append(instructions(_command(op, store, reps), _env(source, store, op)))
        finally:
            if store != db:
                subprocess.run(["rm", "-rf", str(store.parent)], check=False)
    return counts[1] - counts[0]


def peak_kib(source: str, op: str, db: Path) -> int:
    """Peak resident set of a child doing ``op`` once, in KiB."""
    store = _store_for(op, db)
    try:
        process = subprocess.Popen(_command(op, store, 1), env=_env(source, store, op))
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            sys.exit(f"{op}: exit {process.returncode}")
        return usage.ru_maxrss
    finally:
        if store != db:
            subprocess.run(["rm", "-rf", str(store.parent)], check=False)


def ensure_store(folder: Path, runs: int) -> Path:
    """The store of ``runs`` runs in ``folder``, built (and its report caught up) if missing.

    Built by a child of its own: a child's peak resident set counts its parent's up to its
    ``exec`` (``vfork``), so a parent that built a store in-process gave every ``--memory``
    child the builder's peak."""
    db = folder / f"history-{runs}.db"
    if db.exists():
        with contextlib.closing(sqlite3.connect(db)) as conn:
            if conn.execute("SELECT count(*) FROM runs").fetchone()[0] == runs:
                return db
    print(f"building {db} ({runs} runs)...", file=sys.stderr, flush=True)
    builder = [sys.executable, str(HERE / "history_store.py"), "--runs", str(runs), "--db", str(db)]
    subprocess.run(builder, stdout=sys.stderr, check=True)
    # A first report catches the per-day totals up, once; every later report reads them.
    subprocess.run(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "report"],
        env=dict(os.environ, TASKDAEMON_SPAN_SOURCE=f"sqlite:///{db}"),
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--baseline", metavar="SRC")
    # A folder of its own: a store is not made in one anyone may write (the temporary one).
    bench = Path(tempfile.gettempdir()) / "taskdaemon-benchmarks"
    parser.add_argument("--dir", type=Path, default=bench)
    parser.add_argument("--memory", action="store_true", help="also each child's peak RSS")
    parser.add_argument("--memory-only", action="store_true", help="peak RSS, no valgrind")
    parser.add_argument("--jobs", type=int, default=2, help="valgrind children at once")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db, args.reps)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    ops = args.ops.split(",")
    trees = {"this": os.environ.get("PYTHONPATH") or str(SRC)}
    if args.baseline:
        trees["base"] = os.path.abspath(args.baseline)
    stores = {size: ensure_store(args.dir, size) for size in sizes}
    short = [size for size in sizes if not holds_report_windows(stores[size])]
    if short and any(op.startswith("report") for op in ops):
        sys.exit(
            f"{short[0]:,} runs do not hold the report's window and the one before it: "
            "the report's operations need five days of runs (7,200, one a minute)"
        )
    for source in (*trees.values(), str(HERE)):  # .pyc read by every child, written by none
        subprocess.run([sys.executable, "-m", "compileall", "-q", source], check=True)
    small, large = sizes[0], sizes[-1]
    header = f"{'operation':26} {'tree':5}" + "".join(f" {s:>14,}" for s in sizes)
    memory = args.memory or args.memory_only
    print(header + f" {'ratio':>7}" + ("   peak MiB (ratio)" if memory else ""), flush=True)
    count = own_instructions if not args.memory_only else lambda *_: 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {
            (tree, op, size): pool.submit(count, trees[tree], op, stores[size])
            for op in ops
            for tree in trees
            for size in sizes
        }
        for op in ops:
            for tree, source in trees.items():
                row = [futures[tree, op, size].result() for size in sizes]
                ratio = row[-1] / row[0] if row[0] > 0 else float("nan")
                line = f"{op:26} {tree:5}" + "".join(f" {n:>14,}" for n in row)
                line += f" {ratio:7.2f}"
                if memory:
                    low = peak_kib(source, op, stores[small])
                    high = peak_kib(source, op, stores[large])
                    line += f"   {low / 1024:.0f} -> {high / 1024:.0f} ({high / low:.2f})"
                print(line, flush=True)


if __name__ == "__main__":
    main()
