"""Rough edges of the HTTP side a user met with a real server: the runs page of a pipeline
nobody ran says the name it was likely meant to be, as ``runs list --pipeline`` does, in
Debian's headless chromium (Playwright); the session cookie behind a proxy ending TLS.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from browser_support import SHARED_BROWSER_LOOP, TOKEN, browser_page, stored_runs_server
from cli_support import taskdaemon
from pipeline_tracking_support import store_with

pytestmark = pytest.mark.slow


@SHARED_BROWSER_LOOP
async def test_the_runs_page_of_a_typo_says_the_pipeline_meant_as_runs_list_does(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """``?pipeline=etll`` over a store holding runs of ``etl``: the page said only that no run
    of ``etll`` was known, where ``runs list --pipeline etll`` says ``did you mean 'etl'?``.
    The page says it too, in the table the browser shows once its script has refreshed it;
    a name close to none says no more than before."""
    db = tmp_path / "spans.db"
    await asyncio.to_thread(store_with, db, [10])  # a run of "etl"
    cli = taskdaemon(tmp_path, "runs", "list", "--pipeline", "etll", "--source", f"sqlite:///{db}")
    async with (
        stored_runs_server(db) as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        said = []
        for name in ("etll", "zzzzzz"):
            await page.goto(f"{url}/?pipeline={name}")
            await page.wait_for_load_state("networkidle")
            said.append(await page.text_content("#runs tr.empty td"))
    meant = "No run of pipeline 'etll' is known to this source; did you mean 'etl'?"
    assert [meant, "No run of pipeline 'zzzzzz' is known to this source."] == said
    assert (1, f"taskdaemon runs list: {meant[:1].lower()}{meant[1:]}\n") == (
        cli.returncode,
        cli.stderr,
    )
    assert [] == errors
