"""Remote span sources against backends that answer slowly or never: a query's overall
deadline, the per-read timeout below it, and a body read within its size cap as it decodes.

Real local HTTP servers (threads started here, stopped in teardown) stand in for Tempo: one
trickles its headers or its body a byte at a time, one stalls, one never accepts.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from reliability_sources_support import RUN_ID, Backend, answering, serving, show_run
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import TempoSource
from taskdaemon.pipeline.tracking._remote import RemoteLimits, read_bounded


@pytest.mark.slow
def test_runs_show_gives_up_on_a_trickling_backend_at_its_deadline(home: Path) -> None:
    """A backend sending one byte every 0.2 s (never tripping a read timeout) makes ``runs
    show`` fail at TASKDAEMON_SOURCE_TIMEOUT with one line, instead of hanging for the whole
    body."""

    def trickle(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        while not stop.wait(0.2):
            server.write(handler, b" ")

    with serving(trickle) as server:
        done = show_run(home, server, TASKDAEMON_SOURCE_TIMEOUT="1")
    expected = (1, 1, True, False)  # a source that cannot answer: exit 1
    actual = (
        done.returncode,
        len(done.stderr.splitlines()),
        "no complete answer within 1 s" in done.stderr,
        "Traceback" in done.stderr,
    )
    assert expected == actual, done.stderr


def test_a_backend_trickling_its_headers_is_given_up_at_the_deadline() -> None:
    """A backend that sends its status line, then a header line every 0.1 s, never trips a
    per-read timeout: the query still ends at its deadline with the one-line deadline error,
    before the server has finished its headers (with a 404, after 20 s: twenty times the
    deadline, so no loaded machine gets there first)."""
    finished = threading.Event()

    def trickle(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        server.write(handler, b"HTTP/1.1 404 Not Found\r\n")
        for _ in range(200):
            if stop.wait(0.1):
                return
            server.write(handler, b"X-Wait: 1\r\n")
        finished.set()
        server.write(handler, b"Content-Length: 0\r\n\r\n")

    limits = RemoteLimits(deadline=1.0)
    with serving(trickle) as server, TempoSource(server.url, limits=limits) as source:
        try:
            source.get_trace(RUN_ID)
            message = "answered"
        except Exception as exc:  # the message is what is checked
            message = str(exc)
        cut_short = not finished.is_set()
    # The message alone does not tell: a query that waited for the 404 says it too.
    expected = (True, True)
    assert expected == ("no complete answer within 1 s" in message, cut_short), message


def _read(
    client: httpx.Client,
    *,
    path: str = "/x",
    params: dict[str, Any] | None = None,
    read_timeout: float = 5.0,
    deadline_in: float = 30,
    max_bytes: int = 1024,
) -> httpx.Response:
    """``read_bounded`` of ``path``, its deadline ``deadline_in`` seconds from now, the URL
    shown as ``here``."""
    return read_bounded(
        client,
        path,
        params,
        read_timeout=read_timeout,
        deadline_at=time.monotonic() + deadline_in,
        max_bytes=max_bytes,
        shown="here",
    )


@pytest.mark.parametrize(("size", "cap"), [(1000, 1000), (1001, 1000)])
def test_a_compressed_body_is_counted_and_kept_as_it_decodes(size: int, cap: int) -> None:
    """A gzip body counts as the bytes it decodes to (a body of ``cap`` decoded bytes is read
    whole, one more is refused however small it came), and the answer is the decoded body
    without the headers that described its wire form, so it reads as what it is."""
    body = json.dumps({"pad": "x" * (size - 11)}).encode()
    wire = gzip.compress(body)

    answer = answering(
        wire, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    with serving(answer) as server, httpx.Client(base_url=server.url) as client:
        try:
            response = _read(client, max_bytes=cap)
            headers = response.headers
            got: Any = (
                response.json(),
                [headers.get(name) for name in ("content-type", "content-encoding")],
                headers.get_list("content-length"),
            )
        except SpanSourceError as exc:
            got = str(exc)
    expected = (
        (json.loads(body), ["application/json", None], [str(size)])
        if size <= cap
        else f"here: response larger than {cap} bytes (TASKDAEMON_SOURCE_MAX_BYTES); refused"
    )
    assert (len(body), expected) == (size, got)


def test_a_read_past_its_deadline_sends_no_request() -> None:
    """A read whose deadline has passed (the query's earlier requests took it all) fails as a
    timeout the caller counts as its last error, before it sends anything."""
    with (
        serving(lambda *_: None) as server,
        httpx.Client(base_url=server.url) as client,
        pytest.raises(httpx.ReadTimeout) as caught,
    ):
        _read(client, deadline_in=-0.001)
    assert ("deadline reached", []) == (str(caught.value), server.requests)


@contextmanager
def _unanswered_port() -> Iterator[int]:
    """A loopback port whose listener never accepts and whose queue is full: a connection to
    it hangs in its handshake (the kernel drops the SYNs), as to a backend behind a firewall
    that drops packets."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            fillers.append(filler)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_a_connection_that_hangs_ends_at_the_per_read_timeout() -> None:
    """A backend whose handshake never completes: the connect gives up at ``read_timeout``
    (below the 3 s cap on connects), not at the client's own 30 s nor the query's deadline."""
    patient = httpx.Timeout(30.0)
    with (
        _unanswered_port() as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=patient) as client,
        pytest.raises(httpx.ConnectTimeout) as caught,
    ):
        _read(client, read_timeout=0.3, deadline_in=60)
    assert "deadline reached" != str(caught.value)


