"""The web page's figures, and a run's error, as the command line writes them, in Debian's
headless chromium: the script's durations and sizes (``static/page.js``) against
``durations.format_duration`` and ``byte_sizes.format_bytes``, which ``runs show``, ``report``
and the page's first rendering use; a stage's counts and the run's error against ``runs show``.
Nothing must read one way in a terminal, or before the page's first refresh, and another after
it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from browser_support import SHARED_BROWSER_LOOP, browser_page, open_run_page, stored_runs_server
from cli_support import taskdaemon
from pipeline_tracking_support import (
    make_provider,
    store_example_run,
    store_stages,
    write_example_run,
)
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.byte_sizes import format_bytes
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.tracking import SqliteSpanProcessor

pytestmark = pytest.mark.slow

#: Durations at every unit's edges and halves: a half rounds to the even neighbour in Python
#: (12.5 ms is 12ms), where Math.round took it up.
SECONDS = [
    0.0,
    0.0005,
    0.0015,
    0.0125,
    0.0135,
    0.4995,
    0.9995,
    0.9996,
    1.25,
    1.35,
    12.25,
    59.95,
    59.96,
    90.5,
    91.5,
    3599.5,
    3600.0,
    7322.5,
    1e7 + 0.5,
]

MIB = 1024 * 1024
#: Sizes at each unit's edges, and at its quarters (1.25 and 2.25 are exact halves of a
#: tenth, which Python's format rounds to the even tenth and toFixed rounded up).
SIZES = [
    0,
    1023,
    1024,
    1280,
    2304,
    1792,
    1024 * 1023,
    MIB - 1,
    MIB,
    MIB + MIB // 4,
    2 * MIB + MIB // 4,
    3_565_158,
    1024 * MIB - 1,
    1024 * MIB,
    1024 * MIB * 5 // 4,
    10**13,
]


@SHARED_BROWSER_LOOP
async def test_durations_and_sizes_read_as_the_command_line_writes_them(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """Each duration and size the script writes equals Python's text for it. The script took
    a half up (``13ms`` for ``runs show``'s ``12ms``, ``1.3 MiB`` for ``1.2MiB``) and put a
    space before a size's unit (``3.4 MiB`` beside the table's ``3.4MiB``)."""
    run_id = await asyncio.to_thread(store_stages, tmp_path / "spans.db", "one", ["a"], "boom")
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        written = await page.evaluate(
            "([seconds, sizes]) => [seconds.map(taskdaemonPage.fmtDuration),"
            " sizes.map(taskdaemonPage.fmtBytes)]",
            [SECONDS, SIZES],
        )
    expected = [[format_duration(s) for s in SECONDS], [format_bytes(b) for b in SIZES]]
    assert expected == written
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_stage_that_has_not_run_has_no_counts_as_runs_show_says(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A skipped stage's Instances and Attempts read ``-``, as in ``runs show`` and ``run``'s
    summary, in the server's first rendering and in the script's: the page said ``0`` and
    ``0``, the terminal ``-`` and ``-``."""
    db = tmp_path / "spans.db"
    run_id = await asyncio.to_thread(store_example_run, db)
    async with (
        stored_runs_server(db) as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        served = await page.evaluate(
            """(id) => fetch("/runs/" + id).then((r) => r.text())""", run_id
        )
        row = '#stages tr[data-stage="deploy"]'
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')  # the stream's state drawn
        drawn = await page.evaluate(
            f"[...document.querySelector('{row}').cells].map((c) => c.textContent)"
        )
    first = re.search(r'<tr data-stage="deploy".*?</tr>', served, re.S)
    assert first is not None
    cells = re.findall(r"<td>([^<]*)</td>", first.group(0))
    shown = await asyncio.to_thread(
        taskdaemon, tmp_path, "runs", "show", run_id, "--source", f"sqlite:///{db}"
    )
    deploy = next(line.split() for line in shown.stdout.splitlines() if line.startswith("deploy "))
    assert (["-", "-"], ["-", "-"], ["-", "-"]) == (cells, drawn[3:5], deploy[5:7])
    assert [] == errors


def store_failed_example_run(db: Path) -> str:
    """``write_example_run``'s run, failed (``StageFailedError: build failed``), in ``db``."""
    provider, _exporter = make_provider(SqliteSpanProcessor(db))
    try:
        return write_example_run(provider, result=t.RESULT_FAILURE)
    finally:
        provider.shutdown()


@SHARED_BROWSER_LOOP
async def test_a_failed_runs_error_names_its_type_as_runs_show_does(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The run's error line reads ``Type: message`` as ``runs show``'s ``error`` line does,
    served and redrawn by the script (the stage panel writes an attempt's so too): the page
    left the type out."""
    db = tmp_path / "spans.db"
    run_id = await asyncio.to_thread(store_failed_example_run, db)
    async with (
        stored_runs_server(db) as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        served = await page.evaluate(
            """(id) => fetch("/runs/" + id).then((r) => r.text())""", run_id
        )
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')  # the stream's state drawn
        drawn = await page.text_content("#run-error")
    first = re.search(r'<p id="run-error" class="error">([^<]*)</p>', served)
    shown = await asyncio.to_thread(
        taskdaemon, tmp_path, "runs", "show", run_id, "--source", f"sqlite:///{db}"
    )
    said = next(line for line in shown.stdout.splitlines() if line.startswith("error "))
    expected = "StageFailedError: build failed"
    assert [expected] * 3 == [first and first.group(1), drawn, said.split(None, 1)[1]]
    assert [] == errors
