"""http_body: the bounded body reader at its edges, fed by a real Uvicorn server over real
sockets (the server's own h11 framing, chunked bodies, a client that stops or goes away), and
by hand where only an ASGI server other than h11 could send it (a body longer than it declared);
the declared length's one rule.

What each caller answers (the body bound's 413, 408 and silence, the sign-in form's 413, 408
and 400) is tested with its caller: pipeline_http_limits_test.py, pipeline_sign_in_page_test.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware

from server_support import sockets_on_port
from taskdaemon.pipeline.http_body import BodyStop, declared_length, read_body
from taskdaemon.pipeline.http_thread import MonitorServer

BOUND = 10


class _Reading:
    """An ASGI app reading each request's body with :func:`read_body` (its length as
    :func:`declared_length` reads it), handing what it returned to the test, then answering
    200."""

    def __init__(self, app: Any, *, seen: queue.Queue[bytes | BodyStop], seconds: float) -> None:
        self.seen = seen
        self.seconds = seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = await read_body(
            receive, max_bytes=BOUND, seconds=self.seconds, declared=declared_length(scope)
        )
        self.seen.put(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class _Served:
    """A server whose every request is read by :class:`_Reading`."""

    def __init__(self, port: int, seen: queue.Queue[bytes | BodyStop]) -> None:
        self.port = port
        self._seen = seen

    async def outcome(self) -> bytes | BodyStop:
        """What the reader returned for the next request (waits for it, 10 s at most)."""
        return await asyncio.to_thread(self._seen.get, timeout=10)

    async def send(
        self, *parts: bytes, pause: float = 0.0, close: bool = False
    ) -> bytes | BodyStop:
        """Send ``parts`` on a fresh connection, ``pause`` seconds apart, closing it after the
        last when ``close``; what the reader returned."""
        _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            for n, part in enumerate(parts):
                if n and pause:
                    await asyncio.sleep(pause)
                writer.write(part)
                await writer.drain()
            if close:
                writer.close()
            return await self.outcome()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def _serving(seconds: float = 10.0) -> AsyncIterator[_Served]:
    seen: queue.Queue[bytes | BodyStop] = queue.Queue()
    app = Starlette(middleware=[Middleware(_Reading, seen=seen, seconds=seconds)])
    server = MonitorServer(app, port=0)
    await server.start()
    try:
        yield _Served(server.port, seen)
    finally:
        await server.aclose()
    assert not sockets_on_port(server.port), "the stopped server left sockets open"


def _head(*headers: str) -> bytes:
    return "".join(
        f"{h}\r\n" for h in ["POST / HTTP/1.1", "Host: 127.0.0.1", *headers, ""]
    ).encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_CHUNKED: str = "Transfer-Encoding: chunked"
_END: bytes = b"0\r\n\r\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("parts", "outcome"),
    [
        ([_head("Content-Length: 10"), b"01234", b"56789"], b"0123456789"),
        ([_head(_CHUNKED), _chunk(b"01234"), _chunk(b"56789"), _END], b"0123456789"),
        ([_head("Content-Length: 11"), b"0123456789A"], BodyStop.TOO_LARGE),
        ([_head(_CHUNKED), _chunk(b"012345"), _chunk(b"6789A"), _END], BodyStop.TOO_LARGE),
        ([_head("Content-Length: 0")], b""),
    ],
    ids=["at-the-bound", "at-the-bound-chunked", "one-over", "one-over-chunked", "empty"],
)
async def test_a_body_at_the_bound_is_whole_and_one_byte_more_is_too_large(
    parts: list[bytes], outcome: bytes | BodyStop
) -> None:
    """Exactly ``max_bytes`` is the body, declared or chunked, in pieces; one byte more is
    too large, refused on its ``Content-Length`` or as the chunks add up."""
    async with _serving() as served:
        assert outcome == await served.send(*parts, pause=0.05)


@pytest.mark.slow
async def test_a_length_over_the_bound_is_refused_before_its_body_comes() -> None:
    """A declared length over the bound is too large at once: the reader waits for none of a
    body the client has not sent."""
    async with _serving() as served:
        assert BodyStop.TOO_LARGE == await asyncio.wait_for(
            served.send(_head("Content-Length: 300000000")), 5
        )


@pytest.mark.slow
async def test_a_length_that_lies_low_frames_the_body_and_the_rest_is_not_read() -> None:
    """Declared 4, sent 11: h11 hands the reader the 4 bytes declared, and the rest is the next
    request's head (refused by the server, never read as a body)."""
    async with _serving() as served:
        assert b"0123" == await served.send(_head("Content-Length: 4") + b"0123456789A")


