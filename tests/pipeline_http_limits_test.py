"""http_limits: the body middleware's answers and replay, the connection cap's arithmetic, the
log filter's windows, the event-loop handler's record, and the /metrics cache's lifetime and
pace on a controlled clock (the h11 protocol: pipeline_http_limits_protocol_test.py)."""

from __future__ import annotations

import asyncio
import gzip
import logging
import resource
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.registry import Collector

from taskdaemon.pipeline import http_limits
from taskdaemon.pipeline.http_limits import (
    HttpLimits,
    MetricsCache,
    RateLimitFilter,
    RequestLimitMiddleware,
    bounded_protocol,
    rate_limited_exception_handler,
)

Message = dict[str, Any]


class _App:
    """An ASGI app that reads one message, keeps it and the receive callable, answers 200."""

    def __init__(self) -> None:
        self.scope: Message | None = None
        self.receive: Any = None
        self.received: list[Message] = []

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        self.scope = scope
        self.receive = receive
        self.received.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class _Client:
    """The client side of one request: the messages it sends, then none ever after."""

    def __init__(self, *messages: Message) -> None:
        self.messages = list(messages)
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        await asyncio.Event().wait()  # a client that sends nothing more
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, message: Message) -> None:
        self.sent.append(message)


def _scope(method: str = "POST", *headers: tuple[bytes, bytes]) -> Message:
    return {"type": "http", "method": method, "headers": list(headers)}


def _chunk(body: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def _closed(status: int, body: bytes) -> list[Message]:
    """What the middleware sends when it refuses a request and closes the connection."""
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        },
        {"type": "http.response.body", "body": body},
    ]


async def _serve(scope: Message, client: _Client, **limits: Any) -> _App:
    app = _App()
    await RequestLimitMiddleware(app, limits=HttpLimits(**limits))(
        scope, client.receive, client.send
    )
    return app


# --- request bodies ------------------------------------------------------------------------------


async def test_a_content_length_that_is_no_number_is_400_and_closes() -> None:
    """``Content-Length: abc`` is answered 400 with a JSON error and ``connection: close``."""
    client = _Client()
    await _serve(_scope("POST", (b"content-length", b"abc")), client)
    assert _closed(400, b'{"error": "Content-Length is not a number"}') == client.sent


async def test_a_declared_length_over_the_limit_is_413_before_reading() -> None:
    """A declared length over ``max_body_bytes`` is 413 naming the limit; nothing is read."""
    client = _Client(_chunk(b"x" * 11))
    await _serve(_scope("POST", (b"content-length", b"11")), client, max_body_bytes=10)
    expected = (_closed(413, b'{"error": "request body over 10 bytes"}'), 1)
    assert expected == (client.sent, len(client.messages))


async def test_the_length_header_is_found_in_any_case_and_with_spaces() -> None:
    """``Content-Length`` is matched whatever its case, its value without surrounding spaces."""
    client = _Client()
    await _serve(_scope("POST", (b"Content-Length", b" 11 ")), client, max_body_bytes=10)
    assert _closed(413, b'{"error": "request body over 10 bytes"}') == client.sent


async def test_a_body_of_exactly_the_limit_reaches_the_app_whole() -> None:
    """A body of ``max_body_bytes`` sent in chunks reaches the app as one message."""
    client = _Client(_chunk(b"12345", more=True), _chunk(b"67890"))
    app = await _serve(_scope("POST", (b"content-length", b"10")), client, max_body_bytes=10)
    assert [_chunk(b"1234567890")] == app.received


async def test_a_streamed_body_over_the_limit_is_413() -> None:
    """A body without a declared length that streams past the limit is 413, the app not run."""
    client = _Client(_chunk(b"123456", more=True), _chunk(b"78901", more=True), _chunk(b"2"))
    app = await _serve(_scope("POST"), client, max_body_bytes=10)
    expected = (_closed(413, b'{"error": "request body over 10 bytes"}'), [], 1)
    assert expected == (client.sent, app.received, len(client.messages))


async def test_a_body_not_received_in_time_is_408() -> None:
    """A client that stops sending before the body's end is answered 408 after the timeout."""
    client = _Client(_chunk(b"1", more=True))
    await _serve(_scope("POST"), client, body_timeout=0.01)
    assert _closed(408, b'{"error": "request body not received in time"}') == client.sent


async def test_a_client_that_goes_away_gets_nothing_and_the_app_does_not_run() -> None:
    """A disconnect while the body is read ends the request silently."""
    client = _Client(_chunk(b"1", more=True), {"type": "http.disconnect"})
    app = await _serve(_scope("POST"), client)
    assert ([], []) == (client.sent, app.received)


