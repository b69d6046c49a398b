"""Pages in Debian's headless chromium, driven by Playwright, against a real ``taskdaemon``:
the CLI in a subprocess with a known API token, the URL it announces, its first run, and a
fresh page that collects console errors.

Chromium is required, not optional: ``scripts/setup.sh --dev`` installs it, and a missing
browser fails the web tests with that hint instead of skipping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_support import ended_at_exit, line_with, without_settings
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.web import WebOptions

CHROMIUM = Path("/usr/bin/chromium")


TOKEN = "web-page-token-0123456789abcdef"


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


def environment(home: Path) -> dict[str, str]:
    """This environment without taskdaemon or OTel settings, with the test's home and token."""
    return without_settings(
        TASKDAEMON_HOME=str(home),
        TASKDAEMON_API_TOKEN=TOKEN,
        TASKDAEMON_GRAFANA_URL="http://grafana.invalid:3000",
        OTEL_METRICS_EXPORTER="none",
    )


@contextlib.contextmanager
def taskdaemon(
    argv: list[str], *, cwd: Path, home: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """The CLI in a subprocess, its home ``home`` (default ``cwd/home``); killed (with a
    warning-free wait) if still running at exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", *argv],
        cwd=cwd,
        env=environment(home or cwd / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with ended_at_exit(process):
        yield process


def server_url(process: subprocess.Popen[str]) -> str:
    """The URL the process listens at, as it announces it on stderr (``API: http://...``, or
    ``API: https://PUBLIC/ (listening on http://...``), read line by line."""
    assert process.stderr is not None
    line = line_with(process.stderr, "API: http")
    found = re.search(r"(?:API: |listening on )(http://[\d.:]+)/", line)
    assert found is not None, line
    # Keep draining stderr so the process never blocks on a full pipe.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return found.group(1)


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


def chromium() -> str:
    """Debian's chromium; a missing one fails the test with the way to install it."""
    assert CHROMIUM.exists(), f"no {CHROMIUM}: scripts/setup.sh --dev installs Debian's chromium"
    return str(CHROMIUM)


@contextlib.asynccontextmanager
async def chromium_browser() -> AsyncIterator[Any]:
    """Playwright's driver and one headless chromium, closed on exit. Starting both costs more
    than most page tests take, so a module's tests may share them (the ``shared_chromium`` fixture
    of ``conftest.py``): each page still opens in a context of its own, with no cookie,
    storage or cache of another test's."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium(), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def browser_page(
    browser: Any = None, *, timezone_id: str | None = None, width: int = 1280
) -> AsyncIterator[tuple[Any, list[str]]]:
    """A fresh headless chromium page ``width`` pixels wide (in ``timezone_id``, default the
    machine's) and the list its console errors are collected in: in a new context of
    ``browser`` (closed on exit), or of a browser of its own when ``browser`` is None."""
    if browser is None:
        async with (
            chromium_browser() as own,
            browser_page(own, timezone_id=timezone_id, width=width) as opened,
        ):
            yield opened
        return
    errors: list[str] = []
    context = await browser.new_context(
        viewport={"width": width, "height": 1000}, timezone_id=timezone_id
    )
    try:
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page, errors
    finally:
        await context.close()


#: The mark of a test that takes the ``shared_chromium`` fixture: it runs in the module's loop,
#: the one the shared browser was started in.
SHARED_BROWSER_LOOP = pytest.mark.asyncio(loop_scope="module")


async def open_run_page(page: Any, url: str, run_id: str) -> None:
    """Sign ``page`` in to the server at ``url`` and open the page of the ended run
    ``run_id``, once its stream has ended (its last state shown) and its stages table shows
    (:func:`until_laid_out`: a hidden button takes no focus)."""
    await page.goto(f"{url}/?token={TOKEN}")
    await page.goto(f"{url}/runs/{run_id}")
    await until_laid_out(page)


async def until_laid_out(page: Any) -> None:
    """Wait until a stored run's page shows its end: its stream ended (its last state drawn)
    and its stages table shown (``data-layout="done"``: the first state and the DAG are in
    above it). A click on a row needs no wait: the table is shown only where it stays, and
    Playwright's click waits until it shows."""
    await page.wait_for_selector('body[data-stream-state="ended"][data-layout="done"]')


async def text_of(page: Any, selector: str) -> str | None:
    """The text of ``selector`` on a loaded page, None at once when the page has no such
    element (not after waiting the whole timeout for it)."""
    found = await page.query_selector(selector)
    return None if found is None else await found.text_content()


def state_of(stage: str, state: str) -> str:
    """The selector of a stage row showing ``state``."""
    return f'#stages tr[data-stage="{stage}"][data-state="{state}"]'


@contextlib.asynccontextmanager
async def stored_runs_server(db: Path, *, port: int = 0) -> AsyncIterator[str]:
    """A ``ui``-style server (read-only) over the store ``db`` on ``port`` (default: any free
    one); yields its URL. Each has a session key of its own, as each ``ui`` process has."""
    app = create_app(
        auth=ApiAuth.configured(TOKEN), web=WebOptions(source_url=f"sqlite:///{db}", read_only=True)
    )
    server = MonitorServer(app, host="127.0.0.1", port=port)
    await server.start()
    try:
        yield server.url
    finally:
        await server.aclose()
        app.state.web.close()


#: Every text on the page that shows, with its contrast ratio against what is behind it (WCAG
#: 2's formula, the backgrounds of its ancestors laid over the browser's canvas), as [text,
#: ratio, large]; and the page's own background's relative luminance. Its argument: whether
#: an SVG's texts count (their colour is their ``fill``); the web page's DAG leaves them out,
#: as its text sits on the states' fills, not on the page.
CONTRASTS = """(svg) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(",").map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const over = (l, o) => ({
    r: l.r * l.a + o.r * (1 - l.a), g: l.g * l.a + o.g * (1 - l.a), b: l.b * l.a + o.b * (1 - l.a),
  });
  // Under every background: the browser's canvas, white or dark by the page's colour scheme.
  const probe = document.body.appendChild(document.createElement("div"));
  probe.style.background = "Canvas";
  const canvas = parse(getComputedStyle(probe).backgroundColor);
  probe.remove();
  const behind = (e) => {
    const layers = [];
    for (let n = e; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    return layers.reverse().reduce((out, l) => over(l, out), canvas);
  };
  const found = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const e = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || seen.has(e)) continue;
    seen.add(e);
    if (e.closest("[hidden], .for-screen-readers") || !e.getClientRects().length) continue;
    if (e.closest("svg") && !svg) continue;
    if (e.disabled) continue;
    const s = getComputedStyle(e);
    const a = lum(parse(e instanceof SVGElement ? s.fill : s.color));
    const b = lum(behind(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(s.fontSize);
    const large = size >= 24 || (Number(s.fontWeight) >= 700 && size >= 18.66);
    const name = e.tagName + "." + e.className + ": " + e.textContent.trim().slice(0, 30);
    found.push([name, Math.round(ratio * 100) / 100, large]);
  }
  return { texts: found, page: lum(behind(document.body)) };
}"""
