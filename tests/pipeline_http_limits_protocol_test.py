"""http_limits: the bounded h11 protocol's header timer, write stall timer, connection cap and
evictions, on a controlled loop (clock and timers moved by the test) and transport: no socket,
no sleep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn
import uvicorn.server

from taskdaemon.pipeline.http_limits import HttpLimits, bounded_protocol

Message = dict[str, Any]


class _Timer:
    """A timer of :class:`_Loop`: due at ``when``, fired by the test."""

    def __init__(self, when: float, callback: Any) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Loop:
    """The loop a protocol sees: a clock moved by the test, timers fired by the test, tasks
    run on the real running loop."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[_Timer] = []
        self.tasks: list[asyncio.Task[Any]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Any, *args: Any) -> _Timer:
        timer = _Timer(self.now + delay, lambda: callback(*args))
        self.timers.append(timer)
        return timer

    def create_task(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.append(task)
        return task

    def armed(self) -> list[float]:
        """When each timer that is neither cancelled nor fired is due."""
        return [t.when for t in self.timers if not t.cancelled]

    def fire(self) -> None:
        """Run every armed timer's callback (as if its time had come)."""
        for timer in [t for t in self.timers if not t.cancelled]:
            timer.cancelled = True
            timer.callback()


class _Transport(asyncio.Transport):
    """A connection's transport that keeps what is written and whether it was closed or
    aborted. Everything written is sent at once, unless the test sets :attr:`taken`: then only
    that many bytes were, and the rest waits in the buffer."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.written = b""
        self.taken: int | None = None
        self.eof = False
        self.closed = False
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return 0 if self.taken is None else len(self.written) - self.taken

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", self.port), "sockname": ("127.0.0.1", 80)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _ok(scope: Message, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _early(scope: Message, receive: Any, send: Any) -> None:
    """Answers 401 without reading the request's body, as the security middleware does."""
    await send({"type": "http.response.start", "status": 401, "headers": []})
    await send({"type": "http.response.body", "body": b"no"})


class _Server:
    """Connections of one server of the bounded protocol, on one :class:`_Loop`."""

    def __init__(
        self,
        cap: int = 10,
        header_timeout: float = 10.0,
        write_timeout: float = 30.0,
        app: Any = _ok,
    ) -> None:
        limits = HttpLimits(
            max_connections=cap, header_timeout=header_timeout, write_timeout=write_timeout
        )
        self.protocol = bounded_protocol(limits)
        self.protocol.connection_cap = cap  # type: ignore[attr-defined]
        self.config = uvicorn.Config(app, log_config=None, lifespan="off")
        self.state = uvicorn.server.ServerState()
        self.loop = _Loop()

    def connect(self, port: int) -> tuple[Any, _Transport]:
        protocol = self.protocol(self.config, self.state, {}, _loop=self.loop)
        transport = _Transport(port)
        protocol.connection_made(transport)
        return protocol, transport


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
#: A request head whose body never comes: the connection stays busy.
POST = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., _Server]]:
    """Makes :class:`_Server` s; cancels the requests their connections left running."""
    made: list[_Server] = []

    def make(**limits: Any) -> _Server:
        made.append(_Server(**limits))
        return made[-1]

    yield make
    tasks = [task for server in made for task in server.loop.tasks]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_new_connection_must_send_its_head_within_the_header_timeout(
    servers: Callable[..., _Server],
) -> None:
    """A connection gets one timer, due ``header_timeout`` after it was made."""
    server = servers(header_timeout=3.0)
    server.loop.now = 5.0
    server.connect(1)
    assert [8.0] == server.loop.armed()


async def test_a_connection_without_a_complete_head_in_time_is_closed(
    servers: Callable[..., _Server],
) -> None:
    """When the header timer fires on a connection that sent only part of a head, it is
    closed."""
    server = servers()
    protocol, transport = server.connect(1)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")
    server.loop.fire()
    assert True is transport.closed


async def test_a_complete_head_disarms_the_header_timer(servers: Callable[..., _Server]) -> None:
    """Once the head is complete the timer is cancelled: a slow app never costs the
    connection."""
    server = servers()
    protocol, _transport = server.connect(1)
    protocol.data_received(POST)
    assert [] == server.loop.armed()


async def test_a_timer_firing_on_a_busy_connection_leaves_it_open(
    servers: Callable[..., _Server],
) -> None:
    """A header timer that fires while a request is in progress does not close it."""
    server = servers()
    protocol, transport = server.connect(1)
    timer = server.loop.timers[0]
    protocol.data_received(POST)
    timer.callback()
    assert False is transport.closed