async def test_after_the_replayed_body_the_app_receives_from_the_client() -> None:
    """The app's second ``receive`` is the client's next message (a disconnect, say)."""
    client = _Client(_chunk(b"{}"), {"type": "http.disconnect"})
    app = await _serve(_scope("POST"), client)
    assert {"type": "http.disconnect"} == await app.receive()


async def test_a_get_without_a_body_is_passed_through_unread() -> None:
    """A GET with no length and no chunked encoding gets the client's own ``receive``."""
    client = _Client(_chunk(b""))
    app = await _serve(_scope("GET"), client)
    assert client.receive == app.receive


async def test_a_get_with_a_zero_length_is_passed_through_unread() -> None:
    """``Content-Length: 0`` on a GET declares no body: the app reads from the client."""
    client = _Client(_chunk(b""))
    app = await _serve(_scope("GET", (b"content-length", b"0")), client)
    assert client.receive == app.receive


async def test_a_get_with_chunked_only_in_another_header_is_passed_through_unread() -> None:
    """A GET is chunked only by ``Transfer-Encoding``: ``chunked`` in another header, or
    another encoding, leaves it unread."""
    client = _Client(_chunk(b""))
    scope = _scope("GET", (b"x-note", b"chunked"), (b"transfer-encoding", b"gzip"))
    app = await _serve(scope, client)
    assert client.receive == app.receive


async def test_a_get_with_a_declared_body_is_read_within_the_limit() -> None:
    """A GET that declares a body has it read and bounded like any other."""
    client = _Client(_chunk(b"x" * 11))
    await _serve(_scope("GET", (b"content-length", b"11")), client, max_body_bytes=10)
    assert _closed(413, b'{"error": "request body over 10 bytes"}') == client.sent


async def test_a_get_with_a_chunked_body_is_read_within_the_limit() -> None:
    """``Transfer-Encoding: gzip, Chunked`` (any case) on a GET has its body read and bounded."""
    client = _Client(_chunk(b"x" * 11))
    scope = _scope("GET", (b"Transfer-Encoding", b"gzip, Chunked"))
    await _serve(scope, client, max_body_bytes=10)
    assert _closed(413, b'{"error": "request body over 10 bytes"}') == client.sent


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_a_body_method_has_its_body_read_without_a_length(method: str) -> None:
    """POST, PUT, PATCH and DELETE have their body read even when they declare none."""
    client = _Client(_chunk(b"x" * 11))
    await _serve(_scope(method), client, max_body_bytes=10)
    assert _closed(413, b'{"error": "request body over 10 bytes"}') == client.sent


async def test_a_scope_other_than_http_is_passed_through() -> None:
    """A lifespan or websocket scope goes to the app untouched, with the client's receive."""
    client = _Client({"type": "lifespan.startup"})
    scope = {"type": "lifespan"}
    app = await _serve(scope, client)
    expected = (scope, client.receive, [{"type": "lifespan.startup"}])
    assert expected == (app.scope, app.receive, app.received)


async def test_a_request_message_without_body_or_more_body_is_an_empty_complete_body() -> None:
    """``body`` and ``more_body`` may be left out of a message (ASGI): no bytes, and the last."""
    client = _Client({"type": "http.request"})
    app = await _serve(_scope("POST"), client)
    assert [_chunk(b"")] == app.received


# --- connections ---------------------------------------------------------------------------------


@pytest.fixture
def descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sets the soft descriptor limit ``connection_cap`` sees: the list's one item."""
    soft = [resource.RLIM_INFINITY]
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (soft[0], resource.RLIM_INFINITY))
    return soft


def test_without_a_descriptor_limit_the_cap_is_max_connections(descriptor_limit: list[int]) -> None:
    """An unlimited descriptor table leaves ``max_connections`` as it is."""
    assert 10**6 == HttpLimits(max_connections=10**6).connection_cap()


def test_the_cap_leaves_128_descriptors_to_the_process(descriptor_limit: list[int]) -> None:
    """Under a limit of 300 descriptors the cap is 172."""
    descriptor_limit[0] = 300
    assert 172 == HttpLimits(max_connections=512).connection_cap()


def test_a_lower_max_connections_stays_the_cap(descriptor_limit: list[int]) -> None:
    """``max_connections`` under the descriptor budget is the cap."""
    descriptor_limit[0] = 300
    assert 100 == HttpLimits(max_connections=100).connection_cap()


