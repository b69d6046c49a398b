"""Every list of runs says which runs are replays, and of which run: ``runs list`` (table and
JSON) from the store and from a dump, the API's list and the web page's, Tempo's and Jaeger's
searches, and a store written before ``runs.replay_of`` existed (schema 10); and what a
replay's FAILED counts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_support import TOKEN, browser_page, stored_runs_server
from cli_support import taskdaemon, write
from pipeline_replay_support import Recording
from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline.cli.run_tables import format_runs_table
from taskdaemon.pipeline.tracking import (
    JaegerSource,
    SpanStore,
    TempoSource,
    encode_traces,
    open_source,
)
from taskdaemon.pipeline.tracking._schema import SCHEMA_VERSION

EXAMPLE = "examples/feature_delivery.yaml"


def _listed(home: Path, *options: str) -> dict[str, str | None]:
    """``runs list --json`` (with ``options``): run id -> replay_of."""
    done = taskdaemon(home, "runs", "list", "--json", *options)
    assert 0 == done.returncode, done.stderr
    return {row["run_id"]: row["replay_of"] for row in json.loads(done.stdout)}


async def _web_lists(db: Path) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The API's list (run id -> replay_of) and the runs page's Replay of links (run id ->
    href, empty for a row with none) as the server renders them and as its script redraws
    them, read in chromium."""
    rows_js = (
        "rows => rows.map(r => [r.dataset.runId,"
        " (r.querySelector('a.replay-of') || {}).pathname || ''])"
    )
    async with stored_runs_server(db) as url:
        async with httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}) as client:
            answer = (await client.get(f"{url}/api/runs/recent")).json()
        async with browser_page() as (page, errors):
            await page.goto(f"{url}/?token={TOKEN}")
            served = await page.eval_on_selector_all("#runs tbody tr", rows_js)
            await page.wait_for_selector('#runs-updated:has-text("Updated")')
            redrawn = await page.eval_on_selector_all("#runs tbody tr", rows_js)
            assert [] == errors
    api = {row["run_id"]: row["replay_of"] for row in answer["runs"]}
    return api, dict(served), dict(redrawn)


@pytest.mark.slow
def test_runs_list_the_api_and_the_web_page_say_which_runs_are_replays(
    home: Path, tmp_path: Path
) -> None:
    """The example run and two real ``taskdaemon replay``s of it (one whole, one resumed from
    a stage): ``runs list --json`` gives each replay's ``replay_of`` and the run's null, from
    the store and from a replay's dump; the table gains a REPLAY OF column with the first 8
    digits of the original, ``-`` on its own row; the API's list gives the same ids and the
    runs page links each replay's original, in the server's rendering and the script's."""
    done = taskdaemon(home, "run", EXAMPLE, "--auto-approve", "-q")
    assert 0 == done.returncode, done.stderr
    original = done.stdout.strip()
    for options in ([], ["--from", "verification"]):
        replay = taskdaemon(home, "replay", original, "-q", *options)
        assert 0 == replay.returncode, replay.stderr
    listed = _listed(home)
    replays = sorted(run_id for run_id in listed if run_id != original)
    expected = {original: None, **dict.fromkeys(replays, original)}
    table = taskdaemon(home, "runs", "list").stdout.splitlines()
    dump = tmp_path / "replay.tar.gz"
    assert 0 == taskdaemon(home, "dump", replays[0], "-o", str(dump)).returncode
    dumped = _listed(home, "--source", f"dump://{dump}")
    api, served, redrawn = asyncio.run(_web_lists(home / "spans.db"))
    links = {run_id: (f"/runs/{original}" if of else "") for run_id, of in expected.items()}
    assert (2, expected, {replays[0]: original}, expected) == (
        len(replays),
        listed,
        dumped,
        api,
    )
    assert (links, links) == (served, redrawn)
    cells = {line.split()[0]: line.split()[-1] for line in table[1:]}
    assert ("REPLAY OF", {original: "-", **dict.fromkeys(replays, original[:8])}) == (
        table[0][-len("REPLAY OF") :],
        cells,
    )


_FAILING = """\
    name: failing
    error_strategy: continue
    stages:
      - name: a
        command: "exit 3"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        triggers: [{on_completion: {stage: a, success_only: false}}]
"""


def _failing_replayed(home: Path, tmp_path: Path) -> tuple[str, str, str]:
    """A run of ``_FAILING`` and its replay from ``b``: their ids and the replay's output."""
    pipeline = write(tmp_path / "failing.yaml", _FAILING)
    original = taskdaemon(home, "run", str(pipeline), "-q").stdout.strip()
    replay = taskdaemon(home, "replay", original, "--from", "b")
    new = next(line for line in replay.stdout.splitlines() if line.startswith("run ")).split()[1]
    return original, new, replay.stdout + replay.stderr


def _failed_counts(home: Path) -> dict[str, tuple[str, int]]:
    """``runs list --json``: each run's status and FAILED."""
    listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    return {row["run_id"]: (row["status"], row["failed_stages"]) for row in listed}


