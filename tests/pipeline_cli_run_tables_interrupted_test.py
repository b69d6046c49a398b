"""An interrupted run's duration: its process died at a time no span records, so every view
gives the part it was seen alive, from its start to its writer's last heartbeat
(``RunRecord.last_seen``), as ``at least 5.2s``: ``runs list``, ``runs show``, their
``--json`` and the API (``lasted_at_least``, a field of its own: ``duration`` stays null or
``-``), and the run page and the runs page in Debian's chromium."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_support import TOKEN, browser_page, open_run_page, stored_runs_server, text_of
from cli_faults_support import killed_run
from cli_support import taskdaemon
from taskdaemon.pipeline.cli.run_tables import format_runs_table
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.records import RunSummary


async def _web(db: Path, run_id: str) -> dict[str, Any]:
    """What the API's list and record say of ``run_id``, and what the run page and the runs
    page (as served, then as its script redraws it) show as its duration."""
    duration_js = "rows => rows.map(r => r.children[4].textContent)"
    async with stored_runs_server(db) as url:
        async with httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}) as client:
            listed = (await client.get(f"{url}/api/runs/recent")).json()["runs"]
            record = (await client.get(f"{url}/api/runs/{run_id}")).json()
        async with browser_page() as (page, errors):
            await page.goto(f"{url}/?token={TOKEN}")
            served = await page.eval_on_selector_all("#runs tbody tr", duration_js)
            await page.wait_for_selector('#runs-updated:has-text("Updated")')
            redrawn = await page.eval_on_selector_all("#runs tbody tr", duration_js)
            await open_run_page(page, url, run_id)
            run_page = await text_of(page, "#run-duration")
            assert [] == errors
    return {
        "listed": listed[0],
        "record": record,
        "pages": (served, redrawn, run_page),
    }


@pytest.mark.slow
def test_every_view_says_an_interrupted_run_lasted_at_least_its_time_seen_alive(
    home: Path, tmp_path: Path
) -> None:
    """A run killed (``kill -9``) while its stage ran: its duration read ``-`` everywhere,
    though the store knew its writer's last heartbeat. Now each view says ``at least`` the
    same figure, the JSON and the API in ``lasted_at_least`` beside a null duration."""
    run_id = killed_run(home, tmp_path)
    listed = taskdaemon(home, "runs", "list", "--wide").stdout
    (row,) = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    text = taskdaemon(home, "runs", "show", run_id, "--wide").stdout
    web = asyncio.run(_web(home / "spans.db", run_id))
    lasted = shown["lasted_at_least"]
    said = f"at least {format_duration(lasted)}"
    assert ("interrupted", None, None) == (row["status"], row["duration"], shown["duration"])
    assert (True, lasted) == (lasted > 0, row["lasted_at_least"]), (row, shown)
    assert (round(lasted, 6), "-") == (
        web["listed"]["lasted_at_least"],
        web["listed"]["duration"],
    )
    assert (round(lasted, 6), None) == (
        web["record"]["lasted_at_least"],
        web["record"]["duration"],
    )
    assert re.search(rf"\binterrupted\s+\S+ \S+\s+{said}\s", listed), listed
    assert f"duration  {said}" in text.splitlines(), text
    assert ([said], [said], said) == web["pages"]


def test_an_interrupted_run_fits_the_60_column_list() -> None:
    """At 60 columns the id, ``interrupted``, the start and TOOK left the pipeline 8 columns
    (``table_fit.LAST_GIVEN``): TOOK reads ``≥1m05s`` there, ``at least 1m05s`` when there is
    room, and a run that ended keeps its exact duration."""
    runs = [
        RunSummary("a" * 32, "nightly-build", "interrupted", 1e9, None, 3, last_seen=1e9 + 65.2),
        RunSummary("b" * 32, "nightly-build", "success", 1e9, 1e9 + 3, 3),
    ]
    narrow = format_runs_table(runs, 60).splitlines()
    wide = format_runs_table(runs).splitlines()
    assert (["≥1m05s", "3.0s"], 60) == (
        [line.split()[-1] for line in narrow[1:3]],
        max(len(line) for line in narrow),
    ), narrow
    assert "at least 1m05s" in wide[1], wide
