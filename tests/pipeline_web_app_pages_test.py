"""The web page's two pages (``web/_app.py``'s ``runs_page`` and ``run_page``) in Debian's
headless chromium: what a run's page says of a run id it cannot show, which run page lets its
reader act on the run, and where each page sends the reader next.

Each test serves a real span store, some with a real engine beside it, and asserts on what
the browser shows and the answers it got, never on timings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import SHARED_BROWSER_LOOP, TOKEN, browser_page, stored_runs_server
from pipeline_engine_support import Resolver
from pipeline_tracking_support import store_with
from server_support import GATED_PIPELINE, ApprovalSeen, serving
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.web import WebOptions
from taskdaemon.pipeline.web._views import grafana_trace_url

pytestmark = pytest.mark.slow

GRAFANA = "http://grafana.example:3000"

#: What a run page says of text that is no run id.
RULE = "32 hex digits, or a prefix of at least 4"
#: What a page says of the run it was asked for: its kind, heading, run, the run it awaits
#: and its error line (null for what it lacks: a page the server failed to draw).
MISSING_PAGE = """[
  document.body.dataset.page ?? null,
  document.querySelector("h1")?.textContent ?? null,
  document.body.dataset.runId ?? null,
  document.body.dataset.awaited ?? null,
  document.querySelector("p.error")?.textContent ?? null,
]"""


@SHARED_BROWSER_LOOP
async def test_a_run_page_refuses_no_run_id_opens_a_prefix_and_awaits_a_whole_id(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A run page of text that is no run id is a 404 "Run not found" saying why; a prefix of
    a stored run's id opens the run's own page (its whole id); a whole id the store lacks is
    a 404 that looks for the run again, a prefix it lacks one that does not (a run that has
    just started is asked for by its whole id, as ``run`` prints it)."""
    db = tmp_path / "spans.db"
    (run_id,) = await asyncio.to_thread(store_with, db, [10])
    unknown = "5e7d0c1a2b3c4d5e6f708192a3b4c5d6"
    async with stored_runs_server(db) as url, browser_page(shared_chromium) as (page, errors):
        await page.goto(f"{url}/?token={TOKEN}")
        shown = []
        for path in ("nothex", run_id[:12], unknown, unknown[:12]):
            answer = await page.goto(f"{url}/runs/{path}")
            assert answer is not None
            if path == run_id[:12]:
                await page.wait_for_selector('body[data-stream-state="ended"]')
            said = await page.evaluate(MISSING_PAGE)
            shown.append((answer.status, *said, page.url.removeprefix(url)))
    no_run = "Run not found"
    expected = [
        (404, "missing", no_run, None, None, f"not a run id ({RULE}): 'nothex'", "/runs/nothex"),
        (200, "run", "etl", run_id, None, "", f"/runs/{run_id}"),
        (
            404,
            "missing",
            no_run,
            None,
            f"/api/runs/{unknown}",
            f"no run '{unknown}' here or in the span source",
            f"/runs/{unknown}",
        ),
        (
            404,
            "missing",
            no_run,
            None,
            None,
            f"no run '{unknown[:12]}' here or in the span source",
            f"/runs/{unknown[:12]}",
        ),
    ]
    assert expected == shown
    assert [] == [e for e in errors if "status of 404" not in e]


@contextlib.asynccontextmanager
async def waiting_run_of(web: WebOptions | None) -> AsyncIterator[tuple[str, str]]:
    """A served engine (``run --serve``) with the page's options ``web``, its run of
    :data:`GATED_PIPELINE` waiting for ``deploy``'s approval; yields the server's URL and the
    run's id. The run is cancelled on exit."""
    approval = ApprovalSeen()
    async with (
        Engine(resolver=Resolver(), observers=[approval]) as engine,
        serving(engine, auth=ApiAuth.configured(TOKEN), web=web) as server,
    ):
        handle = await engine.start_run(parse_pipeline(GATED_PIPELINE), {})
        await approval.event.wait()
        try:
            yield server.url, handle.run_id
        finally:
            handle.cancel()
            await handle.wait()


