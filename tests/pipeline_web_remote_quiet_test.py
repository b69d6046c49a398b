"""The run page of a run followed from a remote source, in headless chromium: Tempo (a fake
answering recorded payloads) has a run's spans only once each ended, its run span only at its
end, so a run whose process died reads ``running`` there for ever. After ``quiet_polls`` polls
with nothing new the page says since when no new span came and that the run's process may be
gone; the next span clears it (docs/web.md, "Live updates"). A run span in before a stage's
is followed until the stage's comes; one that never comes is said, naming the stage."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from browser_support import SHARED_BROWSER_LOOP, TOKEN, browser_page
from pipeline_remote_run_support import earlier, held_run_spans, tempo_trace
from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.tracking import SpanRecord
from taskdaemon.pipeline.web import WebOptions

pytestmark = pytest.mark.slow

#: Every value ``#run-quiet[data-since]`` takes, in order, from the page's first script on
#: (each change's old value, then the last one: ``history``).
RECORD_SINCE = """
window.__since = [];
new MutationObserver((changes) => {
  for (const change of changes) window.__since.push(change.oldValue);
}).observe(document, { subtree: true, attributeFilter: ["data-since"], attributeOldValue: true });
"""


def _newest_end(spans: list[SpanRecord]) -> float:
    """When the newest of ``spans`` ended, as the page's state carries it (epoch seconds)."""
    return round(max(span.end_ns or 0 for span in spans) / 1e9, 6)


def _said(since: float) -> str:
    """The time the page writes for ``since`` in a browser in UTC (``fmtTime``)."""
    return datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _changes(values: list[str]) -> list[float | None]:
    """``values`` without repeats in a row, each as the epoch it names (None: not quiet)."""
    changes: list[float | None] = []
    for value in values:
        since = float(value) if value else None
        if not changes or changes[-1] != since:
            changes.append(since)
    return changes


@contextlib.asynccontextmanager
async def _run_page(
    browser: Any, tempo: Backend, run_id: str, script: str, **options: Any
) -> AsyncIterator[tuple[Any, list[str]]]:
    """The run page of ``run_id`` in chromium, served read-only over the fake ``tempo`` (polled
    every 0.05 s, ``options`` the page's others), ``script`` run before the page's own; and
    the list of its console errors. The server is stopped at the block's end."""
    web = WebOptions(source_url=f"tempo+{tempo.url}", read_only=True, poll_interval=0.05, **options)
    app = create_app(auth=ApiAuth.configured(TOKEN), web=web)
    server = MonitorServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with browser_page(browser, timezone_id="UTC") as (page, errors):
            await page.add_init_script(script)
            # Signed in on the run page itself: the runs page would search the fake Tempo.
            await page.goto(f"{server.url}/runs/{run_id}?token={TOKEN}")
            yield page, errors
    finally:
        await server.aclose()
        app.state.web.close()


@SHARED_BROWSER_LOOP
async def test_the_page_says_a_quiet_remote_run_may_have_lost_its_process(
    shared_chromium: Any,
) -> None:
    """Tempo holds build's span while deploy waits: the page says no new span came since build
    ended. Every stage's span but no run span (the process died after its last stage) clears
    it, then it is said again since notify ended; the run span ends the stream, not quiet."""
    run_id, held, ended = await held_run_spans()
    stages = [span for span in ended if span.parent_span_id is not None]
    path = f"/api/v2/traces/{run_id}"
    quiet = "#run-quiet:not([hidden])"
    with serve(Backend()) as tempo:
        tempo.route(path, tempo_trace(held))
        page_of = _run_page(shared_chromium, tempo, run_id, RECORD_SINCE, quiet_polls=3)
        async with page_of as (page, errors):
            await page.wait_for_selector(quiet)
            first = await page.text_content("#run-quiet")
            tempo.route(path, tempo_trace(stages))
            await page.wait_for_function(
                "(t) => Number(document.getElementById('run-quiet').dataset.since) === t",
                arg=_newest_end(stages),
            )
            second = await page.text_content("#run-quiet")
            tempo.route(path, tempo_trace(ended))
            await page.wait_for_selector('body[data-stream-state="ended"]')
            # The attribute and the text: an empty paragraph reads as hidden to Playwright.
            hidden = await page.eval_on_selector(
                "#run-quiet", "(quiet) => [quiet.hidden, quiet.textContent]"
            )
            no_span = await page.eval_on_selector("#run-no-span", "(p) => p.hidden")
            status = await page.text_content("#run-status")
            values = await page.evaluate(
                "[...window.__since.slice(1), document.getElementById('run-quiet').dataset.since]"
            )
    assert [None, _newest_end(held), None, _newest_end(stages), None] == _changes(values)
    for text, spans in ((first, held), (second, stages)):
        assert f"No new span from the span source since {_said(_newest_end(spans))}" in (text or "")
        assert "the run's process may be gone" in (text or "")
    assert ([True, ""], "success", True) == (hidden, status, no_span)
    assert [] == errors


