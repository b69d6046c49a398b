"""Where the web page reads runs from (``web/_data.py``): the pipelines it lists, and the
ended runs it keeps for the next requests (not one a remote source may yet add a span to)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from pipeline_remote_run_support import earlier, held_run_spans, tempo_trace
from pipeline_tracking_support import RESOURCE, T0, Backend, S, serve, write_run
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.tracking.sources import open_source
from taskdaemon.pipeline.tracking.writer import SqliteSpanProcessor
from taskdaemon.pipeline.web._data import RunData
from taskdaemon.pipeline.web._views import pipelines_json


def _store(db: Path) -> None:
    """One run of ``old``, then three of ``etl``."""
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SqliteSpanProcessor(db))
    write_run(provider, T0, 10, pipeline="old")
    for i in range(1, 4):
        write_run(provider, T0 + i * 100 * S, 10)
    provider.shutdown()


async def test_a_pipeline_not_among_the_recent_runs_is_listed_with_its_true_count(
    tmp_path: Path,
) -> None:
    """With only the newest two runs read, the pipeline that last ran before them is listed
    too, and each pipeline counts all its runs, not those among the recent ones."""
    await asyncio.to_thread(_store, tmp_path / "spans.db")
    data = RunData(source_url=f"sqlite:///{tmp_path / 'spans.db'}")
    try:
        listed = pipelines_json(*await data.pipelines(limit=2))
    finally:
        data.close()
    assert [("etl", 3), ("old", 1)] == [(p["name"], p["runs"]) for p in listed]


class _Reads:
    """The store of ``url``, counting the runs read from it."""

    def __init__(self, url: str) -> None:
        self.store: Any = open_source(url)
        self.runs = 0

    def get_run(self, run_id: str) -> RunRecord:
        self.runs += 1
        record: RunRecord = self.store.get_run(run_id)
        return record

    def close(self) -> None:
        self.store.close()


def _ended_run(db: Path) -> str:
    """The id of one ended run written into ``db``."""
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SqliteSpanProcessor(db))
    run_id = write_run(provider, T0, 10)
    provider.shutdown()
    return run_id


async def _reads(db: Path, run_id: str, *, kept_for: float) -> int:
    """How often the store was read for a page's record, snapshot, stream (followed to its
    end) and record again."""
    reads = _Reads(f"sqlite:///{db}")
    data = RunData(source_url=f"sqlite:///{db}", opener=lambda _url: reads, kept_for=kept_for)
    try:
        assert (await data.record(run_id)).run_id == run_id
        assert (await data.snapshot(run_id)).run is not None
        streamed = [snapshot.run async for snapshot, _quiet in data.follow(run_id)]
        assert ["success"] == [run.status for run in streamed if run is not None]
        assert (await data.record(run_id)).status == "success"
    finally:
        data.close()
    return reads.runs


async def test_an_ended_run_is_read_once_for_a_views_requests(tmp_path: Path) -> None:
    """The page, its stream and a stage's details each ask for the run: an ended one is
    rebuilt from its spans once while kept, not at each request (seconds each for thousands of
    stages), the stream's follower included (it rebuilt the run once more to end); with
    nothing kept, at each."""
    db = tmp_path / "spans.db"
    run_id = await asyncio.to_thread(_ended_run, db)
    kept, not_kept = [await _reads(db, run_id, kept_for=k) for k in (60.0, 0.0)]
    assert (1, 4) == (kept, not_kept)


async def _torn_reads(hours_ago: int) -> tuple[list[str], int]:
    """The status of deploy in two reads of HELD's run (its spans ``hours_ago`` hours
    earlier) by one ``RunData``, Tempo having every span but deploy's at the first and all of
    them at the second; and how many times Tempo was asked for the run."""
    run_id, _, ended = await held_run_spans()
    ended = [earlier(span, hours_ago * 3600 * 10**9) for span in ended]
    path = f"/api/v2/traces/{run_id}"
    states = []
    with serve(Backend()) as tempo:
        data = RunData(source_url=f"tempo+{tempo.url}")
        try:
            for spans in ([span for span in ended if span.name != "deploy"], ended):
                tempo.route(path, tempo_trace(spans))
                record = await data.record(run_id)
                states.append(next(s.status for s in record.stages if s.name == "deploy"))
        finally:
            data.close()
    return states, sum(line.startswith(path) for line in tempo.requests)


async def test_an_ended_run_still_without_a_stage_span_is_read_afresh() -> None:
    """Tempo has the run span, ended just now, before deploy's: that run is not kept, so the
    next request (the stage panel, a reload) reads deploy's span once it is in. One that
    ended an hour ago is kept: its span is lost, and the run no longer changes."""
    assert ((["skipped", "success"], 2), (["skipped", "skipped"], 1)) == (
        await _torn_reads(0),
        await _torn_reads(1),
    )
