"""The timeline of a run whose process died (``kill -9``), on the run page in Debian's headless
chromium over real HTTP with the token: an attempt it left open ends where the process was
last seen alive (``web/_views.timeline``), not at the time the page was loaded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from browser_support import (
    SHARED_BROWSER_LOOP,
    browser_page,
    open_run_page,
    stored_runs_server,
)
from cli_faults_support import killed_run
from web_events_support import first_event

pytestmark = pytest.mark.slow


@SHARED_BROWSER_LOOP
async def test_an_interrupted_stages_bar_ends_at_its_processs_last_sign_of_life(
    shared_chromium: Any, home: Path, tmp_path: Path
) -> None:
    """A run killed while its stage ``wait`` ran: the stage's bar ended at the time the page
    was loaded, and grew at every load. It now ends at the writer's last heartbeat (before
    the kill), marked interrupted, and its title says its end is the last sign of life of the
    run's process; the timeline ends there too."""
    run_id = await asyncio.to_thread(killed_run, home, tmp_path)
    killed_by = time.time()  # the kill came before this
    async with stored_runs_server(home / "spans.db") as url:
        event = await first_event(url, run_id)
        async with browser_page(shared_chromium) as (page, errors):
            await open_run_page(page, url, run_id)
            bar = page.locator('#timeline .row[data-stage="wait"] .seg').last
            shown = await bar.evaluate("b => [b.className, b.title]")
    timeline = event["timeline"]
    (row,) = [r for r in timeline["rows"] if r["stage"] == "wait"]
    start, end = row["segments"][-1]["start"], row["segments"][-1]["end"]
    assert start <= end == timeline["end"] <= killed_by < event["now"], (end, killed_by)
    assert (end, "interrupted", True, False) == (
        timeline.get("last_seen"),
        row["status"],
        row.get("interrupted"),
        row["open"],
    )
    assert [] == errors
    assert "interrupted" in shown[0].split(), shown
    assert "or more: interrupted; its end is the last sign of life of the run's process" in shown[1]
