"""The run page of a run followed from a remote source, in headless chromium: Tempo (a fake
answering recorded payloads) has a run's spans only once each ended, its run span only at its
end, so a run whose process died reads ``running`` there for ever. After ``quiet_polls`` polls
with nothing new the page says since when no new span came and that the run's process may be
gone; the next span clears it (docs/web.md, "Live updates")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from browser_support import SHARED_BROWSER_LOOP, TOKEN, browser_page
from pipeline_remote_run_support import held_run_spans, tempo_trace
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
        options = WebOptions(
            source_url=f"tempo+{tempo.url}", read_only=True, poll_interval=0.05, quiet_polls=3
        )
        app = create_app(auth=ApiAuth.configured(TOKEN), web=options)
        server = MonitorServer(app, host="127.0.0.1", port=0)
        await server.start()
        try:
            async with browser_page(shared_chromium, timezone_id="UTC") as (page, errors):
                await page.add_init_script(RECORD_SINCE)
                # Signed in on the run page itself: the runs page would search the fake Tempo.
                await page.goto(f"{server.url}/runs/{run_id}?token={TOKEN}")
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
                status = await page.text_content("#run-status")
                values = await page.evaluate(
                    "[...window.__since.slice(1),"
                    " document.getElementById('run-quiet').dataset.since]"
                )
        finally:
            await server.aclose()
            app.state.web.close()
    assert [None, _newest_end(held), None, _newest_end(stages), None] == _changes(values)
    for text, spans in ((first, held), (second, stages)):
        assert f"No new span from the span source since {_said(_newest_end(spans))}" in (text or "")
        assert "the run's process may be gone" in (text or "")
    assert ([True, ""], "success") == (hidden, status)
    assert [] == errors
