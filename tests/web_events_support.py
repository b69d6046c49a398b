"""The run page fed made-up live events, in Debian's headless chromium (Playwright).

The page's live stream is replaced (``page.route``) by events made from a stored run's real
first event, so a test says exactly which states and labels arrive; everything else (the
page, the DAG drawings) is the real server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from browser_support import TOKEN, browser_page, stored_runs_server
from pipeline_tracking_support import store_with


async def first_event(url: str, run_id: str) -> dict[str, Any]:
    """The run's first live event (the whole page state), as the server sends it."""
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with (
        httpx.AsyncClient(headers=headers, timeout=10) as client,
        client.stream("GET", f"{url}/api/runs/{run_id}/stream") as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                return dict(json.loads(line.removeprefix("data: ")))
    raise AssertionError("no event")


def with_stages(event: dict[str, Any], states: list[str], label: str) -> dict[str, Any]:
    """``event`` with one stage per state, each labelled ``label``: the run's first stage
    (the one its drawing shows), then ``s1``, ``s2``, ..."""
    node = event["nodes"][0]
    made = copy.deepcopy(event)
    made["run"]["status"] = "running"
    names = [node["name"]] + [f"s{i}" for i in range(1, len(states))]
    made["nodes"] = [
        {**node, "name": name, "title": name, "state": state, "label": f"{state} {label}"}
        for name, state in zip(names, states, strict=True)
    ]
    return made


def stream_body(events: list[dict[str, Any]]) -> str:
    """An SSE body sending ``events`` and then ``end``."""
    parts = ["retry: 2000\n\n"]
    parts += [f"id: {n}\ndata: {json.dumps(e)}\n\n" for n, e in enumerate(events, 1)]
    return "".join(parts) + "event: end\ndata: {}\n\n"


@contextlib.asynccontextmanager
async def run_page_with(
    tmp_path: Path,
    make: Any,
    *,
    browser: Any,
    fake_clock: bool = False,
    clock_stopped: bool = False,
    init_script: str | None = None,
    drawing_route: Any = None,
) -> AsyncIterator[tuple[Any, list[str], list[str]]]:
    """The run page of a stored run whose stream sends ``make(first_event)`` instead; yields
    the page, its console errors and the DAG drawings it asked for so far. ``fake_clock``:
    the browser's clock runs on until the test moves it; ``clock_stopped``: it stands still
    (no timer fires) until the test moves it; ``init_script`` runs in the page before its
    own scripts; ``drawing_route`` (a ``page.route`` handler) answers its requests for DAG
    drawings instead of the server. The page opens in ``browser``."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(browser) as (page, errors),
    ):
        body = stream_body(make(await first_event(url, run_id)))
        drawings: list[str] = []
        page.on("request", lambda r: drawings.append(r.url) if "format=svg" in r.url else None)

        async def fake_stream(route: Any) -> None:
            await route.fulfill(status=200, content_type="text/event-stream", body=body)

        await page.route("**/api/runs/*/stream?*", fake_stream)
        if drawing_route is not None:
            await page.route("**/api/runs/*/dag?format=svg", drawing_route)
        if init_script is not None:
            await page.add_init_script(init_script)
        if fake_clock or clock_stopped:
            await page.clock.install()
        if clock_stopped:
            await page.clock.pause_at(time.time() + 1)
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector('body[data-stream-state="ended"]')
        yield page, errors, drawings
