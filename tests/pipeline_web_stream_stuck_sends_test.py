"""Event streams to clients that take nothing, over real sockets (``web/_streams.py``): a send
blocked on a full socket is cut when its client is dropped or the server stops.

A client that stops reading fills its socket's buffers, and the stream's send then waits on
the connection. Its queue overflowing dropped it, yet the send waited on for the whole
``send_timeout``, holding its stream slot; a server stopping meanwhile waited out its grace,
then cancelled each such stream, which logged an error and a traceback per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from taskdaemon.pipeline.http_thread import MonitorServer
from taskdaemon.pipeline.web._streams import EventStreamResponse, StreamHub

pytestmark = pytest.mark.slow

#: Each item is a megabyte of JSON: a few fill any socket's buffers.
BIG = "x" * (1 << 20)


class _Web:
    """What ``MonitorServer.aclose`` ends first: the hub's streams (as ``WebApp.close``)."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub

    def close(self) -> None:
        self.hub.close()


def _app(hub: StreamHub, items: int) -> Starlette:
    async def source() -> AsyncIterator[str]:
        for _ in range(items):
            yield BIG
            await asyncio.sleep(0.01)
        await asyncio.Event().wait()  # the run goes on

    async def stream(request: Request) -> EventStreamResponse:
        return EventStreamResponse(hub.subscribe("run", lambda item: item, source))

    app = Starlette(routes=[Route("/stream", stream)])
    app.state.web = _Web(hub)
    return app


@contextlib.contextmanager
def _not_reading(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` clients that ask for the stream and never read a byte of it."""
    clients = []
    try:
        for _ in range(count):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect(("127.0.0.1", port))
            client.sendall(f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            clients.append(client)
        yield clients
    finally:
        for client in clients:
            client.close()


async def _until(check: Any, within: float) -> float:
    """Seconds until ``check()`` held (polled), or ``within`` when it never did."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    return within


@contextlib.contextmanager
def _server_log(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """The records of the server's loggers, uvicorn's included (it may not reach the root)."""
    caplog.set_level(logging.DEBUG, logger="taskdaemon.http")
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(caplog.handler)
    try:
        yield caplog.records
    finally:
        uvicorn_log.removeHandler(caplog.handler)


def _alarms(records: list[logging.LogRecord]) -> set[str]:
    """What the server logged as an error: uvicorn's "ASGI callable returned without
    completing response." for a stream ended mid-answer, a traceback for one cancelled."""
    return {r.getMessage() for r in records if r.exc_info or r.levelno >= logging.ERROR}


async def test_a_dropped_client_blocked_in_a_send_gives_up_its_slot_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its queue overflows while its send waits on a full socket: the stream ends at once
    (the bound leaves room for a loaded machine), counted and said in the project's words,
    not after the ten seconds of ``send_timeout``, nor with uvicorn's error line for an
    unfinished answer: its connection is aborted, and the client sees it end."""
    hub = StreamHub(queue_size=4, send_timeout=10.0)
    with _server_log(caplog) as records:
        async with MonitorServer(_app(hub, items=40), port=0) as server:
            with _not_reading(server.port, 1) as (client,):
                assert await _until(lambda: hub.stats().dropped == 1, 10.0) < 10.0
                freed = await _until(lambda: hub.stats().open == 0, 10.0)
                await asyncio.to_thread(_read_to_the_end, client)
        said = [r.getMessage() for r in records if r.name == "taskdaemon.http"]
    assert (set(), ["dropped a slow event-stream client (4 events behind)"]) == (
        _alarms(records),
        [m for m in said if "event-stream" in m],
    )
    assert freed < 2.0, freed


def _read_to_the_end(client: socket.socket) -> None:
    """Read what the server had sent until the connection ends (a reset is an end)."""
    client.settimeout(10.0)
    with contextlib.suppress(ConnectionResetError):
        while client.recv(1 << 16):
            pass


async def test_a_stopping_server_cuts_the_sends_of_clients_that_take_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twenty clients whose sends wait on full sockets, their queues not yet full: the server
    stops in about ``close_timeout`` (half a second), before its grace of two, without
    cancelling a request (an error line, then a traceback for
    each), and the cut streams are counted."""
    hub = StreamHub(queue_size=1000, send_timeout=10.0)
    server = MonitorServer(_app(hub, items=8), port=0, grace=2.0)
    with _server_log(caplog) as records:
        await server.start()
        try:
            with _not_reading(server.port, 20):
                assert await _until(lambda: hub.stats().open == 20, 10.0) < 10.0
                await asyncio.sleep(1.0)  # every stream's send now waits on its full socket
                started = time.monotonic()
                await server.aclose()
                stopped = time.monotonic() - started
        finally:
            await server.aclose()
        errors = _alarms(records)
    assert (set(), True, 20) == (errors, stopped < 1.5, hub.stats().dropped), stopped
