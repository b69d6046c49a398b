"""Stand-ins for hostile Tempo and Jaeger backends, shared by the remote sources' reliability
tests: a local HTTP server answering as the test's handler says, served in a thread for a
block."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from http_stub_support import serving_in_thread
from reliability_support import taskdaemon

RUN_ID = "0123456789abcdef0123456789abcdef"


class Backend:
    """A local HTTP server whose ``handle(request)`` answers each GET; ``stop`` is set at
    teardown so handlers that stream can end."""

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler, threading.Event], None]):
        self.stop = threading.Event()
        self.requests: list[tuple[str, str | None]] = []
        self.sent = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("Authorization")))
                # The client giving up (a broken pipe) is what the bounds are for.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    handle(self, outer.stop)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = False  # server_close joins every handler thread
        self.httpd.block_on_close = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def write(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        handler.wfile.write(data)
        handler.wfile.flush()
        self.sent += len(data)


@contextmanager
def serving(handle: Callable[..., None]) -> Iterator[Backend]:
    """Serve ``handle(server, handler, stop)`` on 127.0.0.1 for the block."""
    holder: list[Backend] = []
    server = Backend(lambda handler, stop: handle(holder[0], handler, stop))
    holder.append(server)
    with serving_in_thread(server.httpd):
        try:
            yield server
        finally:
            server.stop.set()


def answering(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Callable[..., None]:
    """A ``serving`` handler answering ``status``, ``headers`` (JSON's content type unless
    given) and ``body``, with its length."""
    headers = {"Content-Type": "application/json"} if headers is None else headers

    def answer(server: Backend, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            handler.send_header(name, value)
        handler.end_headers()
        server.write(handler, body)

    return answer


def show_run(
    home: Path, backend: Backend, run_id: str = RUN_ID, **env: str
) -> subprocess.CompletedProcess[str]:
    """``taskdaemon runs show RUN_ID`` with ``backend`` as its Tempo source, to its end."""
    return taskdaemon(
        home, "runs", "show", run_id, "--source", f"tempo+{backend.url}", timeout=60, **env
    )
