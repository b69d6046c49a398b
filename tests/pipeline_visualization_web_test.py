"""The web page in a real browser: Debian's chromium, headless, driven by Playwright.

Each test starts real processes: ``taskdaemon serve --pipeline`` (engine, span store and
server in one process) or a plain ``taskdaemon run`` read by a ``ui``-style server over its span
store. The browser signs in with ``/?token=T`` (the session cookie), follows the run through
Server-Sent Events, and the tests assert on the DOM (``data-state`` attributes and texts), never
on pixels. Every test also checks that the console logged no error. They take the README's
screenshots, ``docs/images/run-page.png`` and ``docs/images/report.png`` (``taskdaemon report
--format html`` of the store, opened in the same browser), written when missing or with
``TASKDAEMON_UPDATE_SCREENSHOTS=1`` so an ordinary run leaves the checkout clean.

Playwright drives ``/usr/bin/chromium`` (``executable_path``): no browser is downloaded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from browser_support import (
    SHARED_BROWSER_LOOP,
    TOKEN,
    browser_page,
    first_run,
    server_url,
    state_of,
    stored_runs_server,
    taskdaemon,
)
from cli_support import without_settings
from pipeline_tracking_support import T0, store_stages, store_with
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.home import DEFAULT_HOME
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking.store import SpanStore
from taskdaemon.pipeline.web import WebOptions

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "images" / "run-page.png"
REPORT_SCREENSHOT = ROOT / "docs" / "images" / "report.png"

pytestmark = pytest.mark.slow

PIPELINE = """\
name: web-demo
description: a run the browser tests follow
loops:
  plan: {handler: "web_loops:plan"}
  build: {handler: "web_loops:build"}
  ship: {handler: "web_loops:ship"}
stages:
  - name: plan
    loop: plan
    triggers: [{manual: {approval_required: false}}]
    inputs:
      goal: {from: request.goal, required: true}
  - name: build
    loop: build
    triggers: [{on_completion: {stage: plan}}]
    inputs:
      plan: stages.plan.outputs.plan
  - name: deploy
    loop: ship
    trigger_mode: all
    triggers:
      - on_completion: {stage: build}
      - manual: {approval_required: true}
"""

LOOPS = """\
import asyncio
from pathlib import Path
from typing import Any


def plan(ctx):
    return {"plan": ["compile", "test"], "api_token": "hunter2-never-shown"}


async def build(ctx):
    # Held until the test creates the file "go": the browser sees the stage running first.
    while not Path("go").exists():
        await asyncio.sleep(0.02)
    return {"artifact": "app-1.0.tar.gz"}


