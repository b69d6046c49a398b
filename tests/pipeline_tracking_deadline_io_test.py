"""A remote query's deadline on every socket operation (``tracking/_deadline_io.py``), on
recording streams and httpcore's in-memory backend: no socket, no sleep."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

import httpcore
import httpx
import pytest

from taskdaemon.pipeline.tracking import _deadline_io
from taskdaemon.pipeline.tracking._deadline_io import at, bound

Calls = list[tuple[Any, ...]]


class _Stream(httpcore.NetworkStream):
    """A stream that records every call it gets."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.calls.append(("read", max_bytes, timeout))
        return b"answer"

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.calls.append(("write", buffer, timeout))

    def close(self) -> None:
        self.calls.append(("close",))

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self.calls.append(("start_tls", ssl_context, server_hostname, timeout))
        return _Stream(self.calls)

    def get_extra_info(self, info: str) -> Any:
        self.calls.append(("get_extra_info", info))
        return "extra"


class _Backend(httpcore.NetworkBackend):
    """A backend that records every call it gets and connects to recording streams."""

    def __init__(self) -> None:
        self.calls: Calls = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        self.calls.append(("connect_tcp", host, port, timeout, local_address, socket_options))
        return _Stream(self.calls)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        self.calls.append(("connect_unix_socket", path, timeout, socket_options))
        return _Stream(self.calls)

    def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", seconds))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The module's monotonic clock, stopped at the value the test puts in the list."""
    now = [100.0]
    monkeypatch.setattr(_deadline_io, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_without_a_deadline_a_read_keeps_its_timeout() -> None:
    """Outside ``at``, a read gets the timeout it was given and gives back what it read."""
    backend = _Backend()
    stream = _deadline_io._Backend(backend).connect_tcp("127.0.0.1", 1)
    answer = stream.read(10, 2.5)
    assert (b"answer", ("read", 10, 2.5)) == (answer, backend.calls[-1])


@pytest.mark.parametrize(("timeout", "expected"), [(2.5, 2.5), (None, 30.0), (50.0, 30.0)], ids=str)
def test_a_reads_timeout_is_cut_to_what_is_left_of_the_deadline(
    clock: list[float], timeout: float | None, expected: float
) -> None:
    """30 s before the deadline, a read's timeout is the smaller of its own and 30 s."""
    backend = _Backend()
    stream = _deadline_io._Backend(backend).connect_tcp("127.0.0.1", 1)
    with at(130.0):
        stream.read(10, timeout)
    assert ("read", 10, expected) == backend.calls[-1]


@pytest.mark.parametrize(("timeout", "expected"), [(2.5, 2.5), (None, 4.0), (9.0, 4.0)], ids=str)
def test_a_writes_timeout_is_cut_to_what_is_left_of_the_deadline(
    clock: list[float], timeout: float | None, expected: float
) -> None:
    """4 s before the deadline, a write's timeout is the smaller of its own and 4 s."""
    backend = _Backend()
    stream = _deadline_io._Backend(backend).connect_tcp("127.0.0.1", 1)
    with at(104.0):
        stream.write(b"GET", timeout)
    assert ("write", b"GET", expected) == backend.calls[-1]


def test_a_deadline_bounds_only_the_thread_that_set_it() -> None:
    """A thread that never set a deadline keeps its timeouts while another thread's deadline
    has passed."""
    backend = _Backend()
    stream = _deadline_io._Backend(backend).connect_tcp("127.0.0.1", 1)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            stream.read(10, 2.5)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    with at(time.monotonic() - 1):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    assert ([], ("read", 10, 2.5)) == (errors, backend.calls[-1])


def test_an_inner_deadline_holds_for_its_block_and_the_outer_one_after_it(
    clock: list[float],
) -> None:
    """Nested ``at`` blocks each bound their own block; outside both, nothing is bounded."""
    backend = _Backend()
    stream = _deadline_io._Backend(backend).connect_tcp("127.0.0.1", 1)
    with at(130.0):
        with at(110.0):
            stream.read(1)
        stream.read(2)
    stream.read(3)
    expected = [("read", 1, 10.0), ("read", 2, 30.0), ("read", 3, None)]
    assert expected == backend.calls[1:]


def _connect_tcp(backend: httpcore.NetworkBackend, stream: httpcore.NetworkStream) -> Any:
    return backend.connect_tcp("127.0.0.1", 1, 5.0)


def _connect_unix(backend: httpcore.NetworkBackend, stream: httpcore.NetworkStream) -> Any:
    return backend.connect_unix_socket("/run/s", 5.0)


def _read(backend: httpcore.NetworkBackend, stream: httpcore.NetworkStream) -> Any:
    return stream.read(10, 5.0)


def _write(backend: httpcore.NetworkBackend, stream: httpcore.NetworkStream) -> Any:
    return stream.write(b"x", 5.0)


def _start_tls(backend: httpcore.NetworkBackend, stream: httpcore.NetworkStream) -> Any:
    return stream.start_tls(ssl.create_default_context(), "h", 5.0)


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        (_connect_tcp, httpcore.ConnectTimeout),
        (_connect_unix, httpcore.ConnectTimeout),
        (_read, httpcore.ReadTimeout),
        (_write, httpcore.WriteTimeout),
        (_start_tls, httpcore.ConnectTimeout),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_at_the_deadline_no_operation_starts(
    clock: list[float],
    operation: Callable[[httpcore.NetworkBackend, httpcore.NetworkStream], Any],
    error: type[Exception],
) -> None:
    """Once the deadline is reached (not only past it), each operation fails at once with
    httpcore's timeout of its kind, and the socket is not touched."""
    recorder = _Backend()
    backend = _deadline_io._Backend(recorder)
    stream = backend.connect_tcp("127.0.0.1", 1)
    del recorder.calls[:]
    with at(100.0):
        try:
            operation(backend, stream)
            raised: tuple[Any, str] = (None, "")
        except Exception as exc:  # the kind and message are what is checked
            raised = (type(exc), str(exc))
    assert ((error, "deadline reached"), []) == (raised, recorder.calls)


def test_a_connection_passes_its_arguments_through() -> None:
    """A TCP connection is asked of the wrapped backend with every argument given."""
    backend = _Backend()
    options = [(1, 2, 3)]
    _deadline_io._Backend(backend).connect_tcp("127.0.0.1", 80, 2.0, "127.0.0.2", options)
    assert [("connect_tcp", "127.0.0.1", 80, 2.0, "127.0.0.2", options)] == backend.calls


def test_a_unix_connection_passes_its_arguments_through() -> None:
    """A Unix-socket connection is asked of the wrapped backend with every argument given."""
    backend = _Backend()
    options = [(1, 2, 3)]
    _deadline_io._Backend(backend).connect_unix_socket("/run/s", 2.0, options)
    assert [("connect_unix_socket", "/run/s", 2.0, options)] == backend.calls


def test_a_unix_connections_stream_is_bounded(clock: list[float]) -> None:
    """A stream of a Unix-socket connection has its reads cut to the deadline too."""
    backend = _Backend()
    stream = _deadline_io._Backend(backend).connect_unix_socket("/run/s")
    with at(107.0):
        stream.read(5)
    assert ("read", 5, 7.0) == backend.calls[-1]


def test_sleep_is_the_wrapped_backends() -> None:
    """The backend's sleep is the wrapped backend's, with the same seconds."""
    backend = _Backend()
    _deadline_io._Backend(backend).sleep(0.25)
    assert [("sleep", 0.25)] == backend.calls


def test_a_streams_extra_information_and_close_are_the_wrapped_streams() -> None:
    """``get_extra_info`` and ``close`` reach the wrapped stream, and the information comes
    back."""
    backend = _Backend()
    stream = _deadline_io._Backend(backend).connect_tcp("127.0.0.1", 1)
    info = stream.get_extra_info("socket")
    stream.close()
    expected = ("extra", [("get_extra_info", "socket"), ("close",)])
    assert expected == (info, backend.calls[1:])


def test_tls_is_started_with_the_given_context_and_name() -> None:
    """Starting TLS hands the wrapped stream the context, the server name and the timeout."""
    backend = _Backend()
    stream = _deadline_io._Backend(backend).connect_tcp("127.0.0.1", 1)
    context = ssl.create_default_context()
    stream.start_tls(context, "tempo.example", 3.0)
    assert ("start_tls", context, "tempo.example", 3.0) == backend.calls[-1]


def test_the_stream_tls_gives_is_bounded_too(clock: list[float]) -> None:
    """The stream that starting TLS gives has its reads cut to the deadline too."""
    backend = _Backend()
    stream = _deadline_io._Backend(backend).connect_tcp("127.0.0.1", 1)
    secure = stream.start_tls(ssl.create_default_context(), "h", 3.0)
    with at(102.0):
        secure.read(7, 9.0)
    assert ("read", 7, 2.0) == backend.calls[-1]


def _answer() -> httpcore.MockBackend:
    return httpcore.MockBackend([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 2\r\n\r\n", b"ok"])


def test_a_bound_client_fails_a_request_once_its_deadline_is_reached() -> None:
    """Through a client bound by ``bound``, a request made past the deadline fails with a
    connect timeout (the same client answers outside any deadline: the next test)."""
    client = httpx.Client()
    client._transport._pool._network_backend = _answer()  # type: ignore[attr-defined]
    bound(client)
    with client, at(time.monotonic() - 1), pytest.raises(httpx.ConnectTimeout):
        client.get("http://tempo.invalid/")


def test_a_bound_client_answers_outside_any_deadline() -> None:
    """Outside ``at``, a bound client's request goes through as it would unbound."""
    client = httpx.Client()
    client._transport._pool._network_backend = _answer()  # type: ignore[attr-defined]
    bound(client)
    with client:
        assert b"ok" == client.get("http://127.0.0.1:9/").content


def test_a_proxy_transport_of_a_bound_client_is_bounded_too() -> None:
    """A transport mounted for some URLs (a proxy from the environment) is bounded too."""
    transport = httpx.HTTPTransport()
    transport._pool._network_backend = _answer()
    client = httpx.Client(mounts={"http://": transport})
    bound(client)
    with client, at(time.monotonic() - 1), pytest.raises(httpx.ConnectTimeout):
        client.get("http://tempo.invalid/")


def test_binding_twice_wraps_the_backend_once() -> None:
    """A client bound twice cuts each operation once: the second ``bound`` changes nothing."""
    client = httpx.Client()
    bound(client)
    first = client._transport._pool._network_backend  # type: ignore[attr-defined]
    bound(client)
    with client:
        assert first is client._transport._pool._network_backend  # type: ignore[attr-defined]


def test_a_client_with_another_transport_is_left_alone() -> None:
    """A client given a transport without a connection pool (a test's mock) is not changed
    and still answers."""
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(204)))
    bound(client)
    with client, at(time.monotonic() - 1):
        assert 204 == client.get("http://tempo.invalid/").status_code
