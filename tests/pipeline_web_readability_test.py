"""The run page read on paper, in Debian's headless chromium (Playwright): a failed run's
page printed for a review shows its whole DAG and its whole error.

Each test serves a real span store (``ui``'s read-only server) and asserts on what the
browser lays out (boxes that would cut their content), never on pixels or timings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from browser_support import TOKEN, browser_page, stored_runs_server
from pipeline_tracking_support import store_stages

pytestmark = pytest.mark.slow

#: The boxes of the page that hide part of what they hold (they scroll on a screen; a printed
#: page does not), as "TAG#ID.CLASS", the screen readers' status (1 pixel, on purpose) aside.
CUT_BOXES = """() => [...document.querySelectorAll("main *")].filter((e) => {
    const s = getComputedStyle(e);
    return !e.classList.contains("for-screen-readers")
      && (s.overflowX !== "visible" || s.overflowY !== "visible")
      && (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1);
  }).map((e) => e.tagName + "#" + e.id + "." + e.className)"""


#: An error of 40 lines, as a failed command's output makes one.
LONG_ERROR = "make: *** [all] Error 2\n" + "\n".join(f"  line {n} of the log" for n in range(40))


async def test_a_printed_run_page_shows_the_whole_dag_and_error(tmp_path: Path) -> None:
    """A failed run of 12 stages in a chain (its DAG drawn taller than the window), its last
    stage picked, printed on A4: nothing on the page is cut (the DAG's box, the error's box
    and the stage panel scroll on a screen, and printed they showed their first part only:
    the DAG lost its first stages, the error its end)."""
    names = [f"stage-{i:03d}" for i in range(12)]
    run_id = await asyncio.to_thread(
        store_stages, tmp_path / "spans.db", "chain", names, LONG_ERROR, step=1_000_000
    )
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page() as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector('body[data-stream-state="ended"]')
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')
        await page.click('#stages tr[data-stage="stage-011"] button.select')
        await page.wait_for_selector('#stage-detail h3[data-stage="stage-011"]')
        on_screen = await page.evaluate(CUT_BOXES)
        await page.emulate_media(media="print")
        await page.set_viewport_size({"width": 794, "height": 1123})
        printed = await page.evaluate(CUT_BOXES)
        pdf = await page.pdf(format="A4")
    assert {"DIV#dag.dag fit", "PRE#.error"} <= set(on_screen), on_screen
    assert [] == printed
    assert pdf.startswith(b"%PDF")
    assert [] == errors
