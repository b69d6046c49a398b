"""The run page and the runs list at a phone's width (375 pixels) and a desktop's (1,280), in
Debian's headless chromium (Playwright), with long hyphenated names (``extract-customer-orders-
from-the-regional-warehouse``): the stages table and the runs list fit their boxes (no sideways
scroll of the page or of a table), a name takes the lines it needs, not one a word, and a stage
paused in the debugger is continued from the top of a phone's page by keyboard.

The tests assert what the browser lays out (the DOM's boxes against the window), never pixels
or timings: a real ``taskdaemon serve`` for the paused run, a real span store under a
``ui``-style server for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from browser_support import (
    SHARED_BROWSER_LOOP,
    TOKEN,
    browser_page,
    first_run,
    open_run_page,
    server_url,
    state_of,
    stored_runs_server,
    taskdaemon,
)
from pipeline_tracking_support import (
    RESOURCE,
    T0,
    S,
    store_example_run,
    store_stages,
    write_run,
)
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.tracking import SqliteSpanProcessor

pytestmark = pytest.mark.slow

GATE = "approve-the-release-of-the-quarterly-customer-invoices"
EXTRACT = "extract-customer-orders-from-the-regional-warehouse"
LOAD = "load-the-invoices-into-the-accounting-ledger-database"

#: A run that waits for an approval of its first stage (the test sets its breakpoint
#: meanwhile), then pauses before the second.
PAUSED = f"""\
name: nightly-customer-orders-extraction-and-invoicing
stages:
  - name: {GATE}
    loop: command
    command: "true"
    triggers: [{{manual: {{approval_required: true}}}}]
  - name: {EXTRACT}
    loop: command
    command: "true"
    triggers: [{{on_completion: {{stage: {GATE}}}}}]
"""

#: ``PAUSED`` beside a stage that fails at once with a long error, the run going on
#: (``continue``): a stages table with an Actions column and an Error column of 12 em.
PAUSED_BESIDE_A_FAILURE = (
    PAUSED.replace("stages:\n", "error_strategy: continue\nstages:\n", 1)
    + f"""\
  - name: {LOAD}
    loop: command
    command: "echo 'the ledger database refused the connection: bad password' >&2; exit 3"
    triggers: [{{manual: {{approval_required: false}}}}]