@pytest.mark.slow
def test_a_replay_s_failed_count_counts_the_stages_it_fed_failed(
    home: Path, tmp_path: Path
) -> None:
    """Resumed from ``b``, a replay of a run whose ``a`` failed feeds ``a`` its failure and
    fails of it as the original did, yet ``runs list`` counted it no failed stage (the
    original one). FAILED now counts ``a`` in both, and ``runs show --json`` gives the status
    ``a`` was fed beside the ``replayed`` its row says."""
    original, new, said = _failing_replayed(home, tmp_path)
    shown = json.loads(taskdaemon(home, "runs", "show", new, "--json").stdout)
    assert {original: ("failure", 1), new: ("failure", 1)} == _failed_counts(home), said
    assert [("a", "replayed", ["failure"]), ("b", "success", [None])] == [
        (stage["name"], stage["status"], [a["replayed_status"] for a in stage["attempts"]])
        for stage in shown["stages"]
    ]


@pytest.mark.slow
def test_a_replay_stored_before_fed_stages_counted_is_counted_once_upgraded(
    home: Path, tmp_path: Path
) -> None:
    """A replay stored by a taskdaemon that counted no fed stage among its FAILED (schema 11,
    its row as that writer left it: 0) kept that count, since only its spans can tell. The
    first open of the file by this taskdaemon counts it again from them: FAILED 1, as the
    original's, and the file is at this schema."""
    original, new, said = _failing_replayed(home, tmp_path)
    conn = sqlite3.connect(home / "spans.db")
    try:
        conn.execute("UPDATE runs SET failed_stages = 0 WHERE trace_id = ?", (new,))
        conn.execute("PRAGMA user_version = 11")
        conn.commit()
    finally:
        conn.close()
    counts = _failed_counts(home)
    conn = sqlite3.connect(home / "spans.db")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        stored = conn.execute("SELECT failed_stages FROM runs WHERE trace_id = ?", (new,))
        row = stored.fetchone()
    finally:
        conn.close()
    assert {original: ("failure", 1), new: ("failure", 1)} == counts, said
    assert ((1,), SCHEMA_VERSION) == (row, version)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A store holding a run of the replay tests' pipeline and a real replay of it."""
    db = tmp_path_factory.mktemp("replayed") / "spans.db"
    rec = Recording(db)
    try:
        original = rec.run().run_id
        replay = rec.replay(original).run_id
    finally:
        rec.close()
    return db, original, replay


def test_a_table_without_replays_keeps_its_columns(replayed: tuple[Path, str, str]) -> None:
    """Only a list holding a replay has the REPLAY OF column: the original alone has seven."""
    db, original, _ = replayed
    with SpanStore(db) as store:
        runs = store.search()
    alone = format_runs_table([run for run in runs if run.run_id == original])
    both = format_runs_table(runs)
    assert ("FAILED", "REPLAY OF") == (
        alone.splitlines()[0].split("  ")[-1],
        both.splitlines()[0].split("  ")[-1],
    )


def test_tempo_and_jaeger_searches_say_which_runs_are_replays(
    replayed: tuple[Path, str, str],
) -> None:
    """The run and its replay served by a Tempo (search, then each trace) and by a Jaeger
    (whole traces): each source's summaries carry the replay's ``replay_of``."""
    db, original, replay = replayed
    with SpanStore(db) as store:
        traces = {run_id: store.get_trace(run_id) for run_id in (original, replay)}
    everything = [span for spans in traces.values() for span in spans]
    with serve(Backend()) as tempo, serve(Backend()) as jaeger:
        tempo.route("/api/search", {"traces": [{"traceID": run_id} for run_id in traces]})
        for run_id, spans in traces.items():
            tempo.route(f"/api/v2/traces/{run_id}", {"trace": encode_traces(spans)})
        jaeger.route("/api/v3/traces", {"result": encode_traces(everything)})
        with TempoSource(tempo.url) as tempo_source, JaegerSource(jaeger.url) as jaeger_source:
            found = [
                {summary.run_id: summary.replay_of for summary in source.search(since=0)}
                for source in (tempo_source, jaeger_source)
            ]
    assert [{original: None, replay: original}] * 2 == found


def _as_version_10(db: Path) -> list[str]:
    """Put the store back to schema 10, its ``runs`` table as version 10 created it; returns
    that table's columns."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("ALTER TABLE runs DROP COLUMN replay_of")
        conn.execute("PRAGMA user_version = 10")
        conn.commit()
        return [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    finally:
        conn.close()


def test_a_version_10_store_lists_its_replays_once_upgraded(
    replayed: tuple[Path, str, str], tmp_path: Path
) -> None:
    """A store written before ``runs.replay_of`` existed is upgraded when first opened: the
    column is filled from the stored run spans, the replay lists its original and the run
    none."""
    db, original, replay = replayed
    copy = tmp_path / "old.db"
    source_conn, target = sqlite3.connect(db), sqlite3.connect(copy)
    try:
        source_conn.backup(target)
    finally:
        source_conn.close()
        target.close()
    before = _as_version_10(copy)
    source = open_source(f"sqlite:///{copy}")
    try:
        upgraded = {summary.run_id: summary.replay_of for summary in source.search()}
    finally:
        source.close()
    conn = sqlite3.connect(copy)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        stored = dict(conn.execute("SELECT trace_id, replay_of FROM runs"))
    finally:
        conn.close()
    assert ("replay_of" in before, version) == (False, SCHEMA_VERSION)
    assert [{original: None, replay: original}] * 2 == [upgraded, stored]
