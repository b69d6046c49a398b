"""The debugger's HTTP routes tell a malformed request (400) and an unknown stage (404) from
what the run cannot do now (409), with the words the control socket (and so the CLI's
``debug`` prompts) answers for the same request (``server_debug.py``, ``debug_ops.py``).

Every request goes over TCP to a real server (:func:`server_support.serving`) over a real
engine whose run is paused at a breakpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import server_support
from pipeline_engine_support import Resolver, after, pipeline, stage
from taskdaemon.pipeline.debug_ops import DebugOps
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.http_limits import HttpLimits
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.model import InputMapping

TOKEN = "debug-answers-test-token-0123456789"
JSON = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}


@contextlib.asynccontextmanager
async def paused_run() -> AsyncIterator[tuple[httpx.AsyncClient, Engine, str]]:
    """A served engine whose run is paused before stage ``a`` (input ``n``); yields a client
    of the server, the engine and the run's id. The run is resumed and awaited on exit."""
    gate = asyncio.Event()

    async def hold(ctx: Any) -> None:
        await gate.wait()

    p = pipeline(
        stage("hold"),
        stage("a", *after("hold"), inputs=(InputMapping("n", "request.n"),)),
        stage("b", *after("a")),
    )
    async with (
        Engine(resolver=Resolver({"hold": hold})) as engine,
        server_support.serving(engine, auth=ApiAuth.configured(TOKEN)) as server,
        httpx.AsyncClient(base_url=server.url, headers=JSON) as client,
    ):
        handle = await engine.start_run(p, {"n": 1})
        session = engine.with_debug(True)
        session.set_breakpoint("a", run_id=handle.run_id)
        gate.set()
        await session.wait_paused(handle.run_id)
        try:
            yield client, engine, handle.run_id
        finally:
            session.continue_(handle.run_id)
            await handle.wait()


def one_error(response: httpx.Response) -> tuple[int, str]:
    """The status and the one-line message of a JSON error answer."""
    body = json.loads(response.content)
    assert (list(body), response.headers["content-type"]) == (["error"], "application/json")
    assert "\n" not in body["error"]
    return response.status_code, str(body["error"])


#: (method, path after /debug, body, status, the debug_ops request the body becomes)
REFUSED = [
    ("POST", "/continue", {"stage": 3}, 400, {"action": "continue", "stage": 3}),
    ("POST", "/step", {"stage": ["a"]}, 400, {"action": "step", "stage": ["a"]}),
    ("POST", "/set", {"stage": "a"}, 400, {"action": "set", "stage": "a"}),
    ("POST", "/set", {"stage": "a", "input": 7, "value": 1}, 400, None),
    (
        "POST",
        "/set",
        {"stage": "a", "input": "n"},
        400,
        {"action": "set", "stage": "a", "input": "n"},
    ),
    ("POST", "/set", {"stage": "a", "input": "zz", "value": 1}, 400, None),
    ("PUT", "/breakpoints", {"stage": "b", "when": 5}, 400, None),
    ("PUT", "/breakpoints", {"stage": "b", "on": "bogus"}, 400, None),
    ("PUT", "/breakpoints", {"stage": "b", "when": "x("}, 400, None),
    ("PUT", "/breakpoints", {"stage": "nosuch"}, 404, None),
    # Breakpoints that could never pause: an event nothing listens for, a condition reading a
    # stage the run lacks or an input the stage does not declare.
    ("PUT", "/breakpoints", {"on": "event:no.such"}, 400, None),
    ("PUT", "/breakpoints", {"stage": "a", "when": "stages.zz.outputs.x == 1"}, 400, None),
    ("PUT", "/breakpoints", {"stage": "a", "when": "inputs.zz == 1"}, 400, None),
    ("POST", "/skip", {"stage": "b"}, 409, None),
    ("DELETE", "/breakpoints/99", {}, 409, {"action": "delete", "id": 99}),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "request_"), REFUSED)