@pytest.mark.slow
async def test_a_length_that_lies_high_is_too_late_when_the_rest_never_comes() -> None:
    """Declared 10 (within the bound), sent 4 and nothing more: too late, at the deadline."""
    async with _serving(seconds=0.3) as served:
        assert BodyStop.TOO_LATE == await served.send(_head("Content-Length: 10"), b"0123")


@pytest.mark.slow
async def test_a_body_trickled_past_the_deadline_is_too_late() -> None:
    """The deadline bounds the whole body, not each piece: chunks that keep coming, each well
    within it, are too late once it passes."""
    parts = [_head(_CHUNKED), *(_chunk(b"x") for _ in range(8)), _END]
    async with _serving(seconds=0.3) as served:
        assert BodyStop.TOO_LATE == await served.send(*parts, pause=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("framing", ["Content-Length: 10", _CHUNKED])
async def test_a_client_that_hangs_up_mid_body_is_gone(framing: str) -> None:
    """A client that closes its connection halfway through the body is gone, well before the
    deadline."""
    first = b"01234" if framing != _CHUNKED else _chunk(b"01234")
    async with _serving(seconds=30) as served:
        outcome = await asyncio.wait_for(served.send(_head(framing), first, close=True), 10)
    assert BodyStop.GONE == outcome


def _messages(*messages: dict[str, Any]) -> Any:
    """A ``receive`` handing out ``messages``, then nothing ever."""
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")  # pragma: no cover

    return receive


async def test_a_body_longer_than_it_declared_is_too_large_as_it_comes() -> None:
    """A declared length is not trusted: a server that hands on more than it declared (h11
    does not) is refused as the bytes add up past the bound."""
    receive = _messages(
        {"type": "http.request", "body": b"01234", "more_body": True},
        {"type": "http.request", "body": b"56789A", "more_body": False},
    )
    assert BodyStop.TOO_LARGE == await read_body(receive, max_bytes=10, seconds=5, declared=4)


async def test_a_message_without_body_or_more_body_is_an_empty_whole_body() -> None:
    """ASGI lets ``body`` and ``more_body`` be left out: no bytes, and the last message."""
    assert b"" == await read_body(_messages({"type": "http.request"}), max_bytes=0, seconds=5)


@pytest.mark.parametrize(
    ("headers", "declared"),
    [
        ([], None),
        ([(b"content-type", b"text/plain")], None),
        ([(b"Content-Length", b" 10 ")], 10),
        ([(b"content-length", b"4"), (b"content-length", b"400")], 4),
        ([(b"content-length", b"-1")], -1),
        ([(b"content-length", b"1e3")], -1),
        ([(b"content-length", "\u0661\u0660".encode())], -1),  # Arabic-Indic digits
        ([(b"content-length", b"")], -1),
    ],
)
def test_the_declared_length_is_ascii_digits_or_minus_one(
    headers: list[tuple[bytes, bytes]], declared: int | None
) -> None:
    """The first ``Content-Length``, in any case, spaces around it dropped; -1 for anything
    but ASCII digits (a sign, an exponent, another script's digits, nothing), None without."""
    assert declared == declared_length({"headers": headers})
