"""``runs list``'s LATE column: a scheduled run's landing delay (``landing``) from the store's
``runs.scheduled_ns`` (schema 13), in the table, ``--json`` and the API's list of runs; and a
store written by schema 12, which has no such column, migrated once on its first open."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_support import TOKEN, stored_runs_server
from cli_support import taskdaemon, write
from schedule_support import EVERY, TAKES, two_runs_the_second_late
from taskdaemon.pipeline.cli.run_tables import format_runs_table
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.records import RunSummary
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.tracking._schema import SCHEMA_VERSION


@pytest.fixture(scope="module")
def scheduled() -> Iterator[tuple[Path, str, str, str]]:
    """A home whose store holds two runs a real ``serve --every 0.2 --max-runs 2`` started
    (the second late) and one ``taskdaemon run`` started by hand: (home, first, second, hand).
    """
    home = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    try:
        first, second = two_runs_the_second_late(home)
        quick = write(
            home / "quick.yaml",
            "name: quick\nstages:\n"
            "  - {name: one, command: 'true', triggers: [{manual: {approval_required: false}}]}\n",
        )
        done = taskdaemon(home, "run", str(quick))
        assert 0 == done.returncode, done.stderr
        hand = re.search(r"\brun ([0-9a-f]{32})\b", done.stdout + done.stderr).group(1)  # type: ignore[union-attr]
        yield home, first, second, hand
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _api_list(db: Path) -> dict[str, Any]:
    """The API's list of runs (``/api/runs/recent``): run id -> row."""

    async def read() -> dict[str, Any]:
        async with (
            stored_runs_server(db) as url,
            httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}) as client,
        ):
            answer = (await client.get(f"{url}/api/runs/recent")).json()
        return {row["run_id"]: row for row in answer["runs"]}

    return asyncio.run(read())


@pytest.mark.slow
def test_runs_list_says_how_late_each_scheduled_run_started(
    scheduled: tuple[Path, str, str, str],
) -> None:
    """The LATE column: the second scheduled run's delay (at least 0.8 s: it waited for the
    first), the first's, and ``-`` for the run started by hand; ``--json`` and the API's list
    give the same seconds as ``runs show --json``. Before: no column, no field."""
    home, first, second, hand = scheduled
    listed = taskdaemon(home, "runs", "list", "--wide")
    rows = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    delays = {row["run_id"]: row.get("landing_delay") for row in rows}
    shown = {
        run_id: json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
        for run_id in (first, second)
    }
    header, *lines = listed.stdout.splitlines()
    cells = {line.split()[0]: line.split()[-1] for line in lines}
    api = _api_list(home / "spans.db")
    assert ("LATE", 3) == (header.split()[-1], len(lines)), listed.stdout
    assert delays[second] >= TAKES - EVERY, rows
    assert {first: shown[first]["landing_delay"], second: shown[second]["landing_delay"]} == {
        first: delays[first],
        second: delays[second],
    }
    assert {
        first: format_duration(delays[first]),
        second: format_duration(delays[second]),
        hand: "-",
    } == cells
    # the API rounds its seconds to the microsecond, as every time it gives
    assert (None, round(delays[second], 6)) == (delays[hand], api[second]["landing_delay"])
    assert None is api[hand]["landing_delay"]


def _summary(run_id: str, scheduled_at: float | None) -> RunSummary:
    return RunSummary(run_id, "p", "success", 100.0, 101.0, 1, 0, scheduled_at=scheduled_at)


def test_a_history_no_schedule_started_keeps_its_columns() -> None:
    """Only a list holding a scheduled run has LATE: runs started by hand keep seven columns,
    and a run on time reads ``0ms``, not ``-``, which is a run no schedule started."""
    alone = format_runs_table([_summary("a" * 32, None)])
    both = format_runs_table([_summary("a" * 32, None), _summary("b" * 32, 100.5)])
    assert ("FAILED", "LATE", ["-", "0ms"]) == (
        alone.splitlines()[0].split()[-1],
        both.splitlines()[0].split()[-1],
        [line.split()[-1] for line in both.splitlines()[1:]],
    )


def _as_version_12(db: Path) -> list[str]:
    """Put the store back to schema 12: its ``runs`` table as version 12 created it (no
    ``scheduled_ns``); returns that table's columns."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("ALTER TABLE runs DROP COLUMN scheduled_ns")
        conn.execute("PRAGMA user_version = 12")
        conn.commit()
        return [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    finally:
        conn.close()


def _rows(db: Path, *tables: str) -> dict[str, list[Any]]:
    conn = sqlite3.connect(db)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}
    finally:
        conn.close()


@pytest.mark.slow
def test_a_version_12_store_lists_its_landing_delays_once_migrated(
    scheduled: tuple[Path, str, str, str], tmp_path: Path
) -> None:
    """A store written before ``runs.scheduled_ns`` existed gains the column on its first
    open, filled from the stored run spans: the same delays as the store written by this
    version, every row of every other table kept, the runs rows the same apart from the new
    column; a second open finds the file at ``SCHEMA_VERSION`` and changes nothing."""
    home, first, second, hand = scheduled
    copy = tmp_path / "old.db"
    source_conn, target = sqlite3.connect(home / "spans.db"), sqlite3.connect(copy)
    try:
        source_conn.backup(target)
    finally:
        source_conn.close()
        target.close()
    before = _as_version_12(copy)
    kept = ("spans", "traces", "logs", "writers", "run_aggregates")
    old = _rows(copy, "runs", *kept)
    with SpanStore(copy) as store:
        delays = {run.run_id: run.landing_delay for run in store.search()}
    once = _rows(copy, "runs", *kept)
    with SpanStore(copy) as store:
        again = {run.run_id: run.landing_delay for run in store.search()}
    conn = sqlite3.connect(copy)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        due = dict(conn.execute("SELECT trace_id, scheduled_ns FROM runs"))
    finally:
        conn.close()
    with SpanStore(home / "spans.db") as store:
        written = {run.run_id: run.landing_delay for run in store.search()}
    assert ("scheduled_ns" in before, version) == (False, SCHEMA_VERSION)
    assert [written] * 2 == [delays, again]
    assert (None, True, True) == (due[hand], due[first] > 0, due[second] > due[first])
    assert [row[:-1] for row in once["runs"]] == old["runs"]
    assert {t: once[t] for t in kept} == {t: old[t] for t in kept}
    assert once == _rows(copy, "runs", *kept)