def ship(ctx):
    return {"shipped": True}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory with the pipeline, its handlers and a home."""
    (tmp_path / "web.yaml").write_text(PIPELINE)
    (tmp_path / "web_loops.py").write_text(LOOPS)
    return tmp_path


def keep_screenshot(png: bytes, target: Path) -> None:
    """Write the README's screenshot when it is missing or ``TASKDAEMON_UPDATE_SCREENSHOTS=1``
    (so an ordinary test run leaves the checkout clean); either way it must be a PNG."""
    assert png.startswith(b"\x89PNG\r\n")
    if not target.exists() or os.environ.get("TASKDAEMON_UPDATE_SCREENSHOTS") == "1":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)


@SHARED_BROWSER_LOOP
async def test_run_page_follows_a_served_run_live_and_approves_it(
    shared_chromium: Any, workdir: Path
) -> None:
    """Through ``serve --pipeline`` (engine, store and server in one process): the browser
    signs in by the token link, sees ``build`` go from running to success and ``deploy`` wait
    through SSE without a reload, reads the redacted outputs of ``plan``, approves ``deploy``,
    sees the run finish, and logs no console error."""
    argv = [
        "serve",
        "--pipeline",
        "web.yaml",
        "-i",
        "goal=ship it",
        "--max-runs",
        "1",
        "--port",
        "0",
    ]
    with taskdaemon(argv, cwd=workdir) as process:
        url = server_url(process)
        run_id = await first_run(url)
        async with browser_page(shared_chromium) as (page, errors):
            await page.goto(f"{url}/?token={TOKEN}")  # sets the cookie, redirects to /
            assert f"{url}/" == page.url
            await page.click(f'#runs tr[data-run-id="{run_id}"] a')
            await page.wait_for_selector(state_of("build", "running"))
            await page.evaluate("window.__sameDocument = true")
            await page.wait_for_selector('#dag g.node[data-stage="build"][data-state="running"]')
            (workdir / "go").touch()
            await page.wait_for_selector(state_of("build", "success"))
            await page.wait_for_selector(state_of("deploy", "waiting"))
            await page.wait_for_selector('#dag g.node[data-stage="build"][data-state="success"]')
            build_label = await page.text_content('#dag g.node[data-stage="build"]')
            await page.click('#stages tr[data-stage="plan"] button.select')
            await page.wait_for_selector("#stage-detail pre.outputs")
            outputs = await page.text_content("#stage-detail pre.outputs")
            actions_open = await page.is_visible("#stages th.actions")
            await page.click(f'{state_of("deploy", "waiting")} button[data-action="approve"]')
            await page.wait_for_selector('body[data-stream-state="ended"]')
            status = await page.text_content("#run-status")
            actions_ended = await page.is_visible("#stages th.actions")
            rows = await page.eval_on_selector_all(
                "#stages tbody tr", "rows => rows.map(r => [r.dataset.stage, r.dataset.state])"
            )
            segments = await page.eval_on_selector_all(
                "#timeline .seg", "bars => bars.map(b => b.dataset.kind)"
            )
            trace = await page.get_attribute("#trace-link", "href")
            same_document = await page.evaluate("window.__sameDocument === true")
            await page.wait_for_selector('#dag g.node[data-stage="deploy"][data-state="success"]')
            await page.wait_for_selector('#stage-logs[data-log-state="complete"]')
            keep_screenshot(await page.screenshot(full_page=True), SCREENSHOT)
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(timeout=30)
    assert "success" == status
    assert (True, False) == (actions_open, actions_ended)  # an ended run has no empty column
    assert [["plan", "success"], ["build", "success"], ["deploy", "success"]] == rows
    assert {"running"} <= set(segments)
    assert "success" in (build_label or "")
    assert "[REDACTED]" in (outputs or "")
    assert "hunter2" not in (outputs or "")
    assert (trace or "").startswith("http://grafana.invalid:3000/explore?")
    assert same_document
    assert [] == errors


GATED = """\
name: gated
stages:
  - name: prepare-the-release-notes
    loop: command
    command: "true"
    triggers: [{manual: {approval_required: false}}]
  - name: gate
    loop: command
    command: "true"
    trigger_mode: all
    triggers:
      - on_completion: {stage: prepare-the-release-notes}
      - manual: {approval_required: true}
