"""The fuzzer's targets of the network's own framing (docs/input-limits.md, "Fuzzing"): ``wire``,
raw HTTP/1.1 bytes on a TCP connection to the real server (``MonitorServer``: Uvicorn and
``http_limits``' bounded h11 protocol in front of ``serve``'s app over a run waiting for an
approval), and ``socket``, raw bytes on the Unix socket of a real run's ``ControlServer``.
The ``web``, ``api`` and ``control`` targets hand the app or ``ControlServer.handle`` a request
already framed; these cut, split, pipeline, over-length and half-send it, as a client on the
network can. :data:`TARGETS` holds every target, these and those before them;
:func:`failures` runs a target's cases against the oracle.

The oracle of both: the server logs no error and no traceback, it still answers a plain request
after the case, and ``wire``'s answers hold no status of 500 or more but 502 and 503 and not the
token; every line the control socket reads is answered with one JSON object holding ``ok``,
a refusal with a one-line ``error`` of at most ``SOCKET_ERROR`` characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

import fuzz_store_support
import fuzz_support
from fuzz_support import ServerError, Target
from fuzz_targets_support import (
    REQUESTS,
    CommandBrokeError,
    mutated_json,
    one_line,
    paused_debug_server,
    scratch,
)
from server_support import serving
from taskdaemon.pipeline.engine import Engine


class ServerLoggedError(Exception):
    """The server logged an error or a traceback while it served the case."""


@contextlib.contextmanager
def logged_errors() -> Iterator[list[logging.LogRecord]]:
    """The records of level ERROR, or with a traceback, logged meanwhile (any logger)."""
    found: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR or record.exc_info:
                found.append(record)

    handler, root = Keep(logging.DEBUG), logging.getLogger()
    root.addHandler(handler)
    try:
        yield found
    finally:
        root.removeHandler(handler)


def _no_errors(found: list[logging.LogRecord]) -> None:
    if found:
        record = found[0]
        where = f"{record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            where += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        raise ServerLoggedError(where[:500])


# --- wire: raw HTTP/1.1 to the real server -------------------------------------------------------

#: A request's head, ``{id}`` the run's id and ``TOKEN`` the app's token, without its end.
_HEAD = "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer TOKEN\r\n"
WIRE_TARGETS = ("/api/runs/{id}", "/api/runs?limit=5&status=running", "/api/runs/{id}/dag",
                "/api/runs/{id}/events", "/api/runs/{id}/approve/a", "/api/runs/{id}/reject/a",
                "/api/runs/{id}/cancel", "/api/runs/{id}/debug/breakpoints", "/api",
                "/healthz", "/readyz", "/metrics", "/", "/runs/{id}", "/api/runs/{id}/stream",
                "/api/runs/{id}/logs?stage=a", "http://127.0.0.1/api", "*",
                "/api/runs/%2e%2e/%2e%2e", "/api/runs/..%2f..%2fx", "/api/runs/{id}%00",
                "/api/runs/recent?since=1h&limit=1")  # fmt: skip
#: Header lines a request may gain: framing (each length and coding), continuations, repeats,
#: ``Last-Event-ID`` for a stream, and one header past the head's bound.
WIRE_HEADERS = ("Content-Type: application/json", "Content-Length: 0", "Content-Length: -1",
                "Content-Length: 99999999999999999999", "Content-Length: 5, 5",
                "Content-Length:  7 ", "Content-Length: 0x10", "Transfer-Encoding: chunked",
                "Transfer-Encoding: gzip, chunked", "Transfer-Encoding: identity",
                "Expect: 100-continue", "Connection: close", "Connection: keep-alive, Upgrade",
                "Upgrade: websocket", " folded", "\tfolded", "Accept-Encoding: gzip",
                "Accept: text/event-stream", "Last-Event-ID: 3", "Last-Event-ID: -1",
                "Last-Event-ID: 99999999999999999999999", "Last-Event-ID: \u00e9\x7f",
                "Authorization: Bearer WRONG", "Cookie: taskdaemon-session-80=x",
                "Host: evil.example", "Origin: https://evil.example", "X: " + "x" * 20_000,
                ":", "Content-Type: application/json; charset=utf-16")  # fmt: skip
#: Chunked bodies' framing: a size of hex digits or not, an extension, no last chunk.
CHUNKS = ("{n:x}\r\n{body}\r\n0\r\n\r\n", "{n:x};x=y\r\n{body}\r\n0\r\n\r\n",
          "{n:x}\r\n{body}\r\n", "ffffffffffffffffff\r\n{body}\r\n0\r\n\r\n",
          "-1\r\n{body}\r\n0\r\n\r\n", "{n:X}\r\n{body}\r\n0\r\nTrailer: x\r\n\r\n")  # fmt: skip


@dataclass(frozen=True)
class Connection:
    """What one client writes on a connection, in ``pieces``; ``TOKEN``, ``WRONG`` and
    ``{id}`` stand for the app's token, a wrong one sharing its first characters, and the
    run's id (one cut between two pieces is sent as it is). The client then reads the
    answers for up to ``wait`` seconds (none: it ends the connection at once; a little: it
    sent half a request, which the server waits on)."""

    pieces: tuple[bytes, ...]
    wait: float


#: Seconds a wire client waits for an answer to start, and then for more of it: an answer
#: later than that is not judged (a request the server rightly waits on costs no more).
FIRST_BYTE_WAIT = 1.0
SILENCE = 0.3


def _wire_request(rng: random.Random) -> str:
    method = rng.choice(("GET", "GET", "POST", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"))
    head = _HEAD.format(method=method, target=rng.choice(WIRE_TARGETS))
    body = rng.choice(fuzz_support.BODIES)
    if rng.random() < 0.5:
        body = fuzz_support.mutate(rng, body, 2, 4096)
    size = len(body.encode("utf-8", "surrogatepass"))
    framing = rng.random()
    if framing < 0.5:
        head += f"Content-Type: application/json\r\nContent-Length: {size}\r\n"
    elif framing < 0.7:
        head += "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        body = rng.choice(CHUNKS).format(n=size, body=body)
    else:
        body = ""
    for _ in range(rng.choice((0, 0, 1, 2))):  # most of them refused: half the requests have none
        head += rng.choice(WIRE_HEADERS) + "\r\n"
    if rng.random() < 0.05:
        head += "X-Many: 1\r\n" * rng.choice((100, 1000))
    text = head + "\r\n" + body
    if rng.random() < 0.25:
        text = fuzz_support.mutate(rng, text, 2, 1 << 16)
    if rng.random() < 0.05:
        text = text.replace("\r\n", rng.choice(("\n", "\r", "\r\r\n")))
    return text


T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Clients(Generic[T]):
    """A case of either target: its clients, served in turn or all at once (``together``)."""

    each: tuple[T, ...]
    together: bool


async def _served(clients: Clients[Any], talk: Callable[[Any], Awaitable[R]]) -> list[R]:
    """``talk(client)`` of each client, in turn or all at once."""
    if clients.together:
        return list(await asyncio.gather(*(talk(client) for client in clients.each)))
    return [await talk(client) for client in clients.each]


def _pieces(rng: random.Random, data: bytes) -> tuple[bytes, ...]:
    """``data`` cut in up to four pieces, as a client's writes (or the network) may cut it."""
    cuts = sorted(rng.sample(range(1, len(data)), min(max(len(data) - 1, 0), rng.randint(0, 3))))
    return tuple(data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True))


