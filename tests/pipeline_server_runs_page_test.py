"""``GET /api/runs`` is bounded by default and pages back: 100 runs unless ``limit`` says
otherwise (at most 500), ``before=<run id>`` for the runs started before that one, and a
``next`` link in every answer that has more (``server.py``, ``api_views.RunsQuery``).

Every request goes over TCP to a real server (:func:`server_support.serving`) over a real
engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import server_support
from pipeline_engine_support import Resolver, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.http_security import ApiAuth

TOKEN = "runs-page-test-token-0123456789"
QUICK = pipeline(stage("only"))
HELD = pipeline(stage("hold"))


@contextlib.asynccontextmanager
async def served(
    ended: int, held: int = 0
) -> AsyncIterator[tuple[httpx.AsyncClient, Engine, list[str]]]:
    """An engine that ran ``ended`` runs to their end, then started ``held`` runs that stay
    open until the block exits; yields a client of its server, the engine and the held runs'
    ids (oldest first)."""
    gate = asyncio.Event()

    async def hold(ctx: Any) -> None:
        await gate.wait()

    async with (
        Engine(resolver=Resolver({"hold": hold})) as engine,
        server_support.serving(engine, auth=ApiAuth.configured(TOKEN)) as server,
        httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}
        ) as client,
    ):
        for _ in range(ended):
            await (await engine.start_run(QUICK)).wait()
        handles = [await engine.start_run(HELD) for _ in range(held)]
        try:
            yield client, engine, [handle.run_id for handle in handles]
        finally:
            gate.set()
            for handle in handles:
                await handle.wait()


async def pages(client: httpx.AsyncClient, url: str | None) -> list[list[str]]:
    """The run ids of every page from ``url`` on, following ``next`` to the end."""
    found = []
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        found.append([run["run_id"] for run in body["runs"]])
        url = body["next"]
    return found


async def test_the_list_answers_the_100_newest_runs_and_a_link_to_the_rest() -> None:
    """Without ``limit``, 100 runs (the newest, in start order) and ``next``; following it
    reads every run the engine remembers exactly once."""
    async with served(ended=130) as (client, engine, _held):
        first = (await client.get("/api/runs?finished=true")).json()
        every = await pages(client, "/api/runs?finished=true")
        started = [handle.run_id for handle in engine.runs]
    assert [run["run_id"] for run in first["runs"]] == started[-100:]
    assert first["next"] == f"/api/runs?finished=true&limit=100&before={started[-100]}"
    assert every == [started[-100:], started[:30]]


@pytest.mark.parametrize("limit", [1, 7, 130, 500])
async def test_pages_of_any_limit_read_every_run_once_in_start_order(limit: int) -> None:
    """Pages of ``limit`` runs, newest page first, together give every run once; the last
    page's ``next`` is null."""
    async with served(ended=130) as (client, engine, _held):
        every = await pages(client, f"/api/runs?finished=true&limit={limit}")
        started = [handle.run_id for handle in engine.runs]
    assert [run_id for page in reversed(every) for run_id in page] == started
    assert [len(page) for page in every[:-1]] == [limit] * (len(every) - 1)


async def test_runs_started_after_the_first_page_do_not_shift_the_next() -> None:
    """``before`` names a run, not a position: the next page is the runs started before the
    first page's oldest, however many started since."""
    async with served(ended=12) as (client, engine, _held):
        first = (await client.get("/api/runs?finished=true&limit=5")).json()
        for _ in range(4):
            await (await engine.start_run(QUICK)).wait()
        rest = await pages(client, first["next"])
        started = [handle.run_id for handle in engine.runs]
    assert [run["run_id"] for run in first["runs"]] == started[7:12]
    assert rest == [started[2:7], started[:2]]


async def test_a_page_of_open_runs_goes_on_after_its_cursor_run_ended() -> None:
    """Without ``finished``, the next page is still the older open runs when the run it
    starts before has ended in between."""
    async with served(ended=3, held=5) as (client, engine, held):
        first = (await client.get("/api/runs?limit=2")).json()
        engine.get_run(held[3]).cancel()
        await engine.get_run(held[3]).wait()
        rest = await pages(client, first["next"])
    assert [run["run_id"] for run in first["runs"]] == held[3:]
    assert first["next"] == f"/api/runs?limit=2&before={held[3]}"
    assert rest == [held[1:3], held[:1]]


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("limit=0", 400, "limit must be a whole number 1-500, got '0'"),
        ("limit=501", 400, "limit must be a whole number 1-500, got '501'"),
        ("before=abcd", 400, "before: not a run id (32 hex digits): 'abcd'"),
        ("before=../etc", 400, "before: not a run id (32 hex digits): '../etc'"),
        ("before=" + "0" * 32, 404, f"no run {'0' * 32} in this engine"),
    ],
)
async def test_a_limit_out_of_range_or_a_cursor_that_is_no_run_is_refused(
    query: str, status: int, says: str
) -> None:
    """``limit`` is 1-500; ``before`` is a full run id (400 otherwise) the engine knows (404
    otherwise: never run here, or forgotten since)."""
    async with served(ended=2) as (client, _engine, _held):
        response = await client.get(f"/api/runs?{query}")
    assert (status, True) == (response.status_code, response.json()["error"].startswith(says))


async def test_an_upper_case_cursor_names_the_same_run() -> None:
    """Run ids are hex: ``before`` in capitals pages as the link's own lower case does."""
    async with served(ended=4) as (client, engine, _held):
        started = [handle.run_id for handle in engine.runs]
        lower = (await client.get(f"/api/runs?finished=true&before={started[2]}")).json()
        upper = (await client.get(f"/api/runs?finished=true&before={started[2].upper()}")).json()
    assert lower == upper
    assert [run["run_id"] for run in upper["runs"]] == started[:2]
    assert upper["next"] is None


async def test_each_open_run_says_how_late_its_schedule_started_it() -> None:
    """``landing_delay``, as ``/api/runs/recent`` gives it: the seconds from the time a schedule
    meant the run to start (``start_run``'s ``scheduled_at``, as ``serve --every`` passes it) to
    its start, rounded to the microsecond; null for a run no schedule started. Before: no
    field (``KeyError: 'landing_delay'``)."""
    async with served(ended=0, held=1) as (client, engine, held):
        late = await engine.start_run(HELD, scheduled_at=time.time() - 2.5)
        runs = (await client.get("/api/runs")).json()["runs"]
        engine.get_run(late.run_id).cancel()
        await late.wait()
    delays = {run["run_id"]: run["landing_delay"] for run in runs}
    assert delays[held[0]] is None
    assert 2.5 <= delays[late.run_id] < 2.5 + 60, delays
    assert delays[late.run_id] == round(delays[late.run_id], 6)
