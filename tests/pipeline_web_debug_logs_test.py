"""The run page's stage logs (a live tail by SSE) and its continue and step buttons, in Debian's
chromium driven by Playwright, against ``taskdaemon serve`` running a real paused run; and the
logs routes' answers to bad requests.

The breakpoint is set through the HTTP debug routes (the token in a header); the buttons then
act with the browser's session cookie alone, as approve and reject do."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_support import (
    TOKEN,
    browser_page,
    first_run,
    server_url,
    state_of,
    taskdaemon,
)
from pipeline_tracking_support import make_provider, write_example_run
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.tracking import SqliteSpanProcessor
from taskdaemon.pipeline.web import WebOptions

PIPELINE = """\
name: web-debug
description: a run paused at a breakpoint, stepped and continued from the page
loops:
  prepare: {handler: "debug_loops:prepare"}
  build: {handler: "debug_loops:build"}
  ship: {handler: "debug_loops:ship"}
stages:
  - name: prepare
    loop: prepare
    triggers: [{manual: {approval_required: false}}]
  - name: build
    loop: build
    triggers: [{on_completion: {stage: prepare}}]
  - name: ship
    loop: ship
    triggers: [{on_completion: {stage: build}}]
  - name: check
    loop: ship
    triggers: [{on_completion: {stage: ship}}]
"""

LOOPS = """\
import logging
import time
from pathlib import Path

log = logging.getLogger("debug_loops")


def prepare(ctx):
    # Held until the test has set its breakpoint on build.
    while not Path("armed").exists():
        time.sleep(0.02)
    return {"ready": True}


def build(ctx):
    log.warning("compiling with api_token=hunter2-never-shown")
    # Held until the test has seen the first line on the page.
    while not Path("go").exists():
        time.sleep(0.02)
    log.warning("linked app-1.0")
    return {"artifact": "app-1.0.tar.gz"}


def ship(ctx):
    return {"shipped": True}
