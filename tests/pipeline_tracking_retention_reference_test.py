"""Retention's pass deletes exactly the runs a plain reading of its policy dooms: over stores of
several pipelines with runs that started at the same instant, by count, by age and by both, on
stores whose ``runs`` rowids are packed and on stores with gaps in them (the pass skips the
pipelines' walk when the rowid span fits within ``keep``, ``tracking._retention``)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from taskdaemon.pipeline.tracking import RetentionPolicy, SpanStore
from taskdaemon.pipeline.tracking._schema import connect

MINUTE = 60 * 10**9
T0 = 1_700_000_000 * 10**9

Row = tuple[str, str, int]  # (trace_id, pipeline, start_ns)


def _store(path: Path, rng: random.Random, pipelines: str, *, gaps: bool) -> list[Row]:
    """A store of 20-60 ended runs of ``pipelines`` (one letter each), starting in few
    distinct minutes (many ties); with ``gaps``, a run deleted before each widens the rowid
    span to twice their count."""
    connect(path).close()  # as a writer does: readers never create a store
    rows = [
        (f"{rng.getrandbits(128):032x}", rng.choice(pipelines), T0 + rng.randrange(8) * MINUTE)
        for _ in range(rng.randrange(20, 61))
    ]
    conn = sqlite3.connect(path)
    with conn:
        for trace_id, pipeline, start in rows:
            if gaps:
                conn.execute(
                    "INSERT INTO runs (trace_id, pipeline, status, start_ns) "
                    "VALUES ('gone', 'a', 'success', 0)"
                )
            conn.execute(
                "INSERT INTO runs (trace_id, pipeline, status, start_ns, end_ns) "
                "VALUES (?, ?, 'success', ?, ?)",
                (trace_id, pipeline, start, start + 10**9),
            )
            conn.execute("DELETE FROM runs WHERE trace_id = 'gone'")  # its rowid not reused
    conn.close()
    return rows


def _kept(rows: list[Row], keep: int | None, cutoff: int | None) -> set[str]:
    """The runs a policy keeps, read plainly: per pipeline, newest first by start then by run
    id (the order ``runs list`` shows), the first ``keep`` of those not older than ``cutoff``."""
    kept: set[str] = set()
    for pipeline in {p for _, p, _ in rows}:
        mine = sorted((r for r in rows if r[1] == pipeline), key=lambda r: (r[2], r[0]))[::-1]
        first = mine if keep is None else mine[:keep]
        kept |= {trace_id for trace_id, _, start in first if cutoff is None or start >= cutoff}
    return kept


def _copy(source: Path, target: Path) -> None:
    """``source`` copied whole, write-ahead log included, with SQLite's backup."""
    with sqlite3.connect(source) as reading, sqlite3.connect(target) as writing:
        reading.backup(writing)
    reading.close()
    writing.close()


def _left(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {trace_id for (trace_id,) in conn.execute("SELECT trace_id FROM runs")}
    finally:
        conn.close()


@pytest.mark.parametrize("gaps", [False, True], ids=["packed", "gaps"])
@pytest.mark.parametrize("pipelines", ["a", "abc"])
@pytest.mark.parametrize("seed", range(3))
def test_a_pass_deletes_exactly_the_runs_its_policy_dooms(
    tmp_path: Path, seed: int, pipelines: str, gaps: bool
) -> None:
    """Counts from 0 past the store's runs (each pipeline's own, and the store's less one, at
    which a packed store's rowid span is one too wide), with and without an age, each pass
    on a fresh copy; one pipeline alone holds all of a store's runs."""
    rng = random.Random(seed)
    template = tmp_path / "template.db"
    rows = _store(template, rng, pipelines, gaps=gaps)
    ages = [None, 3.5 * 60, 0.0]  # the newest run is 7 minutes after the oldest at most
    now = (T0 + 7 * MINUTE) / 1e9
    mismatched = []
    sizes = [sum(r[1] == p for r in rows) for p in pipelines] + [len(rows)]
    keeps = {0, 1, 2, 3, 1_000_000} | {n + d for n in sizes for d in (-1, 0, 1) if n + d >= 0}
    for keep in [None, *sorted(keeps)]:
        for age in ages:
            if keep is None and age is None:
                continue
            path = tmp_path / f"{keep}-{age}.db"
            _copy(template, path)
            with SpanStore(path, retention=RetentionPolicy()) as store:
                result = store.apply_retention(RetentionPolicy(max_age=age, keep=keep), now=now)
            cutoff = None if age is None else int((now - age) * 1e9)
            expected = _kept(rows, keep, cutoff)
            left = _left(path)
            if (left, result.deleted_runs) != (expected, len(rows) - len(expected)):
                mismatched.append((keep, age, sorted(left ^ expected), result.deleted_runs))
            path.unlink()
    assert [] == mismatched
