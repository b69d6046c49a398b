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
"""

from __future__ import annotations

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
        return _Stream(
            self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        )

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


def bound(client: httpx.Client) -> None:
    """Route the sockets of ``client``'s connection pools through the thread's deadline
    (module docstring)."""
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.ConnectionPool) and not isinstance(
            pool._network_backend, _Backend
        ):
            pool._network_backend = _Backend(pool._network_backend)