"""

pytestmark = pytest.mark.slow


def warnings(page: Any) -> Any:
    """The bodies of the stage panel's warning lines (the stage's own records; the engine's
    lifecycle records, at info, are there too)."""
    return page.eval_on_selector_all(
        '#log-lines li[data-level="warning"] .log-body', "items => items.map(i => i.textContent)"
    )


async def test_page_steps_and_continues_a_paused_run_and_tails_its_stage_logs(
    tmp_path: Path,
) -> None:
    """``build`` pauses at a breakpoint set over HTTP; the page shows it paused with Continue
    and Step; Step (cookie + CSRF rules, no token in the page) resumes it; its log lines
    appear in the stage panel while it runs, redacted, the second one without a reload; in
    step mode ``ship`` pauses next, its Continue resumes it alone (``check`` pauses: still step
    mode), and Continue run leaves step mode and finishes the run; a text/plain POST with the
    same cookie is refused; the console shows no other error."""
    (tmp_path / "debug.yaml").write_text(PIPELINE)
    (tmp_path / "debug_loops.py").write_text(LOOPS)
    argv = ["serve", "--pipeline", "debug.yaml", "--max-runs", "1", "--port", "0"]
    with taskdaemon(argv, cwd=tmp_path) as process:
        url = server_url(process)
        run_id = await first_run(url)
        async with httpx.AsyncClient(
            base_url=url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client:
            put = await client.put(f"/api/runs/{run_id}/debug/breakpoints", json={"stage": "build"})
        assert 201 == put.status_code, put.text
        (tmp_path / "armed").touch()
        async with browser_page() as (page, errors):
            await page.goto(f"{url}/?token={TOKEN}")
            await page.goto(f"{url}/runs/{run_id}")
            await page.wait_for_selector(state_of("build", "paused"))
            await page.evaluate("window.__sameDocument = true")
            paused_buttons = await page.eval_on_selector_all(
                f"{state_of('build', 'paused')} button[data-action]",
                "buttons => buttons.map(b => b.dataset.action)",
            )
            await page.click('#stages tr[data-stage="build"] button.select')
            refused = await page.evaluate(
                """async (runId) => (await fetch("/api/runs/" + runId + "/debug/continue", {
                    method: "POST", headers: {"Content-Type": "text/plain"}, body: "{}",
                    credentials: "same-origin"})).status""",
                run_id,
            )
            await page.click(f'{state_of("build", "paused")} button[data-action="step"]')
            await page.wait_for_selector(state_of("build", "running"))
            await page.wait_for_selector('#log-lines li[data-level="warning"]')
            first = await warnings(page)
            live_state = await page.get_attribute("#stage-logs", "data-log-state")
            (tmp_path / "go").touch()
            await page.locator('#log-lines li[data-level="warning"]').nth(1).wait_for()
            both = await warnings(page)
            lifecycle = await page.text_content("#log-lines")
            note = await page.text_content("#logs-note")
            await page.wait_for_selector(state_of("ship", "paused"))
            await page.click(f'{state_of("ship", "paused")} button[data-action="continue"]')
            await page.wait_for_selector(state_of("check", "paused"))  # still in step mode
            ship = await page.get_attribute('#stages tr[data-stage="ship"]', "data-state")
            await page.click("#continue-run")
            await page.wait_for_selector('body[data-stream-state="ended"]')
            controls_hidden = await page.is_hidden("#run-controls")
            await page.wait_for_selector('#stage-logs[data-log-state="complete"]')
            status = await page.text_content("#run-status")
            same_document = await page.evaluate("window.__sameDocument === true")
        process.send_signal(signal.SIGTERM)
        assert 0 == await asyncio.to_thread(process.wait, 30)
    assert ["continue", "step"] == paused_buttons
    assert 415 == refused
    assert ("live", ["compiling with api_token=[REDACTED]"]) == (live_state, first)
    assert ["compiling with api_token=[REDACTED]", "linked app-1.0"] == both
    assert "stage build.0.1 started" in (lifecycle or "")
    assert re.fullmatch(r"\d+ records(; following live)?\.", note or ""), note
    assert ("success", "success", True) == (status, ship, controls_hidden)
    assert same_document
    # The one error the console shows is the refused request this test made on purpose.
    assert [
        f"Failed to load resource: the server responded with a status of {refused} "
        "(Unsupported Media Type)"
    ] == errors


async def test_logs_routes_refuse_bad_requests_in_one_line(tmp_path: Path) -> None:
    """No ``stage``, an oversized one, an unknown run, and a span source that keeps no logs are
    each a JSON error with its status, never a traceback or an empty stream."""
    auth = ApiAuth.configured(TOKEN)
    store = f"sqlite:///{(tmp_path / 'spans.db').as_posix()}"
    apps = [
        create_app(auth=auth, web=WebOptions(source_url=store, read_only=True)),
        create_app(
            auth=auth, web=WebOptions(source_url="tempo+http://127.0.0.1:9", read_only=True)
        ),
    ]
    answers = []
    for app in apps:
        server = MonitorServer(app, host="127.0.0.1", port=0)
        await server.start()
        try:
            async with httpx.AsyncClient(
                base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
            ) as client:
                for path in (
                    "/api/runs/0123/logs",
                    "/api/runs/0123/logs?stage=" + "s" * 300,
                    "/api/runs/0123/logs?stage=build",
                    "/api/runs/0123/logs/stream?stage=build",
                ):
                    response = await client.get(path)
                    answers.append((response.status_code, "error" in response.json()))
        finally:
            await server.aclose()
            app.state.web.close()
    ok = [(400, True), (400, True), (404, True), (404, True)]
    assert ok + ok == answers


async def test_logs_of_a_stage_the_run_does_not_have_are_404(tmp_path: Path) -> None:
    """``/logs?stage=biuld`` (a typo) on a stored run answers 404 naming the run's stages, as
    ``taskdaemon logs --stage`` refuses it, rather than an empty tail that looks like silence."""
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    provider, _exporter = make_provider(processor)
    run_id = write_example_run(provider)
    provider.shutdown()
    store = f"sqlite:///{(tmp_path / 'spans.db').as_posix()}"
    app = create_app(
        auth=ApiAuth.configured(TOKEN), web=WebOptions(source_url=store, read_only=True)
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://127.0.0.1",
            headers={"authorization": f"Bearer {TOKEN}"},
        ) as client:
            typo = await client.get(f"/api/runs/{run_id}/logs?stage=biuld")
            known = await client.get(f"/api/runs/{run_id}/logs?stage=build")
    finally:
        app.state.web.close()
    expected = (
        404,
        f"run {run_id} has no stage 'biuld' (its stages: plan, build, test, deploy); "
        "did you mean 'build'?",
        200,
    )
    assert expected == (typo.status_code, typo.json()["error"], known.status_code)
