"""http_thread: each server's error logs are rate-limited by a budget of its own; a stop closes
every connection the server accepted."""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server_support import sockets_on_port
from taskdaemon.pipeline.http_limits import HttpLimits
from taskdaemon.pipeline.http_thread import MonitorServer, _EmbeddedServer


def _failing_app(name: str) -> Starlette:
    """An app whose every request raises ``RuntimeError(name)``, which Uvicorn logs as an error."""

    async def fail(request: Request) -> Response:
        raise RuntimeError(name)

    return Starlette(routes=[Route("/", fail)])


@pytest.mark.slow
async def test_two_servers_of_one_process_each_log_their_own_first_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a budget of one error record each, the second server's first error is logged after
    the first server spent its budget, and the first server's second error is not."""
    first = MonitorServer(_failing_app("first"), port=0, limits=HttpLimits(log_burst=1))
    second = MonitorServer(_failing_app("second"), port=0, limits=HttpLimits(log_burst=1))
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        # A connection the app failed on is closed: each request comes on a new one.
        async with first, second, httpx.AsyncClient(headers={"Connection": "close"}) as client:
            for url in (first.url, first.url, second.url):
                assert 500 == (await client.get(url)).status_code
    failures = [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1]]
    assert ["first", "second"] == [str(exc) for exc in failures]


async def test_a_connection_accepted_as_the_server_stops_is_closed_by_the_stop() -> None:
    """A connection the server's loop accepted just before its stop began, but had not yet
    made a transport for, is closed by the stop too: it was left open, and its socket with it."""
    config = uvicorn.Config(Starlette(), lifespan="off", log_config=None)
    config.load()
    server = _EmbeddedServer(config)
    server.lifespan = config.lifespan_class(config)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        await server.startup(sockets=[listener])
        with socket.create_connection(("127.0.0.1", port), timeout=30):
            # This loop (the server's) accepts the connection in its next iteration and makes
            # its transport in the one after: the stop begins between the two.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            await server.shutdown(sockets=[listener])
            assert [] == sockets_on_port(port)
