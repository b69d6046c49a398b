"""The run page's timeline follows live events in place, in Debian's headless chromium
(Playwright): each attempt's row is made once and kept from event to event, its label and bars
rewritten; a new attempt's row is inserted where it goes.

The page's live stream is made up (``web_events_support``) so the test says exactly which rows
each event holds; it asserts on the DOM, never on pixels or timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_support import (
    SHARED_BROWSER_LOOP,
    TOKEN,
    browser_page,
    first_run,
    open_run_page,
    server_url,
    stored_runs_server,
    taskdaemon,
)
from pipeline_tracking_support import store_stages
from web_events_support import run_page_with, with_stages

pytestmark = pytest.mark.slow

#: Records, from before the page's own scripts run, every timeline row element added to or
#: removed from the page ("STAGE#ATTEMPT"), and keeps the first row element of ``work``.
WATCH_ROWS = """\
window.__added = []; window.__removed = [];
new MutationObserver((records) => {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node.nodeType !== 1 || !node.classList.contains("row")) continue;
      window.__added.push(node.dataset.stage + "#" + node.dataset.attempt);
      if (!window.__work) window.__work = node;
    }
    for (const node of record.removedNodes) {
      if (node.nodeType === 1 && node.classList.contains("row"))
        window.__removed.push(node.dataset.stage + "#" + node.dataset.attempt);
    }
  }
}).observe(document, { childList: true, subtree: true });
"""

BASE = 1_000.0


def row(
    stage: str, attempt: int, status: str, *segments: tuple[str, float, float]
) -> dict[str, Any]:
    """A timeline row of ``stage``'s instance 0; ``segments`` as (kind, start, end) seconds
    after :data:`BASE`; open while ``status`` is running or queued."""
    return {
        "stage": stage,
        "instance": 0,
        "attempt": attempt,
        "status": status,
        "open": status in ("running", "queued"),
        "segments": [{"kind": k, "start": BASE + a, "end": BASE + b} for k, a, b in segments],
    }


def timed(event: dict[str, Any], end: float, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``event`` whose timeline runs from :data:`BASE` to ``end`` seconds later, with ``rows``."""
    event["timeline"] = {"start": BASE, "end": BASE + end, "rows": rows, "hidden": 0}
    return event