async def test_a_refused_debug_request_has_its_status_and_the_sockets_words(
    method: str, path: str, body: dict[str, Any], status: int, request_: dict[str, Any] | None
) -> None:
    """Malformed: 400; unknown stage: 404; not now: 409. The message is what the control
    socket answers the same request, and the paused run is left as it was."""
    action = "break" if path == "/breakpoints" else path.strip("/")
    ops_request = request_ or {**body, "action": action}
    async with paused_run() as (client, engine, run_id):
        answer = await client.request(method, f"/api/runs/{run_id}/debug{path}", json=body)
        socket = await DebugOps(engine, run_id)(ops_request)
        state = (await client.get(f"/api/runs/{run_id}/debug")).json()
    assert (status, socket["error"]) == one_error(answer)
    assert socket["ok"] is False
    assert (["a.0.1"], 1) == (
        [paused["task_run_id"] for paused in state["paused"]],
        len(state["breakpoints"]),
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{", "body is "),
        (b"[1]", "JSON object"),
        (b'"stage"', "JSON object"),
    ],
)
async def test_a_debug_body_that_is_not_a_json_object_is_400(body: bytes, says: str) -> None:
    """A body the server cannot read as one JSON object is a 400 before the debugger sees it."""
    async with paused_run() as (client, _engine, run_id):
        answer = await client.post(f"/api/runs/{run_id}/debug/continue", content=body)
        state = (await client.get(f"/api/runs/{run_id}/debug")).json()
    status, message = one_error(answer)
    assert (400, True) == (status, says in message)
    assert ["a.0.1"] == [paused["task_run_id"] for paused in state["paused"]]


async def test_a_well_formed_request_after_refused_ones_is_answered() -> None:
    """The refusals leave the run to the next client: ``set`` then ``continue`` run it on."""
    async with paused_run() as (client, _engine, run_id):
        base = f"/api/runs/{run_id}/debug"
        refused = await client.post(f"{base}/set", json={"stage": "a", "input": 1})
        done = await client.post(f"{base}/set", json={"stage": "a", "input": "n", "value": 2})
        resumed = await client.post(f"{base}/continue", json={"stage": "a"})
    assert [400, 200, 200] == [r.status_code for r in (refused, done, resumed)]
    assert ({"inputs": {"n": 2}}, {"resumed": 1}) == (done.json(), resumed.json())


async def test_a_run_id_prefix_is_404_naming_the_whole_id() -> None:
    """``GET /api/runs/PREFIX`` reads the store and takes a prefix; the routes that act on the
    engine's run take its whole id only, and a prefix of it used to be a bare ``no run
    'PREFIX' in this engine``, as if the run were not there. Now the refusal names the run
    the prefix starts, so the next request is a copy away; the paused run is left paused."""
    async with paused_run() as (client, _engine, run_id):
        prefix = run_id[:8]
        answers = [
            await client.get(f"/api/runs/{prefix}/debug"),
            await client.post(f"/api/runs/{prefix}/debug/continue", json={}),
            await client.post(f"/api/runs/{prefix}/cancel", json={}),
        ]
        state = (await client.get(f"/api/runs/{run_id}/debug")).json()
    said = f"no run '{prefix}' in this engine: did you mean run {run_id}? (give its whole id)"
    assert [(404, said)] * 3 == [one_error(answer) for answer in answers]
    assert ["a.0.1"] == [paused["task_run_id"] for paused in state["paused"]]


@pytest.mark.slow
async def test_an_engine_that_does_not_answer_in_time_is_503() -> None:
    """The engine's loop busy past the server's bound (the test holds it with blocking
    requests, on purpose): each debug route answers 503 with the bridge's words, and the run
    then goes on to its end."""
    gate = asyncio.Event()

    async def hold(ctx: Any) -> None:
        await gate.wait()

    p = pipeline(stage("hold"), stage("a", *after("hold")))
    async with (
        Engine(resolver=Resolver({"hold": hold})) as engine,
        server_support.serving(
            engine, auth=ApiAuth.configured(TOKEN), limits=HttpLimits(engine_timeout=0.2)
        ) as server,
    ):
        handle = await engine.start_run(p)
        base = f"{server.url}/api/runs/{handle.run_id}/debug"
        with httpx.Client(headers=JSON, timeout=30) as blocking:  # holds this loop: the engine's
            answers = [
                blocking.get(base),  # noqa: ASYNC212 - the loop held is the point
                blocking.put(f"{base}/breakpoints", json={"stage": "a"}),  # noqa: ASYNC212
            ]
        gate.set()
        await handle.wait()
    assert [(503, {"error": "the engine did not answer within 0.2s"})] * 2 == [
        (answer.status_code, answer.json()) for answer in answers
    ]