async def test_after_a_response_the_header_timer_is_armed_again(
    servers: Callable[..., _Server],
) -> None:
    """A keep-alive connection whose response completed waits for the next head under a new
    header timer, from the time the response completed."""
    server = servers(header_timeout=3.0)
    protocol, _transport = server.connect(1)
    server.loop.now = 2.0
    protocol.data_received(GET)
    await asyncio.gather(*server.loop.tasks)
    # 7.0: uvicorn's own keep-alive timer, armed by the same response.
    assert [5.0, 7.0] == sorted(server.loop.armed())


async def test_a_lost_connection_cancels_its_header_timer(servers: Callable[..., _Server]) -> None:
    """When the client goes away, the header timer is cancelled."""
    server = servers()
    protocol, _transport = server.connect(1)
    protocol.connection_lost(None)
    assert [] == server.loop.armed()


async def test_over_the_cap_the_longest_idle_connection_makes_room(
    servers: Callable[..., _Server],
) -> None:
    """A connection over the cap aborts the one that has waited longest for a request (a
    graceful close would wait for a client that does not read)."""
    server = servers(cap=2)
    transports = []
    for port in (1, 2, 3):
        server.loop.now = float(port)
        transports.append(server.connect(port)[1])
    assert [(True, False), (False, False), (False, False)] == [
        (t.aborted, t.closed) for t in transports
    ]


async def test_a_connection_aborted_to_make_room_is_not_chosen_again(
    servers: Callable[..., _Server],
) -> None:
    """Until its loss is reported, an aborted connection still counts, but gives no more room:
    the next newcomer aborts the next idle connection (it used to choose the closing one
    again, and each newcomer took the server one connection further over its cap)."""
    server = servers(cap=2)
    transports = []
    for port in (1, 2, 3, 4):
        server.loop.now = float(port)
        transports.append(server.connect(port)[1])
    assert [True, True, False, False] == [t.aborted for t in transports]


async def test_a_connection_closing_after_its_header_timeout_can_make_room(
    servers: Callable[..., _Server],
) -> None:
    """A connection closed by its header timer still waits for its client to take what it was
    sent (a graceful close): a newcomer over the cap aborts it, rather than being refused."""
    server = servers(cap=1)
    _closing, transport = server.connect(1)
    server.loop.fire()
    _newcomer, new_transport = server.connect(2)
    assert ((True, True), b"") == ((transport.closed, transport.aborted), new_transport.written)


async def test_the_idle_time_of_a_kept_alive_connection_starts_at_its_response(
    servers: Callable[..., _Server],
) -> None:
    """A connection that was served waits for its next request from the response's end, so an
    older idle connection is closed first."""
    server = servers(cap=2)
    served, served_transport = server.connect(1)
    server.loop.now = 1.0
    _idle, idle_transport = server.connect(2)
    server.loop.now = 2.0
    served.data_received(GET)
    await asyncio.gather(*server.loop.tasks)
    server.loop.now = 3.0
    server.connect(3)
    assert (False, True) == (served_transport.aborted, idle_transport.aborted)


async def test_a_connection_mid_request_is_not_closed_to_make_room(
    servers: Callable[..., _Server],
) -> None:
    """A connection that has sent a head is busy: the idle one is closed instead."""
    server = servers(cap=2)
    busy, busy_transport = server.connect(1)
    busy.data_received(POST)
    server.loop.now = 1.0
    _idle, idle_transport = server.connect(2)
    server.connect(3)
    assert (False, True) == (busy_transport.aborted, idle_transport.aborted)


async def test_when_every_connection_is_busy_a_new_one_gets_503(
    servers: Callable[..., _Server],
) -> None:
    """Over the cap with no idle connection, the new one is answered 503, half-closed, and
    closed a second later; what it sends is ignored."""
    server = servers(cap=1)
    busy, _busy_transport = server.connect(1)
    busy.data_received(POST)
    server.loop.now = 10.0
    refused, transport = server.connect(2)
    refused.data_received(GET)
    due = server.loop.armed()
    server.loop.fire()
    body = b'{"error": "too many open connections"}'
    expected = (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"cache-control: no-store\r\nx-content-type-options: nosniff\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body),
        True,
        [11.0],
        True,
    )
    assert expected == (transport.written, transport.eof, due, transport.closed)


async def test_a_request_answered_before_its_body_is_timed_from_the_body_s_end(
    servers: Callable[..., _Server],
) -> None:
    """A request answered before its body was read (a 401) waits for the next head under a
    header timer armed when the body's last byte arrives."""
    server = servers(header_timeout=3.0, app=_early)
    protocol, _transport = server.connect(1)
    protocol.data_received(POST)
    await asyncio.gather(*server.loop.tasks)
    server.loop.now = 4.0
    protocol.data_received(b"12345")
    assert [7.0] == server.loop.armed()