@SHARED_BROWSER_LOOP
async def test_live_events_update_the_timelines_rows_in_place(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """Three events: a stage's first attempt fails and a second one starts (its row goes
    between the first one's and the next stage's), another stage goes from queued to running
    to success, a third one starts. Each row is added once and none is removed: the first
    attempt's row is the element it was at the first event; the rows say the last event, and
    each bar its kind and how long (it said its kind alone, all a screen reader got)."""

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        first = timed(
            with_stages(event, ["running", "running", "pending"], ""),
            2,
            [
                row("work", 1, "running", ("running", 0, 2)),
                row("s1", 1, "queued", ("queued", 1, 2)),
            ],
        )
        second = timed(
            with_stages(event, ["running", "running", "pending"], ""),
            4,
            [
                row("work", 1, "failure", ("running", 0, 3)),
                row("work", 2, "running", ("running", 3, 4)),
                row("s1", 1, "running", ("queued", 1, 3.5), ("running", 3.5, 4)),
            ],
        )
        third = timed(
            with_stages(event, ["success", "success", "running"], ""),
            6,
            [
                row("work", 1, "failure", ("running", 0, 3)),
                row("work", 2, "success", ("running", 3, 5)),
                row("s1", 1, "success", ("queued", 1, 3.5), ("running", 3.5, 6)),
                row("s2", 1, "running", ("running", 5, 6)),
            ],
        )
        return [first, second, third]

    page_with = run_page_with(tmp_path, make, browser=shared_chromium, init_script=WATCH_ROWS)
    async with page_with as (page, errors, _):
        await page.wait_for_selector('#timeline .row[data-stage="s2"]')
        added = await page.evaluate("window.__added")
        removed = await page.evaluate("window.__removed")
        kept = await page.evaluate(
            """document.querySelector('#timeline .row[data-stage="work"][data-attempt="1"]')
               === window.__work"""
        )
        shown = await page.eval_on_selector_all(
            "#timeline .row",
            """rows => rows.map(r => [r.querySelector(".label").textContent,
                                      Array.from(r.querySelectorAll(".seg"), s => s.className)])""",
        )
        axis = await page.text_content("#timeline .axis")
        said = await page.eval_on_selector_all(
            '#timeline .row[data-stage="s1"] .seg', "bars => bars.map(b => b.textContent)"
        )
    assert ["work#1", "s1#1", "work#2", "s2#1"] == added
    assert [] == removed
    assert kept
    assert [
        ["work · failure", ["seg seg-running"]],
        ["work #2 · success", ["seg seg-running"]],
        ["s1 · success", ["seg seg-queued", "seg seg-running"]],
        ["s2 · running", ["seg seg-running open"]],
    ] == shown
    assert "0s6.0s" == axis
    assert ["queued 2.5s", "running 2.5s"] == said  # a screen reader hears how long too
    assert [] == errors


#: Each timeline row's label: its whole text, and whether the part after the stage's name
#: (instance, attempt, state: what tells the rows of one stage apart) shows whole in the
#: label's box, not cut by the box's edge.
LABELS = """() => [...document.querySelectorAll("#timeline .row")].map((row) => {
  const label = row.querySelector(".label");
  const walker = document.createTreeWalker(label, NodeFilter.SHOW_TEXT);
  let skip = row.dataset.stage.length;
  const range = document.createRange();
  while (walker.nextNode()) {
    const text = walker.currentNode;
    if (skip <= text.length) { range.setStart(text, skip); break; }
    skip -= text.length;
  }
  range.setEndAfter(label.lastChild);
  const shown = range.getBoundingClientRect().right <= label.getBoundingClientRect().right + 0.5;
  return [label.textContent, shown];
})"""


@SHARED_BROWSER_LOOP
async def test_a_timeline_of_many_attempts_shows_which_attempt_each_row_is(
    shared_chromium: Any,
    tmp_path: Path,
) -> None:
    """A fan-out stage with a long name, four instances each retried once: every row's label
    shows its instance, attempt and state whole (the name is what gets cut), so the rows can
    be told apart (the label was cut at its end: eight rows read "ingest-customer-ord…")."""
    stage = "ingest-customer-orders"
    rows = [
        {
            "stage": stage,
            "instance": instance,
            "attempt": attempt,
            "status": "failure" if attempt == 1 else "success",
            "open": False,
            "segments": [{"kind": "running", "start": BASE + attempt, "end": BASE + attempt + 1}],
        }
        for instance in range(4)
        for attempt in (1, 2)
    ]

    def make(first: dict[str, Any]) -> list[dict[str, Any]]:
        event = with_stages(first, ["success"], "")
        event["nodes"][0]["name"] = stage
        return [timed(event, 3.0, rows)]

    async with run_page_with(tmp_path, make, browser=shared_chromium) as (page, errors, _drawings):
        labels = await page.evaluate(LABELS)
    assert 8 == len({text for text, _shown in labels}), labels
    assert all(shown for _text, shown in labels), labels
    assert (f"{stage} [0] · failure", f"{stage} [3] #2 · success") == (labels[0][0], labels[-1][0])
    assert [] == errors


#: The timeline's box and the window: its height, how far it scrolls, whether its axis shows
#: at the box's top once scrolled to its end, and the window's height.
TIMELINE_BOX = """async () => {
  const box = document.getElementById("timeline");
  box.scrollTop = box.scrollHeight;
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const axis = box.querySelector(".axis").getBoundingClientRect();
  const top = box.getBoundingClientRect().top;
  return [box.clientHeight, box.scrollHeight, Math.abs(axis.top - top) < 2, window.innerHeight,
          box.querySelectorAll(".row").length];
}"""


@SHARED_BROWSER_LOOP
async def test_a_timeline_of_2000_rows_scrolls_in_its_box_under_its_axis(
    shared_chromium: Any,
    tmp_path: Path,
) -> None:
    """A run of 2,000 stages: the timeline's 2,000 rows scroll in a box at most 60% of the
    window high, its axis kept at the box's top. They were 34,000 pixels of page between the
    DAG and the stages table, whose rows a user came for."""
    names = [f"s{i:04d}" for i in range(2000)]
    run_id = await asyncio.to_thread(
        store_stages, tmp_path / "spans.db", "big", names, "boom", step=1_000_000
    )
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        height, scrolled, axis_shown, window, rows = await page.evaluate(TIMELINE_BOX)
    assert 2000 == rows
    assert height <= 0.6 * window + 1
    assert scrolled > 20 * height
    assert axis_shown
    assert [] == errors


#: A stage that waits for its approval, runs a second, then one held until a file exists: the
#: run, and the server ``run --serve`` closes at its end, stay while the live page is read.
GATED = """\
name: gated
stages:
  - name: release
    command: "sleep 1"
    triggers: [{manual: {approval_required: true}}]
  - name: hold
    command: "while [ ! -e {go} ]; do sleep 0.05; done"
    triggers: [{on_completion: {stage: release}}]
"""

#: A stage's row's bars: each one's kind, text, title and left and width in pixels.
BARS = """(stage) => [...document.querySelectorAll(`#timeline .row[data-stage="${stage}"] .seg`)]
  .map((bar) => { const box = bar.getBoundingClientRect();
                  return [bar.dataset.kind, bar.textContent, bar.title, box.left, box.width]; })"""


async def release_bars(
    page: Any, stage: str = "release"
) -> dict[str, tuple[str, str, float, float]]:
    """The bars of ``stage``'s row by kind: (text, title, left, width)."""
    return {
        kind: (text, title, left, width)
        for kind, text, title, left, width in await page.evaluate(BARS, stage)
    }


def approval_and_run(record: dict[str, Any]) -> tuple[float, float]:
    """The release stage's approval wait and running time, as its run record says."""
    (wait,) = [w for w in record["approvals"] if w["stage"] == "release"]
    (stage,) = [stage for stage in record["stages"] if stage["name"] == "release"]
    (attempt,) = stage["attempts"]
    return wait["resolved"] - wait["requested"], attempt["end"] - attempt["start"]


@contextlib.asynccontextmanager
async def served_run(
    browser: Any, tmp_path: Path, pipeline: str, *options: str
) -> AsyncIterator[tuple[str, Any, list[str], httpx.AsyncClient]]:
    """``taskdaemon run`` of ``pipeline`` with ``options``, serving its API: its run's id, the
    run's page in ``browser`` (signed in), the page's console errors and a client of the API
    with the token. ``{go}`` in ``pipeline`` names the file its last stage waits for, made on
    exit; the process must then end with 0."""
    go = tmp_path / "go"
    (tmp_path / "run.yaml").write_text(pipeline.replace("{go}", str(go)))
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    argv = ["run", "run.yaml", "--quiet", *options, "--serve", "127.0.0.1:0"]
    with taskdaemon(argv, cwd=tmp_path) as process:
        url = await asyncio.to_thread(server_url, process)
        run_id = await first_run(url)
        async with (
            browser_page(browser) as (page, errors),
            httpx.AsyncClient(base_url=url, headers={**headers, "origin": url}) as api,
        ):
            await page.goto(f"{url}/?token={TOKEN}")
            await page.goto(f"{url}/runs/{run_id}")
            yield run_id, page, errors, api
            go.touch()
        assert 0 == process.wait(timeout=60)


@SHARED_BROWSER_LOOP
async def test_the_timeline_draws_an_approval_wait_live_and_stored(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A stage waits for its manual approval, granted through the API a moment after the page
    shows it waiting: its row is first one open ``approval`` bar, then an ``approval`` bar
    before its ``running`` one, ending where that one begins, their widths in the ratio of the
    run record's approval wait to its running time; the stored run's page draws the same.
    The wait was drawn as nothing: the row held its running bar alone."""
    async with served_run(shared_chromium, tmp_path, GATED) as (run_id, page, errors, api):
        await page.wait_for_selector('#timeline .row[data-stage="release"] .seg-approval.open')
        waiting = await release_bars(page)
        await asyncio.sleep(1.0)  # the wait the timeline is to show
        approved = await api.post(f"/api/runs/{run_id}/approve/release", json={})
        await page.wait_for_selector('#timeline .row[data-stage="hold"]')
        live = await release_bars(page)
        record = (await api.get(f"/api/runs/{run_id}")).json()
    async with (
        stored_runs_server(tmp_path / "home" / "spans.db") as stored_url,
        browser_page(shared_chromium) as (stored_page, stored_errors),
    ):
        await open_run_page(stored_page, stored_url, run_id)
        stored = await release_bars(stored_page)
    assert ["approval"] == list(waiting), waiting
    assert 202 == approved.status_code, approved.text
    waited, ran = approval_and_run(record)
    assert waited >= 1.0, record["approvals"]  # requested before it showed, granted 1 s after
    for bars in (live, stored):
        assert ["approval", "running"] == [k for k in bars if k != "queued"], bars
        text, title, left, width = bars["approval"]
        assert (True, title) == (text.startswith("approval "), text), bars
        running_left, running_width = bars["running"][2:]
        assert left + width <= running_left + 1, bars
        assert width / running_width == pytest.approx(waited / ran, rel=0.05), bars
    assert [] == errors
    assert [] == stored_errors


HELD = """\
name: held
stages:
  - name: prepare
    command: "echo '{}'"
    triggers: [{manual: {approval_required: false}}]
  - name: build
    command: "echo '{}'"
    triggers: [{on_completion: {stage: prepare}}]
  - name: hold
    command: "while [ ! -e {go} ]; do sleep 0.05; done"
    triggers: [{on_completion: {stage: build}}]
"""

#: A row's label: its text and its title.
LABEL = """(stage) => { const label = document.querySelector(
  `#timeline .row[data-stage="${stage}"] .label`); return [label.textContent, label.title]; }"""


async def build_row(page: Any) -> tuple[list[str], str, str]:
    """The kinds of the build row's bars, its label's text and its title."""
    text, title = await page.evaluate(LABEL, "build")
    return [kind for kind in await release_bars(page, "build") if kind != "queued"], text, title


@SHARED_BROWSER_LOOP
async def test_the_timeline_draws_a_stage_paused_before_its_first_attempt(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """``run --break build``: build pauses before its first attempt. The run's page (its live
    state) and a ``ui`` page over the store (its spans) draw its row, one open ``paused`` bar,
    the label's title saying since when and at which breakpoint, as the stage panel and the
    API's run record do;
    after ``continue`` the same row is its attempt's, paused then running. The timeline had no
    row for it: the run looked stuck with nothing paused."""
    served = served_run(shared_chromium, tmp_path, HELD, "--break", "build")
    async with served as (run_id, page, errors, api):
        await page.wait_for_selector('#timeline .row[data-stage="build"] .seg-paused.open')
        live = await build_row(page)
        record = (await api.get(f"/api/runs/{run_id}")).json()
        await page.click('#stages tr[data-stage="build"] button.select')
        panel = await page.text_content('#stage-detail dt:text-is("paused") + dd')
        async with (
            stored_runs_server(tmp_path / "home" / "spans.db") as stored_url,
            browser_page(shared_chromium) as (stored_page, stored_errors),
        ):
            await stored_page.goto(f"{stored_url}/?token={TOKEN}")
            await stored_page.goto(f"{stored_url}/runs/{run_id}")
            await stored_page.wait_for_selector('#timeline .row[data-stage="build"] .seg-paused')
            stored = await build_row(stored_page)
        continued = await api.post(f"/api/runs/{run_id}/debug/continue", json={})
        await page.wait_for_selector('#timeline .row[data-stage="hold"]')
        resumed = await build_row(page)
    (build,) = [stage for stage in record["stages"] if stage["name"] == "build"]
    (pause,) = build["paused_before_start"]
    reason = "#1 before build (pipeline held)"
    assert ("paused", [], "build.0.1", reason) == (
        build["status"],
        build["attempts"],
        pause["task_run_id"],
        pause["reason"],
    )
    since = r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d at " + re.escape(reason)
    for kinds, text, title in (live, stored):
        assert (["paused"], "build · paused") == (kinds, text)
        assert re.fullmatch(f"build: paused {since}", title), title
    assert re.fullmatch(f"build.0.1 {since}", panel or ""), panel
    assert (200, {"resumed": 1}) == (continued.status_code, continued.json())
    assert (["paused", "running"], "build · success", "build: success") == resumed
    assert [] == errors
    assert [] == stored_errors


#: Each bar of the timeline: its kind, whether the text it shows is wider than the bar (its
#: kind's text measured whole, in CSS pixels), whether that text overflows the bar's box, the
#: bar's ``text-overflow`` and its title.
CUT_BARS = """() => [...document.querySelectorAll("#timeline .row .seg")].map((bar) => {
  const range = document.createRange();
  range.selectNodeContents(bar.firstChild);
  const wider = range.getBoundingClientRect().width > bar.clientWidth;
  return [bar.dataset.kind, wider, bar.scrollWidth > bar.clientWidth,
          getComputedStyle(bar).textOverflow, bar.title];
})"""


@SHARED_BROWSER_LOOP
async def test_a_bar_too_short_for_its_label_ends_it_with_an_ellipsis(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A bar narrower than its kind's word is marked cut and ends it with an ellipsis (it was
    cut mid-word: "runni", "ru"), its title saying it whole; a long bar shows its word whole."""

    def make(first: dict[str, Any]) -> list[dict[str, Any]]:
        event = with_stages(first, ["success", "success", "success"], "")
        bars = ("queued", 0, 1), ("running", 1, 100)
        return [timed(event, 100, [row("work", 1, "success", *bars)])]

    async with run_page_with(tmp_path, make, browser=shared_chromium) as (page, errors, _):
        await page.wait_for_selector("#timeline .seg-running")
        bars = await page.evaluate(CUT_BARS)
    assert [
        ["queued", True, True, "ellipsis", "queued 1.0s"],
        ["running", False, False, "ellipsis", "running 1m39s"],
    ] == bars
    assert [] == errors


#: The run's duration, the axis's end and the release stage's approval bar's title, as shown.
CLOCKS = """() => [document.getElementById("run-duration").textContent,
  document.querySelector("#timeline .axis").lastElementChild.textContent,
  document.querySelector('#timeline .row[data-stage="release"] .seg-approval').title]"""


def seconds(shown: str) -> float:
    """The seconds of a duration as the page and the CLI write it (``92ms``, ``8.6s``,
    ``1m09s``)."""
    found = re.fullmatch(r"(?:(\d+)m)?(\d+(?:\.\d+)?)(ms|s)", shown.rsplit(maxsplit=1)[-1])
    assert found is not None, shown
    minutes, value, unit = found.groups()
    return int(minutes or 0) * 60 + float(value) / (1000 if unit == "ms" else 1)


@SHARED_BROWSER_LOOP
async def test_a_run_waiting_for_its_approval_shows_its_time_going_on(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """While a stage waits for its approval no event comes, and the run's duration, the
    timeline's axis and the open approval bar go on by the second all the same, in the
    CLI's format: they stood at the last event's, a run waiting an hour read a second."""
    async with served_run(shared_chromium, tmp_path, GATED) as (run_id, page, errors, api):
        await page.wait_for_selector('#timeline .row[data-stage="release"] .seg-approval.open')
        await page.wait_for_selector('body[data-stream-state="open"]')
        first = await page.evaluate(CLOCKS)
        await page.wait_for_function(
            f"(first) => ({CLOCKS})().every((shown, i) => shown !== first[i])", arg=first
        )
        later = await page.evaluate(CLOCKS)
        approved = await api.post(f"/api/runs/{run_id}/approve/release", json={})
    assert 202 == approved.status_code, approved.text
    assert [True] * 3 == [seconds(b) > seconds(a) for a, b in zip(first, later, strict=True)]
    assert later[2].startswith("approval ")
    assert [] == errors
