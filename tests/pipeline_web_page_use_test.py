"""The run page as a demanding user meets it, in Debian's headless chromium (Playwright): a
stored run of many stages, a stage picked far down its table, on a desktop and on a phone,
with the keyboard alone; a live run's page while its server stops and comes back, and a big
DAG's drawing when its run ends.

Each test serves a real span store (``ui``'s read-only server) and asserts on what the
browser shows (the DOM and where it sits in the window), never on pixels or timings.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

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
    until_laid_out,
)
from pipeline_tracking_support import store_stages
from web_events_support import run_page_with, with_stages

pytestmark = pytest.mark.slow


def store_many_stages(db: Path, count: int) -> str:
    """A stored run of ``count`` stages (``s000``, ``s001``, ...), 1 ms each; the last failed
    with a multi-line error, the others succeeded. Returns the run id."""
    error = "disk full:\n  /var/cache is 100% used\n  free some space and run again"
    names = [f"s{i:03d}" for i in range(count)]
    return store_stages(db, "many", names, error, step=1_000_000)


async def in_view(page: Any, selector: str) -> bool:
    """Whether the element ``selector`` shows whole in the window, where the user looks."""
    return bool(
        await page.eval_on_selector(
            selector,
            """e => { const r = e.getBoundingClientRect();
                      return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight; }""",
        )
    )


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize("width", [1280, 390])
async def test_a_stage_picked_far_down_a_long_table_shows_its_panel_in_view(
    shared_chromium: Any, tmp_path: Path, width: int
) -> None:
    """In a run of 150 stages, picking one halfway down the table, then the last one (the
    failed one), shows each one's panel where the user is looking: beside the table on a
    desktop, scrolled to on a phone, instead of thousands of pixels above (or below) the
    click."""
    run_id = await asyncio.to_thread(store_many_stages, tmp_path / "spans.db", 150)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, width=width) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.click('#stages tr[data-stage="s075"] button.select')
        await page.wait_for_selector('#stage-detail h3[data-stage="s075"]')
        middle = await in_view(page, '#stage-detail h3[data-stage="s075"]')
        await page.click('#stages tr[data-stage="s149"] button.select')
        await page.wait_for_selector('#stage-detail h3[data-stage="s149"]')
        last = await in_view(page, '#stage-detail h3[data-stage="s149"]')
        error = await page.text_content("#stage-detail pre.error")
    assert (True, True) == (middle, last)
    assert "free some space and run again" in (error or "")
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_the_first_state_takes_over_the_rows_the_server_drew(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The page's script, held back while the server-drawn table is in the page (shown once
    the page is laid out), takes those rows over when the first state arrives instead of
    drawing them anew: a stage's button held at that moment is the same element after it (a
    table drawn anew lost a press)."""
    run_id = await asyncio.to_thread(store_many_stages, tmp_path / "spans.db", 5)
    released = asyncio.Event()

    async def hold(route: Any) -> None:
        await released.wait()
        await route.continue_()

    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.route("**/app.js*", hold)
        await page.goto(f"{url}/runs/{run_id}", wait_until="commit")
        # Drawn by the server, hidden until the script has laid the page out.
        await page.wait_for_selector(
            '#stages tr[data-stage="s002"] button.select', state="attached"
        )
        await page.evaluate(
            """() => { window.__pressed =
                document.querySelector('#stages tr[data-stage="s002"] button.select'); }"""
        )
        released.set()
        await page.wait_for_selector('body[data-stream-state="ended"]')
        kept = await page.evaluate("() => document.contains(window.__pressed)")
        await page.click('#stages tr[data-stage="s002"] button.select')
        await page.wait_for_selector('#stage-detail h3[data-stage="s002"]')
    assert (True, []) == (kept, errors)


