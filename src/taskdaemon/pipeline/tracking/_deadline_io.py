"""A remote query's deadline on every socket read and write of its HTTP client.

httpx's timeouts bound each socket operation, not a response: a backend that sends its
status line or headers a byte at a time never trips them, and ``read_bounded``'s own check of
the deadline only starts with the body. So the remote sources' client reads and writes
through a network backend whose streams shorten each operation's timeout to what is left of
the calling thread's deadline (set by ``at`` around a request) and fail at once past it, the
way httpcore reports any timeout (``httpx.ReadTimeout`` and its kin to the caller).

httpx offers no public way to hand its default transport a network backend, so ``bound``
replaces the one of each connection pool the client built (its own transport, and the proxy
transports its environment configured). A client given some other transport (a test's mock)
is left alone. The deadline is per thread: a source may be queried from several threads at
once (the web page's ``ui``), and httpcore's sync I/O runs in the calling thread.

A host name is resolved here too, not by the socket's connect: ``getaddrinfo`` blocks in C with
no timeout, so a resolver that never answers held ``runs list`` past every deadline. Each
look-up runs on a daemon thread of its own (:func:`_resolve`), awaited for the connect
timeout (already shortened to the deadline); past it the thread is abandoned (it ends when the
resolver answers, and never holds the process at exit) and the connection fails as a connect
timeout naming the host. The addresses found are tried in their order, as
``socket.create_connection`` does; TLS still names the host, which httpcore passes apart.

An abandoned look-up's thread stays until the system resolver gives up, and ``watch`` polls
again and again: so a name has at most one look-up in flight in the process, which a later
try (a poll's, another thread's) waits for, within its own deadline, rather than starting
another; its answer serves every try waiting for it and is not kept after (the next look-up
asks the resolver afresh, as ``getaddrinfo`` would). At most :data:`MAX_LOOK_UPS` names are
looked up at once: past that a try fails at once as a connect error naming the hanging
look-ups, rather than adding a thread. Decision: the cap refuses rather than queues, because a
queued try would wait for threads that may never end, and the query's retries and the next
poll ask again once a look-up ends.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

__all__ = ["at", "bound"]

_current = threading.local()


@contextmanager
def at(deadline: float) -> Iterator[None]:
    """Bound the calling thread's socket operations by ``deadline`` (``time.monotonic()``
    seconds) for the block."""
    outer = getattr(_current, "deadline", None)
    _current.deadline = deadline
    try:
        yield
    finally:
        _current.deadline = outer


def _within(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the thread's deadline; ``expired`` past it."""
    deadline: float | None = getattr(_current, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("deadline reached")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _within(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _within(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _within(timeout, httpcore.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _within(timeout, httpcore.ConnectTimeout)
        error: Exception | None = None
        for address in _resolve(host, port, timeout):
            try:
                stream = self._backend.connect_tcp(
                    address,
                    port,
                    _within(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc  # the next address, as socket.create_connection does
                continue
            return _Stream(stream)
        assert error is not None  # _resolve gives at least one address
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _within(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


#: Names looked up at once in the process, at most (module docstring).
MAX_LOOK_UPS = 8

_look_ups_lock = threading.Lock()
_look_ups: dict[str, _LookUp] = {}  # the names looked up now, each by one thread


def _forget_look_ups() -> None:
    """In a forked child: its parent's look-up threads are not there to end, or to free the
    lock."""
    global _look_ups_lock  # noqa: PLW0603 - the child's own lock
    _look_ups_lock = threading.Lock()
    _look_ups.clear()


os.register_at_fork(after_in_child=_forget_look_ups)


class _LookUp:
    """One name's look-up in flight: its thread's answer (a ``getaddrinfo`` list or the
    ``OSError`` it raised), set once, for every try waiting on ``done``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.done = threading.Event()
        self.answer: Any = None

    def run(self) -> None:
        try:
            self.answer = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            self.answer = exc
        finally:
            with _look_ups_lock:
                _look_ups.pop(self.host, None)
            self.done.set()


def _look_up(host: str, port: int) -> _LookUp:
    """The look-up of ``host`` in flight, started on a thread of its own when there is none;
    ``httpcore.ConnectError`` when :data:`MAX_LOOK_UPS` others are in flight."""
    with _look_ups_lock:
        look_up = _look_ups.get(host)
        if look_up is not None:
            return look_up
        if len(_look_ups) >= MAX_LOOK_UPS:
            pending = ", ".join(sorted(_look_ups)[:3])
            raise httpcore.ConnectError(
                f"{host} not looked up: {len(_look_ups)} names' look-ups still pending "
                f"({pending}…), at most {MAX_LOOK_UPS} at once (name resolution)"
            )
        look_up = _look_ups[host] = _LookUp(host, port)
        thread = threading.Thread(target=look_up.run, name="taskdaemon-resolve", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: no look-up in flight either
            del _look_ups[host]
            raise httpcore.ConnectError(f"{host} not looked up: no thread") from None
    return look_up


def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses of ``host`` (itself when it is one), from its look-up in flight or a new
    one (:func:`_look_up`), awaited at most ``timeout`` seconds; ``httpcore.ConnectTimeout``
    past it, ``httpcore.ConnectError`` when the look-up fails (module docstring)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    look_up = _look_up(host, port)
    if not look_up.done.wait(timeout):
        raise httpcore.ConnectTimeout(
            f"the address of {host} not found within {timeout:.3g} s (name resolution)"
        )
    if isinstance(look_up.answer, OSError):
        raise httpcore.ConnectError(str(look_up.answer))
    addresses = list(dict.fromkeys(str(entry[4][0]) for entry in look_up.answer))
    if not addresses:
        raise httpcore.ConnectError(f"no address for {host}")
    return addresses


def bound(client: httpx.Client) -> None:
    """Route the sockets of ``client``'s connection pools through the thread's deadline
    (module docstring)."""
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.ConnectionPool) and not isinstance(
            pool._network_backend, _Backend
        ):
            pool._network_backend = _Backend(pool._network_backend)
