"""The span store's row layout: a rowid table (schema 9) against a WITHOUT ROWID tree (schema 8).

``.venv/bin/python benchmarks/span_rows.py [--runs 1000] [--stages 22] [--rounds 3]``

Writes the same span rows into both layouts of the ``spans`` table, alternating, each round in
a fresh file, as the writer does (WAL, ``synchronous = NORMAL``, no automatic checkpoint, the
rows in 16 transactions of ``INSERT OR REPLACE`` with a passive checkpoint after each), and
prints the thread's CPU per row (median and range) and the file's size. Four cases: rows of
400 bytes (a span without payloads) and of 1,400 bytes (a stage span of ``taskdaemon run``, with
its input and output events), each written run by run (one run at a time) and interleaved
(stage ``i`` of every run, then stage ``i + 1``: many runs open at once, as in
``concurrent_runs.py``). Only SQLite is measured: the rows are built before the clock starts.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from typing import Any

_COLUMNS = (
    "trace_no INTEGER NOT NULL, span_id TEXT NOT NULL, start_ns INTEGER NOT NULL, "
    "end_ns INTEGER, resource_no INTEGER NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (trace_no, span_id)"
)
LAYOUTS = {"rowid (schema 9)": "", "WITHOUT ROWID (schema 8)": " WITHOUT ROWID"}
BATCHES = 16


def make_rows(runs: int, stages: int, body: int, interleaved: bool) -> list[tuple[Any, ...]]:
    """One row per stage span and one per run span, random span ids, in writing order."""
    rnd = random.Random(1)
    text = "x" * body

    def row(run: int) -> tuple[Any, ...]:
        return (run, f"{rnd.getrandbits(64):016x}", 1, 2, 1, text)

    if interleaved:
        return [row(run) for _ in range(stages + 1) for run in range(runs)]
    return [row(run) for run in range(runs) for _ in range(stages + 1)]


def write(rows: list[tuple[Any, ...]], tail: str) -> tuple[float, int]:
    """(CPU seconds of the writing thread, file bytes) for ``rows`` in a fresh file."""
    with tempfile.TemporaryDirectory() as home:
        path = os.path.join(home, "spans.db")
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"CREATE TABLE spans ({_COLUMNS}){tail}")
            per = len(rows) // BATCHES + 1
            began = time.thread_time()
            for start in range(0, len(rows), per):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR REPLACE INTO spans VALUES (?, ?, ?, ?, ?, ?)",
                    rows[start : start + per],
                )
                conn.execute("COMMIT")
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cpu = time.thread_time() - began
        finally:
            conn.close()
        return cpu, os.path.getsize(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--stages", type=int, default=22)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{args.runs} runs x {args.stages + 1} spans, {args.rounds} rounds, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for body in (400, 1400):
        for interleaved in (False, True):
            rows = make_rows(args.runs, args.stages, body, interleaved)
            cpu: dict[str, list[float]] = {name: [] for name in LAYOUTS}
            size: dict[str, int] = {}
            for _ in range(args.rounds):
                for name, tail in LAYOUTS.items():
                    seconds, size[name] = write(rows, tail)
                    cpu[name].append(seconds / len(rows) * 1e6)
            order = "interleaved" if interleaved else "run by run"
            for name, figures in cpu.items():
                print(
                    f"  {body:5d} B rows, {order:11s}  {name:25s} "
                    f"{statistics.median(figures):6.1f} us a row "
                    f"({min(figures):.1f}-{max(figures):.1f}), file {size[name] / 1e6:6.1f} MB"
                )


if __name__ == "__main__":
    main()