def test_the_cap_is_never_under_eight(descriptor_limit: list[int]) -> None:
    """Even with fewer descriptors than the reserve, eight connections are allowed."""
    descriptor_limit[0] = 100
    assert 8 == HttpLimits(max_connections=512).connection_cap()


def test_the_bounded_protocol_carries_the_limits(descriptor_limit: list[int]) -> None:
    """The protocol class has the header and write timeouts and the connection cap of the
    limits."""
    limits = HttpLimits(header_timeout=3.5, write_timeout=7.5, max_connections=20)
    protocol = bounded_protocol(limits)
    assert ("BoundedH11Protocol", 3.5, 7.5, 20) == (
        protocol.__name__,
        protocol.header_timeout,  # type: ignore[attr-defined]
        protocol.write_timeout,  # type: ignore[attr-defined]
        protocol.connection_cap,  # type: ignore[attr-defined]
    )


# --- logs ----------------------------------------------------------------------------------------


def _record(message: str = "accept failed %d", *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.ERROR, __file__, 1, message, args or (1,), None)


def test_by_default_ten_records_pass_a_minute() -> None:
    """The default filter passes ten records, drops the eleventh, and passes again at 60 s."""
    now = [0.0]
    limiter = RateLimitFilter(clock=lambda: now[0])
    passed = [limiter.filter(_record()) for _ in range(11)]
    now[0] = 59.9
    passed.append(limiter.filter(_record()))
    now[0] = 60.0
    passed.append(limiter.filter(_record()))
    assert [True] * 10 + [False, False, True] == passed


def test_a_window_is_measured_from_its_start() -> None:
    """A clock that starts late opens the next window an interval after its start, not before."""
    now = [100.0]
    limiter = RateLimitFilter(burst=1, interval=10.0, clock=lambda: now[0])
    passed = [limiter.filter(_record())]
    now[0] = 105.0
    passed.append(limiter.filter(_record()))
    now[0] = 110.0
    passed.append(limiter.filter(_record()))
    assert [True, False, True] == passed


def test_each_window_reports_the_records_dropped_in_the_one_before() -> None:
    """Each window passes ``burst`` records again, and its first says how many the window
    before it dropped, not a running total."""
    now = [0.0]
    limiter = RateLimitFilter(burst=2, interval=10.0, clock=lambda: now[0])
    messages = []
    for window, count in enumerate((4, 5, 3)):
        now[0] = 10.0 * window
        for i in range(count):
            record = _record("failure %d", i)
            if limiter.filter(record):
                messages.append(record.getMessage())
    expected = [
        "failure 0",
        "failure 1",
        "failure 0 [2 similar records suppressed before this one]",
        "failure 1",
        "failure 0 [3 similar records suppressed before this one]",
        "failure 1",
    ]
    assert (expected, 6) == (messages, limiter.suppressed_total)


def test_the_exception_handler_logs_the_message_and_the_exception() -> None:
    """The event-loop handler logs one error with the context's message and exception."""
    log = logging.getLogger("taskdaemon.test.http_limits.handler")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log.addHandler(handler)
    try:
        handle = rate_limited_exception_handler(log)
        loop = asyncio.new_event_loop()
        try:
            handle(loop, {"message": "accept failed", "exception": OSError(24, "too many")})
            handle(loop, {})
        finally:
            loop.close()
    finally:
        log.removeHandler(handler)
    expected = [
        (logging.ERROR, "HTTP server: accept failed: OSError(24, 'too many')"),
        (logging.ERROR, "HTTP server: unhandled error"),
    ]
    assert expected == [(r.levelno, r.getMessage()) for r in records]


# --- /metrics ------------------------------------------------------------------------------------


class _Time:
    """The clock and the thread CPU time ``http_limits`` reads: the clock moves only when told,
    each render takes ``cpu`` seconds of CPU."""

    def __init__(self, cpu: float) -> None:
        self.now = 1000.0
        self.cpu = cpu
        self._reads = 0

    def monotonic(self) -> float:
        return self.now

    def thread_time(self) -> float:
        self._reads += 1  # a render reads it twice: before and after (the thread ran before)
        return 5.0 if self._reads % 2 else 5.0 + self.cpu


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Time:
    """``http_limits``' own clock, at 1000 s, with renders of 10 ms of CPU."""
    fake = _Time(cpu=0.01)
    monkeypatch.setattr(http_limits, "time", fake)
    return fake


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays ``http_limits`` sleeps for, recorded instead of slept."""
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    fake = SimpleNamespace(**{k: v for k, v in vars(asyncio).items() if not k.startswith("__")})
    fake.sleep = sleep
    monkeypatch.setattr(http_limits, "asyncio", fake)
    return delays


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("scraped_total", "a counter", registry=registry).inc()
    return registry


async def _renders_at(cache: MetricsCache, clock: _Time, *offsets: float) -> list[int]:
    """``cache.renders`` after a scrape at each offset from the clock's start."""
    start, counts = clock.now, []
    for offset in offsets:
        clock.now = start + offset
        await cache.render(None)
        counts.append(cache.renders)
    return counts


