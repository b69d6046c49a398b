"""control: what a client of the control socket can make a run hold, bounded.

Clients that connect and wait, trickle a request line that never ends, or stop reading their
answers, over the real Unix socket: in process against ``ControlServer`` with small bounds,
and once against a real ``taskdaemon run`` with the default ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reliability_support import taskdaemon, write_pipeline
from taskdaemon.pipeline.control import ControlServer, served_runs

RUN = "c" * 32


class Target:
    """A run handle stand-in: the ops these tests send never reach it."""

    def approve(self, stage: str, *, by: str = "") -> None: ...

    def reject(self, stage: str, *, by: str = "") -> None: ...

    def publish(self, event_type: str, payload: Any) -> None: ...

    def cancel(self, *, by: str = "") -> None: ...


async def _ended(reader: asyncio.StreamReader) -> bytes:
    """What the server sends until it ends the connection (a reset counts as an end, and so
    does a broken pipe: a trickling client's write that met the closed connection fails the
    read it waits on)."""
    try:
        return await asyncio.wait_for(reader.read(), 30.0)
    except (ConnectionResetError, BrokenPipeError):
        return b""


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30.0
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


class Held(Target):
    """A run handle whose ``cancel`` holds the request in progress until :attr:`release` is
    set: the connection that sent it is busy. :attr:`entered` counts the requests held."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def cancel(self, *, by: str = "") -> None:  # type: ignore[override]
        self.entered += 1
        await self.release.wait()


async def _busy(server: ControlServer, target: Held, count: int) -> list[Any]:
    """``count`` connections, each with a ``cancel`` request in progress."""
    connections = []
    for _ in range(count):
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        writer.write(b'{"op": "cancel"}\n')
        connections.append((reader, writer))
    await _until(lambda: target.entered == count, "the requests never reached the run")
    return connections


async def _status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Whether a ``status`` request on this connection is answered ok."""
    writer.write(b'{"op": "status"}\n')
    return bool(json.loads(await asyncio.wait_for(reader.readline(), 30.0))["ok"])


async def test_over_the_cap_a_busy_server_answers_in_one_line_and_closes(home: Path) -> None:
    """With the cap's worth of connections busy, one more gets one refusal line, then EOF; a
    connection made after one of them left is served."""
    target = Held()
    async with ControlServer(RUN, target, home=home, max_connections=2) as server:
        held = await _busy(server, target, 2)
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        refusal = await _ended(reader)
        writer.close()
        target.release.set()
        answered = [json.loads(await r.readline())["ok"] for r, _w in held]
        held[0][1].close()
        await _until(lambda: len(server._connections) == 1, "the server kept a departed client")
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        served = await _status(reader, writer)
        for _reader, other in [held[1], (reader, writer)]:
            other.close()
    expected = {"ok": False, "error": f"run {RUN} is serving 2 connections, its most"}
    assert (expected, [True, True], True) == (json.loads(refusal), answered, served)


async def test_over_the_cap_the_longest_idle_connection_makes_room(home: Path) -> None:
    """With the cap's worth of connections idle (one that sent nothing, one that sent part of a
    line, one that was answered and sent nothing since), each newcomer is served and cuts the
    connection that has waited longest for a request, never a busy one; the line cut short is
    not served as a request. The timeout is far longer than the test: it is not what frees
    the slots."""
    target = Held()
    async with ControlServer(
        RUN, target, home=home, max_connections=4, idle_timeout=600.0
    ) as server:
        busy = await _busy(server, target, 1)
        silent = await asyncio.open_unix_connection(str(server.path))
        partial = await asyncio.open_unix_connection(str(server.path))
        partial[1].write(b'{"op": "cancel"}')
        answered = await asyncio.open_unix_connection(str(server.path))
        first = await _status(*answered)
        newcomers = [await asyncio.open_unix_connection(str(server.path)) for _ in range(3)]
        served = [await _status(*newcomer) for newcomer in newcomers]
        cut = [await _ended(reader) for reader, _writer in (silent, partial, answered)]
        target.release.set()
        busy_answer = json.loads(await busy[0][0].readline())["ok"]
        for _reader, writer in [*busy, silent, partial, answered, *newcomers]:
            writer.close()
    assert (True, [True] * 3, [b""] * 3, True, 1) == (
        first,
        served,
        cut,
        busy_answer,
        target.entered,
    )


@pytest.mark.parametrize("trickle", [False, True])
async def test_a_request_line_not_complete_in_time_ends_its_connection(
    home: Path, trickle: bool
) -> None:
    """A connection that sends nothing, or trickles a line that never ends (each byte within
    the timeout), is closed once ``idle_timeout`` has passed since it connected."""
    async with ControlServer(RUN, Target(), home=home, idle_timeout=0.5) as server:
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        ending = asyncio.ensure_future(_ended(reader))
        while trickle and not ending.done():
            writer.write(b" ")
            await asyncio.sleep(0.1)
        left = await ending
        writer.close()
        await _until(lambda: not server._connections, "the connection was kept")
    assert b"" == left


async def test_the_time_for_a_request_starts_again_after_each_answer(home: Path) -> None:
    """A connection that sends a request every so often, each within the timeout, is served
    for longer than the timeout. (A gap of a quarter of the timeout: a loaded machine that
    stretched 0.25 s gaps past a 0.5 s timeout cut the connection once.)"""
    loop = asyncio.get_running_loop()
    async with ControlServer(RUN, Target(), home=home, idle_timeout=2.0) as server:
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        connected, answers = loop.time(), []
        for _ in range(6):
            await asyncio.sleep(0.5)
            writer.write(b'{"op": "status"}\n')
            answers.append(json.loads(await reader.readline())["ok"])
        served = loop.time() - connected
        writer.close()
    assert ([True] * 6, True) == (answers, served > 2.0)


async def test_a_client_that_never_reads_its_answers_is_cut(home: Path) -> None:
    """Requests whose answers the client never takes fill the socket; the connection is cut
    once an answer waits ``idle_timeout`` to be taken, and the server holds nothing of it."""
    status = {"text": "x" * (1 << 20)}
    async with ControlServer(
        RUN, Target(), home=home, idle_timeout=0.5, status=lambda: status
    ) as server:
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(server.path))
        client.setblocking(False)
        for _ in range(8):  # 8 MiB of answers: far more than a Unix socket buffers
            await asyncio.get_running_loop().sock_sendall(client, b'{"op": "status"}\n')
        await _until(lambda: bool(server._connections), "the server never saw the client")
        await _until(lambda: not server._connections, "the connection was kept")
        client.close()


async def test_a_client_that_ends_its_requests_and_never_reads_is_cut(home: Path) -> None:
    """Clients that send a request, end their side and never read the answer: an answer the
    socket cannot take whole, whose rest is under the transport's high-water mark (so the
    answer's drain returns at once), was waited for by the connection's close for ever, and
    the connection was busy, never idle. Answers of 150 to 400 kB: some land in that window
    whatever the kernel's socket buffer."""

    filled: list[int] = []

    async def fill(request: dict[str, Any]) -> dict[str, Any]:
        filled.append(request["size"])
        return {"ok": True, "fill": "x" * request["size"]}

    async with ControlServer(
        RUN, Target(), home=home, idle_timeout=0.5, extra_ops={"fill": fill}
    ) as server:
        clients = []
        for size in range(150_000, 400_000, 16_000):
            client = socket.socket(socket.AF_UNIX)
            clients.append(client)
            client.connect(str(server.path))
            client.sendall(json.dumps({"op": "fill", "size": size}).encode() + b"\n")
            client.shutdown(socket.SHUT_WR)
        await _until(lambda: len(filled) == len(clients), "the requests never reached the run")
        await _until(lambda: not server._connections, "a connection was kept")
        for client in clients:
            client.close()


