"""Bounds on what HTTP clients can make the server hold, wait for, render and log.

=========================== ============ ==========================================================
limit                       default      what happens past it
=========================== ============ ==========================================================
request body                1 MiB        413, checked on ``Content-Length`` first and then while
                                         the body streams in (the connection is closed)
body read time              30 s         408 (the connection is closed); the body of a
                                         request answered before it was read (a 401 from the
                                         security middleware, which reads no body) must end
                                         within this time of the answer, or the connection is
                                         closed: it is busy while it comes, never idle
request headers             16 KiB       400 (h11's own bound on an incomplete event, applied
                                         here to a head that arrives whole in one read too)
header read time            10 s         the connection is closed: a client that connects, or
                                         finishes a response on keep-alive (or the body of a
                                         request answered before it was read), must send a
                                         complete request head within this time (uvicorn has no
                                         such timeout: its keep-alive timer is disarmed by any
                                         byte)
keep-alive idle time        5 s          the connection is closed (uvicorn's
                                         ``timeout_keep_alive``)
response write stall        30 s         the connection is aborted and what it had not sent is
                                         dropped: a client must take some of an answer waiting
                                         for it at least this often. Otherwise a client that
                                         never reads holds its whole answer in memory and its
                                         connection for ever (closing waits for the answer to
                                         be sent), which nothing else ends: it counts as busy,
                                         never idle, so a cap's worth of them refuse everyone
connections                 512          the connection that has waited longest for a request
                                         is closed at once to make room (aborted: what it had
                                         not sent of an earlier answer is dropped, so a client
                                         that does not read cannot keep the slot), the rule of
                                         ``connection_slots``; if every connection is busy the
                                         new one gets 503 and is closed. Never more than the
                                         file-descriptor limit minus 128, so idle connections
                                         cannot starve the process of descriptors
events pending in one run   1000         ``POST /api/runs/{id}/events`` answers 429
``/metrics`` render         1 s, 2%      a render's bytes serve every scrape for at least 1 s
                                         and for 50x the CPU time the render took (so rendering
                                         takes at most 2% of a core away from the engine, however
                                         large the registry); concurrent scrapes wait for one
                                         render. A scraper more than 1 s after the previous
                                         render always gets a fresh one: the bound on staleness
                                         is max(1 s, 50x the render's CPU time), well under
                                         Prometheus' scrape interval (15 s by default) for the
                                         expositions measured (benchmarks/README.md, "HTTP
                                         server under scrape load (http_load.py)"). The gzip
                                         form, which Prometheus asks for, is compressed once
                                         per render
``/metrics`` responses      20 per s     further scrapes wait their turn, answered in batches
                                         every 1/4 s (one wake-up each) (so the wait is
                                         bounded by the connection cap): a scrape storm costs
                                         the engine a bounded share of the interpreter, where
                                         rejecting would invite an instant retry. Prometheus
                                         servers scrape every 15 s or so: 20 a second serves
                                         hundreds of them
wrong API tokens            10 per 60 s  per client address (an IPv6 one by its /64, every
                                         loopback one as one): its requests needing a
                                         credential are answered 429 with ``Retry-After``
                                         until its window ends; at most 4096 addresses
                                         followed, the rest sharing one window, one log line
                                         each per window (``token_failures``)
wrong API tokens per site   30 per 60 s  per IPv6 /48, refused as an address is
                                         (``token_site_failures``)
wrong API tokens in all     1000 per min from all addresses: past it, a client that has not
                                         shown the right token since the start is refused
                                         (``token_total_failures``)
server error logs           10 per 60 s  per server, each with its own limits (``http_thread``
                                         charges a record to the server that logs it): the rest
                                         are counted and the count is appended to the next
                                         record that passes (:class:`RateLimitFilter`)
=========================== ============ ==========================================================
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import math
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import h11
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.types import Message, Scope
from uvicorn.protocols.http.h11_impl import H11Protocol

from taskdaemon.pipeline.connection_slots import longest_idle
from taskdaemon.pipeline.http_answers import ANSWER_HEADERS, accepts_gzip
from taskdaemon.pipeline.http_body import BodyStop, declared_length, read_body
from taskdaemon.pipeline.http_security import send_error

__all__ = [
    "HttpLimits",
    "MetricsBody",
    "MetricsCache",
    "RateLimitFilter",
    "RequestLimitMiddleware",
    "bounded_protocol",
    "rate_limited_exception_handler",
]

_log = logging.getLogger("taskdaemon.http")

_FD_RESERVE: Final = 128
_HEAD_BYTES: Final = 16 * 1024  # h11's bound on an incomplete event, which uvicorn keeps
_BATCHES: Final = 4  # per second: when paced /metrics scrapes are answered
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The limits of the module docstring; every one is a constructor argument."""

    max_body_bytes: int = 1 << 20
    body_timeout: float = 30.0
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    write_timeout: float = 30.0
    max_connections: int = 512
    max_pending_events: int = 1000
    metrics_max_age: float = 1.0
    metrics_cpu_share: float = 0.02
    metrics_per_second: float = 20.0
    engine_timeout: float = 5.0
    log_burst: int = 10
    log_interval: float = 60.0
    token_failures: int = 10
    token_window: float = 60.0
    token_clients: int = 4096
    token_site_failures: int = 30
    token_total_failures: int = 1000

    def connection_cap(self) -> int:
        """``max_connections``, lowered to leave descriptors for the rest of the process."""
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return min(self.max_connections, max(8, soft - _FD_RESERVE))