@SHARED_BROWSER_LOOP
async def test_keyboard_focus_stays_on_a_stage_through_redraws(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """Keyboard only: a stage's button reached with Tab and pressed with Enter opens its panel
    and keeps the focus (the stages table is drawn again at every pick and every live event),
    so the next Tab goes on to the next stage instead of back to the top of the page; the
    focus is visible (an outline)."""
    run_id = await asyncio.to_thread(store_many_stages, tmp_path / "spans.db", 5)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await until_laid_out(page)  # a hidden button takes no focus
        await page.focus('#stages tr[data-stage="s001"] button.select')
        await page.keyboard.press("Enter")
        await page.wait_for_selector('#stage-detail h3[data-stage="s001"]')
        focused = await page.evaluate(FOCUSED)
        await page.keyboard.press("Tab")
        after_tab = await page.evaluate(FOCUSED)
        outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert ("s001 select", "s002 select") == (focused, after_tab)
    assert "none" != outline
    assert [] == errors


#: Which stage row's button has the keyboard focus: "STAGE ACTION" ("" when none has).
FOCUSED = """(() => { const e = document.activeElement;
    const row = e && e.closest ? e.closest("#stages tbody tr") : null;
    return row ? row.dataset.stage + " " + (e.dataset.action || "select") : ""; })()"""


HELD = """\
name: held
loops:
  hold: {handler: "held_loops:hold"}
stages:
  - name: hold
    loop: hold
    triggers: [{manual: {approval_required: false}}]
"""

HELD_LOOPS = """\
import asyncio
from pathlib import Path


async def hold(ctx):
    # Held until the test creates the file "go".
    while not Path("go").exists():
        await asyncio.sleep(0.02)
    return {"done": True}
"""


@SHARED_BROWSER_LOOP
async def test_a_live_page_says_its_session_is_gone_and_recovers_after_sign_in(
    shared_chromium: Any,
    tmp_path: Path,
) -> None:
    """The server of an open run page stops and comes back on its port: the page says it lost
    the connection; the new process refuses the old session cookie, and the page says so and
    how to sign in again, instead of "Reconnecting…" forever. Once the user signs in (another
    tab), the page follows the run again without a reload, to its end, and the picked stage's
    log stream too."""
    (tmp_path / "held.yaml").write_text(HELD)
    (tmp_path / "held_loops.py").write_text(HELD_LOOPS)
    db = tmp_path / "home" / "spans.db"
    with taskdaemon(["run", "held.yaml", "--quiet"], cwd=tmp_path) as process:
        async with browser_page(shared_chromium) as (page, errors):
            async with stored_runs_server(db) as url:
                run_id = await first_run(url)
                await page.goto(f"{url}/?token={TOKEN}")
                await page.goto(f"{url}/runs/{run_id}")
                await page.wait_for_selector('#stages tr[data-stage="hold"][data-state="running"]')
                await page.wait_for_selector('body[data-stream-state="open"]')
                await page.click('#stages tr[data-stage="hold"] button.select')
                await page.wait_for_selector('#stage-logs[data-log-state="live"]')
                await page.evaluate("window.__sameDocument = true")
            await page.wait_for_selector('body[data-stream-state="reconnecting"]')
            down = await page.text_content("#stream-note")
            async with stored_runs_server(db, port=int(url.rsplit(":", 1)[1])):
                await page.wait_for_selector('body[data-stream-state="signed-out"]')
                signed_out = await page.text_content("#stream-note")
                other = await page.context.new_page()
                await other.goto(f"{url}/?token={TOKEN}")
                await page.wait_for_selector('body[data-stream-state="open"]')
                (tmp_path / "go").touch()
                await page.wait_for_selector('body[data-stream-state="ended"]')
                # The stage's log stream, refused alike, is opened again with the run's.
                await page.wait_for_selector('#stage-logs[data-log-state="complete"]')
                status = await page.text_content("#run-status")
                same_document = await page.evaluate("window.__sameDocument === true")
        assert 0 == process.wait(timeout=30)
    assert "Lost the connection to the server" in (down or ""), down
    assert "/?token=" in (signed_out or ""), signed_out
    assert ("success", True) == (status, same_document)
    # What the browser logs for the refused and failed requests, and nothing else.
    assert all("Failed to load resource" in e for e in errors), errors


@SHARED_BROWSER_LOOP
async def test_a_wrong_or_missing_token_is_a_sign_in_page(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A browser sent to a page with a wrong token (redirected to the page without it: the
    refused token, most of the right one when mistyped, stayed in the address bar), or to a
    run's page without one (a link a colleague pasted), gets a page saying so and how to sign
    in (a box for the token), not the
    API's JSON telling it to send a header it cannot; typing the token in the box signs in and
    opens the page the link named (not the runs list). The box posts the token: it is in no
    URL the browser asked for nor in any entry of the tab's history (read over the DevTools
    protocol, which lists every entry's URL; a ``GET`` form had it in both). The API's
    answers stay JSON, for a browser too."""
    run_id = await asyncio.to_thread(store_many_stages, tmp_path / "spans.db", 3)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, _errors),
    ):
        wrong = await page.goto(f"{url}/runs/{run_id}?token=not-the-token-0123456789")
        wrong_page = (wrong.status, wrong.headers["content-type"], await page.text_content("h1"))
        wrong_address = page.url
        wrong_text = await page.text_content("main")
        missing = await page.goto(f"{url}/runs/{run_id}")
        missing_text = await page.text_content("main")
        asked: list[tuple[str, str]] = []
        page.on("request", lambda request: asked.append((request.method, request.url)))
        await page.fill('input[name="token"]', TOKEN)
        await page.press('input[name="token"]', "Enter")
        await page.wait_for_selector('body[data-page="run"]')
        opened = (await page.get_attribute("body", "data-run-id"), page.url)
        await page.wait_for_selector('body[data-stream-state="ended"]')
        devtools = await page.context.new_cdp_session(page)
        history = await devtools.send("Page.getNavigationHistory")
        await devtools.detach()
        await page.context.clear_cookies()
        api = await page.goto(f"{url}/api/runs/recent")
        api_answer = (api.status, api.headers["content-type"], await api.json())
    assert (401, "text/html; charset=utf-8", "Sign in to taskdaemon") == wrong_page
    assert "The token you gave is not this server's token." in (wrong_text or ""), wrong_text
    assert f"{url}/runs/{run_id}?sign_in_refused=1" == wrong_address
    assert "This page needs the server's token" in (missing_text or ""), missing_text
    assert missing.status == 401
    assert (run_id, f"{url}/runs/{run_id}") == opened
    assert ("POST", f"{url}/runs/{run_id}") == asked[0]
    entries = [entry["url"] for entry in history["entries"]]
    assert f"{url}/runs/{run_id}" == entries[-1], entries
    assert [] == [u for u in entries + [u for _, u in asked] if TOKEN in u or "token=" in u]
    assert (401, "application/json") == api_answer[:2]
    assert api_answer[2]["error"].startswith("authentication required")


@SHARED_BROWSER_LOOP
async def test_an_address_of_no_page_is_a_page_linking_the_runs(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A signed-in browser opening ``/runs`` (a run's address without its id) gets a page
    saying nothing is there, not the API's raw JSON, and its link opens the runs list."""
    await asyncio.to_thread(store_many_stages, tmp_path / "spans.db", 1)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, width=390) as (page, _errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        answer = await page.goto(f"{url}/runs")
        shown = (answer.status, await page.text_content("h1"), await page.text_content("p.error"))
        await page.get_by_role("link", name="All runs").click()
        await page.wait_for_selector('body[data-page="runs"]')
        opened = page.url
    assert (404, "Page not found", "nothing at /runs") == shown
    assert f"{url}/" == opened


#: Counts, in ``window.__read``, the JSON answers the page has read and acted on: a task
#: queued when one is read runs after the page's own code that awaited it.
COUNT_READS = """(() => { window.__read = 0; const fetch = window.fetch;
    window.fetch = (...args) => fetch(...args).then((response) => {
        const json = response.json.bind(response);
        response.json = () => json().finally(() => setTimeout(() => window.__read++, 0));
        return response; }); })()"""


@SHARED_BROWSER_LOOP
async def test_a_slow_answer_for_a_stage_left_never_fills_the_panel(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The user picks ``s000``, then ``s001`` before ``s000``'s record has come (a slow
    server, held here until ``s001``'s panel shows): the late answer is dropped, and the panel
    goes on showing ``s001``'s record, not "Not started yet" (``s000``'s answer read as
    ``s001``'s)."""
    run_id = await asyncio.to_thread(store_many_stages, tmp_path / "spans.db", 3)
    held: list[Any] = []

    async def hold_s000(route: Any) -> None:
        if route.request.url.endswith("?stage=s000"):
            held.append(route)
        else:
            await route.continue_()

    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.add_init_script(COUNT_READS)
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.route(f"**/api/runs/{run_id}?stage=*", hold_s000)
        await page.click('#stages tr[data-stage="s000"] button.select')
        await page.click('#stages tr[data-stage="s001"] button.select')
        await page.wait_for_selector('#stage-detail h3[data-stage="s001"]')
        await page.wait_for_function("() => window.__read === 1")
        before = await page.text_content("#stage-detail")
        await held[0].fulfill(
            response=await page.request.get(f"{url}/api/runs/{run_id}?stage=s000")
        )
        await page.wait_for_function("() => window.__read === 2")
        after = await page.text_content("#stage-detail")
        shown = await page.get_attribute("#stage-detail h3", "data-stage")
    assert "attempt 1 · success" in (before or ""), before
    assert ("s001", before) == (shown, after)
    assert [] == errors


BUSY = """\
name: busy
concurrency: 2
loops:
  tick: {handler: "busy_loops:tick"}
  hold: {handler: "held_loops:hold"}
stages:
  - name: hold
    loop: hold
    triggers: [{manual: {approval_required: false}}]
"""

BUSY_LOOPS = """\
import time


def tick(ctx):
    time.sleep(0.05)
    return {"ok": True}
"""


@SHARED_BROWSER_LOOP
async def test_a_live_event_updates_the_stages_table_in_place(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """While a run goes on, each live event updates the stages table's rows in place: a
    stage's button the user is pressing is the same element before and after an event (a
    table drawn anew at every event, several a second on a busy run, swapped the button
    between the press and the release, and the click was lost: Playwright's click waited for
    a button that stayed put and never found one)."""
    stages = "".join(
        f"  - name: tick-{i:02d}\n    loop: tick\n"
        "    triggers: [{on_completion: {stage: hold}}]\n"
        for i in range(40)
    )
    (tmp_path / "busy.yaml").write_text(BUSY + stages)
    (tmp_path / "busy_loops.py").write_text(BUSY_LOOPS)
    (tmp_path / "held_loops.py").write_text(HELD_LOOPS)
    argv = ["serve", "--pipeline", "busy.yaml", "--max-runs", "1", "--port", "0"]
    with taskdaemon(argv, cwd=tmp_path) as process:
        url = server_url(process)
        run_id = await first_run(url)
        async with browser_page(shared_chromium) as (page, errors):
            await page.goto(f"{url}/?token={TOKEN}")
            await page.goto(f"{url}/runs/{run_id}")
            await page.wait_for_selector('#stages tr[data-stage="hold"][data-state="running"]')
            await page.evaluate(MARK_BUTTON)
            (tmp_path / "go").touch()
            # A later event: the stage has succeeded.
            await page.wait_for_selector('#stages tr[data-stage="tick-39"][data-state="success"]')
            kept = await page.evaluate("() => document.contains(window.__pressed)")
            await page.wait_for_selector('body[data-stream-state="ended"]')
            await page.click('#stages tr[data-stage="tick-00"] button.select')
            await page.wait_for_selector('#stage-detail h3[data-stage="tick-00"]')
        process.send_signal(signal.SIGTERM)
        assert 0 == await asyncio.to_thread(process.wait, 30)
    assert kept
    assert [] == errors


#: Keeps, in ``window.__pressed``, the button of the stages table's last row.
MARK_BUTTON = """() => { window.__pressed =
    document.querySelector('#stages tr[data-stage="tick-39"] button.select'); }"""


@SHARED_BROWSER_LOOP
async def test_the_runs_list_says_its_session_is_gone_after_a_restart(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The runs list refreshes itself; when its server restarts (a new session key), the list
    says the session is gone and how to sign in again, instead of the API's advice to send an
    ``Authorization`` header; signed in again (another tab), it refreshes as before."""
    run_id = await asyncio.to_thread(store_many_stages, tmp_path / "spans.db", 2)
    db = tmp_path / "spans.db"
    async with browser_page(shared_chromium) as (page, errors):
        async with stored_runs_server(db) as url:
            await page.goto(f"{url}/?token={TOKEN}")
            await page.wait_for_selector("#runs-updated:has-text('Updated')")
        async with stored_runs_server(db, port=int(url.rsplit(":", 1)[1])):
            await page.wait_for_selector("#runs-error:has-text('session')")
            said = await page.text_content("#runs-error")
            other = await page.context.new_page()
            await other.goto(f"{url}/?token={TOKEN}")
            await page.wait_for_selector("#runs-error", state="hidden")
            listed = await page.locator(f'#runs tr[data-run-id="{run_id}"]').count()
    assert "/?token=" in (said or ""), said
    assert "Authorization" not in (said or ""), said
    assert 1 == listed
    assert all("Failed to load resource" in e for e in errors), errors


@SHARED_BROWSER_LOOP
async def test_the_runs_list_refresh_keeps_the_link_in_hand(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """The runs list refreshes every 3 s: a run's link the keyboard focus is on (or a press
    is on) is the same element after a refresh, so the focus stays and Tab goes on to the
    next run, instead of falling back to the top of the page every 3 s."""
    await asyncio.to_thread(store_many_stages, tmp_path / "spans.db", 2)
    await asyncio.to_thread(store_many_stages, tmp_path / "spans.db", 3)
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.focus("#runs tbody tr:first-child a")
        focused = await page.evaluate(FOCUSED_RUN)
        for _ in range(2):  # the first refresh, which replaces the server's rows, and one more
            before = await page.text_content("#runs-updated")
            await page.wait_for_function(
                "(before) => document.getElementById('runs-updated').textContent !== before",
                arg=before,
            )
        kept = await page.evaluate(FOCUSED_RUN)
        await page.keyboard.press("Tab")
        after_tab = await page.evaluate(FOCUSED_RUN)
        rows = await page.eval_on_selector_all(
            "#runs tbody tr", "rows => rows.map(r => r.dataset.runId)"
        )
    assert focused
    assert (focused, rows[1]) == (kept, after_tab)
    assert [] == errors


#: The run id of the runs list's row holding the keyboard focus ("" when none does).
FOCUSED_RUN = """() => { const row = document.activeElement.closest("#runs tbody tr");
    return row ? row.dataset.runId : ""; }"""


@SHARED_BROWSER_LOOP
async def test_a_big_dag_draws_its_runs_end_at_once(shared_chromium: Any, tmp_path: Path) -> None:
    """A DAG of more than 100 stages is drawn at most every 10 s while its run goes, but the
    run's end is drawn at once (the browser's clock stands still here): the drawing used to
    say ``running`` for up to ten seconds under a run that had failed."""

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        ended = with_stages(event, ["success"] * 149 + ["failure"], "")
        ended["run"]["status"] = "failure"
        return [with_stages(event, ["running"] * 150, ""), ended]

    page_with = run_page_with(tmp_path, make, browser=shared_chromium, clock_stopped=True)
    async with page_with as (page, errors, drawings):
        await page.wait_for_selector('#dag g.node[data-stage="work"][data-state="success"]')
        drawn = len(drawings)
    assert 2 == drawn
    assert [] == errors


#: For each stages table row: how many lines its stage's name takes, and whether its state's
#: pill is whole in the window.
NAME_LINES = """() => Array.from(document.querySelectorAll("#stages tbody tr"), (tr) => {
  const name = tr.querySelector("button.select"), pill = tr.querySelector(".state");
  const box = pill.getBoundingClientRect();
  const line = parseFloat(getComputedStyle(name).lineHeight);
  return [Math.round(name.getBoundingClientRect().height / line),
          box.left >= 0 && box.right <= window.innerWidth];
})"""


#: The stages table's box: its width and how far it scrolls sideways.
TABLE_BOX = """(() => { const box = document.getElementById("stages").parentElement;
    return [box.clientWidth, box.scrollWidth]; })()"""


@SHARED_BROWSER_LOOP
async def test_hyphenated_stage_names_stay_readable_in_a_phones_window(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """In a 360-pixel window, stages named ``stage-with-a-rather-long-name-00`` take two lines
    each in the stages table, and their states show beside them: the name's column was as
    narrow as its longest word, so each name was broken at every hyphen, seven lines of one
    word each. In a 1000-pixel window, where the table shares the width with the stage
    panel, short names leave every column in view (no sideways scroll)."""
    names = [f"stage-with-a-rather-long-name-{i:02d}" for i in range(3)]
    run_id = await asyncio.to_thread(
        store_stages, tmp_path / "spans.db", "long-names", names, "x", step=1_000_000
    )
    short = await asyncio.to_thread(
        store_stages, tmp_path / "spans.db", "short", ["build", "ship"], "x", step=1_000_000
    )
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium, width=360) as (page, errors),
    ):
        await open_run_page(page, url, run_id)
        rows = await page.evaluate(NAME_LINES)
        await page.set_viewport_size({"width": 1000, "height": 1000})
        await open_run_page(page, url, short)
        width, scrolled = await page.evaluate(TABLE_BOX)
    assert [[2, True]] * 3 == rows
    assert width == scrolled
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_the_runs_list_of_a_store_not_made_yet_says_it_has_no_runs(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """Over a store not made yet (a fresh home), the runs list says the source has no runs
    yet, as the server writes it and as each refresh redraws it; filtered, "No runs match."
    It said "No runs match." with no filter to widen."""
    async with (
        stored_runs_server(tmp_path / "home" / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        written = await page.text_content("#runs tr.empty")
        await page.wait_for_selector("#runs-updated:has-text('Updated')")
        refreshed = await page.text_content("#runs tr.empty")
        await page.goto(f"{url}/?status=failure")
        filtered = await page.text_content("#runs tr.empty")
    assert ["No runs in this source yet."] * 2 + ["No runs match."] == [
        written,
        refreshed,
        filtered,
    ]
    assert [] == errors