#: Every text ``#run-no-span`` shows, in order, from the page's first script on.
RECORD_NO_SPAN = """
window.__noSpan = [];
new MutationObserver(() => {
  const p = document.getElementById("run-no-span");
  const text = p && !p.hidden ? p.textContent : null;
  const said = window.__noSpan;
  if (text !== null && said[said.length - 1] !== text) said.push(text);
}).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
"""


async def _page_of_torn_run(
    browser: Any, hours_ago: int, arrives_at: int | None
) -> tuple[list[str], str, list[str], list[str]]:
    """The run page of HELD's run (its spans ``hours_ago`` hours earlier) on a Tempo that has
    every span but deploy's, and all of them from its ``arrives_at``-th poll (None: never):
    the texts ``#run-no-span`` showed (the first rendering's included, ``hidden`` once it is
    hidden at the end), the run's status, each stage's state, and the page's errors, once the
    stream ended."""
    run_id, _, ended = await held_run_spans()
    ended = [earlier(span, hours_ago * 3600 * 10**9) for span in ended]
    torn = [span for span in ended if span.name != "deploy"]
    path = f"/api/v2/traces/{run_id}"
    with serve(Backend()) as tempo:
        tempo.route(path, tempo_trace(torn))
        async with _run_page(browser, tempo, run_id, RECORD_NO_SPAN) as (page, errors):
            if arrives_at is not None:
                while sum(line.startswith(path) for line in tempo.requests) < arrives_at:
                    await page.wait_for_timeout(20)
                tempo.route(path, tempo_trace(ended))
            await page.wait_for_selector('body[data-stream-state="ended"]')
            said = await page.evaluate("window.__noSpan")
            if await page.eval_on_selector("#run-no-span", "(p) => p.hidden"):
                said.append("hidden")
            status = await page.text_content("#run-status")
            states = await page.eval_on_selector_all(
                "#stages tbody tr", "(rows) => rows.map((r) => r.dataset.state)"
            )
    return said, status or "", states, errors


@SHARED_BROWSER_LOOP
async def test_the_page_names_a_stage_whose_span_never_came(shared_chromium: Any) -> None:
    """Tempo has the run span, ended an hour ago, and build's and notify's, never deploy's: the
    page ends on the run as Tempo has it and says, as ``watch`` does, that the source has no
    span of deploy, shown as skipped, and that it may have run."""
    said, status, states, errors = await _page_of_torn_run(shared_chromium, 1, None)
    assert (
        "success",
        ["success", "skipped", "success"],
        [
            "This source has no span of stage deploy: shown as skipped, it may have run "
            "(a span lost, or not arrived yet)."
        ],
        [],
    ) == (status, states, sorted(set(said)), errors)


@SHARED_BROWSER_LOOP
async def test_the_page_waits_for_a_stage_span_that_comes_late(shared_chromium: Any) -> None:
    """Tempo has the run span, ended just now, before deploy's, which comes a few polls later:
    the page says from its first rendering that it waits for deploy's span, follows on,
    shows deploy ``success`` at the end, and never says a span is missing."""
    said, status, states, errors = await _page_of_torn_run(shared_chromium, 0, 5)
    waiting = (
        "Waiting for the span of stage deploy, up to 30 s after the run's end: shown as skipped "
        "until it arrives."
    )
    assert ("success", ["success", "success", "success"], [waiting, "hidden"], []) == (
        status,
        states,
        said,
        errors,
    )
