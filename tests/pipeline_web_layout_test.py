"""The run page's stages table, in Debian's headless chromium: it is shown where it stays.

While the page loaded, the first state (the lines at its top, the timeline's rows) and then
the DAG's drawing each moved the table down (a row at y=481, then 550, then 763), so a row
clicked while it loaded was another stage by the time the press landed. The table is now
shown once both are in, or, when the drawing is late, with the DAG's box at its greatest
height. Each test reads the table's place at every frame the browser draws while the table
shows, from the first, by a script the browser runs before the page's own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from browser_support import (
    SHARED_BROWSER_LOOP,
    TOKEN,
    browser_page,
    stored_runs_server,
    until_laid_out,
)
from pipeline_tracking_support import store_stages

pytestmark = pytest.mark.slow

#: Run before the page's scripts: at every frame, the first stage row's place on the page (and
#: what had arrived then) whenever it shows and has moved, in ``window.__places``.
WATCH = """
window.__places = [];
const look = () => {
  const row = document.querySelector("#stages tbody tr");
  if (row && getComputedStyle(row).visibility === "visible") {
    const y = Math.round(row.getBoundingClientRect().top + window.scrollY);
    const last = window.__places[window.__places.length - 1];
    if (!last || last.y !== y) {
      window.__places.push({y, stream: document.body.dataset.streamState,
                            dag: document.getElementById("dag").dataset.dagState || ""});
    }
  }
  requestAnimationFrame(look);
};
requestAnimationFrame(look);
"""


def _stored_run(db: Path, count: int) -> str:
    """A stored run of ``count`` stages of 1 ms each, the last failed; its id."""
    return store_stages(db, "layout", [f"s{i:02d}" for i in range(count)], "x", step=1_000_000)


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize(("count", "width"), [(3, 1280), (20, 1280), (20, 390)])
async def test_the_stages_table_is_first_shown_where_it_stays(
    shared_chromium: Any, tmp_path: Path, count: int, width: int
) -> None:
    """From the first frame that shows the table to the page laid out (the stream ended, the
    DAG drawn, the timeline's rows in), its first row is at one place; a row clicked at once
    opens its own stage."""
    run_id = await asyncio.to_thread(_stored_run, tmp_path / "spans.db", count)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, width=width) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.add_init_script(WATCH)
        await page.goto(f"{url}/runs/{run_id}")
        await page.click('#stages tr[data-stage="s01"] button.select')
        await page.wait_for_selector('#stage-detail h3[data-stage="s01"]')
        await until_laid_out(page)
        await page.wait_for_selector("#timeline .row")
        await page.evaluate("() => new Promise((r) => requestAnimationFrame(r))")
        places = await page.evaluate("window.__places")
    assert 1 == len(places), places
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_late_drawing_moves_nothing_below_it(shared_chromium: Any, tmp_path: Path) -> None:
    """A drawing held back past the page's wait (5 s) does not hide the table longer: it is
    shown with the DAG's box at its greatest height, 80% of the window, and the drawing, when
    it comes, moves nothing under it."""
    run_id = await asyncio.to_thread(_stored_run, tmp_path / "spans.db", 3)
    released = asyncio.Event()

    async def hold(route: Any) -> None:
        await released.wait()
        await route.continue_()

    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.add_init_script(WATCH)
        await page.route("**/dag?format=svg", hold)
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector('body[data-layout="done"]')
        waited = await page.evaluate(
            """() => [document.getElementById("dag").dataset.dagState,
                      document.getElementById("dag").offsetHeight / window.innerHeight]"""
        )
        released.set()
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')
        await page.evaluate("() => new Promise((r) => requestAnimationFrame(r))")
        places = await page.evaluate("window.__places")
    assert "drawing" == waited[0]
    assert abs(waited[1] - 0.8) < 0.01, waited
    assert 1 == len(places), places
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_without_script_the_table_is_shown_at_once(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """Read without script, nothing lays the page out: the table the server drew shows."""
    run_id = await asyncio.to_thread(_stored_run, tmp_path / "spans.db", 3)
    async with stored_runs_server(tmp_path / "spans.db") as url:
        context = await shared_chromium.new_context(java_script_enabled=False)
        try:
            page = await context.new_page()
            await page.goto(f"{url}/?token={TOKEN}")
            await page.goto(f"{url}/runs/{run_id}")
            shown = await page.eval_on_selector(
                '#stages tr[data-stage="s01"] button.select',
                "b => [document.body.dataset.layout, getComputedStyle(b).visibility]",
            )
        finally:
            await context.close()
    assert ["pending", "visible"] == shown


@SHARED_BROWSER_LOOP
async def test_a_page_whose_script_never_runs_still_shows_its_table(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The script that lays the page out may never run with script enabled (its load refused
    or cut, the server gone): the table is not hidden for ever, but shown once the page's own
    wait for a late drawing (5 s) is past, by the style sheet alone."""
    run_id = await asyncio.to_thread(_stored_run, tmp_path / "spans.db", 3)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, _errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.route("**/static/app.js", lambda route: route.abort())
        await page.goto(f"{url}/runs/{run_id}")
        button = '#stages tr[data-stage="s01"] button.select'
        await page.wait_for_selector(button, state="attached")
        at_once = await page.eval_on_selector(button, "b => getComputedStyle(b).visibility")
        await page.wait_for_selector(button, state="visible", timeout=15_000)
        layout = await page.evaluate("document.body.dataset.layout")
    assert ("hidden", "pending") == (at_once, layout)