def _wire_make(rng: random.Random) -> Clients[Connection]:
    connections = []
    for _ in range(rng.randint(1, 3)):
        data = "".join(_wire_request(rng) for _ in range(rng.choice((1, 1, 1, 2, 3))))
        raw = data.encode("utf-8", "surrogatepass")
        wait = rng.choice((0.0, FIRST_BYTE_WAIT, FIRST_BYTE_WAIT, FIRST_BYTE_WAIT))
        if rng.random() < 0.2:  # half-sent: the client stops mid-request
            raw, wait = raw[: rng.randrange(len(raw) + 1)], min(wait, SILENCE)
        connections.append(Connection(_pieces(rng, raw), wait))
    return Clients(tuple(connections), rng.random() < 0.3)


async def _converse(port: int, connection: Connection, words: dict[bytes, bytes]) -> bytes:
    """Write ``connection``'s pieces (each placeholder in ``words`` replaced), then read until
    the server closes, falls silent for ``SILENCE`` seconds, or says nothing at all in the
    connection's ``wait``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = b""
    try:
        for piece in connection.pieces:
            sent = piece
            for word, value in words.items():
                sent = sent.replace(word, value)
            writer.write(sent)
            await writer.drain()
            await asyncio.sleep(0)
        wait = connection.wait
        while wait:
            try:
                async with asyncio.timeout(wait):
                    chunk = await reader.read(1 << 16)
            except TimeoutError:
                break
            if not chunk:
                break
            got, wait = got + chunk, SILENCE
    except ConnectionError:
        pass  # the server closed the connection on a request it refused: it may
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return got


#: A status line, at the start of an answer.
_STATUS = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3}) ")


async def wire_answers(connections: Clients[Connection]) -> tuple[str, list[bytes], int]:
    """The app's token, what the real server wrote on each of ``connections``,
    and the status it answers a plain request with afterwards; the server serves ``serve``'s
    app over an engine holding one run that waits for an approval."""
    async with Engine() as engine, serving(engine) as server:
        handle = await engine.start_run(fuzz_support.APPROVAL, {})  # the app's watcher sees it
        token = server.app.state.auth.token
        wrong = token[: fuzz_store_support.TOKEN_SHOWN] + "0" * 8
        words = {b"TOKEN": token.encode(), b"WRONG": wrong.encode()}
        words[b"{id}"] = handle.run_id.encode()
        try:
            # Signed in first: a case's wrong tokens may have got loopback refused (429 until
            # its window ends, ``token_failures``), which is no broken server; a session
            # cookie still passes.
            async with httpx.AsyncClient(base_url=server.url) as client:
                assert (await client.get("/", params={"token": token})).status_code == 303
                answers = await _served(connections, lambda c: _converse(server.port, c, words))
                after = (await client.get(f"/api/runs/{handle.run_id}")).status_code
        finally:
            handle.cancel()
            await handle.wait()
    return token, answers, after


def _wire_run(connections: Clients[Connection]) -> None:
    with scratch(), logged_errors() as found:  # a dump's path is the working directory's
        token, answers, after = asyncio.run(wire_answers(connections))
    _no_errors(found)
    if after != 200:
        raise ServerError(f"a plain request after the case: {after}")
    for answer in answers:
        statuses = [int(status) for status in _STATUS.findall(answer)]
        if [s for s in statuses if s >= 500 and s not in (502, 503)]:
            raise ServerError(statuses, answer[:300])
        if token[: fuzz_store_support.TOKEN_SHOWN].encode() in answer:
            raise fuzz_store_support.BadAnswerError(answer[:300])


# --- socket: raw bytes to a run's control socket ------------------------------------------------

#: What a request line may be framed or replaced with: nothing, a blank line, CR endings, a NUL,
#: bytes not of UTF-8, a long word (a field's value, if it falls in one), a line of spaces
#: past the socket's 1 MiB bound, many lines at once.
SOCKET_ODD = (b"", b"\n", b"\r\n", b"\r", b"\x00", b"\xff\xfe", b"\xc3", b"{", b"[" * 200,
              b"x" * 70_000, b" " * (1 << 20) + b"\n", b'{"op": "status"}\n' * 200)  # fmt: skip
#: Characters a refusal may have: it quotes what it refuses, but never at length (``ellipsis``).
SOCKET_ERROR = 1000
#: Seconds a socket client that ended its side waits for the answers to what it sent, and one
#: that stays (``stall``) for what comes before it leaves: the server's own cut of a silent
#: connection (``idle_timeout``, 10 s) is ``pipeline_control_limits_test.py``'s, and a
#: shorter one cut clients of a machine so loaded that they wrote nothing for a second.
SOCKET_WAIT = 5.0
SOCKET_STALL = 0.3


@dataclass(frozen=True)
class SocketClient:
    """What one client of the control socket writes, in ``pieces``; then it ends its side
    (``eof``) and reads every answer; or it reads what comes for a moment and leaves, its
    side still open (``stall``), or leaves at once (``leave``): their answers are not
    counted."""

    pieces: tuple[bytes, ...]
    ending: str


def _socket_make(rng: random.Random) -> Clients[SocketClient]:
    clients = []
    for _ in range(rng.randint(1, 3)):
        data = b""
        for _ in range(rng.randint(1, 4)):
            text = json.dumps(rng.choice(REQUESTS))
            if rng.random() < 0.5:
                text = mutated_json(rng, text)
            line = text.encode("utf-8", "surrogatepass")
            if rng.random() < 0.3:
                at = rng.randrange(len(line) + 1)
                line = line[:at] + rng.choice(SOCKET_ODD) + line[at:]
            data += line + rng.choice((b"\n", b"\n", b"\n", b"\r\n", b"", b"\n\n"))
        clients.append(
            SocketClient(_pieces(rng, data), rng.choice(("eof", "eof", "eof", "stall", "leave")))
        )
    return Clients(tuple(clients), rng.random() < 0.3)


def _owed(data: bytes) -> int | None:
    """The answers a client sending ``data``, then its end of file, is owed: one per line the
    server reads (the last unended one too); None when a line is over the bound, which ends
    the connection after an unknown number of them (asyncio reads ahead)."""
    lines = data.split(b"\n")
    if any(len(line) >= 1 << 20 for line in lines):
        return None
    return len(lines) - (lines[-1] == b"")


async def _socket_converse(path: str, client: SocketClient) -> list[bytes]:
    reader, writer = await asyncio.open_unix_connection(path, limit=1 << 22)
    lines: list[bytes] = []
    try:
        for piece in client.pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0)
        if client.ending == "leave":
            return lines
        if client.ending == "eof":
            writer.write_eof()
        async with asyncio.timeout(SOCKET_WAIT if client.ending == "eof" else SOCKET_STALL):
            while line := await reader.readline():
                lines.append(line)
    except (ConnectionError, TimeoutError):
        pass  # cut by the server (a line over the bound), or slow: judged by count
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return lines


async def socket_answers(clients: Clients[SocketClient]) -> tuple[list[list[bytes]], bytes]:
    """What a real run's control socket (DEBUGGED paused before ``a``, with DebugOps) wrote to
    each of ``clients``, and its answer to a status request after."""
    async with paused_debug_server() as server, server:
        answers = await _served(clients, lambda c: _socket_converse(str(server.path), c))
        last = SocketClient((b'{"op": "status"}\n',), "eof")
        (after, *_) = [*await _socket_converse(str(server.path), last), b""]
    return answers, after


def _socket_run(clients: Clients[SocketClient]) -> None:
    with scratch(), logged_errors() as found:  # the socket is under the home's control folder
        answers, after = asyncio.run(socket_answers(clients))
    _no_errors(found)
    if not json.loads(after or b"{}").get("ok"):
        raise CommandBrokeError(f"a status request after the case: {after!r:.300}")
    for client, lines in zip(clients.each, answers, strict=True):
        owed = _owed(b"".join(client.pieces)) if client.ending == "eof" else None
        if owed is not None and owed != len(lines):
            raise CommandBrokeError(f"{len(lines)} answers to {owed} lines: {lines!r:.300}")
        for line in lines:
            answer = json.loads(line)
            if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
                raise CommandBrokeError(f"an answer without ok: {line!r:.300}")
            if not answer["ok"]:
                one_line(str(answer.get("error")))
                if len(answer["error"]) > SOCKET_ERROR:
                    raise CommandBrokeError(f"a refusal quoting at length: {line!r:.300}")


TARGETS: dict[str, Callable[[], Target]] = {
    **fuzz_store_support.TARGETS,
    "wire": lambda: Target(_wire_make, _wire_run, ()),
    "socket": lambda: Target(_socket_make, _socket_run, ()),
}


def failures(name: str, seeds: Iterable[int]) -> Iterator[tuple[int, Any, BaseException]]:
    """``(seed, case, error)`` for each case of ``seeds`` on which the target breaks the oracle."""
    target = TARGETS[name]()
    for seed in seeds:
        made = fuzz_support.case(target, seed)
        try:
            target.run(made)
        except target.allowed:
            continue
        except Exception as error:  # the oracle: anything else is a finding
            yield seed, made, error
