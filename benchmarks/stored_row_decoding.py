"""Machine instructions of the readers that decode stored span rows, counted under valgrind.

Run: ``python benchmarks/stored_row_decoding.py --db DB [--baseline SRC]
[--ops show,select,report]`` (needs ``valgrind`` and ``setarch``), where ``DB`` is a store that
``benchmarks/history_store.py`` built, e.g.
``python benchmarks/history_store.py --runs 1000 --db /tmp/history-1000.db``.

Three operations, each counted as the instructions of the operation itself:

- ``show``: ``taskdaemon runs show`` of the store's middle run (a run of
  ``examples/feature_delivery.yaml``, the README's example): a child doing it twice less a
  child doing it once;
- ``select``: ``select_trace`` of every run of the store (1,000 runs in a 1,000-run store), the
  same way, twice less once;
- ``report``: ``taskdaemon report --since 30d`` on a copy of the store whose report aggregates
  were dropped (every row of ``run_aggregates``, ``stage_attempts``, ``critical_steps``,
  ``stage_keys`` and the day tables deleted with SQL before the count), less the same report
  on a copy that has them: the first pass that rebuilds every run (``aggregate_missing``).

With ``--baseline SRC`` (a ``src`` directory of another checkout, e.g. ``git archive main src |
tar -x -C /tmp/base``) each is counted with ``SRC`` too, in the same sitting.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

from engine_stage_instructions import instructions  # noqa: E402 - the benchmarks directory

#: The tables ``aggregate_missing`` fills in: emptied for the ``report`` count.
AGGREGATE_TABLES = (
    "run_aggregates",
    "stage_attempts",
    "critical_steps",
    "stage_keys",
    "run_days",
    "stage_days",
    "histogram_days",
    "stale_days",
)


def _middle_run(conn: sqlite3.Connection) -> str:
    count = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    row = conn.execute(
        "SELECT trace_id FROM runs ORDER BY start_ns LIMIT 1 OFFSET ?", (count // 2,)
    ).fetchone()
    return str(row[0])


def _cli(*args: str) -> None:
    from taskdaemon.pipeline.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(args))
    if code != 0:
        sys.exit(f"{' '.join(args)}: exit {code}")


def child(op: str, db: Path, reps: int) -> None:
    """Do ``op`` ``reps`` times over ``db``, in this process."""
    if op == "report":
        _cli("report", "--since", "30d", "--format", "json")
        return
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    if op == "show":
        run_id = _middle_run(conn)
        conn.close()
        for _ in range(reps):
            _cli("runs", "show", run_id)
        return
    from taskdaemon.pipeline.tracking.store import select_trace

    ids = [row[0] for row in conn.execute("SELECT trace_id FROM runs ORDER BY start_ns")]
    for _ in range(reps):
        spans = 0
        for trace_id in ids:
            spans += len(select_trace(conn, trace_id))
        assert spans >= len(ids), spans
    conn.close()


def _copy(db: Path, *, drop: bool) -> Path:
    """A copy of ``db`` named ``spans.db`` in a folder of its own, its aggregates dropped when
    ``drop``."""
    copy = Path(tempfile.mkdtemp(prefix="decode-copy-", dir=db.parent)) / "spans.db"
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    if drop:
        with target:
            for table in AGGREGATE_TABLES:
                target.execute(f"DELETE FROM {table}")
    target.close()
    copy.chmod(0o600)
    return copy


def _count(source: str, op: str, db: Path, reps: int) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((source, str(HERE))))
    env["TASKDAEMON_HOME"] = tempfile.mkdtemp(prefix="decode-home-")
    env["TASKDAEMON_SPAN_SOURCE"] = f"sqlite:///{db}"
    for name in ("TASKDAEMON_RETENTION_MAX_AGE", "TASKDAEMON_RETENTION_KEEP"):
        env.pop(name, None)
    command = [sys.executable, __file__, "--child", op, "--db", str(db), "--reps", str(reps)]
    try:
        return instructions(command, env)
    finally:
        subprocess.run(["rm", "-rf", env["TASKDAEMON_HOME"]], check=False)


def own_instructions(source: str, op: str, db: Path) -> int:
    """The instructions of ``op`` itself with the package in ``source`` (see the docstring)."""
    if op != "report":
        return _count(source, op, db, 2) - _count(source, op, db, 1)
    counts = []
    for drop in (True, False):
        copy = _copy(db, drop=drop)
        try:
            counts.append(_count(source, op, copy, 1))
        finally:
            subprocess.run(["rm", "-rf", str(copy.parent)], check=False)
    return counts[0] - counts[1]


def main() -> None:
    """Count each operation with each tree; print one line per operation and tree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--baseline", help="a src directory to compare with")
    parser.add_argument("--ops", default="show,select,report")
    parser.add_argument("--child", choices=("show", "select", "report"), help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db, args.reps)
        return
    trees = [("this tree", str(SRC))]
    if args.baseline:
        trees.insert(0, ("baseline", args.baseline))
    for op in args.ops.split(","):
        counted = {label: own_instructions(source, op, args.db) for label, source in trees}
        line = ", ".join(f"{label} {count:,}" for label, count in counted.items())
        if args.baseline:
            line += f" ({counted['this tree'] / counted['baseline'] - 1:+.1%})"
        print(f"{op}: {line}", flush=True)


if __name__ == "__main__":
    main()
