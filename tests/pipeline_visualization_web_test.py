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
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.tracking.store import SpanStore
from taskdaemon.pipeline.web import WebOptions

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "web-page-token-0123456789abcdef"
SCREENSHOT = ROOT / "docs" / "images" / "run-page.png"
REPORT_SCREENSHOT = ROOT / "docs" / "images" / "report.png"
#: What a headless browser in CI needs: no sandbox as root, no background traffic (offline).
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-sync",
    "--metrics-recording-only",
    "--no-first-run",
]
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh --dev)"
    ),
]

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


def environment(home: Path) -> dict[str, str]:
    """This environment without taskdaemon or OTel settings, with the test's home and token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKDAEMON_", "OTEL_"))}
    env.update(
        TASKDAEMON_HOME=str(home),
        TASKDAEMON_API_TOKEN=TOKEN,
        TASKDAEMON_GRAFANA_URL="http://grafana.invalid:3000",
        OTEL_METRICS_EXPORTER="none",
        PYTHONUNBUFFERED="1",
    )
    return env


@contextlib.contextmanager
def taskdaemon(argv: list[str], *, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """The CLI in a subprocess; killed (with a warning-free wait) if still running at exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", *argv],
        cwd=cwd,
        env=environment(cwd / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def server_url(process: subprocess.Popen[str]) -> str:
    """The URL the process announces on stderr (``API: http://...``), read line by line."""
    assert process.stderr is not None
    seen: list[str] = []
    for line in process.stderr:
        seen.append(line)
        found = re.search(r"API: (http://[\d.:]+)/", line)
        if found:
            # Keep draining stderr so the process never blocks on a full pipe.
            drain = threading.Thread(target=process.stderr.read, daemon=True)
            drain.start()
            return found.group(1)
    raise AssertionError("the server never announced its URL:\n" + "".join(seen))


async def first_run(url: str) -> str:
    """The id of the first run the server lists (waiting for the run to start)."""
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}) as client:
        for _ in range(600):
            runs = (await client.get(f"{url}/api/runs/recent")).json()["runs"]
            if runs:
                return str(runs[0]["run_id"])
            await _pause()
    raise AssertionError("no run appeared")


async def _pause() -> None:
    await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def browser_page() -> AsyncIterator[tuple[Any, list[str]]]:
    """A fresh headless chromium page and the list its console errors are collected in."""
    from playwright.async_api import async_playwright

    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000})
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            await browser.close()


def keep_screenshot(png: bytes, target: Path) -> None:
    """Write the README's screenshot when it is missing or ``TASKDAEMON_UPDATE_SCREENSHOTS=1``
    (so an ordinary test run leaves the checkout clean); either way it must be a PNG."""
    assert png.startswith(b"\x89PNG\r\n")
    if not target.exists() or os.environ.get("TASKDAEMON_UPDATE_SCREENSHOTS") == "1":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)


def state_of(stage: str, state: str) -> str:
    """The selector of a stage row showing ``state``."""
    return f'#stages tr[data-stage="{stage}"][data-state="{state}"]'


async def test_run_page_follows_a_served_run_live_and_approves_it(workdir: Path) -> None:
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
        async with browser_page() as (page, errors):
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
            await page.click(f'{state_of("deploy", "waiting")} button[data-action="approve"]')
            await page.wait_for_selector('body[data-stream-state="ended"]')
            status = await page.text_content("#run-status")
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
    assert [["plan", "success"], ["build", "success"], ["deploy", "success"]] == rows
    assert {"running"} <= set(segments)
    assert "success" in (build_label or "")
    assert "[REDACTED]" in (outputs or "")
    assert "hunter2" not in (outputs or "")
    assert (trace or "").startswith("http://grafana.invalid:3000/explore?")
    assert same_document
    assert [] == errors


async def test_ui_follows_a_run_of_another_process_read_only(workdir: Path) -> None:
    """``ui``'s server over the span store another process writes: the page shows ``build``
    running, then done, without a reload, has no approve button, and logs no error; the HTML
    report of that store opens in the same browser."""
    store_url = f"sqlite:///{(workdir / 'home' / 'spans.db').as_posix()}"
    auth = ApiAuth.configured(TOKEN)
    app = create_app(
        auth=auth, web=WebOptions(source_url=store_url, read_only=True, poll_interval=0.1)
    )
    server = MonitorServer(app, host="127.0.0.1", port=0)
    argv = ["run", "web.yaml", "-i", "goal=ship it", "--approve", "deploy", "--quiet"]
    with taskdaemon(argv, cwd=workdir) as process:
        await server.start()
        try:
            run_id = await first_run(server.url)
            async with browser_page() as (page, errors):
                await page.goto(f"{server.url}/?token={TOKEN}")
                await page.goto(f"{server.url}/runs/{run_id}")
                await page.wait_for_selector(state_of("build", "running"))
                await page.evaluate("window.__sameDocument = true")
                (workdir / "go").touch()
                await page.wait_for_selector('body[data-stream-state="ended"]')
                status = await page.text_content("#run-status")
                build = await page.get_attribute('#stages tr[data-stage="build"]', "data-state")
                buttons = await page.locator("#stages button[data-action]").count()
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
                    env=environment(workdir / "home"),
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
    assert ("success", "success", 0) == (status, build, buttons)
    assert "web-demo" in (report_text or "")
    assert "read-only" in (tag or "")
    assert "from stored spans" in (tag or "")
    assert same_document
    assert [] == errors


def test_store_is_closed_by_the_ui_app(workdir: Path) -> None:
    """The page's span source is opened on first use and closed by ``web.close()``."""
    path = workdir / "spans.db"
    SpanStore(path).close()
    app = create_app(auth=ApiAuth.configured(TOKEN), web=WebOptions(source_url=f"sqlite:///{path}"))
    source = app.state.web.data.source()
    app.state.web.close()
    assert isinstance(source, SpanStore)
    assert app.state.web.data._source is None
    assert shutil.which("dot") is not None
