"""tracking/_remote: compressed answers of a remote backend are inflated within the size cap.

A real local HTTP server (a thread, stopped in teardown) answers ``read_bounded`` with gzip
bombs, stacked encodings, encodings it does not read, and a compressed body followed by an
endless stream. The memory tests run the client in a child process, whose peak RSS (the
kernel's ``VmHWM``) is its own.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from http_stub_support import serving_in_thread
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking._remote import read_bounded

ANSWER = {"batches": [], "note": "x" * 100}

Handler = Callable[[BaseHTTPRequestHandler, threading.Event], None]


@contextlib.contextmanager
def serving(handle: Handler) -> Iterator[str]:
    """Serve ``handle(handler, stop)`` for each GET on 127.0.0.1; yields the base URL. ``stop``
    is set at teardown, so a handler that streams ends."""
    stop = threading.Event()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                handle(self, stop)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    httpd.daemon_threads = False
    with serving_in_thread(httpd):
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            stop.set()


def answering(body: bytes, encoding: str) -> Handler:
    """A handler answering ``body`` as sent, its ``Content-Encoding`` ``encoding``."""

    def answer(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Encoding", encoding)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def read(url: str, *, max_bytes: int = 1 << 20, deadline_in: float = 30.0) -> Any:
    """The JSON ``read_bounded`` reads from ``url``, or the one-line message it refuses with."""
    with httpx.Client(base_url=url) as client:
        try:
            response = read_bounded(
                client,
                "/x",
                None,
                read_timeout=5.0,
                deadline_at=time.monotonic() + deadline_in,
                max_bytes=max_bytes,
                shown="here",
            )
        except SpanSourceError as exc:
            return str(exc)
        return response.json()


def deflated(data: bytes, wbits: int) -> bytes:
    """``data`` compressed in the format ``wbits`` names (zlib's: 9-15 zlib, 25-31 gzip)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "wbits"), [("gzip", 31), ("GZip", 31), ("x-gzip", 31), ("deflate", 15)]
)
def test_an_answer_in_one_encoding_is_read(encoding: str, wbits: int) -> None:
    """gzip (any case, or its old name) and deflate (the zlib format) are inflated."""
    body = deflated(json.dumps(ANSWER).encode(), wbits)
    with serving(answering(body, encoding)) as url:
        assert ANSWER == read(url)


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip, deflate", "br", "compress"])
def test_stacked_or_unknown_encodings_are_refused_in_one_line(encoding: str) -> None:
    """An answer naming more than one encoding, or one not read, is refused naming it."""
    with serving(answering(b"{}", encoding)) as url:
        message = read(url)
    expected = f"here: answer in content encoding {encoding!r}; only one of gzip or deflate is read"
    assert expected == message


def test_a_body_that_is_not_what_its_encoding_says_is_one_line() -> None:
    """A body that is no gzip stream is refused in one line."""
    with serving(answering(b"not gzip at all", "gzip")) as url:
        message = read(url)
    assert (True, 1) == (
        message.startswith("here: answer not valid gzip: "),
        len(message.split("\n")),
    )


@pytest.mark.parametrize(("encoding", "wbits"), [("gzip", 31), ("deflate", 15)])
@pytest.mark.parametrize("lost", [4, 30])
def test_a_compressed_body_cut_short_is_one_line(encoding: str, wbits: int, lost: int) -> None:
    """A compressed answer that stops before its stream's end, its length saying so (a proxy
    cut it), is refused: read as it came, it inflated to part of its JSON, or to nothing, which
    Jaeger's answer of no trace is. A body of no byte at all is read as empty."""
    body = deflated(json.dumps(ANSWER).encode(), wbits)[:-lost]  # its check, or more
    kept = len(body)
    with serving(answering(body, encoding)) as url, serving(answering(b"", encoding)) as empty:
        message = read(url)
        with httpx.Client(base_url=empty) as client:
            nothing = read_bounded(
                client,
                "/x",
                None,
                read_timeout=5.0,
                deadline_at=time.monotonic() + 30,
                max_bytes=1 << 20,
                shown="here",
            ).content
    expected = (
        f"here: answer in {encoding} cut short: its {kept} bytes end before the compressed "
        "stream does"
    )
    assert (expected, b"") == (message, nothing)


def test_what_follows_a_compressed_body_is_not_read() -> None:
    """A gzip body followed by an endless stream (no length: the body runs until the server
    closes) is read as its compressed part; the rest is never read (it would never end, and
    kept it grew without bound until the deadline)."""
    body = gzip.compress(json.dumps(ANSWER).encode())

    def endless(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Encoding", "gzip")
        handler.end_headers()  # HTTP/1.0: no length
        handler.wfile.write(body)
        while not stop.is_set():
            handler.wfile.write(b"\0" * 65536)

    with serving(endless) as url:
        assert ANSWER == read(url, deadline_in=10.0)


#: Serves one answer of ``layers`` gzip layers around 1 GiB of zeros and reads it with a cap
#: of 8 MiB; prints the message and how much the peak RSS grew, in MiB. Deflating the GiB took
#: most of the test's time: after a full flush each MiB of zeros deflates to the same bytes, so
#: one MiB is deflated and its bytes repeated between a gzip header (no name, no time) and the
#: GiB's CRC and size.
_BOMB = """
import gzip, struct, sys, zlib
from pipeline_tracking_remote_encodings_test import answering, read, serving
layers = int(sys.argv[1])
chunk = bytes(1 << 20)
deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
piece = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
crc = 0
for _ in range(1024):
    crc = zlib.crc32(chunk, crc)
header = b"\\x1f\\x8b\\x08\\0\\0\\0\\0\\0\\0\\xff"
body = header + piece * 1024 + deflate.flush() + struct.pack("<II", crc, 1 << 30)
for _ in range(layers - 1):
    body = gzip.compress(body, 9)
def peak():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024
before = peak()
with serving(answering(body, ", ".join(["gzip"] * layers))) as url:
    message = read(url, max_bytes=8 << 20)
print(message)
print(peak() - before)
"""


@pytest.mark.slow
@pytest.mark.parametrize("layers", [1, 2])
def test_a_gzip_bomb_is_refused_holding_little_more_than_the_cap(layers: int) -> None:
    """1 GiB of zeros, gzipped once (1 MB) or twice (2 KB), against a cap of 8 MiB: refused
    in one line, the peak RSS growing by under 32 MiB. Inflated by the HTTP client, a piece
    of 64 KiB of the first grew it by 64 MiB at once, and the second by a GiB."""
    done = subprocess.run(
        [sys.executable, "-c", _BOMB, str(layers)],
        cwd=__file__.rpartition("/")[0],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    message, growth = done.stdout.splitlines()
    expected = (
        "here: response larger than 8388608 bytes (TASKDAEMON_SOURCE_MAX_BYTES); refused"
        if layers == 1
        else "here: answer in content encoding 'gzip, gzip'; only one of gzip or deflate is read"
    )
    assert (expected, True) == (message, int(growth) < 32), done.stderr