"""
)

#: The page's layout: its width and the window's, the stages table box's width and how far
#: it scrolls, and for each of the selected buttons whether it shows whole in the window.
LAYOUT = """(selector) => {
  const box = document.getElementById("stages").parentElement;
  const whole = (b) => { const r = b.getBoundingClientRect();
    return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth; };
  return [document.documentElement.scrollWidth <= window.innerWidth,
          box.scrollWidth <= box.clientWidth,
          Array.from(document.querySelectorAll(selector), whole)];
}"""

TOP = f'#paused-buttons li[data-stage="{EXTRACT}"]'

#: Whether the DAG's drawing scrolls in its box, and whether the shape ``selector`` selects
#: is wholly in the box's visible part.
IN_DAG_BOX = """(selector) => {
  const box = document.getElementById("dag");
  const shape = box.querySelector(selector).getBoundingClientRect();
  const r = box.getBoundingClientRect();
  const left = r.left + box.clientLeft, top = r.top + box.clientTop;
  return [box.scrollWidth > box.clientWidth,
          shape.left >= left && shape.right <= left + box.clientWidth
            && shape.top >= top && shape.bottom <= top + box.clientHeight];
}"""

#: Whether the keyboard's focus is on a button ``selector`` selects.
FOCUSED = "(selector) => document.activeElement.matches(selector)"

#: Runs of pipelines with long names: hyphenated, and one unbroken 70 characters long.
PIPELINES = [
    "nightly-customer-orders-extraction-and-invoicing-for-the-emea-region",
    "etl",
    "a" * 70,
]

#: The runs list's layout: whether the page and the table's box need no sideways scroll, and
#: for each row: every cell with text whole in the window and not clipped, the lines its
#: pipeline's name and start time take, and whether the name is under the run id (each run
#: on lines of its own) or beside it (a table's row).
RUNS_LAYOUT = """() => {
  const box = document.getElementById("runs").parentElement;
  const whole = (e) => { const r = e.getBoundingClientRect();
    return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth
      && e.scrollWidth <= e.clientWidth; };
  const lines = (e) => { const probe = document.createRange(); probe.selectNodeContents(e);
    return new Set(Array.from(probe.getClientRects(), (r) => Math.round(r.top))).size; };
  return [document.documentElement.scrollWidth <= window.innerWidth,
          box.scrollWidth <= box.clientWidth,
          Array.from(document.querySelectorAll("#runs tbody tr"), (tr) => [
            Array.from(tr.cells).filter((td) => td.textContent !== "").every(whole),
            lines(tr.cells[1]), lines(tr.querySelector("time")),
            tr.cells[1].getBoundingClientRect().top >= tr.cells[0].getBoundingClientRect().bottom,
          ])];
}"""


@contextlib.asynccontextmanager
async def paused_served(tmp_path: Path, definition: str) -> AsyncIterator[tuple[str, str]]:
    """``definition`` run once by ``taskdaemon serve``; yields its URL and the run's id, once
    ``GATE`` is approved after a breakpoint was set before ``EXTRACT``, which then pauses
    there. The server is stopped by SIGTERM at the end, and exits 0."""
    (tmp_path / "paused.yaml").write_text(definition)
    argv = ["serve", "--pipeline", "paused.yaml", "--max-runs", "1", "--port", "0"]
    with taskdaemon(argv, cwd=tmp_path) as process:
        url = server_url(process)
        run_id = await first_run(url)
        async with httpx.AsyncClient(
            base_url=f"{url}/api/runs/{run_id}",
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=30,
        ) as client:
            put = await client.put("/debug/breakpoints", json={"stage": EXTRACT})
            approved = await client.post(f"/approve/{GATE}", json={})
        assert (201, 202) == (put.status_code, approved.status_code)
        yield url, run_id
        process.send_signal(signal.SIGTERM)
        assert 0 == await asyncio.to_thread(process.wait, 30)


@SHARED_BROWSER_LOOP
async def test_a_phone_continues_a_paused_stage_from_the_top_by_keyboard(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """At 375 pixels a stage paused at a breakpoint has a line at the top of the page with
    Continue and Step named for it, whole in the window; the page and the stages table need no
    sideways scroll (the table's Continue and Step were past the window's edge, in a box
    scrolled sideways), and the table shows no Actions column; the DAG, scrolling in its box,
    opens on the paused stage (it opened on the approved one, the paused one out of the box);
    the run, live and paused, is on lines of its own in the runs list, which fits too.
    Reached by Tab and pressed with Enter, Continue resumes the stage, the run ends, and the
    focus is on the stage's name, scrolled into the window (it was a screen below, out of
    sight)."""
    async with (
        paused_served(tmp_path, PAUSED) as (url, run_id),
        browser_page(shared_chromium, width=375) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.wait_for_selector("#runs .state-paused")
        listed = await page.evaluate(RUNS_LAYOUT)
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector(f'{TOP} button[data-action="step"]')
        await page.wait_for_selector(state_of(EXTRACT, "paused"))
        await page.wait_for_selector('#dag g.node[data-state="paused"]')
        drawn = await page.evaluate(IN_DAG_BOX, '#dag g.node[data-state="paused"]')
        layout = await page.evaluate(LAYOUT, f"{TOP} button")
        named = [
            await page.get_by_role("button", name=f"{word} {EXTRACT}").count()
            for word in ("Continue", "Step")
        ]
        in_table = await page.eval_on_selector_all(
            "#stages button[data-action]", "bs => bs.map(b => b.getClientRects().length)"
        )
        tabs = 0
        while tabs < 50 and not await page.evaluate(FOCUSED, f"{TOP} button"):
            await page.keyboard.press("Tab")
            tabs += 1
        label = await page.evaluate("document.activeElement.getAttribute('aria-label')")
        await page.keyboard.press("Enter")
        await page.wait_for_selector('body[data-stream-state="ended"]')
        after = await page.evaluate(
            "[document.activeElement.closest('tr')?.dataset.stage, "
            "document.activeElement.className, document.getElementById('run-status')"
            ".textContent, document.querySelectorAll('#paused-buttons li').length, "
            "(r => r.top >= 0 && r.bottom <= innerHeight)"
            "(document.activeElement.getBoundingClientRect())]"
        )
    assert [True, True, [[True, 2, 1, True]]] == listed
    assert [True, True] == drawn
    assert [True, True, [True, True]] == layout
    assert ([1, 1], [0, 0]) == (named, in_table)  # the top's; the table's are not laid out
    assert (True, f"Continue {EXTRACT}") == (tabs < 50, label)
    assert [EXTRACT, "link select", "success", 0, True] == after
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_paused_stage_s_buttons_beside_an_error_fit_a_desktops_stages_table(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """At 1,280 pixels, beside the stage panel, a stage paused at a breakpoint has Continue
    and Step in the stages table, whole in the window, and the table fits its box beside
    another stage's long error; the Instances and Attempts columns, which the stage panel
    has, give way. With them, the table was 785 pixels in a box of 709, its Error column cut
    at the box's edge."""
    async with (
        paused_served(tmp_path, PAUSED_BESIDE_A_FAILURE) as (url, run_id),
        browser_page(shared_chromium, width=1280) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector(state_of(LOAD, "failure"))
        await page.wait_for_selector(state_of(EXTRACT, "paused"))
        layout = await page.evaluate(LAYOUT, "#stages button[data-action], #stages .state")
        rows = await page.evaluate(ROWS)
    assert [True, True, [True] * 5] == layout
    assert [False] * 3 == [counts for _lines, _place, counts in rows], rows
    assert [] == errors


#: For each stages table row: the lines its name takes, whether its error (if any) is under
#: the name (a phone) or beside it (a desktop), and whether the Attempts cell is laid out.
ROWS = """() => Array.from(document.querySelectorAll("#stages tbody tr"), (tr) => {
  const name = tr.querySelector("button.select");
  const line = parseFloat(getComputedStyle(name).lineHeight);
  const lines = Math.round(name.getBoundingClientRect().height / line);
  const error = tr.querySelector("td.error-cell");
  const place = error.textContent === "" ? null
    : error.getBoundingClientRect().top >= name.getBoundingClientRect().bottom ? "under" : "beside";
  return [lines, place, tr.cells[4].getClientRects().length > 0];
})"""


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize(
    ("width", "under", "counts"), [(375, "under", False), (1280, "beside", True)]
)
async def test_long_hyphenated_names_fit_the_stages_table_at_a_phones_and_a_desktops_width(
    shared_chromium: Any, tmp_path: Path, width: int, under: str, counts: bool
) -> None:
    """Three stages with names of 51 to 53 characters, the last failed with a long error: each
    name takes at most three lines (at 1,280 pixels they took six to eight, a word a line,
    beside an error column of 12 em), and neither the page nor the stages table scrolls
    sideways. At 375 pixels a stage's error is under its name and the Instances and Attempts
    columns are gone (the table scrolled sideways to reach the state); at 1,280 each column
    is there, the error beside the name."""
    error = "the ledger database refused the connection: " + "password authentication " * 8
    run_id = await asyncio.to_thread(
        store_stages,
        tmp_path / "spans.db",
        "extract-customer-orders-from-the-regional-warehouse-nightly",
        [GATE, EXTRACT, LOAD],
        error,
        step=1_000_000,
    )
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, width=width) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        layout = await page.evaluate(LAYOUT, "#stages .state")
        rows = await page.evaluate(ROWS)
    assert [True, True, [True] * 3] == layout
    assert [lines <= 3 for lines, _place, _counts in rows] == [True] * 3, rows
    assert [[None, counts], [None, counts], [under, counts]] == [row[1:] for row in rows]
    assert [] == errors


def store_history(db: Path, count: int) -> None:
    """``count`` runs of ``PIPELINES`` in turn, ended with success, failure or cancellation
    in turn, every fourth retrying its first stage."""
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SqliteSpanProcessor(db))
    results = [t.RESULT_SUCCESS, t.RESULT_FAILURE, t.RESULT_CANCELLATION]
    for i in range(count):
        pipeline = PIPELINES[i % len(PIPELINES)]
        result = results[i % len(results)]
        write_run(provider, T0 + i * S, 10, pipeline=pipeline, failed=i % 4 == 0, result=result)
    provider.shutdown()


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize(("width", "under"), [(375, True), (768, True), (1280, False)])
async def test_the_runs_list_fits_a_phone_with_long_names_and_many_runs(
    shared_chromium: Any, tmp_path: Path, width: int, under: bool
) -> None:
    """The runs list of 40 runs, with pipeline names of up to 70 characters, succeeded, failed
    and cancelled, in an iPhone's 375 by 812 pixels: neither the page nor the list's box
    scrolls sideways (the table was 1,261 pixels wide, its status and start past the edge),
    each run's cells show whole, the pipeline's name under the run id, in at most three lines,
    and the start time on one. So on a 768-pixel tablet (the table's last columns were past
    its box's edge); at 1,280 pixels it is a table, the name beside the run id."""
    await asyncio.to_thread(store_history, tmp_path / "spans.db", 40)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, width=width) as (page, errors),
    ):
        await page.set_viewport_size({"width": width, "height": 812})
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/")
        fits, box_fits, rows = await page.evaluate(RUNS_LAYOUT)
        labels = await page.evaluate(
            "Array.from(document.querySelector('#runs tbody tr').cells, (td) => "
            "getComputedStyle(td, '::before').content)"
        )
    assert (True, True, 40) == (fits, box_fits, len(rows))
    assert [[True, True, 1, under]] * 40 == [
        [whole, name <= 3, time, below] for whole, name, time, below in rows
    ], rows
    named = ['"Duration " / ""', '"Stages " / ""', '"Failed " / ""']
    assert (named if under else ["none"] * 3) == labels[4:7]
    assert [] == errors