"""

APPROVE = '#stages tr[data-stage="gate"] button[data-action="approve"]'

#: Whether the Approve button shows whole in the stages table's box, not past its right edge.
IN_BOX = """b => b.getBoundingClientRect().right
    <= b.closest(".table-scroll").getBoundingClientRect().right"""


@SHARED_BROWSER_LOOP
async def test_a_stage_waiting_for_approval_is_said_and_approved_by_keyboard(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A new user opens a served run by the 12-digit prefix ``runs list`` prints: it redirects
    to the run's page (under the prefix it read "from stored spans, read-only", no Approve).
    There the top says which stage waits for an approval; the table's Approve shows in a
    1,000-pixel window (last of six columns, it was past the table's box) and names its stage
    to a screen reader (so does the top's, beside the stage's name). Pressed with Enter, the
    focus moves to the stage's name (a disabled button dropped it to the page's top), and the
    end is said with the run's status."""
    (tmp_path / "gated.yaml").write_text(GATED)
    argv = ["serve", "--pipeline", "gated.yaml", "--max-runs", "1", "--port", "0"]
    with taskdaemon(argv, cwd=tmp_path) as process:
        url = server_url(process)
        run_id = await first_run(url)
        async with browser_page(shared_chromium, width=1000) as (page, errors):
            await page.goto(f"{url}/?token={TOKEN}")
            for _ in range(600):  # until the store has the run: it resolves prefixes
                if (await page.request.get(f"{url}/api/runs/{run_id[:12]}")).ok:
                    break
                await asyncio.sleep(0.05)
            await page.goto(f"{url}/runs/{run_id[:12]}")
            await page.wait_for_selector(APPROVE)
            opened = page.url
            said = await page.text_content("#run-approvals")
            named = await page.get_by_role("button", name="Approve gate").count()
            in_box = await page.eval_on_selector(APPROVE, IN_BOX)
            await page.focus(APPROVE)
            await page.keyboard.press("Enter")
            await page.wait_for_selector('body[data-stream-state="ended"]')
            focused = await page.evaluate(
                "document.activeElement.closest('tr')?.dataset.stage + ' ' + "
                "document.activeElement.className"
            )
            note = await page.text_content("#stream-note")
            said_after = await page.text_content("#run-approvals")
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(timeout=30)
    assert f"{url}/runs/{run_id}" == opened
    assert "Waiting for your approval: gate." == said
    assert (2, True) == (named, in_box)  # the row's, and the top's (the next test's)
    assert ("gate link select", "The run has ended: success.", "") == (focused, note, said_after)
    assert [] == errors


TOP_APPROVE = '#approval-buttons li[data-stage="gate"] button[data-action="approve"]'

#: Where the top's Approve is: whether it shows whole in the window's width, and the
#: page's own width over the window's (a sideways scroll).
PLACE = """b => [b.getBoundingClientRect().right <= window.innerWidth,
    document.documentElement.scrollWidth - document.documentElement.clientWidth]"""


