"""Every route the server has, asked by a client without the token: the list is read from the
served app itself (``app.routes``, the debugger's and the page's included), so a route added
later is attacked here without anyone writing a line for it.

The server runs over a real engine whose run waits for an approval (the state in which a
forged approve, cancel or debugger command would do harm), on a real socket. Each route is
asked with each of its methods, plus ``HEAD`` and ``OPTIONS``, with no credential, a wrong
bearer token, a wrong ``?token=``, the right token as a raw cookie (only a signed session is a
cookie) and the right token in a Basic header (only ``Bearer`` and ``token`` are schemes).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
from typing import Any

import httpx
import pytest
from starlette.routing import Mount

import server_support
from pipeline_engine_support import Resolver
from taskdaemon.pipeline import http_security
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.http_limits import HttpLimits
from taskdaemon.pipeline.http_security import OPEN_PATHS, ApiAuth

TOKEN = "every-route-test-token-0123456789"
WRONG = "every-route-wrong-token-987654321"

pytestmark = pytest.mark.slow


def _paths(routes: list[Any], run_id: str) -> list[tuple[str, str]]:
    """``(method, path)`` for each route of ``routes``, its parameters filled with the waiting
    run and its gated stage; a mount is asked for one of its files."""
    asked = []
    for route in routes:
        if isinstance(route, Mount):
            asked += [("GET", f"{route.path}/app.js"), ("HEAD", f"{route.path}/app.js")]
            continue
        path = route.path.replace("{run_id}", run_id).replace("{stage}", "deploy")
        path = re.sub(r"\{[^}]+\}", "continue", path)  # the debugger's {action}, and any new one
        methods = set(route.methods or ()) | {"HEAD", "OPTIONS"}
        asked += [(method, path) for method in sorted(methods)]
    return asked


def _refusals(port: int) -> dict[str, dict[str, Any]]:
    """The ways to ask without the token, each as httpx request options."""
    basic = base64.b64encode(f"operator:{TOKEN}".encode()).decode()
    json_body = {"headers": {"content-type": "application/json"}, "content": b"{}"}
    return {
        "none": json_body,
        "wrong bearer": {
            **json_body,
            "headers": {**json_body["headers"], "authorization": f"Bearer {WRONG}"},
        },
        "wrong query": {**json_body, "params": {"token": WRONG}},
        "raw cookie": {
            **json_body,
            "headers": {**json_body["headers"], "cookie": f"taskdaemon-session-{port}={TOKEN}"},
        },
        "basic": {
            **json_body,
            "headers": {**json_body["headers"], "authorization": f"Basic {basic}"},
        },
        "browser": {"headers": {"accept": "text/html"}},
        "browser, wrong query": {"headers": {"accept": "text/html"}, "params": {"token": WRONG}},
    }


async def test_every_route_refuses_a_client_without_the_token() -> None:
    """Each route but the three probes answers 401 (a browser's page, the sign-in page; a
    browser's page with a wrong token, a redirect to it without the token) to every way of
    asking without the token; no answer holds a stage's name or the token tried, and the run
    still waits for its approval afterwards. The wrong tokens' bound is lifted: this asks
    hundreds of times from one address, which past it would be 429s
    (``pipeline_token_failures_test.py`` tests that)."""
    seen = server_support.ApprovalSeen()
    unbounded = HttpLimits(token_failures=1_000_000)
    async with (
        Engine(resolver=Resolver(), observers=[seen]) as engine,
        server_support.serving(engine, auth=ApiAuth.configured(TOKEN), limits=unbounded) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        handle = await engine.start_run(parse_pipeline(server_support.GATED_PIPELINE), {})
        await asyncio.wait_for(seen.event.wait(), 30)
        try:
            asked = _paths(list(server.app.routes), handle.run_id)
            answers: dict[tuple[str, str, str], tuple[int, bytes]] = {}
            for method, path in asked:
                for name, options in _refusals(server.port).items():
                    answer = await client.request(method, path, **options)
                    shown = answer.content + answer.headers.get("location", "").encode()
                    answers[(method, path, name)] = (answer.status_code, shown)
            after = await client.get(
                f"/api/runs/{handle.run_id}", headers={"authorization": f"Bearer {TOKEN}"}
            )
        finally:
            handle.cancel()
            await handle.wait()
    refused = {key: status for key, (status, _) in answers.items() if key[1] not in OPEN_PATHS}
    leaks = [
        key
        for key, (_, body) in answers.items()
        if key[1] not in OPEN_PATHS and re.search(rb"deploy|build|gated", body)
    ]
    redirected = {key for key, status in refused.items() if status == 303}
    stages = {s["name"]: s["status"] for s in after.json()["stages"]}
    assert len({path for _, path in asked}) >= 20  # the list is the app's, debugger included
    assert {key: 401 for key in refused if key not in redirected} == {
        key: status for key, status in refused.items() if key not in redirected
    }
    assert {key[2] for key in redirected} <= {"browser, wrong query"}
    assert [] == [key for key in answers if WRONG.encode() in answers[key][1]]
    assert ([], "running", {"build": "success", "deploy": "waiting"}) == (
        leaks,
        after.json()["status"],
        stages,
    )


def test_the_token_and_the_session_are_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both checks go through ``hmac.compare_digest``, whose time does not tell how much of a
    guess was right; nothing compares them with ``==`` first."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(http_security.hmac, "compare_digest", spy)
    auth = ApiAuth.configured(TOKEN)
    session = auth.new_session()
    verdicts = (auth.token_matches(WRONG), auth.token_matches(TOKEN), auth.session_valid(session))
    assert ((False, True, True), 3) == (verdicts, len(compared))
