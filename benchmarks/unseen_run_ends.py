"""The writer's machine instructions for the end of a run another process started, counted
under valgrind.

Run: ``python benchmarks/unseen_run_ends.py [--runs 200] [--shape chain] [--baseline SRC]``
(needs ``valgrind`` and ``setarch``).

A run span that ends in a writer that never saw the run start (``taskdaemon serve`` ending a
run a worker process started, a run span handed over after a crash) has no in-memory tally and
no kept attempts: the writer rebuilds the run from its stored spans for its ``runs`` row and
its report aggregates. Each child process makes ``--runs`` ended runs of ``--shape``
(``report_aggregates.py``'s runs, the monitor's attributes), has a first writer store every
stage span and shut down, then (``--which ends``) hands the run spans to a second writer, ten
a batch with a ``force_flush`` after each, or (``--which none``) only opens and closes the
second writer. The figure is (count with the ends - count without) / runs: the instructions
of one unseen run's end, start-up, the runs' making and the first writer cancelled. With
``--baseline SRC`` (a ``src`` directory of another checkout, e.g. ``git archive main src |
tar -x -C /tmp/base``) the same is counted with ``SRC``, in the same sitting.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
RUNS_A_BATCH = 10


def _child(shape: str, runs: int, which: str) -> None:
    from report_aggregates import make_runs
    from taskdaemon.pipeline.tracking import RetentionPolicy, SqliteSpanProcessor

    data = make_runs(shape, runs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spans.db"
        first = SqliteSpanProcessor(path, retention=RetentionPolicy())
        for _, *stages in data:
            for span in stages:
                first.on_end(span)
        first.shutdown()
        second = SqliteSpanProcessor(path, retention=RetentionPolicy())
        if which == "ends":
            for begin in range(0, runs, RUNS_A_BATCH):
                for root, *_ in data[begin : begin + RUNS_A_BATCH]:
                    second.on_end(root)
                second.force_flush()
        second.shutdown()
        with sqlite3.connect(path) as conn:
            ended = conn.execute("SELECT count(*) FROM run_aggregates").fetchone()[0]
        assert ended == (runs if which == "ends" else 0), ended


def main() -> None:
    """Count both variants with each tree; print the instructions per unseen run end."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--shape", default="chain", choices=("chain", "fan", "flat"))
    parser.add_argument("--baseline", help="a src directory to compare with")
    parser.add_argument("--child", choices=("ends", "none"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.shape, args.runs, args.child)
        return
    from engine_stage_instructions import instructions

    trees = [("this tree", SRC)]
    if args.baseline:
        trees.insert(0, ("baseline", args.baseline))
    for label, source in trees:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join((source, HERE)))
        counts = {}
        for which in ("ends", "none"):
            command = [sys.executable, __file__, "--child", which]
            command += ["--runs", str(args.runs), "--shape", args.shape]
            counts[which] = instructions(command, env)
        per_run = (counts["ends"] - counts["none"]) / args.runs
        print(f"{label}: {per_run:,.0f} instructions per unseen run end ({args.shape})")


if __name__ == "__main__":
    main()
