"""The HTTP debugger routes: looking at a run, breakpoints by PUT/DELETE, resuming by POST, the
paused state in /api/runs, and the API's access rule (token, JSON, principal)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import BreakpointResumed
from taskdaemon.pipeline.model import InputMapping
from taskdaemon.pipeline.server import EngineController, create_app


def _client(app: Any, *, token: bool = True) -> httpx.AsyncClient:
    """An in-process client, holding the app's API token unless told not to."""
    headers = {"authorization": f"Bearer {app.state.auth.token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", headers=headers
    )


PIPELINE = pipeline(
    stage("a", inputs=(InputMapping("n", "request.n"),)),
    stage("b", *after("a")),
)


@contextlib.asynccontextmanager
async def _held_run() -> AsyncIterator[tuple[Engine, httpx.AsyncClient, str]]:
    """A run of :data:`PIPELINE` held in its first stage, on an engine an app serves, with a
    client of the app: ``(engine, client, run id)``. On leaving, the client is closed, the stage
    let go and the run awaited."""
    gate = asyncio.Event()

    async def hold(ctx: Any) -> None:
        await gate.wait()

    async with Engine(resolver=Resolver({"a": hold})) as engine:
        app = create_app(engine=engine)
        handle = await engine.start_run(PIPELINE, {"n": 1})
        try:
            async with _client(app) as client:
                yield engine, client, handle.run_id
        finally:
            gate.set()
            await handle.wait()


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
    unknown breakpoint 409, a condition that does not compile 400."""
    async with _held_run() as (_, client, run_id):
        base = f"/api/runs/{run_id}/debug"
        missing = await client.get("/api/runs/" + "0" * 32 + "/debug")
        unknown = await client.post(f"{base}/jump", json={})
        nothing = await client.post(f"{base}/skip", json={})
        bad = await client.post(
            f"{base}/continue", content=b"[1]", headers={"content-type": "application/json"}
        )
        gone = await client.request("DELETE", f"{base}/breakpoints/9", json={})
        bad_cel = await client.put(f"{base}/breakpoints", json={"stage": "b", "when": "x("})
    assert [r.status_code for r in (missing, unknown, nothing, bad, gone, bad_cel)] == [
        404,
        404,
        409,
        400,
        409,
        400,
    ]
    assert nothing.json()["error"] == "cannot skip a stage: nothing is paused"
    assert "breakpoint condition" in bad_cel.json()["error"]


async def test_the_debug_routes_follow_the_apis_access_rule() -> None:
    """Without the token every debug route is 401; a state change as a form is 415; a body
    naming ``by`` is 400; who resumed is the token's principal."""
    gate = asyncio.Event()

    async def hold(ctx: Any) -> None:
        await gate.wait()

    recorder = Recorder()
    async with Engine(resolver=Resolver({"hold": hold}), observers=[recorder]) as engine:
        app = create_app(engine=engine)
        p = pipeline(stage("hold"), stage("b", *after("hold")))
        handle = await engine.start_run(p)
        base = f"/api/runs/{handle.run_id}/debug"
        async with _client(app, token=False) as anonymous:
            no_token = [
                (await anonymous.get(base)).status_code,
                (await anonymous.put(f"{base}/breakpoints", json={"stage": "b"})).status_code,
            ]
        async with _client(app) as client:
            form = await client.post(f"{base}/continue", data={"stage": "b"})
            named = await client.post(f"{base}/continue", json={"by": "mallory"})
            put = await client.put(f"{base}/breakpoints", json={"stage": "b"})
            gate.set()
            await engine.with_debug(True).wait_paused(handle.run_id)
            resumed = await client.post(f"{base}/continue", json={})
        await handle.wait()
    assert no_token == [401, 401]
    assert form.status_code == 415
    # An approval's words ("the approver", "put notes in comment") named neither: a debug
    # route takes no comment.
    assert (400, '"by" is not accepted: who acts is the authenticated principal') == (
        named.status_code,
        named.json()["error"],
    )
    assert put.status_code == 201
    assert resumed.status_code == 200
    (event,) = recorder.of(BreakpointResumed)
    assert event.by == app.state.auth.principal


async def test_a_paused_executions_inputs_are_redacted_with_the_servers_patterns() -> None:
    """GET /debug of a run paused at a breakpoint shows an input named by the server's redact
    patterns as ``[REDACTED]``, and the other inputs as they are."""
    gate = asyncio.Event()

    async def hold(ctx: Any) -> None:
        await gate.wait()

    async with Engine(resolver=Resolver({"hold": hold})) as engine:
        app = create_app(engine=engine, redact_patterns=("ssn",))
        p = pipeline(
            stage("hold"),
            stage(
                "a",
                *after("hold"),
                inputs=(InputMapping("ssn", "request.ssn"), InputMapping("n", "request.n")),
            ),
        )
        handle = await engine.start_run(p, {"ssn": "078-05-1120", "n": 1})
        base = f"/api/runs/{handle.run_id}/debug"
        async with _client(app) as client:
            await client.put(f"{base}/breakpoints", json={"stage": "a"})
            gate.set()
            await engine.with_debug(True).wait_paused(handle.run_id)
            state = (await client.get(base)).json()
            await client.post(f"{base}/continue", json={})
        await handle.wait()
    assert [{"ssn": "[REDACTED]", "n": 1}] == [paused["inputs"] for paused in state["paused"]]