# --- request bodies ------------------------------------------------------------------------------


class RequestLimitMiddleware:
    """Reads a request body whole, within ``max_body_bytes`` and ``body_timeout``, then replays it.

    The API's bodies are small JSON documents, so reading them up front costs nothing and means
    no handler can be handed an unbounded stream. Errors close the connection, so the rest of an
    oversized body is never read.
    """

    def __init__(self, app: Any, *, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared == -1:
            await _close_with(send, 400, "Content-Length is not a number")
            return
        if scope["method"] not in _BODY_METHODS and not declared and not _chunked(scope):
            await self.app(scope, receive, send)
            return
        body = await read_body(
            receive,
            max_bytes=self.limits.max_body_bytes,
            seconds=self.limits.body_timeout,
            declared=declared,
        )
        if body is BodyStop.TOO_LARGE:
            await _close_with(send, 413, f"request body over {self.limits.max_body_bytes} bytes")
            return
        if body is BodyStop.TOO_LATE:
            await _close_with(send, 408, "request body not received in time")
            return
        if body is BodyStop.GONE:
            return  # the client went away
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        await self.app(scope, replay, send)


def _chunked(scope: Scope) -> bool:
    return any(
        name.lower() == b"transfer-encoding" and b"chunked" in value.lower()
        for name, value in scope.get("headers", ())
    )


async def _close_with(send: Any, status: int, message: str) -> None:
    await send_error(send, status, message, extra=[(b"connection", b"close")])


# --- connections ---------------------------------------------------------------------------------


def _raw_error(status: str, message: str) -> bytes:
    """A whole answer ``status`` (``"503 Service Unavailable"``) closing the connection, in
    the API's one error shape and with its headers (``http_answers``), for the protocol to
    write before any request reaches the app and its middlewares."""
    body = json.dumps({"error": message}).encode()
    headers = "".join(f"{name}: {value}\r\n" for name, value in ANSWER_HEADERS)
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_REFUSED: Final = _raw_error("503 Service Unavailable", "too many open connections")
#: Uvicorn's own answer was plain text ("Invalid HTTP request received."), cacheable.
_UNPARSED: Final = _raw_error("400 Bad Request", "invalid HTTP request: its head cannot be read")


class _CountingTransport:
    """A transport that counts the bytes written through it and calls ``on_wait`` whenever a
    write leaves output waiting in its buffer (the client takes it slower than it comes).

    Its ``close`` aborts when ``cut()`` (the app gave up on a response it had started: an event
    stream dropped for a client that took nothing): ``close`` would wait, holding the slot and
    a stopping server, for that client to take the rest of an answer that cannot end well."""

    def __init__(
        self, transport: asyncio.Transport, on_wait: Callable[[], None], cut: Callable[[], bool]
    ) -> None:
        self._transport = transport
        self._on_wait = on_wait
        self._cut = cut
        self._written = 0

    def close(self) -> None:
        if self._cut():
            self._transport.abort()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        self._transport.write(data)
        self._written += len(data)
        if self._transport.get_write_buffer_size():
            self._on_wait()

    def sent(self) -> int:
        """The bytes handed to the socket so far."""
        return self._written - self._transport.get_write_buffer_size()


#: The ASGI extension (``scope["extensions"]``) whose ``abort()`` ends the connection of a
#: response its app started and cannot end (an event stream cut: its send is stuck on a full
#: socket). Returning mid-response instead made uvicorn log "ASGI callable returned without
#: completing response." at ERROR; after ``abort()`` the app sees ``http.disconnect`` and returns
#: from a connection that is gone, which uvicorn takes quietly (the app logs the cut itself).
ABORT_EXTENSION: Final = "taskdaemon.abort"


class _BoundedH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol plus a header-read timeout, a response write stall timeout, a
    connection cap (see the module) and :data:`ABORT_EXTENSION`."""

    header_timeout: float = 10.0
    write_timeout: float = 30.0
    body_timeout: float = 30.0
    connection_cap: int = 512

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._write_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._counted = _CountingTransport(transport, self._output_waits, self._response_cut)
        super().connection_made(cast(asyncio.Transport, self._counted))
        self._header_timer: asyncio.TimerHandle | None = None
        self._idle_since = self.loop.time()
        self._refused = False
        self._aborted = False
        if len(self.connections) > self.connection_cap and not self._evict_idle():
            # Answer, half-close, and drain what the client sends for a moment: closing with
            # its request unread would reset the connection and lose the 503.
            self._refused = True
            transport.write(_REFUSED)
            if transport.can_write_eof():
                transport.write_eof()
            self._header_timer = self.loop.call_later(1.0, transport.close)
            return
        self._arm_header_timer()

    def send_400_response(self, msg: str) -> None:
        """A head h11 cannot parse (malformed, past its bound) is refused as the app refuses
        a request, in JSON; uvicorn has logged ``msg``."""
        self.transport.write(_UNPARSED)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.conn.their_state is h11.IDLE:
            # h11 bounds a head only while it is incomplete: one that arrives whole in a read
            # (up to 256 KiB) would be parsed. Handed the head's room and one byte more first,
            # it refuses (400) a head that does not end within its bound.
            room = _HEAD_BYTES + 1 - len(self.conn.trailing_data[0])
            if 0 < room < len(data):
                self._received(data[:room])
                data = data[room:]
                if self.transport.is_closing():
                    return
        self._received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not cycle:  # a new request: not started yet
            scope = cast(dict[str, Any], self.cycle.scope)
            scope.setdefault("extensions", {})[ABORT_EXTENSION] = {"abort": self._abort}

    def _received(self, data: bytes) -> None:
        super().data_received(data)
        if self._body_timer is not None and self.conn.their_state is not h11.SEND_BODY:
            self._body_timer.cancel()
            self._body_timer = None
        if self.conn.their_state is not h11.IDLE:
            self._disarm_header_timer()
        elif self._header_timer is None and self._waiting_for_request():
            # A request answered before its body was read (a 401 from the security
            # middleware) ends its cycle here, when the body's last byte arrives, not in
            # on_response_complete; uvicorn has disarmed its keep-alive timer on that byte.
            self._idle_since = self.loop.time()
            self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:
            self._idle_since = self.loop.time()
            self._arm_header_timer()
        elif self.conn.their_state is h11.SEND_BODY and self._body_timer is None:
            # Answered before its body was read (a 401): nothing reads or bounds the rest of
            # the body, and the connection is busy while it comes, so a client trickling a
            # chunked body for ever would hold its slot for ever.
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.conn.their_state is h11.SEND_BODY:
            why = "the body of a request answered before it was read"
            self._close(f"{why} did not end within {self.body_timeout:g}s")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().connection_lost(exc)

    def _output_waits(self) -> None:
        if self._write_timer is None:
            self._arm_write_timer()

    def _arm_write_timer(self) -> None:
        self._write_timer = self.loop.call_later(
            self.write_timeout, self._write_stalled, self._counted.sent()
        )

    def _write_stalled(self, sent_before: int) -> None:
        self._write_timer = None
        if not self.transport.get_write_buffer_size():
            return  # everything went out: the next write that waits arms the timer again
        if self._counted.sent() > sent_before:
            self._arm_write_timer()
            return
        _log.debug(
            "aborting HTTP connection from %s: nothing of its answer taken within %gs",
            self.client,
            self.write_timeout,
        )
        # close() would wait for the buffer to be sent, which is what never happens.
        self._abort()

    def _response_cut(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.response_started and not cycle.response_complete

    def _waiting_for_request(self) -> bool:
        cycle = self.cycle
        return self.conn.their_state is h11.IDLE and (cycle is None or cycle.response_complete)

    def _evict_idle(self) -> bool:
        """Abort the connection that has waited longest for a request (``connection_slots``);
        False if none waits."""
        others = (
            c for c in self.connections if c is not self and isinstance(c, _BoundedH11Protocol)
        )
        victim = longest_idle(others, _BoundedH11Protocol._waiting_since)
        if victim is None:
            return False
        _log.debug("aborting HTTP connection from %s: to make room for a new one", victim.client)
        # close() would keep the slot until the client took the rest of its last answer.
        victim._abort()
        return True

    def _waiting_since(self) -> float | None:
        """When this connection began to wait for a request; None if it is busy, or aborted
        (its slot is about to be freed: choosing it again would make no room). One closing
        gracefully (its header timer fired) still waits for its client to take an answer, and
        can be aborted to make room."""
        if self._aborted or not self._waiting_for_request():
            return None
        return self._idle_since

    def _abort(self) -> None:
        self._aborted = True
        self.transport.abort()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._waiting_for_request():
            self._close(f"no complete request head within {self.header_timeout:g}s")

    def _close(self, why: str) -> None:
        if not self.transport.is_closing():
            _log.debug("closing HTTP connection from %s: %s", self.client, why)
            self.transport.close()


def bounded_protocol(limits: HttpLimits) -> type[H11Protocol]:
    """An h11 protocol class for uvicorn's ``http=`` with ``limits`` bound."""
    return type(
        "BoundedH11Protocol",
        (_BoundedH11Protocol,),
        {
            "header_timeout": limits.header_timeout,
            "write_timeout": limits.write_timeout,
            "body_timeout": limits.body_timeout,
            "connection_cap": limits.connection_cap(),
        },
    )


# --- logs ----------------------------------------------------------------------------------------


class RateLimitFilter(logging.Filter):
    """Lets ``burst`` records through per ``interval`` seconds and counts the rest.

    The count of records suppressed in a window is appended to the first record that passes
    after it; :attr:`suppressed_total` counts every record ever dropped. Thread-safe.
    """

    def __init__(
        self,
        *,
        burst: int = 10,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start = clock()
        self._passed = 0
        self._suppressed = 0
        self._unreported = 0
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            now = self._clock()
            if now - self._window_start >= self.interval:
                self._window_start = now
                self._passed = 0
                self._unreported += self._suppressed
                self._suppressed = 0
            if self._passed >= self.burst:
                self._suppressed += 1
                self.suppressed_total += 1
                return False
            self._passed += 1
            unreported, self._unreported = self._unreported, 0
        if unreported:
            record.msg = (
                f"{record.getMessage()} [{unreported} similar records suppressed before this one]"
            )
            record.args = ()
        return True


def rate_limited_exception_handler(
    log: logging.Logger,
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An event-loop exception handler that logs through ``log`` (give it a RateLimitFilter).

    asyncio's default handler logs every failed ``accept()`` with a traceback; under descriptor
    exhaustion that is megabytes a second.
    """

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exception = context.get("exception")
        log.error(
            "HTTP server: %s%s",
            context.get("message", "unhandled error"),
            f": {exception!r}" if exception is not None else "",
        )

    return handle


# --- /metrics ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricsBody:
    """One scrape's answer: the bytes, their content type and ``Content-Encoding`` (or None)."""

    body: bytes
    content_type: str
    encoding: str | None = None


@dataclass(frozen=True, slots=True)
class _Render:
    expires: float
    plain: bytes
    gzipped: bytes


class MetricsCache:
    """Renders a registry off the event loop, at most once per scrape interval per format, and
    answers at most ``per_second`` scrapes a second.

    Concurrent scrapes wait for the render in progress instead of starting their own, so 200
    scrapers cost one render, not 200. A render (with its gzip form, compressed in the same
    worker thread) is reused for ``max_age`` seconds or until rendering has cost ``cpu_share``
    of one core, whichever is longer: its CPU time divided by ``cpu_share`` (thread CPU time,
    not wall time, so a loaded machine does not stretch it). ``max_age=0`` renders for every
    scrape (still shared by concurrent ones). :attr:`renders` counts the renders.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        max_age: float = 1.0,
        per_second: float = 0.0,
        cpu_share: float = 0.02,
    ) -> None:
        self.registry = registry
        self.max_age = max_age
        self.per_second = per_second
        self.cpu_share = cpu_share
        self._next_slot = 0.0
        self._rendered: dict[str, _Render] = {}
        self._pending: dict[str, asyncio.Future[_Render]] = {}
        self.renders = 0

    async def render(self, accept: str | None, accept_encoding: str | None = None) -> MetricsBody:
        """The exposition in the format ``accept`` asks for, gzipped when ``accept_encoding``
        allows it.

        With ``per_second`` > 0, calls are answered at most ``per_second`` a second: a call
        waits for its slot, rounded up to the next quarter second (so waiting calls are answered
        together, with one wake-up of the thread).
        """
        if self.per_second > 0:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.per_second
            if slot > now:
                # Waiting scrapes are answered in batches, every 1/4 s: one wake-up of the
                # server's thread (one take of the interpreter lock) answers several of them.
                await asyncio.sleep(math.ceil(slot * _BATCHES) / _BATCHES - now)
        encoder, content_type = choose_encoder(accept or "")
        rendered = self._rendered.get(content_type)
        if rendered is None or time.monotonic() >= rendered.expires:
            pending = self._pending.get(content_type)
            if pending is None or pending.get_loop() is not asyncio.get_running_loop():
                pending = asyncio.ensure_future(self._render(encoder, content_type))
                self._pending[content_type] = pending
            rendered = await asyncio.shield(pending)
        if accepts_gzip(accept_encoding or ""):
            return MetricsBody(rendered.gzipped, content_type, "gzip")
        return MetricsBody(rendered.plain, content_type)

    async def _render(self, encoder: Callable[[CollectorRegistry], bytes], key: str) -> _Render:
        try:
            started = time.monotonic()
            plain, gzipped, cpu = await asyncio.to_thread(_encode, encoder, self.registry)
            self.renders += 1
            lifetime = max(self.max_age, cpu / self.cpu_share) if self.cpu_share > 0 else 0.0
            rendered = _Render(started + lifetime, plain, gzipped)
            if self.max_age > 0:
                self._rendered[key] = rendered
            return rendered
        finally:
            self._pending.pop(key, None)


def _encode(
    encoder: Callable[[CollectorRegistry], bytes], registry: CollectorRegistry
) -> tuple[bytes, bytes, float]:
    """The exposition, its gzip form (level 1: fast, and still much smaller), and the CPU
    time both took in this thread."""
    started = time.thread_time()
    plain = encoder(registry)
    gzipped = gzip.compress(plain, compresslevel=1, mtime=0)
    return plain, gzipped, time.thread_time() - started
