"""The web page of a large run on a slow line, in Debian's headless chromium: what it costs to
fetch (``http_answers``, "Compression"). Counts of bytes, not times: the page, the DAG and
the stream's first state are what the browser must fetch before it draws the DAG."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from browser_support import SHARED_BROWSER_LOOP, TOKEN, browser_page, stored_runs_server
from pipeline_tracking_support import store_stages

pytestmark = pytest.mark.slow

#: What chromium fetched: [url, bytes on the wire, bytes decoded] for the page and each
#: resource it loaded (Resource Timing; an EventSource's entry comes once its stream closed).
FETCHED = """() => performance.getEntriesByType("navigation")
  .concat(performance.getEntriesByType("resource"))
  .map(e => [e.name, e.encodedBodySize, e.decodedBodySize])"""


def _store_tree(db: Path, count: int) -> str:
    """A stored run of ``count`` stages, each the child of one stage above it (a binary tree)."""
    names = [f"s{i:03d}" for i in range(count)]
    edges = [(names[(i - 1) // 2], names[i]) for i in range(1, count)]
    return store_stages(db, "tree", names, "boom", step=1_000_000, edges=edges)


@SHARED_BROWSER_LOOP
async def test_a_large_runs_page_dag_and_scripts_come_compressed_on_a_slow_line(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A run of 300 stages on a line of 50 KB/s: its page, DAG (SVG in JSON) and script came
    whole, about a megabyte for 500 stages, before the DAG showed. They now come gzipped, the
    page, DAG and event stream under a fifth of their size (the stream by a compressor of
    its own, flushed at each event), the script and style under half; the page still draws
    the DAG, and the stream still says the run ended."""
    run_id = await asyncio.to_thread(_store_tree, tmp_path / "spans.db", 300)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Network.enable")
        slow = {
            "offline": False,
            "latency": 200,
            "downloadThroughput": 50_000,
            "uploadThroughput": 50_000,
        }
        await cdp.send("Network.emulateNetworkConditions", slow)
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector('body[data-stream-state="ended"]', timeout=120_000)
        await page.wait_for_selector("#dag svg g.node", timeout=120_000)
        fetched = await page.evaluate(FETCHED)
        await cdp.detach()
    assert [] == errors
    big = {
        name.removeprefix(url).split("?")[0]: (wire, size)
        for name, wire, size in fetched
        if size > 10_000
    }
    page, dag = f"/runs/{run_id}", f"/api/runs/{run_id}/dag"
    stream = f"/api/runs/{run_id}/stream"
    assert {page, dag, stream, "/static/app.js", "/static/style.css"} <= set(big), big
    # Each at most half its size on the wire, the run's page, DAG and stream a fifth.
    assert [] == [
        (name, wire, size)
        for name, (wire, size) in big.items()
        if wire * (5 if name in (page, dag, stream) else 2) > size
    ]
