"""The run page at an attempt paused at its failure, in Debian's chromium driven by Playwright,
against ``taskdaemon serve`` running a real run paused by a ``failure`` breakpoint set over the
HTTP debug routes.

Such an attempt ran, failed, and is held before its error strategy acts: its row is drawn
``running`` until it failed, then ``paused`` (``web/_views.py``, ``timeline``). It used to be
one ``paused`` segment from its start, the time its handler ran read as time held. And the
page offers Retry there, as the prompt's ``retry`` (it offered Continue and Step only)."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import httpx
import pytest

from browser_support import TOKEN, browser_page, first_run, server_url, state_of, taskdaemon

PIPELINE = """\
name: web-failure-pause
description: a run paused at a stage's failure, continued from the page
loops:
  prepare: {handler: "failing_loops:prepare"}
  build: {handler: "failing_loops:build"}
stages:
  - name: prepare
    loop: prepare
    triggers: [{manual: {approval_required: false}}]
  - name: build
    loop: build
    triggers: [{on_completion: {stage: prepare}}]
"""

LOOPS = """\
import time
from pathlib import Path


def prepare(ctx):
    # Held until the test has set its failure breakpoint on build.
    while not Path("armed").exists():
        time.sleep(0.02)
    return {"ready": True}


def build(ctx):
    time.sleep(0.3)  # work the timeline must draw as running, not as held
    if Path("broken").exists():  # the bug the developer fixes while the attempt is held
        raise RuntimeError("linker: undefined symbol main")
    return {"artifact": "app-1.0.tar.gz"}
"""

pytestmark = pytest.mark.slow


async def test_an_attempt_paused_at_its_failure_is_drawn_running_then_paused(
    tmp_path: Path,
) -> None:
    """``build`` fails after 0.3 s of work and pauses at a ``failure`` breakpoint: its
    timeline row reads running (0.3 s or more) then paused, not paused from its start. Its
    actions are Continue, Step and Retry; with the bug fixed, Retry runs attempt 2, which
    succeeds, and the run with it."""
    (tmp_path / "fail.yaml").write_text(PIPELINE)
    (tmp_path / "broken").touch()
    (tmp_path / "failing_loops.py").write_text(LOOPS)
    argv = ["serve", "--pipeline", "fail.yaml", "--max-runs", "1", "--port", "0"]
    with taskdaemon(argv, cwd=tmp_path) as process:
        url = server_url(process)
        run_id = await first_run(url)
        async with httpx.AsyncClient(
            base_url=url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client:
            put = await client.put(
                f"/api/runs/{run_id}/debug/breakpoints", json={"stage": "build", "on": "failure"}
            )
        assert 201 == put.status_code, put.text
        (tmp_path / "armed").touch()
        async with browser_page() as (page, errors):
            await page.goto(f"{url}/?token={TOKEN}")
            await page.goto(f"{url}/runs/{run_id}")
            await page.wait_for_selector(state_of("build", "paused"))
            row = '#timeline .row[data-stage="build"][data-attempt="1"] .seg'
            await page.wait_for_selector(row)
            kinds = await page.eval_on_selector_all(row, "bars => bars.map(b => b.dataset.kind)")
            titles = await page.eval_on_selector_all(row, "bars => bars.map(b => b.title)")
            paused = state_of("build", "paused")
            actions = await page.eval_on_selector_all(
                f"{paused} button[data-action]", "buttons => buttons.map(b => b.dataset.action)"
            )
            at_top = await page.eval_on_selector_all(
                '#paused-buttons li[data-stage="build"] button[data-action]',
                "buttons => buttons.map(b => b.dataset.action)",
            )
            (tmp_path / "broken").unlink()
            await page.click(f'{paused} button[data-action="retry"]')
            await page.wait_for_selector('body[data-stream-state="ended"]')
            status = await page.text_content("#run-status")
        process.send_signal(signal.SIGTERM)
        assert 0 == await asyncio.to_thread(process.wait, 30)
    assert ["running", "paused"] == [kind for kind in kinds if kind != "queued"], titles
    ran = re.fullmatch(r"running (\d+)ms|running ([\d.]+)s", titles[kinds.index("running")])
    assert ran is not None, titles
    assert (int(ran[1]) / 1000 if ran[1] else float(ran[2])) >= 0.3, titles
    assert [["continue", "step", "retry"]] * 2 == [actions, at_top]
    assert ("success", []) == (status, errors)
