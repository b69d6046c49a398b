"""A replay's run, as the web page and ``runs show`` name it: which run it replayed."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx

from browser_support import (
    SHARED_BROWSER_LOOP,
    TOKEN,
    browser_page,
    open_run_page,
    state_of,
    stored_runs_server,
    until_laid_out,
)
from cli_support import taskdaemon
from pipeline_replay_support import Recording, replayed_from_b
from replay_fan_support import failed_once
from taskdaemon.pipeline.cli.run_tables import format_run_table
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.visualization import dag_snapshot
from taskdaemon.pipeline.web._views import run_state


def test_a_replay_names_the_run_it_replayed_in_runs_show_and_on_its_page(tmp_path: Path) -> None:
    """A recorded run replayed for real: ``runs show`` says ``replay of ID``, the run page
    links the original, and a run that is no replay says neither; a ``replay_of`` that is no
    run id (a foreign producer's span) is not linked."""
    rec = Recording(tmp_path / "spans.db")
    try:
        original = rec.run()
        replay = rec.replay(original.run_id).run_id
    finally:
        rec.close()
    with SpanStore(tmp_path / "spans.db") as store:
        records = {run_id: store.get_run(run_id) for run_id in (original.run_id, replay)}

    async def pages() -> dict[str, str]:
        async with (
            stored_runs_server(tmp_path / "spans.db") as url,
            httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}) as client,
        ):
            return {run_id: (await client.get(f"{url}/runs/{run_id}")).text for run_id in records}

    html = asyncio.run(pages())
    link = f'href="/runs/{original.run_id}"'
    said = f"replay of {original.run_id}"
    tables = {run_id: format_run_table(record).splitlines() for run_id, record in records.items()}
    assert (True, False, True, False) == (
        link in html[replay],
        link in html[original.run_id],
        said in tables[replay],
        any(line.startswith("replay of") for line in tables[original.run_id]),
    )
    forged = replace(records[replay], replay_of="javascript:x")
    state = run_state(dag_snapshot(None, forged), now=0.0, can_control=False)
    assert state["run"]["replay_of"] is None


@SHARED_BROWSER_LOOP
async def test_the_run_page_gives_a_fed_stage_no_time_of_its_own(
    shared_chromium: Any, home: Path, tmp_path: Path
) -> None:
    """On a ``replay --from``'s page, the stage it fed has no duration in the stages table,
    ``-`` as it took and was queued in its panel, and a timeline mark that says no length, as
    ``runs show`` reads ``-``: they gave its stand-in's wait in the replay (``0ms``). The stage
    run again keeps its times."""
    new, _ = await asyncio.to_thread(replayed_from_b, home, tmp_path)
    async with (
        stored_runs_server(home / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await open_run_page(page, url, new)
        await until_laid_out(page)
        pills = [await page.text_content(f"{state_of(s, st)} .state") for s, st in _SHOWN]
        bars = [
            await page.get_attribute(
                f'#timeline .row[data-stage="{stage}"] .seg:last-child', "title"
            )
            for stage in ("a", "b")
        ]
        facts = []
        for stage in ("a", "b"):
            await page.click(f'#stages tr[data-stage="{stage}"] button.select')
            await page.wait_for_selector(f'#stage-detail h3[data-stage="{stage}"]')
            facts.append(
                [
                    await page.text_content(f'#stage-detail dt:text-is("{name}") + dd')
                    for name in ("took", "queued")
                ]
            )
    assert ("replayed", ["-", "-"], "replayed") == (pills[0], facts[0], bars[0]), (
        pills,
        facts,
        bars,
    )
    assert re.fullmatch(r"success · \d+ms", pills[1] or ""), pills
    assert re.fullmatch(r"\d+ms", facts[1][0] or ""), facts
    assert re.fullmatch(r"running \d+ms", bars[1] or ""), bars
    assert [] == errors


#: The stages table's rows of the replay: the fed stage, and the one run again.
_SHOWN = (("a", "replayed"), ("b", "success"))


@SHARED_BROWSER_LOOP
async def test_the_run_page_says_reused_of_an_instance_a_replay_did_not_run_again(
    shared_chromium: Any, home: Path
) -> None:
    """A ``replay --from c`` of a fan-out whose instance 1 failed reruns instance 1 alone and
    reuses 0 and 2: on its page their timeline rows say ``reused``, the stage ``c`` counts
    them, and the stage panel says each was reused from the original run, linked. Before, the
    rows, their timeline marks and the panel said ``replayed``, as of a fed stage, and ``c``'s
    line ``success · 3 instances``, as if all three ran; the fed ``a`` stays ``replayed``."""
    original = await asyncio.to_thread(failed_once, home)
    done = await asyncio.to_thread(
        taskdaemon, home, "replay", original, "--from", "c", "-q", cwd=home
    )
    assert 0 == done.returncode, done.stdout + done.stderr
    replay = done.stdout.strip()  # -q: the replay's run id alone
    async with (
        stored_runs_server(home / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await open_run_page(page, url, replay)
        await until_laid_out(page)
        rows = await page.eval_on_selector_all(
            "#timeline .row .label-rest", "els => els.map(e => e.textContent)"
        )
        marks = await page.eval_on_selector_all(
            "#timeline .row .seg:last-child", "els => els.map(e => e.title.split(' ')[0])"
        )
        line = await page.text_content('#stages tr[data-stage="c"] .state')
        await page.click('#stages tr[data-stage="c"] button.select')
        await page.wait_for_selector('#stage-detail h3[data-stage="c"]')
        headings = await page.eval_on_selector_all(
            "#stage-detail .attempt h4:first-child", "els => els.map(e => e.textContent)"
        )
        links = await page.eval_on_selector_all(
            "#stage-detail .attempt h4 a", "els => els.map(e => e.getAttribute('href'))"
        )
    shown = [" · replayed", " [0] · reused", " [1] · success", " [2] · reused", " · success"]
    assert shown == rows
    assert ["replayed", "reused", "running", "reused", "running"] == marks
    assert re.fullmatch(r"success · 3 instances \(2 reused\) · \d+ms", line or ""), line
    assert [
        f"instance 0 · attempt 1 · reused from run {original[:12]}",
        "instance 1 · attempt 1 · success",
        f"instance 2 · attempt 1 · reused from run {original[:12]}",
    ] == headings
    assert [f"/runs/{original}"] * 2 == links
    assert [] == errors