@SHARED_BROWSER_LOOP
async def test_a_phone_approves_at_the_top_of_the_page_by_keyboard(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """In a 375-pixel window the stages table's Approve was past its box's right edge, to be
    scrolled to sideways; the top of the page carries each waiting stage's Approve and Reject,
    in view, the page no wider than the window. Reached by Tab and pressed with Enter, the run
    goes on, and the focus goes to the stage's name in the table once the line is gone."""
    (tmp_path / "gated.yaml").write_text(GATED)
    argv = ["serve", "--pipeline", "gated.yaml", "--max-runs", "1", "--port", "0"]
    with taskdaemon(argv, cwd=tmp_path) as process:
        url = server_url(process)
        run_id = await first_run(url)
        async with browser_page(shared_chromium, width=375) as (page, errors):
            await page.goto(f"{url}/?token={TOKEN}")
            await page.goto(f"{url}/runs/{run_id}")
            await page.wait_for_selector(TOP_APPROVE)
            place = await page.eval_on_selector(TOP_APPROVE, PLACE)
            line = await page.text_content('#approval-buttons li[data-stage="gate"]')
            tabs = 0
            while tabs < 50 and not await page.eval_on_selector(
                TOP_APPROVE, "b => b === document.activeElement"
            ):
                await page.keyboard.press("Tab")
                tabs += 1
            await page.keyboard.press("Enter")
            await page.wait_for_selector('body[data-stream-state="ended"]')
            focused = await page.evaluate(
                "document.activeElement.closest('tr')?.dataset.stage + ' ' + "
                "document.activeElement.className"
            )
            status = await page.text_content("#run-status")
            left = await page.locator("#approval-buttons li").count()
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(timeout=30)
    assert [True, 0] == place
    assert ("gate ApproveReject", True) == (line, tabs < 50)
    assert ("gate link select", "success", 0) == (focused, status, left)
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_ui_follows_a_run_of_another_process_read_only(
    shared_chromium: Any, workdir: Path
) -> None:
    """``ui``'s server over the span store another process writes: the page shows ``build``
    running, then done, without a reload, has no approve button, and logs no error; the HTML
    report of that store, made as a user makes it in their project (the default home, no
    setting), opens in the same browser and names the store as ``.taskdaemon/spans.db``: the
    README's screenshot showed the test's temporary path."""
    home = workdir / DEFAULT_HOME
    store_url = f"sqlite:///{(home / 'spans.db').as_posix()}"
    auth = ApiAuth.configured(TOKEN)
    app = create_app(
        auth=auth, web=WebOptions(source_url=store_url, read_only=True, poll_interval=0.1)
    )
    server = MonitorServer(app, host="127.0.0.1", port=0)
    argv = ["run", "web.yaml", "-i", "goal=ship it", "--approve", "deploy", "--quiet"]
    with taskdaemon(argv, cwd=workdir, home=home) as process:
        await server.start()
        try:
            run_id = await first_run(server.url)
            async with browser_page(shared_chromium) as (page, errors):
                await page.goto(f"{server.url}/?token={TOKEN}")
                await page.goto(f"{server.url}/runs/{run_id}")
                await page.wait_for_selector(state_of("build", "running"))
                await page.evaluate("window.__sameDocument = true")
                (workdir / "go").touch()
                await page.wait_for_selector('body[data-stream-state="ended"]')
                status = await page.text_content("#run-status")
                build = await page.get_attribute('#stages tr[data-stage="build"]', "data-state")
                buttons = await page.locator("#stages button[data-action]").count()
                actions = await page.is_visible("#stages th.actions")
                tag = await page.text_content(".summary")
                same_document = await page.evaluate("window.__sameDocument === true")
                assert 0 == process.wait(timeout=30)
                # The HTML report of the same store, screenshotted for the README.
                report = workdir / "report.html"
                await asyncio.to_thread(
                    subprocess.run,
                    [
                        sys.executable,
                        "-m",
                        "taskdaemon.pipeline.cli",
                        "report",
                        "--format",
                        "html",
                        "-o",
                        str(report),
                    ],
                    cwd=workdir,
                    env=without_settings(),
                    check=True,
                    timeout=120,
                    capture_output=True,
                )
                await page.goto(report.as_uri())
                report_text = await page.text_content("body")
                keep_screenshot(await page.screenshot(full_page=True), REPORT_SCREENSHOT)
        finally:
            await server.aclose()
            app.state.web.close()
        assert 0 == process.wait(timeout=30)
    assert ("success", "success", 0, False) == (status, build, buttons, actions)
    assert "web-demo" in (report_text or "")
    assert "read from sqlite:///.taskdaemon/spans.db." in (report_text or "")
    assert "read-only" in (tag or "")
    assert "from stored spans" in (tag or "")
    assert same_document
    assert [] == errors


def test_store_is_closed_by_the_ui_app(workdir: Path) -> None:
    """The page's span source is opened on first use and closed by ``web.close()``."""
    path = workdir / "spans.db"
    connect(path).close()  # as a writer does: readers never create a store
    app = create_app(auth=ApiAuth.configured(TOKEN), web=WebOptions(source_url=f"sqlite:///{path}"))
    source = app.state.web.data.source()
    app.state.web.close()
    assert isinstance(source, SpanStore)
    assert app.state.web.data._source is None
    assert shutil.which("dot") is not None


def other_zone(epoch: float) -> str:
    """A time zone whose clock at ``epoch`` differs from this machine's."""
    local = datetime.fromtimestamp(epoch).astimezone().utcoffset()
    tokyo = datetime.fromtimestamp(epoch, ZoneInfo("Asia/Tokyo")).utcoffset()
    return "Asia/Tokyo" if local != tokyo else "America/New_York"


@SHARED_BROWSER_LOOP
async def test_every_time_on_the_pages_is_in_the_browsers_zone(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A run's start reads the same on the runs page as the server sent it, after the page's
    own refresh, and on the run page: the browser's local time, which the script uses for every
    other time it shows."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    zone = other_zone(T0 / 1e9)
    shown = datetime.fromtimestamp(T0 / 1e9, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, timezone_id=zone) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        first = await page.text_content(f'#runs tr[data-run-id="{run_id}"] td:nth-child(4)')
        await page.locator("#runs-updated", has_text="Updated").wait_for()
        refreshed = await page.text_content(f'#runs tr[data-run-id="{run_id}"] td:nth-child(4)')
        await page.goto(f"{url}/runs/{run_id}")
        started = await page.text_content("#run-started")
    assert (shown, shown, shown) == (first, refreshed, started)
    assert [] == errors


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize("work_ms", [999.6, 59_960])
async def test_the_stage_panel_writes_durations_as_the_terminal_does(
    shared_chromium: Any, tmp_path: Path, work_ms: float
) -> None:
    """An attempt's duration near a unit's end reads as ``format_duration`` writes it for
    ``runs show`` (``1.0s``, ``1m00s``), not as ``1000ms`` or ``60.0s``."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [work_ms])
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.click('#stages tr[data-stage="work"] button.select')
        took = await page.text_content('#stage-detail dt:text-is("took") + dd')
    assert format_duration(work_ms / 1000) == took
    assert [] == errors


def store_a_failed_stage(db: Path, error: str) -> str:
    """A stored run whose one stage, ``work``, failed with ``error``; returns the run id."""
    return store_stages(db, "wide", ["work"], error)


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize("width", [1280, 390])
async def test_a_long_unbroken_error_never_widens_the_run_page(
    shared_chromium: Any, tmp_path: Path, width: int
) -> None:
    """An error of 900 characters without a space (a token, a blob) wraps inside its stages
    cell and its stage panel: the page is no wider than the window, so the Actions column
    stays in view."""
    run_id = await asyncio.to_thread(store_a_failed_stage, tmp_path / "spans.db", "E" * 900)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, width=width) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.click('#stages tr[data-stage="work"] button.select')
        await page.wait_for_selector("#stage-detail pre.error")
        widths = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
    assert widths[1] == widths[0]
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_long_error_is_cut_in_the_stages_table_and_whole_in_the_panel(
    shared_chromium: Any,
    tmp_path: Path,
) -> None:
    """The stages table shows an error's first 200 characters (a row stays a row, as a
    terminal table cuts its cell); the stage panel shows the whole error."""
    run_id = await asyncio.to_thread(store_a_failed_stage, tmp_path / "spans.db", "E" * 900)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        rendered = await page.text_content('#stages tr[data-stage="work"] td.error-cell')
        await page.click('#stages tr[data-stage="work"] button.select')
        panel = await page.text_content("#stage-detail pre.error")
        redrawn = await page.text_content('#stages tr[data-stage="work"] td.error-cell')
    cut = "E" * 199 + "…"
    assert (cut, cut, "E" * 900) == (rendered, redrawn, panel)
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_stage_picked_before_the_first_live_update_opens_its_panel(
    shared_chromium: Any,
    tmp_path: Path,
) -> None:
    """A stage picked in the table the server drew, before the stream's first update has come
    (held back here), opens its panel and marks its row, with no script error."""
    run_id = await asyncio.to_thread(store_a_failed_stage, tmp_path / "spans.db", "boom")
    held: list[object] = []

    async def hold(route: object) -> None:  # never answered: no update comes
        held.append(route)

    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.route("**/api/runs/*/stream?*", hold)
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.click('#stages tr[data-stage="work"] button.select')
        panel = await page.text_content("#stage-detail pre.error")
        marked = await page.get_attribute('#stages tr[data-stage="work"]', "class")
        stream_state = await page.get_attribute("body", "data-stream-state")
    expected = ("boom", "selected", "connecting", [])
    assert expected == (panel, marked, stream_state, errors)


@SHARED_BROWSER_LOOP
async def test_the_dag_drawing_is_named_for_screen_readers(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The DAG is a figure named by the pipeline, how many stages it has (one: no plural) and
    the run's status; its drawing is hidden from assistive technology, which the figure's
    words stand for (the stages table lists each stage in words)."""
    run_id = await asyncio.to_thread(store_a_failed_stage, tmp_path / "spans.db", "disk full")
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector("#dag svg")
        label = await page.get_attribute("#dag", "aria-label")
        hidden = await page.get_attribute("#dag svg", "aria-hidden")
    assert ("DAG of wide: 1 stage, run failure", "true") == (label, hidden)
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_the_stage_panels_scrolling_boxes_take_keyboard_focus(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The stage panel's boxes (here the error's) and its log list scroll when long, so each
    takes keyboard focus (``tabindex=0``): a keyboard user can scroll them too."""
    run_id = await asyncio.to_thread(store_a_failed_stage, tmp_path / "spans.db", "disk full")
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.click('#stages tr[data-stage="work"] button.select')
        await page.wait_for_selector("#stage-detail pre.error")
        boxes = await page.eval_on_selector_all(
            "#stage-detail pre, #log-lines",
            "nodes => nodes.map(n => [n.id || n.className, n.tabIndex])",
        )
    assert [["error", 0], ["log-lines", 0]] == boxes
    assert [] == errors


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize(
    ("error", "shown"),
    [("x \u202eevil", "x \\u202eevil"), ("pass\u200bword", "pass\\u200bword")],
    ids=["bidirectional-override", "zero-width-space"],
)
async def test_an_unseen_character_in_an_error_is_shown_as_an_escape(
    shared_chromium: Any, tmp_path: Path, error: str, shown: str
) -> None:
    """U+202E in an error would show the rest of it reversed ("evil" read "live"), U+200B is
    nothing to see (``pass\\u200bword`` reads ``password``); the page writes each as an escape,
    as the terminal does, as sent and as the script redraws it."""
    run_id = await asyncio.to_thread(store_a_failed_stage, tmp_path / "spans.db", error)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        sent = await page.text_content("#run-error")
        await page.click('#stages tr[data-stage="work"] button.select')
        cell = await page.text_content('#stages tr[data-stage="work"] td.error-cell')
        panel = await page.text_content("#stage-detail pre.error")
    assert (f"stage 'work' failure: {shown}", shown, shown, []) == (sent, cell, panel, errors)


@SHARED_BROWSER_LOOP
async def test_the_pipeline_filter_offers_the_known_pipelines(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The runs page's pipeline box (an exact match) offers the names of the pipelines with
    runs as a ``datalist``, so a partial name finds its pipeline."""
    await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.wait_for_selector("#pipeline-names option", state="attached")
        offered = await page.eval_on_selector_all(
            "#pipeline-names option", "options => options.map(o => o.value)"
        )
        wired = await page.get_attribute('#filters input[name="pipeline"]', "list")
    assert (["etl"], "pipeline-names") == (offered, wired)
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_the_pages_say_the_zone_of_their_times_once(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The header of the runs page and of the run page says which zone every time on the
    page is in: the browser's, by name and UTC offset."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, timezone_id="Asia/Tokyo") as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        runs = await page.text_content("#time-zone")
        await page.goto(f"{url}/runs/{run_id}")
        run = await page.text_content("#time-zone")
    said = "Times in your browser's zone: Asia/Tokyo (UTC+09:00)"
    assert (said, said) == (runs, run)
    assert [] == errors