async def test_a_request_answered_before_its_body_is_closed_without_a_next_head(
    servers: Callable[..., _Server],
) -> None:
    """After the body of a request answered early, a connection that sends no next head is
    closed when the header timer fires."""
    server = servers(app=_early)
    protocol, transport = server.connect(1)
    protocol.data_received(POST)
    await asyncio.gather(*server.loop.tasks)
    protocol.data_received(b"12345")
    server.loop.fire()
    assert True is transport.closed


async def test_a_connection_still_sending_a_body_answered_early_is_busy(
    servers: Callable[..., _Server],
) -> None:
    """A connection whose early answer is sent but whose body is still coming is not idle:
    over the cap the new connection is refused instead."""
    server = servers(cap=1, app=_early)
    sending, sending_transport = server.connect(1)
    sending.data_received(POST)
    await asyncio.gather(*server.loop.tasks)
    _refused, refused_transport = server.connect(2)
    status = refused_transport.written.split(b"\r\n", 1)[0]
    assert (False, b"HTTP/1.1 503 Service Unavailable") == (sending_transport.closed, status)


async def test_the_body_of_a_request_answered_early_must_end_within_the_body_timeout(
    servers: Callable[..., _Server],
) -> None:
    """A request answered before its body was read (a 401) leaves the body unread and the
    connection busy: a client trickling it for ever held its slot for ever. The rest of the
    body must come within the body timeout of the answer, or the connection is closed."""
    server = servers(app=_early)
    protocol, transport = server.connect(1)
    protocol.data_received(POST)
    await asyncio.gather(*server.loop.tasks)
    protocol.data_received(b"123")  # some of it, never the end
    due = server.loop.armed()
    server.loop.fire()
    assert ([30.0], True) == (due, transport.closed)


async def test_a_connection_closed_by_its_header_timer_is_lost_cleanly(
    servers: Callable[..., _Server],
) -> None:
    """After its header timer closed it, the connection's loss cancels nothing and raises
    nothing."""
    server = servers()
    protocol, _transport = server.connect(1)
    server.loop.fire()
    protocol.connection_lost(None)
    assert [] == server.loop.armed()


async def test_the_header_timeout_is_logged_with_the_client_and_the_limit(
    servers: Callable[..., _Server], caplog: pytest.LogCaptureFixture
) -> None:
    """Closing a connection for its header timeout logs, at debug level, the client and why."""
    server = servers(header_timeout=2.5)
    server.connect(7)
    with caplog.at_level(logging.DEBUG, logger="taskdaemon.http"):
        server.loop.fire()
    expected = [
        (
            "taskdaemon.http",
            logging.DEBUG,
            "closing HTTP connection from ('127.0.0.1', 7): no complete request head within 2.5s",
        )
    ]
    assert expected == caplog.record_tuples


async def test_an_eviction_is_logged_with_the_client_and_the_reason(
    servers: Callable[..., _Server], caplog: pytest.LogCaptureFixture
) -> None:
    """Aborting an idle connection to make room logs, at debug level, its client and why."""
    server = servers(cap=1)
    server.connect(7)
    with caplog.at_level(logging.DEBUG, logger="taskdaemon.http"):
        server.connect(8)
    expected = [
        (
            "taskdaemon.http",
            logging.DEBUG,
            "aborting HTTP connection from ('127.0.0.1', 7): to make room for a new one",
        )
    ]
    assert expected == caplog.record_tuples


async def test_a_trickled_partial_head_does_not_move_the_header_timer(
    servers: Callable[..., _Server],
) -> None:
    """Bytes of an unfinished head leave the header timer due where it was (a slowloris
    client cannot push it back)."""
    server = servers(header_timeout=10.0)
    protocol, _transport = server.connect(1)
    server.loop.now = 5.0
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    assert [10.0] == server.loop.armed()


async def test_after_a_body_answered_early_the_connection_is_idle_from_its_end(
    servers: Callable[..., _Server],
) -> None:
    """A connection whose early-answered body ended later than another connection went idle
    has waited less: the other one is closed to make room."""
    server = servers(cap=2, app=_early)
    early, early_transport = server.connect(1)
    early.data_received(POST)
    await asyncio.gather(*server.loop.tasks)
    server.loop.now = 1.0
    _idle, idle_transport = server.connect(2)
    server.loop.now = 2.0
    early.data_received(b"12345")
    server.loop.now = 3.0
    server.connect(3)
    assert (False, True) == (early_transport.aborted, idle_transport.aborted)


