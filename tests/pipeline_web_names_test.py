"""The run page shows each stage by the name a user types, in Debian's headless chromium
(Playwright): the stages table (as the server writes it and as the script redraws it) and the
DAG's boxes say ``build-api``, not the renderers' ``Build Api``, so a name copied from the
page is the one ``taskdaemon logs --stage``, the URL and the stage panel take.

Each test serves a real span store (``ui``'s read-only server) and asserts on what the
browser shows (the DOM), never on pixels or timings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from browser_support import TOKEN, browser_page, stored_runs_server
from pipeline_tracking_support import store_stages

pytestmark = pytest.mark.slow

#: Names the renderers' title case changes: a dash, an underscore, a lower-case first letter.
NAMES = ["build-api", "s000", "deploy_prod"]


async def test_the_page_shows_each_stages_name_as_typed(tmp_path: Path) -> None:
    """The stages table's buttons, in the page the server writes and after the live update
    redraws them, the DAG's boxes and the stage panel's heading all say the stage's name as
    the pipeline names it; the DAG still adds the state's word."""
    run_id = await asyncio.to_thread(store_stages, tmp_path / "spans.db", "names", NAMES, "boom")
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page() as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        written = await (await page.request.get(f"{url}/runs/{run_id}")).text()
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector('body[data-stream-state="ended"]')
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')
        await page.wait_for_selector('#dag g.node[data-stage="deploy_prod"]')
        table = await page.eval_on_selector_all(
            "#stages tbody tr button.select", "buttons => buttons.map(b => b.textContent)"
        )
        boxes = await page.eval_on_selector_all(
            "#dag g.node[data-stage]",  # the stages' boxes, not the legend's
            "groups => groups.map(g => Array.from(g.querySelectorAll('text'), t => t.textContent))",
        )
        await page.click('#stages tr[data-stage="build-api"] button.select')
        await page.wait_for_selector('#stage-detail h3[data-stage="build-api"]')
        heading = await page.text_content('#stage-detail h3[data-stage="build-api"]')
    for name in NAMES:
        assert f'<button type="button" class="link select">{name}</button>' in written
    assert NAMES == table
    assert sorted(NAMES) == sorted(lines[0] for lines in boxes)
    assert [["build-api", "✓ success"], ["s000", "✓ success"]] == sorted(
        lines[:2] for lines in boxes if lines[0] != "deploy_prod"
    )
    assert "build-api" == (heading or "").strip()
    assert [] == errors
