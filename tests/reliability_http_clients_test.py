"""Hostile HTTP clients over real sockets to a real server: clients that stop reading, and
request heads too large that arrive at once.

Each test starts :class:`MonitorServer` (:func:`server_support.serving`) on a free loopback
port and stops it in teardown. Clients that ask for an answer larger than the sockets' buffers
and never read it: closing such a connection waits for the answer to be sent, so without the
write stall timeout (``http_limits.py``) each held its answer in memory and its connection slot
for ever, and a cap's worth of them refused everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from server_support import serving
from taskdaemon.pipeline.http_limits import HttpLimits
from taskdaemon.pipeline.http_thread import MonitorServer

pytestmark = pytest.mark.slow

SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PROBE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def big_registry() -> CollectorRegistry:
    """A registry whose exposition is 8 MB: more than the kernel buffers for a loopback
    socket (it grows a socket's send buffer up to 4 MB)."""
    registry = CollectorRegistry()
    counter = Counter("wide", "a wide family", ["label"], registry=registry)
    for number in range(8_000):
        counter.labels(f"{'x' * 1000}{number}").inc()
    return registry


@contextlib.contextmanager
def non_readers(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that each ask for ``/metrics`` and never read; closed on exit."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            client = socket.socket()
            sockets.append(client)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect(("127.0.0.1", port))
            client.sendall(SCRAPE)
        yield sockets
    finally:
        for client in sockets:
            client.close()


async def probe(port: int) -> int:
    """The status of a ``/healthz`` answer on a fresh connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(PROBE)
        answer = await asyncio.wait_for(reader.read(), 10.0)
        return int(answer.split(b" ", 2)[1])
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def ended_by_the_server(client: socket.socket) -> bool:
    """Whether reading ``client`` comes to its end (or a reset) rather than blocking."""
    client.settimeout(10.0)
    try:
        while client.recv(1 << 16):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


async def test_clients_that_never_read_their_answer_are_dropped_and_others_served() -> None:
    """A cap's worth of clients that never read a large answer hold every connection slot;
    after the write stall timeout they are aborted and another client is served."""
    limits = HttpLimits(max_connections=4, write_timeout=0.5)
    async with serving(limits=limits, registry=big_registry()) as server:
        with non_readers(server.port, 4) as stuck:
            deadline = time.monotonic() + 60.0
            statuses = [await probe(server.port)]
            while statuses[-1] != 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                statuses.append(await probe(server.port))
            ended = [await asyncio.to_thread(ended_by_the_server, client) for client in stuck]
    assert (200, [True] * 4) == (statuses[-1], ended)


async def test_clients_that_never_read_give_up_their_slots_to_newcomers_at_once() -> None:
    """A cap's worth of clients that got a large answer and never read it are idle (their
    answers are complete, waiting in the server's buffers): each newcomer aborts the one that
    has waited longest and is served. A graceful close waited for the client to read, so the
    slot stayed taken until the write stall timeout (here longer than any wait of the test),
    the server went over its cap, and newcomers were answered 503 meanwhile."""
    cap = 4
    limits = HttpLimits(max_connections=cap, header_timeout=600.0, write_timeout=600.0)
    async with serving(limits=limits, registry=big_registry()) as server:
        with non_readers(server.port, cap) as stuck:
            await idle_count(server, cap)
            statuses = [await probe(server.port) for _ in range(cap)]
            ended = [await asyncio.to_thread(ended_by_the_server, client) for client in stuck]
    assert ([200] * cap, [True] * cap) == (statuses, ended)


async def idle_count(server: MonitorServer, count: int) -> None:
    """Wait until ``count`` of the server's connections have had their answer and wait for
    their next request."""
    state = server._server.server_state if server._server else None
    assert state is not None
    deadline = time.monotonic() + 60.0
    # The state belongs to the server's thread, which offers nothing to await: poll it.
    while sum(1 for c in list(state.connections) if c._waiting_for_request()) < count:
        assert time.monotonic() < deadline, "the clients' answers were never complete"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz?" + b"q" * 60_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X:\r\n" * 10_000,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 100_000 + b"\r\n",
    ],
    ids=["url", "many-headers", "one-header"],
)
async def test_a_head_over_16_kib_sent_in_one_write_is_400(head: bytes) -> None:
    """A request head of 40 to 100 KB sent at once is refused as one trickled in is (h11 held
    only an incomplete head to its bound, so one that arrived whole in a read was served)."""
    async with serving() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(head + b"Connection: close\r\n\r\n")
        try:
            answer = await asyncio.wait_for(reader.readline(), 10.0)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    assert b"400" == answer.split(b" ", 2)[1]