#: For each timeline row: whether its bar's track takes most of the box's width, and whether
#: its label is over the track (a phone) rather than beside it, and the label's text shown.
TIMELINE = """() => Array.from(document.querySelectorAll("#timeline .row"), (row) => {
  const box = document.getElementById("timeline").clientWidth;
  const label = row.querySelector(".label").getBoundingClientRect();
  const track = row.querySelector(".track").getBoundingClientRect();
  return [track.width >= 0.9 * box, label.bottom <= track.top];
})"""


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize(("width", "over"), [(375, True), (1280, False)])
async def test_a_phones_timeline_puts_each_label_over_its_bar(
    shared_chromium: Any, tmp_path: Path, width: int, over: bool
) -> None:
    """At 375 pixels each timeline row's label is over its bar, the bar's track across the
    box: beside it, the label's 14 em left the bars 145 pixels of a 375-pixel phone, their
    words cut ("runn"). At 1,280 pixels the label is beside its bar, as before."""
    run_id = await asyncio.to_thread(
        store_stages, tmp_path / "spans.db", "nightly", [GATE, EXTRACT, LOAD], "x", step=S
    )
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, width=width) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        rows = await page.evaluate(TIMELINE)
        fits = await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert [[over, over]] * 3 == rows
    assert fits
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_retried_stages_pill_wraps_between_its_parts_at_a_desktops_width(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """At 1,280 pixels, beside the stage panel, the stages table of a run with a retried stage
    and a skip reason fits its box: the pill of ``build`` wraps between its parts (``success
    ·``, ``2 attempts ·``, its duration), each whole on a line. Whole on one line, the pill
    made the table scroll sideways, its Error column cut at the box's edge."""
    run_id = await asyncio.to_thread(store_example_run, tmp_path / "spans.db")
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, width=1280) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        layout = await page.evaluate(LAYOUT, "#stages .state")
        parts = await page.eval_on_selector_all(
            '#stages tr[data-stage="build"] .state .part',
            "parts => parts.map(p => [p.textContent, p.getClientRects().length])",
        )
    assert [True, True, [True] * 4] == layout
    assert ["success ·", "2 attempts ·"] == [text for text, _rects in parts[:2]], parts
    assert [1, 1, 1] == [rects for _text, rects in parts]
    assert [] == errors


#: A stage's name without a hyphen or space, 80 characters long.
UNBROKEN = "transformationofthecustomerordersintotheinvoicesoftheaccountingledgerwithoutbreak"

#: For each stages table row: whether its name shows within its cell, and clear of its
#: state's pill.
NAME_CLEAR = """() => Array.from(document.querySelectorAll("#stages tbody tr"), (tr) => {
  const name = tr.querySelector("button.select").getBoundingClientRect();
  const cell = tr.cells[0].getBoundingClientRect();
  const pill = tr.querySelector(".state").getBoundingClientRect();
  const apart = name.right <= pill.left || name.bottom <= pill.top || pill.bottom <= name.top;
  return name.right <= cell.right + 0.5 && apart;
})"""


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize("width", [390, 1400])
async def test_a_stage_name_without_a_hyphen_breaks_in_the_stages_table(
    shared_chromium: Any, tmp_path: Path, width: int
) -> None:
    """A stage named by 80 letters without a hyphen breaks where it must, as a pipeline's
    name does in the runs list: on a phone it ran on under its state's pill, cut off by
    it, and at 1,400 pixels it widened the stages table past its box, the Instances column
    cut at the box's edge and the others out of sight."""
    run_id = await asyncio.to_thread(
        store_stages, tmp_path / "spans.db", "ledger", ["extract", UNBROKEN], "refused"
    )
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, width=width) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        layout = await page.evaluate(LAYOUT, "#stages .state")
        clear = await page.evaluate(NAME_CLEAR)
    assert [True, True, [True] * 2] == layout
    assert [True] * 2 == clear
    assert [] == errors