def test_a_flood_of_unfinished_lines_leaves_a_real_run_small_and_served(
    home: Path, serve: Callable[..., Any]
) -> None:
    """200 connections to a real ``taskdaemon run`` each send 1 MiB of a line that never ends.
    Only 32 are held at once (each newcomer cuts the one that has waited longest), the run's
    RSS stays under 150 MiB (before the bounds: about 240 MiB, growing by a mebibyte a
    connection) and ``taskdaemon status`` is answered."""
    gated = write_pipeline(
        home / "gated.yaml",
        """\
        name: gated
        stages:
          - name: deploy
            command: "true"
            triggers: [{manual: {approval_required: true}}]
        """,
    )
    process = serve("-q", str(gated)).process
    deadline = time.monotonic() + 60.0
    while not served_runs(home):
        assert time.monotonic() < deadline, "the run never served its control socket"
        time.sleep(0.1)
    (run_id,) = served_runs(home)
    path = str(home / "control" / f"{run_id}.sock")
    flood: list[socket.socket] = []
    try:
        for _ in range(200):
            client = socket.socket(socket.AF_UNIX)
            flood.append(client)
            client.connect(path)
            with contextlib.suppress(OSError):  # refused: the run closed the connection
                client.sendall(b"x" * ((1 << 20) - 1))
        status = taskdaemon(home, "status", run_id)
        while status.returncode != 0 and time.monotonic() < deadline + 60.0:
            time.sleep(0.5)
            status = taskdaemon(home, "status", run_id)
        with open(f"/proc/{process.pid}/status", encoding="ascii") as proc:
            peak_kib = int(proc.read().split("VmHWM:")[1].split()[0])
    finally:
        for client in flood:
            client.close()
    cancel = taskdaemon(home, "cancel", run_id)
    process.communicate(timeout=60)  # its ending, and its pipes closed
    assert (0, True, 0) == (status.returncode, peak_kib < 150 * 1024, cancel.returncode)


def _open_sockets() -> set[str]:
    """The sockets this process holds open, as ``/proc`` names them (``socket:[inode]``)."""
    links = set()
    for descriptor in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed since
            links.add(os.readlink(f"/proc/self/fd/{descriptor}"))
    return {link for link in links if link.startswith("socket:")}


async def test_a_connection_accepted_as_the_server_stops_is_closed_by_the_stop(home: Path) -> None:
    """A connection the loop accepted just before the stop began, but had not yet made a
    transport for, is closed by the stop too: asyncio dropped it with its socket open."""
    server = ControlServer(RUN, Target(), home=home)
    await server.start()
    try:
        with socket.socket(socket.AF_UNIX) as client:
            before = _open_sockets()
            client.connect(str(server.path))
            # The loop accepts the connection in its next iteration and makes its transport
            # in the one after: the stop begins between the two.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            await server.aclose()
            left = _open_sockets() - before
    finally:
        await server.aclose()
    assert set() == left