async def test_by_default_a_cheap_render_serves_for_one_second(clock: _Time) -> None:
    """A render of little CPU is reused until 1 s after it started, and replaced then."""
    assert [1, 1, 2] == await _renders_at(MetricsCache(_registry()), clock, 0.0, 0.99, 1.0)


async def test_by_default_a_render_serves_for_fifty_times_its_cpu_time(clock: _Time) -> None:
    """A render of 40 ms of CPU is reused for 2 s (2% of a core), and replaced then."""
    clock.cpu = 0.04
    assert [1, 1, 2] == await _renders_at(MetricsCache(_registry()), clock, 0.0, 1.99, 2.0)


async def test_a_zero_cpu_share_renders_every_scrape(clock: _Time) -> None:
    """With ``cpu_share=0`` a render has no lifetime: each scrape renders."""
    cache = MetricsCache(_registry(), max_age=60.0, cpu_share=0.0)
    assert [1, 2] == await _renders_at(cache, clock, 0.0, 0.0)


async def test_a_zero_max_age_renders_every_scrape(clock: _Time) -> None:
    """With ``max_age=0`` no render is kept, however costly: each scrape renders."""
    clock.cpu = 1.0
    assert [1, 2] == await _renders_at(MetricsCache(_registry(), max_age=0.0), clock, 0.0, 0.0)


async def test_paced_scrapes_wait_for_their_slot_rounded_to_a_quarter_second(
    clock: _Time, sleeps: list[float]
) -> None:
    """At 4 a second, the first scrape is answered at once, the next ones at their slot
    (every 1/4 s) rounded up to the next quarter second."""
    clock.now = 1000.1
    cache = MetricsCache(_registry(), max_age=60.0, per_second=4.0)
    for _ in range(3):
        await cache.render(None)
    assert [pytest.approx(0.4), pytest.approx(0.65)] == sleeps


async def test_a_pace_under_one_a_second_is_kept(clock: _Time, sleeps: list[float]) -> None:
    """At one scrape every 2 s the second waits for its slot."""
    clock.now = 1000.0
    cache = MetricsCache(_registry(), max_age=60.0, per_second=0.5)
    for _ in range(2):
        await cache.render(None)
    assert [pytest.approx(2.0)] == sleeps


async def test_without_a_pace_no_scrape_waits(clock: _Time, sleeps: list[float]) -> None:
    """By default scrapes are not paced: none of them sleeps."""
    cache = MetricsCache(_registry(), max_age=0.0)
    for _ in range(3):
        await cache.render(None)
    assert [] == sleeps


class _FailsOnce(Collector):
    """A collector whose first collection raises."""

    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> Iterator[Any]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("first collection fails")
        return iter(())


async def test_a_failed_render_is_not_reused() -> None:
    """After a render raised, the next scrape renders again instead of getting the failure."""
    registry = _registry()
    registry.register(_FailsOnce())
    cache = MetricsCache(registry, max_age=60.0)
    with pytest.raises(RuntimeError):
        await cache.render(None)
    body = (await cache.render(None)).body
    assert generate_latest(registry) == body


async def test_the_gzip_form_is_level_1_without_a_timestamp() -> None:
    """The gzip body is the exposition compressed at level 1 with mtime 0 (the same bytes for
    the same exposition)."""
    registry = _registry()
    answer = await MetricsCache(registry, max_age=60.0).render(None, "gzip")
    assert gzip.compress(generate_latest(registry), compresslevel=1, mtime=0) == answer.body


async def test_the_gzip_answer_has_the_exposition_s_content_type() -> None:
    """A gzip answer names the format of what it compresses, as the plain one does."""
    cache = MetricsCache(_registry(), max_age=60.0)
    plain, zipped = await cache.render(None), await cache.render(None, "gzip")
    assert plain.content_type == zipped.content_type
