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

from browser_support import (
    SHARED_BROWSER_LOOP,
    TOKEN,
    browser_page,
    open_run_page,
    stored_runs_server,
)
from pipeline_tracking_support import store_example_run, store_stages, store_with

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


@SHARED_BROWSER_LOOP
async def test_a_stage_with_streaming_logs_is_announced_once_not_line_by_line(
    shared_chromium: Any,
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
        browser_page(shared_chromium) as (page, errors),
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


#: The end of a run's stream.
END = "event: end\ndata: {}\n\n"


async def accessible(page: Any, selector: str) -> tuple[bool, str, str, str]:
    """What chromium's accessibility tree says of the element ``selector`` picks: ignored,
    its role, name and description (what a screen reader is handed)."""
    return (await each_accessible(page, selector))[0]


async def each_accessible(page: Any, selector: str) -> list[tuple[bool, str, str, str]]:
    """:func:`accessible` of every element ``selector`` picks, in the document's order."""
    cdp = await page.context.new_cdp_session(page)
    root = (await cdp.send("DOM.getDocument", {"depth": -1}))["root"]["nodeId"]
    nodes = await cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})
    found = []
    for node in nodes["nodeIds"]:
        tree = await cdp.send(
            "Accessibility.getPartialAXTree", {"nodeId": node, "fetchRelatives": False}
        )
        ax = tree["nodes"][0]
        found.append(
            (
                bool(ax.get("ignored")),
                ax.get("role", {}).get("value", ""),
                ax.get("name", {}).get("value", ""),
                ax.get("description", {}).get("value", ""),
            )
        )
    await cdp.detach()
    return found


@SHARED_BROWSER_LOOP
async def test_the_dag_is_named_by_its_stages_and_the_runs_status_as_they_change(
    shared_chromium: Any,
    tmp_path: Path,
) -> None:
    """The DAG is a figure named by the pipeline, its stage count and the run's status, and
    described by its stages' states: from the server's first rendering, then at each live
    update (here a stream whose state says the run failed at a fifth stage). It was a
    ``div`` labelled "pipeline DAG" (a name a generic element must not have, and that says
    nothing), and its drawing's label kept the count of when it was drawn."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])

    async def failed(route: Any) -> None:
        answer = await route.fetch()
        data = json.loads((await answer.text()).split("data: ", 1)[1].split("\n", 1)[0])
        data["run"]["status"] = "failure"
        data["nodes"][1]["state"] = "failure"
        data["nodes"].append({**data["nodes"][0], "name": "late", "state": "skipped"})
        body = f"id: 1\ndata: {json.dumps(data)}\n\n{END}"
        await route.fulfill(status=200, content_type="text/event-stream", body=body)

    async def ended(route: Any) -> None:  # no state: the page shows the server's rendering
        await route.fulfill(status=200, content_type="text/event-stream", body=END)

    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.route("**/api/runs/*/stream?*", ended)
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector('body[data-stream-state="ended"]')
        served = await accessible(page, "#dag")
        await page.unroute("**/api/runs/*/stream?*")
        await page.route("**/api/runs/*/stream?*", failed)
        await open_run_page(page, url, run_id)
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')
        updated = await accessible(page, "#dag")
        drawing = await accessible(page, "#dag svg")
    assert (False, "figure", "DAG of etl: 4 stages, run success", "4 success") == served
    assert (
        False,
        "figure",
        "DAG of etl: 5 stages, run failure",
        "3 success, 1 failure, 1 skipped",
    ) == updated
    assert drawing[0], "the drawing is hidden: the figure says what it shows, in words"
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_the_timeline_a_keyboard_reaches_is_named(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The timeline of a run of 200 stages scrolls in its box, which Tab reaches (chromium
    makes a scrolling box a stop of the keyboard's): a screen reader is told it is the
    timeline, a region. It was an unnamed generic element, announced as nothing."""
    names = [f"s{i:03d}" for i in range(200)]
    run_id = await asyncio.to_thread(
        store_stages, tmp_path / "spans.db", "many", names, "boom", step=1_000_000
    )
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        # The Fit button is shown once the DAG is drawn, which the stream's end does not wait
        # for; focusing it while hidden left the focus on the page, so Tab began at its top.
        await page.wait_for_selector("#dag-fit", state="visible")
        await page.focus("#dag-fit")
        reached = []
        for _ in range(3):  # the DAG's box, which scrolls too, then the timeline's
            await page.keyboard.press("Tab")
            reached.append(await page.evaluate("document.activeElement.id"))
        said = await accessible(page, "#timeline")
    assert "timeline" in reached, reached
    assert (False, "region", "Timeline") == said[:3]
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_the_stage_panels_value_boxes_are_named_with_their_attempt(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The boxes of an attempt's error, inputs and outputs scroll, so Tab stops on each: a
    screen reader is told which value of which attempt it is in (a panel shows every
    attempt's). They were unnamed text, announced as nothing."""
    run_id = await asyncio.to_thread(store_example_run, tmp_path / "spans.db")
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        said = []
        for stage in ("plan", "build"):
            await page.click(f'#stages tr[data-stage="{stage}"] button.select')
            await page.wait_for_selector(f'#stage-detail h3[data-stage="{stage}"]')
            boxes = await each_accessible(page, "#stage-detail pre")
            said += [(role, name) for _, role, name, _ in boxes]
    assert [
        ("region", "Inputs of instance 0, attempt 1"),
        ("region", "Outputs of instance 0, attempt 1"),
        ("region", "Error of instance 0, attempt 1"),
    ] == said
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_the_runs_and_stages_tables_are_named_by_their_headings(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A screen reader's list of tables names the runs table "Runs" and a run's stages table
    "Stages", their headings: both were an unnamed table."""
    run_id = await asyncio.to_thread(store_example_run, tmp_path / "spans.db")
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.wait_for_selector("#runs tbody tr[data-run-id]")
        runs = await accessible(page, "#runs")
        await open_run_page(page, url, run_id)
        stages = await accessible(page, "#stages")
    assert [(False, "table", "Runs"), (False, "table", "Stages")] == [runs[:3], stages[:3]]
    assert [] == errors