async def test_a_connection_lost_with_an_error_hands_the_error_on(
    servers: Callable[..., _Server],
) -> None:
    """A connection lost with an error is reported to uvicorn as such, which then leaves the
    transport to asyncio instead of closing it."""
    server = servers()
    protocol, transport = server.connect(1)
    protocol.connection_lost(ConnectionResetError())
    assert False is transport.closed


def _fire_due(loop: _Loop, when: float) -> None:
    """Fire the armed timers due at ``when`` (and only those)."""
    for timer in [t for t in loop.timers if not t.cancelled and t.when == when]:
        timer.cancelled = True
        timer.callback()


async def _stalled(servers: Callable[..., _Server]) -> tuple[_Server, Any, _Transport]:
    """A connection of a server with a 4 s write timeout whose client has taken nothing of
    its answer to a GET: the answer waits whole in the transport's buffer."""
    server = servers(write_timeout=4.0, header_timeout=100.0)
    protocol, transport = server.connect(1)
    transport.taken = 0
    protocol.data_received(GET)
    await asyncio.gather(*server.loop.tasks)
    return server, protocol, transport


async def test_an_answer_none_of_which_is_taken_in_time_is_aborted(
    servers: Callable[..., _Server],
) -> None:
    """A write that leaves output waiting arms a timer due ``write_timeout`` later; when it
    fires with nothing more sent, the connection is aborted (closing would wait for ever)."""
    server, _protocol, transport = await _stalled(servers)
    armed = 4.0 in server.loop.armed()
    _fire_due(server.loop, 4.0)
    assert (True, True, False) == (armed, transport.aborted, transport.closed)


async def test_a_client_taking_some_of_its_answer_is_given_more_time(
    servers: Callable[..., _Server],
) -> None:
    """Each time the timer fires after some output was sent, it is armed again from then; the
    connection is aborted at the first period in which nothing was."""
    server, _protocol, transport = await _stalled(servers)
    server.loop.now = 4.0
    transport.taken = 1
    _fire_due(server.loop, 4.0)
    kept = (transport.aborted, server.loop.armed().count(8.0))
    server.loop.now = 8.0
    _fire_due(server.loop, 8.0)
    assert ((False, 1), True) == (kept, transport.aborted)


async def test_an_answer_sent_whole_by_the_time_the_timer_fires_ends_the_watch(
    servers: Callable[..., _Server],
) -> None:
    """Once nothing waits, the timer is not armed again and the connection stays."""
    server, _protocol, transport = await _stalled(servers)
    server.loop.now = 4.0
    transport.taken = len(transport.written)
    _fire_due(server.loop, 4.0)
    assert (False, False) == (transport.aborted, 8.0 in server.loop.armed())


async def test_a_lost_connection_cancels_its_write_timer(servers: Callable[..., _Server]) -> None:
    """When the client goes away with output waiting, the write timer is cancelled."""
    server, protocol, _transport = await _stalled(servers)
    armed = 4.0 in server.loop.armed()
    protocol.connection_lost(None)
    assert (True, False) == (armed, 4.0 in server.loop.armed())


def _head(size: int) -> bytes:
    """A GET head of exactly ``size`` bytes (a header padded to fit)."""
    start, end = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


@pytest.mark.parametrize(("size", "status"), [(16 * 1024 + 1, b"200"), (16 * 1024 + 2, b"400")])
async def test_a_head_arriving_whole_is_held_to_the_head_bound(
    servers: Callable[..., _Server], size: int, status: bytes
) -> None:
    """A head that arrives in one read, with more behind it, is read up to h11's bound on an
    incomplete head (16 KiB, and the byte that may end it) and refused past it, as a head
    trickled in would be."""
    server = servers()
    protocol, transport = server.connect(1)
    protocol.data_received(_head(size) + GET)
    await asyncio.gather(*server.loop.tasks)
    assert status == transport.written.split(b" ", 2)[1]


async def test_a_head_and_its_body_in_one_read_reach_the_app_whole(
    servers: Callable[..., _Server],
) -> None:
    """A small head and a body of 100 KiB in one read: the body is passed on past the head's
    bound (only heads are held to it)."""
    received: list[bytes] = []

    async def reading(scope: Message, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await _ok(scope, receive, send)

    server = servers(app=reading)
    protocol, transport = server.connect(1)
    body = b"b" * (100 * 1024)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    protocol.data_received(head + body)
    await asyncio.gather(*server.loop.tasks)
    assert (b"200", body) == (transport.written.split(b" ", 2)[1], b"".join(received))
