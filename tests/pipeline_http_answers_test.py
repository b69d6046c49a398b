"""The HTTP API as a client meets it (``api_views.py``): the run list's field names.

Every test talks to a real server (:func:`server_support.serving`: Uvicorn on a free loopback
port) over a real engine, as a client would, over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

import server_support
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import ApprovalRequested, EngineEvent
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Pipeline, Stage

TOKEN = "answers-test-token-0123456789"
BEARER = {"authorization": f"Bearer {TOKEN}"}
JSON = {**BEARER, "content-type": "application/json"}

PIPELINE = """
name: answers
loops: {work: {handler: "unused:unused"}}
stages:
  - name: build
    loop: work
    triggers: [{manual: {approval_required: false}}]
  - name: deploy
    loop: work
    trigger_mode: all
    triggers:
      - on_completion: {stage: build}
      - manual: {approval_required: true}
"""
QUICK = """
name: quick
loops: {work: {handler: "unused:unused"}}
stages:
  - name: only
    loop: work
    triggers: [{manual: {approval_required: false}}]
"""


class Resolver:
    """Every stage returns at once."""

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def handler(ctx: StageContext) -> Mapping[str, Any]:
            return {"stage": stage.name}

        return handler


class Approval:
    """Wakes the test when a stage asks for an approval."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, ApprovalRequested):
            self.requested.set()


@contextlib.asynccontextmanager
async def waiting_run() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A served engine whose run waits for the ``deploy`` approval; yields a client of the
    server (with no credentials of its own) and the run's id."""
    approval = Approval()
    async with (
        Engine(resolver=Resolver(), observers=[approval]) as engine,
        server_support.serving(engine, auth=ApiAuth.configured(TOKEN)) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        handle = await engine.start_run(parse_pipeline(PIPELINE), {})
        await approval.requested.wait()
        try:
            yield client, handle.run_id
        finally:
            handle.cancel()
            await handle.wait()


def assert_one_json_error(response: httpx.Response, status: int) -> str:
    """The response is ``status`` with ``{"error": "<one line>"}``, JSON, never cached; the
    message is returned."""
    body = json.loads(response.content)
    assert (
        response.status_code,
        response.headers["content-type"],
        response.headers["cache-control"],
        list(body),
        isinstance(body["error"], str) and "\n" not in body["error"] and bool(body["error"]),
    ) == (status, "application/json", "no-store", ["error"], True)
    return str(body["error"])


# --- field names ---------------------------------------------------------------------------------


async def test_the_run_list_names_times_and_stages_as_the_record_does() -> None:
    """``GET /api/runs`` has the record's ``start``, ``end`` and stage ``name``, and still the
    first names (``started_at``, ``finished_at``; ``stage``, ``started_at``, ``ended_at``) with
    the same values, for the clients written against them."""
    async with waiting_run() as (client, run_id):
        (run,) = (await client.get("/api/runs", headers=BEARER)).json()["runs"]
        record = (await client.get(f"/api/runs/{run_id}", headers=BEARER)).json()
    assert {"start", "end"} <= set(record)
    assert (run["start"], run["end"]) == (run["started_at"], run["finished_at"])
    assert isinstance(run["start"], float)
    build = next(stage for stage in run["stages"] if stage["name"] == "build")
    assert (build["stage"], build["start"], build["end"]) == (
        "build",
        build["started_at"],
        build["ended_at"],
    )
    assert (type(build["start"]), type(build["end"])) == (float, float)
    (attempt,) = next(s for s in record["stages"] if s["name"] == "build")["attempts"]
    assert {"name", "start", "end"} - set(build) == set()
    assert {"start", "end", "instance", "attempt", "status"} <= set(attempt)
    assert sorted(s["name"] for s in run["stages"]) == sorted(s["name"] for s in record["stages"])
