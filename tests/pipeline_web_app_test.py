"""The web page's app (``web/_app.py``): what its pages say about where runs come from."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from cli_support import taskdaemon
from pipeline_tracking_support import store_with
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.web import WebOptions

TOKEN = "qa-web-app-token-0123456789"


async def test_the_runs_page_names_its_source_without_its_secrets() -> None:
    """A span source URL holding a password and a ``token=`` query is named on the runs page
    with both redacted."""
    source = "tempo+http://alice:hunter2pw@127.0.0.1:9?org=acme&token=qtokensecret"
    app = create_app(
        auth=ApiAuth.configured(TOKEN), web=WebOptions(source_url=source, read_only=True)
    )
    server = MonitorServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client:
            page = (await client.get("/")).text
    finally:
        await server.aclose()
        app.state.web.close()
    expected = (True, False, False)
    actual = (
        "Stored runs from <code>tempo+http://alice:" in page,
        "hunter2pw" in page,
        "qtokensecret" in page,
    )
    assert expected == actual


@contextlib.asynccontextmanager
async def stored(db: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A read-only page server over the store ``db`` and a client holding its token."""
    app = create_app(
        auth=ApiAuth.configured(TOKEN),
        web=WebOptions(source_url=f"sqlite:///{db}", read_only=True),
    )
    server = MonitorServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client:
            yield client
    finally:
        await server.aclose()
        app.state.web.close()


async def test_the_run_record_of_one_stage_holds_that_stage_alone(tmp_path: Path) -> None:
    """``GET /api/runs/{id}?stage=S`` (what the stage panel asks) answers the run with ``S``'s
    record and edges only and no run attributes, so selecting a stage of a 2,000-stage run does
    not fetch all 2,000 with the definition."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with stored(tmp_path / "spans.db") as client:
        answer = (await client.get(f"/api/runs/{run_id}", params={"stage": "slow"})).json()
    expected = (run_id, ["slow"], [("work", "slow"), ("slow", "done")], {})
    actual = (
        answer["run_id"],
        [stage["name"] for stage in answer["stages"]],
        [(edge["source"], edge["target"]) for edge in answer["edges"]],
        answer["attributes"],
    )
    assert expected == actual


async def test_the_run_record_of_a_stage_the_run_lacks_is_404_naming_its_stages(
    tmp_path: Path,
) -> None:
    """``?stage=`` naming no stage of the run is 404 with the run's stages, as the logs
    routes answer it, not a record without stages."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with stored(tmp_path / "spans.db") as client:
        response = await client.get(f"/api/runs/{run_id}", params={"stage": "sloww"})
    expected = (404, f"run {run_id} has no stage 'sloww' (its stages: work, fast, slow, done)")
    actual = (response.status_code, response.json()["error"])
    assert expected == actual


def run_ids(page: str) -> list[str]:
    """The runs a runs page lists, in its order."""
    return re.findall(r'<tr data-run-id="([0-9a-f]+)"', page)


async def test_a_full_runs_page_links_to_the_runs_older_than_its_last(tmp_path: Path) -> None:
    """A runs page showing as many runs as its limit says so and links to the older ones:
    following the link lists the runs after its last row, newest first."""
    ids = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10, 10, 10])
    async with stored(tmp_path / "spans.db") as client:
        first = (await client.get("/", params={"limit": 2})).text
        link = re.search(r'<a id="older-runs" href="([^"]+)"', first)
        older = (await client.get(html.unescape(link.group(1)) if link else "/nowhere")).text
    expected = ([ids[2], ids[1]], [ids[0]])
    actual = (run_ids(first), run_ids(older))
    assert expected == actual


async def test_a_page_after_a_run_the_source_lacks_or_no_run_id_is_refused(
    tmp_path: Path,
) -> None:
    """``before`` names the run a page follows: one the store does not hold, or text that
    is no run id, is a 400 saying which, on the page and in the API alike."""
    await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with stored(tmp_path / "spans.db") as client:
        gone = await client.get("/api/runs/recent", params={"before": "ab" * 16})
        bad = await client.get("/", params={"before": "x" * 60})
    assert (400, f"no run '{'ab' * 16}' in {tmp_path / 'spans.db'}") == (
        gone.status_code,
        gone.json()["error"],
    )
    assert 400 == bad.status_code
    assert "before: not a run id (32 hex digits): &#39;" + "x" * 39 + "…&#39;" in bad.text


def empty_rows(page: str) -> list[str]:
    """The line a runs page's table shows instead of rows, if any."""
    found = re.findall(r'<tr class="empty"><td colspan="8">([^<]*)</td>', page)
    return [html.unescape(text) for text in found]


async def test_a_pipeline_nobody_ran_is_said_so_as_runs_list_says_it(tmp_path: Path) -> None:
    """Filtered by a pipeline the store holds no run of, the page and its API say so in the
    words of ``runs list --pipeline`` (a typo reads as one), where filters that match no run of
    a pipeline the store holds say that no run matches."""
    db = tmp_path / "spans.db"
    await asyncio.to_thread(store_with, db, [10])  # a run of "etl", a success
    async with stored(db) as client:
        typo = (await client.get("/", params={"pipeline": "etll"})).text
        answer = (await client.get("/api/runs/recent", params={"pipeline": "etll"})).json()
        cancelled = {"pipeline": "etl", "status": "cancelled"}
        none = (await client.get("/", params=cancelled)).text
        listed = (await client.get("/api/runs/recent", params={"pipeline": "etl"})).json()
    cli = taskdaemon(tmp_path, "runs", "list", "--pipeline", "etll", "--source", f"sqlite:///{db}")
    said = "No run of pipeline 'etll' is known to this source."
    expected = ([said], {"runs": [], "empty": said}, ["No runs match."], (1, None), said)
    actual = (
        empty_rows(typo),
        answer,
        empty_rows(none),
        (len(listed["runs"]), listed["empty"]),
        f"N{cli.stdout.strip()[1:]}.",
    )
    assert expected == actual, cli.stderr