#: The stages table as the server draws it for a run with an action to offer (the script
#: draws it again from the stream).
ACTIONS = '<table id="stages" class="grid" '


async def tags(page: Any) -> list[str]:
    """The tags of a run page's summary ("in this process", "read-only", ...)."""
    found = await page.eval_on_selector_all(".summary .tag", "tags => tags.map(t => t.textContent)")
    return list(found)


@SHARED_BROWSER_LOOP
async def test_a_served_engine_s_run_page_acts_on_its_own_run_and_reads_stored_ones(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """On a served engine's page, its own run's page says so, offers the approval and links
    its trace in Grafana; a run only in its span store is "from stored spans", read-only,
    though the server can act on runs. Both pages follow their stages' logs, kept in the
    store."""
    db = tmp_path / "spans.db"
    (stored_id,) = await asyncio.to_thread(store_with, db, [10])
    async with (
        waiting_run_of(WebOptions(source_url=f"sqlite:///{db}", grafana_url=GRAFANA)) as (
            url,
            run_id,
        ),
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        answer = await page.goto(f"{url}/runs/{run_id}")
        assert answer is not None
        await page.wait_for_selector('#approval-buttons button:has-text("Approve")')
        own = (
            ACTIONS in await answer.text(),
            await tags(page),
            await page.get_attribute("#trace-link", "href"),
            await page.get_attribute("body", "data-logs"),
        )
        await page.goto(f"{url}/runs/{stored_id}")
        await page.wait_for_selector('body[data-stream-state="ended"]')
        stored = (
            await tags(page),
            await page.locator("#approval-buttons button").count(),
            await page.get_attribute("body", "data-logs"),
        )
    expected = (
        True,
        ["in this process"],
        grafana_trace_url(GRAFANA, run_id),
        f"/api/runs/{run_id}/logs/stream",
    )
    assert expected == own
    assert (["from stored spans", "read-only"], 0, f"/api/runs/{stored_id}/logs/stream") == stored
    assert [] == errors


#: What the runs page says: its source line, its rows, and its links to older and newest runs.
RUNS_PAGE = """[
  Array.from(document.querySelectorAll("main > p.muted code"), c => c.textContent),
  Array.from(document.querySelectorAll("#runs tbody tr[data-run-id]"), r => r.dataset.runId),
  document.getElementById("older-runs").hidden ? null : document.getElementById("older-runs").href,
  document.getElementById("newest-runs")?.href ?? null,
]"""


@SHARED_BROWSER_LOOP
async def test_the_runs_page_of_an_engine_alone_pages_back_and_to_the_newest(
    shared_chromium: Any,
) -> None:
    """The runs page of a served engine without a span source names no source; listing as
    many runs as its limit, it links to the older ones and not to the newest (it is that
    page), and the older page links back to the newest with the same filters."""
    async with (
        waiting_run_of(None) as (url, run_id),
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        first = await page.goto(f"{url}/?limit=1&pipeline=gated")
        assert first is not None
        newest = (first.status, await page.evaluate(RUNS_PAGE))
        await page.click("#older-runs")
        await page.wait_for_load_state()
        older = await page.evaluate(RUNS_PAGE)
    expected = (
        (200, [[], [run_id], f"{url}/?limit=1&pipeline=gated&before={run_id}", None]),
        [[], [], None, f"{url}/?limit=1&pipeline=gated"],
    )
    assert expected == (newest, older)
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_read_only_served_engine_offers_no_action_on_its_own_run(
    shared_chromium: Any,
) -> None:
    """A served engine told to be read-only draws its own waiting run's page "in this
    process" but read-only, its stages table without the approval's action; without a
    Grafana URL it links no trace."""
    async with (
        waiting_run_of(WebOptions(read_only=True)) as (url, run_id),
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        answer = await page.goto(f"{url}/runs/{run_id}")
        assert answer is not None
        await page.wait_for_selector('body[data-stream-state="open"]')
        shown = (
            await tags(page),
            ACTIONS in await answer.text(),
            await page.locator("#trace-link").count(),
        )
    assert (["in this process", "read-only"], False, 0) == shown
    assert [] == errors
