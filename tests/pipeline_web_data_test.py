"""Where the web page reads runs from (``web/_data.py``): the pipelines it lists."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from pipeline_tracking_support import RESOURCE, T0, S, write_run
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