def test_a_body_trickling_past_the_deadline_ends_there() -> None:
    """A body sent a byte every 0.05 s for 20 s trips no per-read timeout: the read ends with
    the deadline's timeout at the first byte that comes after the deadline (a client without
    the socket-level bound of ``_deadline_io``, so the body's own check is what ends it)."""

    def trickle(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "400")
        handler.end_headers()
        for _ in range(400):
            server.write(handler, b" ")
            if stop.wait(0.05):
                return

    with (
        serving(trickle) as server,
        httpx.Client(base_url=server.url) as client,
        pytest.raises(httpx.ReadTimeout) as caught,
    ):
        _read(client, deadline_in=0.5)
    assert "deadline reached" == str(caught.value)


@pytest.mark.parametrize(("body", "read"), [(b"[12]", True), (b"[123]", False)])
def test_a_body_of_exactly_the_cap_is_read_one_byte_more_is_refused(
    body: bytes, read: bool
) -> None:
    """The cap counts every byte: a body of ``max_bytes`` is read whole, with its status,
    headers and the query's parameters as sent; one byte more is refused."""

    with (
        serving(answering(body, status=203, headers={"X-Kind": "test"})) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        try:
            response = _read(
                client, path="/api/search", params={"limit": 3, "q": "a b"}, max_bytes=4
            )
            got: Any = (response.status_code, response.headers["X-Kind"], response.content)
        except SpanSourceError as exc:
            got = str(exc)
    expected = (
        (203, "test", body)
        if read
        else "here: response larger than 4 bytes (TASKDAEMON_SOURCE_MAX_BYTES); refused"
    )
    assert (expected, ["/api/search?limit=3&q=a+b"]) == (got, [p for p, _ in server.requests])


def test_a_stalled_body_ends_at_the_per_read_timeout_well_before_the_deadline() -> None:
    """A backend that sends half its body, then nothing for 20 s: the read gives up when one
    read has waited ``read_timeout`` (httpx's own timeout, not the query's deadline, which is a
    minute away, nor the client's, 30 s); without that bound the body would complete after
    those 20 s."""

    def stall(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "4")
        handler.end_headers()
        server.write(handler, b"[1")
        if not stop.wait(20):
            server.write(handler, b"2]")

    patient = httpx.Timeout(30.0)  # the client's own: each read's bound is read_bounded's
    with (
        serving(stall) as server,
        httpx.Client(base_url=server.url, timeout=patient) as client,
        pytest.raises(httpx.ReadTimeout) as caught,
    ):
        _read(client, read_timeout=0.3, deadline_in=60)
    assert "deadline reached" != str(caught.value)


def _many_spans(count: int) -> bytes:
    """A Tempo v2 trace answer of ``count`` spans of ``RUN_ID``, about 180 bytes each: cheap
    to read, and each one several Python calls to read as a span."""
    spans = [
        {
            "traceId": RUN_ID,
            "spanId": f"{number + 1:016x}",
            "name": "s",
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000001000000000",
        }
        for number in range(count)
    ]
    return json.dumps({"trace": {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}}).encode()


@pytest.mark.slow
def test_an_answer_read_just_before_the_deadline_is_not_read_long_past_it() -> None:
    """A 27 MB trace of 150,000 spans whose last byte comes 1 s before the deadline (the rest
    at once, read meanwhile): decoding it and reading its spans takes longer than that, and was
    done whole, the query answering seconds past its deadline. The spans are now read in steps
    that stop at the deadline, with the deadline's one line (a decode under way is not cut
    short; on a machine so loaded that the last byte comes late, the read's own bound says
    the same line)."""
    body = _many_spans(150_000)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    deadline = 3.0

    def late(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        server.write(handler, head + body[:-1])
        if not stop.wait(deadline - 1.0):
            server.write(handler, body[-1:])

    limits = RemoteLimits(deadline=deadline)
    with serving(late) as server, TempoSource(server.url, limits=limits) as source:
        try:
            message = f"{len(source.get_trace(RUN_ID))} spans"
        except SpanSourceError as exc:
            message = str(exc)
    assert "no complete answer within 3 s (TASKDAEMON_SOURCE_TIMEOUT)" in message, message


#: How far past its deadline a query that is only waiting may end: what its last wait takes
#: to wake, and its error to be made, on a loaded machine.
_SLACK = 0.5


def _dribble(headers: bytes, dribbled: bytes, every: float) -> Any:
    """A ``serving`` handler sending ``headers`` at once, then ``dribbled`` a byte every
    ``every`` s."""

    def send(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        server.write(handler, headers)
        for at in range(len(dribbled)):
            server.write(handler, dribbled[at : at + 1])
            if stop.wait(every):
                return

    return send


_GZIPPED = gzip.compress(b" " * 100_000 + b"{}")
#: What is sent at once, and what is dribbled after it.
_DRIBBLED = {
    "status line and headers": (b"", b"HTTP/1.1 200 OK\r\n" + b"X-Wait: 1\r\n" * 200),
    "body": (b"HTTP/1.1 200 OK\r\nContent-Length: 202\r\n\r\n", b" " * 200 + b"{}"),
    "gzip body": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(_GZIPPED),
        _GZIPPED,
    ),
    "endless chunks": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"1\r\n \r\n" * 1000,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("part", list(_DRIBBLED))
def test_a_dribbled_answer_ends_the_query_at_its_deadline(part: str) -> None:
    """An answer dribbled a byte every 0.1 s, in its headers, its body, a gzip body (each
    byte inflating to nothing yet) or chunks that never end: the query ends with the
    deadline's line, within :data:`_SLACK` of its deadline, and not before it."""
    deadline = 1.0
    limits = RemoteLimits(deadline=deadline)
    with (
        serving(_dribble(*_DRIBBLED[part], every=0.1)) as server,
        TempoSource(server.url, limits=limits) as source,
    ):
        started = time.monotonic()
        try:
            source.get_trace(RUN_ID)
            message = "answered"
        except SpanSourceError as exc:
            message = str(exc)
        took = time.monotonic() - started
    said = f"no complete answer within {deadline:g} s (TASKDAEMON_SOURCE_TIMEOUT)"
    assert (True, True) == (said in message, deadline <= took < deadline + _SLACK), (
        message,
        took,
    )
