"""The history side of the web page in Debian's headless chromium (Playwright): the runs list
paged back over many finished runs while new ones end, as a user walks it, and the page of a
run opened before its first span was stored.

Each test serves a real span store (``ui``'s read-only server) and asserts on what the
browser shows, never on timings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from browser_support import SHARED_BROWSER_LOOP, TOKEN, browser_page, stored_runs_server
from pipeline_tracking_support import RESOURCE, T0, store_with, write_run
from taskdaemon.pipeline.cli.run_ids import PresetIdGenerator, preset_trace_id
from taskdaemon.pipeline.tracking import SqliteSpanProcessor

pytestmark = pytest.mark.slow

#: Seconds between two stored runs' starts, in nanoseconds.
STEP = 100 * 1_000_000_000


async def listed(page: Any) -> list[str]:
    """The runs the runs page lists, in its order."""
    return list(
        await page.eval_on_selector_all(
            "#runs tbody tr[data-run-id]", "rows => rows.map(r => r.dataset.runId)"
        )
    )


@SHARED_BROWSER_LOOP
async def test_paging_back_after_new_runs_ended_reaches_every_run_once(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A user opens the runs list (10 a page) over 30 finished runs; 5 more end while the page
    is open, and its refresh shows them on top. Following "Older runs" from there to the end
    then lists every one of the 35 runs once, newest first: the runs the refresh pushed off
    the first page are on the next, not skipped (the link still pointed past the first
    page's last row as the server had drawn it)."""
    db = tmp_path / "spans.db"
    old = await asyncio.to_thread(store_with, db, [10] * 30)
    async with stored_runs_server(db) as url, browser_page(shared_chromium) as (page, errors):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/?limit=10")
        first_drawn = await listed(page)
        new = await asyncio.to_thread(store_with, db, [10] * 5, t0=T0 + 30 * STEP)
        await page.wait_for_selector(f'#runs tbody tr:first-child[data-run-id="{new[-1]}"]')
        seen = await listed(page)
        pages = 1
        while await page.locator("#older-runs:visible").count():
            await page.click("#older-runs")
            await page.wait_for_load_state()
            seen += await listed(page)
            pages += 1
    assert old[::-1][:10] == first_drawn
    assert (old + new)[::-1] == seen
    assert 4 == pages
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_pasted_filter_shows_in_the_filter_form_and_survives_a_resubmit(
    shared_chromium: Any,
    tmp_path: Path,
) -> None:
    """A colleague's link to the runs of the last 2 hours (``?since=2h``, an age the Started
    box does not offer): the box says so, and pressing Filter after picking a status keeps
    it. It said "any time" over a list cut at 2 hours, and Filter dropped the cut."""
    db = tmp_path / "spans.db"
    await asyncio.to_thread(store_with, db, [10] * 3)
    async with stored_runs_server(db) as url, browser_page(shared_chromium) as (page, errors):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/?since=2h&pipeline=etl")
        shown = await page.eval_on_selector(
            'select[name="since"]', "s => [s.value, s.selectedOptions[0].textContent.trim()]"
        )
        await page.select_option('select[name="status"]', "success")
        async with page.expect_navigation():
            await page.click('#filters button[type="submit"]')
        query = page.url.split("?", 1)[1]
    assert "2h" == shown[0]
    assert "2h" in shown[1]
    assert "pipeline=etl&status=success&since=2h" == query
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_paging_back_over_runs_that_started_in_the_same_nanosecond(
    shared_chromium: Any,
    tmp_path: Path,
) -> None:
    """25 runs stored with one start (imported, replayed), 10 a page: "Older runs" walks
    them all, each once, newest first and then by run id, the API's pages alike. Paged by
    start time alone, the runs at the last row's start past the first page were on no page."""
    db = tmp_path / "spans.db"
    ids = await asyncio.to_thread(store_with, db, [10] * 25, step=0)
    async with stored_runs_server(db) as url, browser_page(shared_chromium) as (page, errors):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/?limit=10")
        seen = await listed(page)
        while await page.locator("#older-runs:visible").count():
            await page.click("#older-runs")
            await page.wait_for_load_state()
            seen += await listed(page)
        refreshed = await page.wait_for_function(
            "() => document.getElementById('runs-updated').textContent.startsWith('Updated')"
        )
        assert refreshed
        last_page = await listed(page)
        api = []
        cursor = ""
        while True:
            answer = await page.evaluate(
                "async (q) => (await (await fetch('/api/runs/recent?limit=10' + q)).json()).runs",
                cursor,
            )
            api += [run["run_id"] for run in answer]
            if len(answer) < 10:
                break
            cursor = "&before=" + answer[-1]["run_id"]
    assert sorted(ids, reverse=True) == seen
    assert seen[20:] == last_page
    assert seen == api
    assert [] == errors


def store_run_as(db: Path, run_id: str) -> None:
    """One run (``write_run``'s) stored in ``db`` under the trace id ``run_id``."""
    provider = TracerProvider(resource=RESOURCE, id_generator=PresetIdGenerator())
    provider.add_span_processor(SqliteSpanProcessor(db))
    with preset_trace_id(run_id):
        write_run(provider, T0, 10)
    provider.shutdown()


@SHARED_BROWSER_LOOP
async def test_a_run_page_opened_before_the_run_s_first_span_shows_the_run_once_stored(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The page of a run id the store does not hold yet (a run copied from ``run``'s first
    line, its first span still on its way) says the run is not found and that it looks
    again; once the run is stored it shows the run, unreloaded by the user. It stayed "Run
    not found" until reloaded by hand."""
    db = tmp_path / "spans.db"
    await asyncio.to_thread(store_with, db, [10])
    run_id = "5e7d0c1a2b3c4d5e6f708192a3b4c5d6"
    async with stored_runs_server(db) as url, browser_page(shared_chromium) as (page, errors):
        await page.goto(f"{url}/?token={TOKEN}")
        answer = await page.goto(f"{url}/runs/{run_id}")
        assert answer is not None
        missing = (answer.status, await page.text_content("h1"))
        await asyncio.to_thread(store_run_as, db, run_id)
        await page.wait_for_selector('body[data-page="run"][data-stream-state="ended"]')
        shown = await page.text_content("#run-status")
    assert (404, "Run not found", "success") == (*missing, shown)
    assert [] == [e for e in errors if "status of 404" not in e]
