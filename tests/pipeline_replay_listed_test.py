"""Every list of runs says which runs are replays, and of which run: Tempo's and Jaeger's
searches, and a store written before ``runs.replay_of`` existed (schema 10)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline_replay_support import Recording
from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline.tracking import (
    JaegerSource,
    SpanStore,
    TempoSource,
    encode_traces,
    open_source,
)
from taskdaemon.pipeline.tracking._schema import SCHEMA_VERSION


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
