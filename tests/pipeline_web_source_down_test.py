"""The pages of a ``ui`` whose span source does not answer (a Tempo address where nothing
listens), in Debian's headless chromium: they say the source failed, and neither sends the
reader after the run or the filters. The runs list said "No runs match." under the source's
error, as if the filters were too narrow; a run's page said "Run not found" (404) of a run
that may well be there."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from browser_support import SHARED_BROWSER_LOOP, TOKEN, browser_page
from cli_support import free_port
from http_stub_support import serving_in_thread
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.web import WebOptions

pytestmark = pytest.mark.slow

RUN_ID = "ac07e43c8b78e4363b79be706efa7398"


@contextlib.asynccontextmanager
async def unanswered_source_server(source: str | None = None) -> AsyncIterator[str]:
    """A ``ui``-style server (read-only) over a Tempo source at ``source`` (default: a port
    nobody listens on); yields its URL."""
    source = source or f"tempo+http://127.0.0.1:{free_port()}"
    app = create_app(
        auth=ApiAuth.configured(TOKEN), web=WebOptions(source_url=source, read_only=True)
    )
    server = MonitorServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server.url
    finally:
        await server.aclose()
        app.state.web.close()


@SHARED_BROWSER_LOOP
async def test_pages_over_a_source_that_does_not_answer_say_so(shared_chromium: Any) -> None:
    """The runs list is a 502 showing the source's error and, in its table, that no runs are
    shown because of it; a run's page is a 502 headed "Cannot read the run" with the source's
    error. The console's only errors are those answers' (the list's refreshes are 502s)."""
    async with (
        unanswered_source_server() as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        runs = await page.goto(f"{url}/?token={TOKEN}")
        assert runs is not None
        listed = await page.evaluate(
            "[document.getElementById('runs-error').textContent,"
            " document.querySelector('#runs tr.empty').textContent]"
        )
        answer = await page.goto(f"{url}/runs/{RUN_ID}")
        assert answer is not None
        run_page = [answer.status, await page.text_content("h1"), await page.text_content(".error")]
    assert 502 == runs.status
    assert listed[0].startswith("span source: cannot reach"), listed
    assert "No runs shown: see the error above." == listed[1]
    assert [502, "Cannot read the run"] == run_page[:2]
    assert run_page[2].startswith("span source: cannot reach"), run_page
    assert [] == [e for e in errors if "status of 502" not in e]


async def test_every_api_route_over_a_source_that_does_not_answer_is_a_502_saying_so() -> None:
    """The runs, the pipelines, a run's record, DAG and stream each answer 502 with the
    source's error in one line: the run may well be there, so never 404."""
    async with (
        unanswered_source_server() as url,
        httpx.AsyncClient(
            base_url=url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client,
    ):
        answers = [
            await client.get(path)
            for path in (
                "/api/runs/recent",
                "/api/pipelines",
                f"/api/runs/{RUN_ID}",
                f"/api/runs/{RUN_ID}/dag",
                f"/api/runs/{RUN_ID}/dag?format=svg",
                f"/api/runs/{RUN_ID}/stream",
            )
        ]
    expected = [(502, True)] * 6
    actual = [
        (a.status_code, a.json()["error"].startswith("span source: cannot reach")) for a in answers
    ]
    assert expected == actual, [a.text for a in answers]


async def test_the_logs_of_a_tempo_source_are_a_404_saying_where_logs_are_kept() -> None:
    """A stage's logs over a Tempo source are a 404 saying that run logs are kept in the
    embedded store and in debug dumps only, before the source is asked anything."""
    async with (
        unanswered_source_server() as url,
        httpx.AsyncClient(
            base_url=url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client,
    ):
        answer = await client.get(f"/api/runs/{RUN_ID}/logs", params={"stage": "build"})
    expected = (404, "run logs are kept in the embedded span store and in debug dumps only")
    assert expected == (answer.status_code, answer.json()["error"])


@contextlib.contextmanager
def tempo_saying(status: int, text: str) -> Iterator[str]:
    """A Tempo stand-in answering every GET with ``status`` and ``text``; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.block_on_close = True
    with serving_in_thread(server):
        yield f"tempo+http://127.0.0.1:{server.server_port}"


async def test_a_backend_error_quoting_span_store_still_names_the_span_source() -> None:
    """Only the embedded store's own errors are shown bare (they name their file): a backend
    whose answer happens to say "span store" is still prefixed ``span source:``, as any other
    backend error is (the page once decided by the words, and showed it bare)."""
    with tempo_saying(400, "span store flushing, try again") as tempo:
        async with (
            unanswered_source_server(tempo) as url,
            httpx.AsyncClient(
                base_url=url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
            ) as client,
        ):
            answer = await client.get(f"/api/runs/{RUN_ID}")
    error = answer.json()["error"]
    assert (502, True) == (answer.status_code, error.startswith("span source: ")), error
    assert "HTTP 400: span store flushing, try again" in error
