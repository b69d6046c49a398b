"""A real :class:`MonitorServer` for tests: the app over a free loopback port, in the test's loop.

Shared by the server's own tests and the HTTP reliability tests, so that both start and stop the
server the same way (its Uvicorn task and lag ticker end before the test does). With it, the
run they serve: :data:`GATED_PIPELINE`, whose ``deploy`` waits for an approval, and
:class:`ApprovalSeen`, which wakes a test when it is asked for; and :class:`Blocks` and
:func:`data_of`, which read an event stream's blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from pipeline_engine_support import Resolver
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import ApprovalRequested, EngineEvent
from taskdaemon.pipeline.http_limits import HttpLimits
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.server import HealthSources, LoopLagMonitor, MonitorServer, create_app
from taskdaemon.pipeline.web import WebOptions

#: ``build`` runs at once; ``deploy`` runs after it once approved.
GATED_PIPELINE = """
name: gated
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


class ApprovalSeen:
    """An engine observer that wakes the test when an approval is requested."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def on_event(self, event: EngineEvent) -> None:
        """Set :attr:`event` on an ``ApprovalRequested``."""
        if isinstance(event, ApprovalRequested):
            self.event.set()


@contextlib.asynccontextmanager
async def serving(
    engine: Any = None,
    *,
    auth: ApiAuth | None = None,
    limits: HttpLimits | None = None,
    registry: CollectorRegistry | None = None,
    lag: LoopLagMonitor | None = None,
    max_lag: float = 1.0,
    web: WebOptions | None = None,
    host: str = "127.0.0.1",
) -> AsyncIterator[MonitorServer]:
    """A real server on a free port of ``host`` (127.0.0.1), stopped on exit. Without
    ``auth`` the app generates its token (``server.app.state.auth.token``).

    ``max_lag`` is ``/healthz``'s bound on the loop's lag and on the time since its last
    tick. A test about serving, not about that verdict, raises it: on a loaded machine the
    test's own loop can go a second without a tick, and the server would then rightly answer
    503. ``web``: the web page's options (its span source among them)."""
    app = create_app(
        engine=engine,
        auth=auth,
        limits=limits,
        registry=registry,
        health=HealthSources(lag=lag, max_lag=max_lag),
        web=web,
    )
    server = MonitorServer(app, host=host, port=0, lag=lag)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()
    left = sockets_on_port(server.port)
    assert not left, f"the stopped server left sockets open: {left}"


def sockets_on_port(port: int) -> list[str]:
    """This process's open TCP sockets whose local port is ``port``: those of a server on it
    (listening, or a connection it accepted, in any state, reset by its peer too). A stopped
    server's left open are a leak the collector would otherwise report, with a
    ResourceWarning, in some later test."""
    found = []
    for descriptor in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            link = os.readlink(f"/proc/self/fd/{descriptor}")
            if link.startswith("socket:") and _local_port(int(descriptor)) == port:
                found.append(descriptor)
    return found


def _local_port(descriptor: int) -> int | None:
    """The local port of the socket ``descriptor`` (None if not an Internet one), read through
    a copy of it."""
    with socket.socket(fileno=os.dup(descriptor)) as copy:
        if copy.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        return int(copy.getsockname()[1])


@contextlib.asynccontextmanager
async def waiting_run(token: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A served engine (its API token ``token``) whose :data:`GATED_PIPELINE` run waits for the
    ``deploy`` approval; yields a client of the server (with no credentials of its own) and
    the run's id. The run is cancelled on exit."""
    approval = ApprovalSeen()
    async with (
        Engine(resolver=Resolver(), observers=[approval]) as engine,
        serving(engine, auth=ApiAuth.configured(token)) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        handle = await engine.start_run(parse_pipeline(GATED_PIPELINE), {})
        await approval.event.wait()
        try:
            yield client, handle.run_id
        finally:
            handle.cancel()
            await handle.wait()


class Blocks:
    """Reads an event stream block by block (events and comments), across calls."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.aiter_text()
        self._buffer = ""

    async def take(self, count: int) -> list[str]:
        """The next ``count`` blocks (fewer if the stream ends first)."""
        blocks: list[str] = []
        while len(blocks) < count:
            if "\n\n" in self._buffer:
                block, self._buffer = self._buffer.split("\n\n", 1)
                blocks.append(block)
                continue
            try:
                self._buffer += await anext(self._chunks)
            except StopAsyncIteration:
                break
        return blocks


def data_of(block: str) -> Any:
    """The JSON of an event block's ``data:`` line."""
    line = next(line for line in block.splitlines() if line.startswith("data: "))
    return json.loads(line[len("data: ") :])
