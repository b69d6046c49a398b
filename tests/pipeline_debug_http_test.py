"""The HTTP debugger routes: looking at a run, breakpoints by PUT/DELETE, resuming by POST, the
paused state in /api/runs, and the access rule of the mutating routes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from pipeline_engine_support import Resolver, after, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.model import InputMapping
from taskdaemon.pipeline.server import create_app


def _client(app: Any, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://td")


PIPELINE = pipeline(
    stage("a", inputs=(InputMapping("n", "request.n"),)),
    stage("b", *after("a")),
)


async def test_a_run_is_debugged_over_http_from_breakpoint_to_end() -> None:
    """GET says debug mode is off and turns nothing on; PUT adds a breakpoint (201); the run
    pauses there and /api/runs says paused; POST set and continue finish it."""
    seen: dict[str, Any] = {}

    gate = asyncio.Event()

    async def a(ctx: Any) -> None:
        seen.update(ctx.inputs)

    async def hold(ctx: Any) -> None:  # keeps the run open until the breakpoint is set
        await gate.wait()

    async with Engine(resolver=Resolver({"a": a, "hold": hold})) as engine:
        app = create_app(engine=engine)
        p = pipeline(
            stage("hold"),
            stage("a", *after("hold"), inputs=(InputMapping("n", "request.n"),)),
        )
        handle = await engine.start_run(p, {"n": 1})
        async with _client(app) as client:
            looked = (await client.get(f"/api/runs/{handle.run_id}/debug")).json()
            assert looked["debug"] is False
            assert engine._debugger is None
            put = await client.put(
                f"/api/runs/{handle.run_id}/debug/breakpoints", json={"stage": "a"}
            )
            assert put.status_code == 201
            assert put.json()["breakpoint"]["description"].startswith("#1 before a")
            gate.set()
            await engine.with_debug(True).wait_paused(handle.run_id)
            state = (await client.get(f"/api/runs/{handle.run_id}/debug")).json()
            assert state["debug"] is True
            assert [p["task_run_id"] for p in state["paused"]] == ["a.0.1"]
            runs = (await client.get("/api/runs")).json()["runs"]
            assert runs[0]["status"] == "paused"
            assert {s["stage"]: s["status"] for s in runs[0]["stages"]}["a"] == "paused"
            set_input = await client.post(
                f"/api/runs/{handle.run_id}/debug/set",
                json={"stage": "a", "input": "n", "value": 7},
            )
            assert set_input.status_code == 200
            resumed = await client.post(f"/api/runs/{handle.run_id}/debug/continue", json={})
            assert resumed.json() == {"resumed": 1}
            result = await handle.wait()
            again = await client.post(f"/api/runs/{handle.run_id}/debug/step", json={})
        assert result.succeeded
        assert seen == {"n": 7}
        assert again.status_code == 409
        assert "finished" in again.json()["error"]


async def test_errors_are_one_line_with_their_status() -> None:
    """Unknown run 404, unknown action 404, nothing paused 409, bad body 400, DELETE of an
    unknown breakpoint 409."""
    gate = asyncio.Event()

    async def hold(ctx: Any) -> None:
        await gate.wait()

    async with Engine(resolver=Resolver({"a": hold})) as engine:
        app = create_app(engine=engine)
        handle = await engine.start_run(PIPELINE, {"n": 1})
        base = f"/api/runs/{handle.run_id}/debug"
        async with _client(app) as client:
            missing = await client.get("/api/runs/" + "0" * 32 + "/debug")
            unknown = await client.post(f"{base}/jump", json={})
            nothing = await client.post(f"{base}/skip", json={})
            bad = await client.post(
                f"{base}/continue", content=b"[1]", headers={"content-type": "application/json"}
            )
            gone = await client.delete(f"{base}/breakpoints/9")
            bad_cel = await client.put(f"{base}/breakpoints", json={"stage": "b", "when": "x("})
        gate.set()
        await handle.wait()
    assert [r.status_code for r in (missing, unknown, nothing, bad, gone, bad_cel)] == [
        404,
        404,
        409,
        400,
        409,
        409,
    ]
    assert nothing.json()["error"] == "cannot skip a stage: nothing is not paused"
    assert "breakpoint condition" in bad_cel.json()["error"]


async def test_mutating_routes_refuse_remote_clients_and_simple_content_types() -> None:
    """Without a token, POST/PUT/DELETE come from loopback only (403), never as a form or
    plain text (415); GET stays readable."""
    gate = asyncio.Event()

    async def hold(ctx: Any) -> None:
        await gate.wait()

    async with Engine(resolver=Resolver({"a": hold})) as engine:
        app = create_app(engine=engine)
        handle = await engine.start_run(PIPELINE, {"n": 1})
        base = f"/api/runs/{handle.run_id}/debug"
        async with _client(app, host="203.0.113.9") as remote:
            far_put = await remote.put(f"{base}/breakpoints", json={"stage": "b"})
            far_get = await remote.get(base)
        async with _client(app) as local:
            form = await local.post(f"{base}/continue", data={"stage": "b"})
            text = await local.put(
                f"{base}/breakpoints", content=b"{}", headers={"content-type": "text/plain"}
            )
        gate.set()
        await handle.wait()
    assert (far_put.status_code, far_get.status_code) == (403, 200)
    assert (form.status_code, text.status_code) == (415, 415)
    assert engine._debugger is None  # nothing refused turned debug mode on