async def test_looking_without_debug_mode_says_the_run_and_that_nothing_is_paused() -> None:
    """GET /debug before debug mode is on answers every field the page reads (debug off,
    the run, its status, nothing paused, no breakpoint), and leaves debug mode off."""
    async with _held_run() as (engine, client, run_id):
        looked = await client.get(f"/api/runs/{run_id}/debug")
    assert (200, None) == (looked.status_code, engine._debugger)
    assert {
        "debug": False,
        "run_id": run_id,
        "status": "running",
        "paused": [],
        "breakpoints": [],
    } == looked.json()


async def test_an_unknown_action_is_404_naming_the_actions_there_are() -> None:
    """POST /debug/<action> with no such action: 404, the action quoted and the five named,
    and the run is not touched."""
    async with _held_run() as (_, client, run_id):
        unknown = await client.post(f"/api/runs/{run_id}/debug/jump", json={})
    assert (404, {"error": "no debug action 'jump' (continue, step, skip, retry, set)"}) == (
        unknown.status_code,
        unknown.json(),
    )


async def test_breakpoints_are_deleted_one_by_number_or_all_at_once() -> None:
    """DELETE /breakpoints/{n} deletes that one; DELETE /breakpoints, every breakpoint of the
    run; each says how many it deleted."""
    async with _held_run() as (engine, client, run_id):
        base = f"/api/runs/{run_id}/debug"
        added = [
            (await client.put(f"{base}/breakpoints", json={"stage": "b", "on": on})).json()
            for on in ("start", "failure", "start")
        ]
        number = added[1]["breakpoint"]["id"]
        one = await client.request("DELETE", f"{base}/breakpoints/{number}", json={})
        left = (await client.get(base)).json()["breakpoints"]
        every = await client.request("DELETE", f"{base}/breakpoints", json={})
        none = (await client.get(base)).json()["breakpoints"]
        engine.with_debug(True).delete_breakpoint(None)  # any a failed DELETE left: no wait
    assert [(200, {"deleted": 1}), (200, {"deleted": 2})] == [
        (one.status_code, one.json()),
        (every.status_code, every.json()),
    ]
    kept = [added[0]["breakpoint"]["id"], added[2]["breakpoint"]["id"]]
    assert (kept, []) == ([b["id"] for b in left], none)


async def test_a_dump_is_written_where_the_server_chooses_never_the_client() -> None:
    """POST /dump answers the path the process's writer wrote (200), asked for the path the
    server chooses: a ``path`` in the body never reaches the writer."""
    asked: list[tuple[str, str | None]] = []

    async def writer(run_id: str, path: str | None) -> dict[str, str]:
        asked.append((run_id, path))
        return {"path": f"/dumps/{run_id}.tar.gz"}

    gate = asyncio.Event()

    async def hold(ctx: Any) -> None:
        await gate.wait()

    async with Engine(resolver=Resolver({"a": hold})) as engine:
        app = create_app(engine=engine, dump=writer)
        handle = await engine.start_run(PIPELINE, {"n": 1})
        async with _client(app) as client:
            dumped = await client.post(
                f"/api/runs/{handle.run_id}/dump", json={"path": "/etc/cron.d/x"}
            )
        gate.set()
        await handle.wait()
    assert (200, {"path": f"/dumps/{handle.run_id}.tar.gz"}, [(handle.run_id, None)]) == (
        dumped.status_code,
        dumped.json(),
        asked,
    )


async def test_the_debug_routes_answer_503_until_an_engine_is_bound() -> None:
    """A server whose engine is not bound yet (``serve`` builds the app first): every debug
    route is a 503 saying so, not a 500."""
    app = create_app(engine=EngineController())
    run = "0" * 32
    async with _client(app) as client:
        answers = [
            await client.get(f"/api/runs/{run}/debug"),
            await client.post(f"/api/runs/{run}/debug/continue", json={}),
            await client.put(f"/api/runs/{run}/debug/breakpoints", json={"stage": "a"}),
            await client.post(f"/api/runs/{run}/dump", json={}),
        ]
    assert [(503, {"error": "no engine attached to this server"})] * 4 == [
        (answer.status_code, answer.json()) for answer in answers
    ]
