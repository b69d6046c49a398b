"""The run page as a screen reader meets it, in Debian's headless chromium (Playwright): what
its live regions would announce while a stage's logs stream in.

A live region (``aria-live``, or a role that implies one) is read out whenever its text
changes; the test records each change of one with a ``MutationObserver``, the text a screen
reader would be handed, and asserts on those texts.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from browser_support import browser_page, open_run_page, stored_runs_server
from pipeline_tracking_support import store_with

pytestmark = pytest.mark.slow

#: Records in ``window.__said`` the text of every live region a change touched, once per
#: batch of changes (what a screen reader would be asked to announce).
LISTEN = """(() => {
    window.__said = [];
    const LIVE = '[aria-live="polite"], [aria-live="assertive"], '
        + '[role="status"], [role="log"], [role="alert"]';
    new MutationObserver((changes) => {
        const regions = new Set();
        for (const change of changes) {
            const node = change.target.nodeType === 1 ? change.target : change.target.parentElement;
            const region = node && node.closest(LIVE);
            if (region) regions.add(region);
        }
        for (const region of regions) window.__said.push(region.textContent.trim());
    }).observe(document, { subtree: true, childList: true, characterData: true });
})()"""


def log_tails(stage: str, count: int) -> str:
    """An SSE body: ``count`` tails of the stage's logs, each of 200 records with 100 more
    than the one before, following live, then ``end``."""
    parts = ["retry: 2000\n\n"]
    for n in range(1, count + 1):
        total = 100 * n + 100
        records = [
            {
                "id": i,
                "time": 1_700_000_000 + i,
                "level": "INFO",
                "instance": 0,
                "attempt": 1,
                "logger": "etl",
                "body": f"copied chunk {i}",
            }
            for i in range(total - 200, total)
        ]
        tail = {"stage": stage, "records": records, "total": total, "hidden": total - 200}
        parts.append(f"id: {n}\ndata: {json.dumps({**tail, 'live': True})}\n\n")
    return "".join(parts) + "event: end\ndata: {}\n\n"


async def test_a_stage_with_streaming_logs_is_announced_once_not_line_by_line(
    tmp_path: Path,
) -> None:
    """A screen reader user picks the ``work`` stage, whose logs stream in (five tails of 200
    records): the page announces the stage picked, once, and never reads out log records or
    their counts at each tail (the whole stage panel was a live region, so each tail had its
    200 records read out)."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])

    async def tails(route: Any) -> None:
        await route.fulfill(status=200, content_type="text/event-stream", body=log_tails("work", 5))

    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page() as (page, errors),
    ):
        await page.route("**/api/runs/*/logs/stream?*", tails)
        await page.add_init_script(LISTEN)
        await open_run_page(page, url, run_id)
        await page.evaluate("window.__said = []")
        await page.focus('#stages tr[data-stage="work"] button.select')
        await page.keyboard.press("Enter")
        await page.wait_for_selector('#stage-logs[data-log-state="complete"]')
        await page.wait_for_selector('#stage-detail h3[data-stage="work"]')
        said = await page.evaluate("window.__said")
        shown = await page.text_content("#log-lines")
    assert "copied chunk 599" in (shown or "")
    assert [] == [text for text in said if "copied chunk" in text or "records" in text]
    assert 1 == len([text for text in said if "work" in text]), said
    assert [] == errors
