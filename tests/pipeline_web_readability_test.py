"""The run page read on paper, in Debian's headless chromium (Playwright): a failed run's
page printed for a review shows its whole DAG and its whole error.

Each test serves a real span store (``ui``'s read-only server) and asserts on what the
browser lays out (boxes that would cut their content), never on pixels or timings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from browser_support import (
    CONTRASTS,
    SHARED_BROWSER_LOOP,
    TOKEN,
    browser_page,
    open_run_page,
    stored_runs_server,
)
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


def store_chain(db: Path, count: int) -> str:
    """A stored failed run of ``count`` stages in a chain (``stage-000``, ...), the last one
    failed with :data:`LONG_ERROR`; returns its id."""
    names = [f"stage-{i:03d}" for i in range(count)]
    return store_stages(db, "chain", names, LONG_ERROR, step=1_000_000)


async def with_stage_picked(page: Any, url: str, run_id: str, stage: str) -> None:
    """The run's page, signed in, its DAG drawn and ``stage`` picked (its panel shown)."""
    await open_run_page(page, url, run_id)
    await page.wait_for_selector('#dag[data-dag-state="drawn"]')
    await page.click(f'#stages tr[data-stage="{stage}"] button.select')
    await page.wait_for_selector(f'#stage-detail h3[data-stage="{stage}"]')


#: An error of 40 lines, as a failed command's output makes one.
LONG_ERROR = "make: *** [all] Error 2\n" + "\n".join(f"  line {n} of the log" for n in range(40))


@SHARED_BROWSER_LOOP
async def test_a_printed_run_page_shows_the_whole_dag_and_error(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A failed run of 12 stages in a column, in a window 600 pixels high (the DAG, fitted,
    still taller than its box at half its size), its last stage picked, printed on A4:
    nothing on the page is cut (the DAG's box, the error's box and the stage panel scroll on
    a screen, and printed they showed their first part only: the DAG lost its first stages,
    the error its end)."""
    run_id = await asyncio.to_thread(store_chain, tmp_path / "spans.db", 12)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.set_viewport_size({"width": 1280, "height": 600})
        await with_stage_picked(page, url, run_id, "stage-011")
        on_screen = await page.evaluate(CUT_BOXES)
        await page.emulate_media(media="print")
        await page.set_viewport_size({"width": 794, "height": 1123})
        printed = await page.evaluate(CUT_BOXES)
        pdf = await page.pdf(format="A4")
    assert {"DIV#dag.dag fit", "PRE#.error"} <= set(on_screen), on_screen
    assert [] == printed
    assert pdf.startswith(b"%PDF")
    assert [] == errors


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_every_text_keeps_its_contrast_in_light_and_dark_mode(
    shared_chromium: Any, tmp_path: Path, scheme: str
) -> None:
    """The sign-in page, the runs page and a failed run's page, its last stage picked, in
    the system's light
    and dark modes: the page follows the mode (a dark background in dark mode: it stayed
    white, a glare in a dark desktop), and every text keeps a contrast of at least 4.5:1
    against what is behind it (3:1 for large text), WCAG 2's AA level."""
    run_id = await asyncio.to_thread(store_chain, tmp_path / "spans.db", 3)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.emulate_media(color_scheme=scheme)
        await page.goto(f"{url}/runs/{run_id}")
        sign_in = await page.evaluate(CONTRASTS, False)
        await page.goto(f"{url}/?token={TOKEN}")
        await page.wait_for_selector("#runs tbody tr[data-run-id]")
        runs = await page.evaluate(CONTRASTS, False)
        await with_stage_picked(page, url, run_id, "stage-002")
        run = await page.evaluate(CONTRASTS, False)
    texts = sign_in["texts"] + runs["texts"] + run["texts"]
    low = [(text, ratio) for text, ratio, large in texts if ratio < (3 if large else 4.5)]
    assert len(texts) > 50
    assert [] == low
    dark = [page["page"] < 0.05 for page in (sign_in, runs, run)]
    assert [scheme == "dark"] * 3 == dark
    assert [] == [e for e in errors if "status of 401" not in e]  # the sign-in page's own
