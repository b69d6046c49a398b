"""A local stand-in for an OTLP/HTTP collector: a loopback server whose every POST gets the
answer a test writes, for the tests of how the exporters read a collector's answer and of
what they send."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from http_stub_support import serving_in_thread


@contextlib.contextmanager
def answering_posts(
    answer: Callable[[BaseHTTPRequestHandler], None],
    received: list[bytes] | None = None,
    port: int = 0,
    headers: list[dict[str, str]] | None = None,
) -> Iterator[str]:
    """A server on 127.0.0.1 that reads each POST's body (appended to ``received`` when
    given: what the exporters sent; its headers to ``headers``), then calls
    ``answer(handler)`` (a client that went away is not an error: it is what the bounds under
    test do); yields its base URL, and stops and joins the server on exit. ``port``: one a
    client was already refused on (0: any free)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if received is not None:
                received.append(body)
            if headers is not None:
                headers.append(dict(self.headers.items()))
            with contextlib.suppress(OSError):
                answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.block_on_close = True
    with serving_in_thread(server):
        yield f"http://127.0.0.1:{server.server_port}"


def answered(status: int) -> Callable[[BaseHTTPRequestHandler], None]:
    """An OTLP/HTTP collector's answer with ``status`` and an empty body."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/x-protobuf")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer
