"""Remote span sources against hostile backends, and credentials in source URLs.

Real local HTTP servers (threads started here, stopped in teardown) stand in for Tempo: one
trickles a byte at a time, one streams an endless body, one answers a search with a thousand ids,
others answer with a few megabytes that would decode to far more (the real answer of
tests/fixtures/tempo with a million attributes spliced in, among others).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from http_stub_support import serving_in_thread
from reliability_support import taskdaemon
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.errors import SettingsError, SpanSourceError
from taskdaemon.pipeline.tracking import JaegerSource, TempoSource, open_source
from taskdaemon.pipeline.tracking._remote import (
    RemoteLimits,
    display_url,
    read_bounded,
    split_credentials,
)
from taskdaemon.pipeline.tracking.spans import MAX_SPAN_ITEMS

RUN_ID = "0123456789abcdef0123456789abcdef"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tempo"


class _Server:
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
def serving(handle: Callable[..., None]) -> Iterator[_Server]:
    """Serve ``handle(server, handler, stop)`` on 127.0.0.1 for the block."""
    holder: list[_Server] = []
    server = _Server(lambda handler, stop: handle(holder[0], handler, stop))
    holder.append(server)
    with serving_in_thread(server.httpd):
        try:
            yield server
        finally:
            server.stop.set()


def _reply(server: _Server, handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    server.write(handler, data)


def _run_trace(trace_id: str, start_ns: int) -> dict[str, Any]:
    """A Tempo v1 answer holding one finished run span."""
    attributes = [
        {"key": t.CICD_PIPELINE_ACTION_NAME, "value": {"stringValue": t.RUN_ACTION}},
        {"key": t.CICD_PIPELINE_NAME, "value": {"stringValue": "p"}},
        {"key": t.CICD_PIPELINE_RESULT, "value": {"stringValue": t.RESULT_SUCCESS}},
    ]
    span = {
        "traceId": trace_id,
        "spanId": "00000000000000aa",
        "name": "RUN p",
        "kind": 2,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 1_000_000),
        "attributes": attributes,
    }
    return {"batches": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}


# --- an overall deadline --------------------------------------------------------------------------


@pytest.mark.slow
def test_runs_show_gives_up_on_a_trickling_backend_at_its_deadline(home: Path) -> None:
    """A backend sending one byte every 0.2 s (never tripping a read timeout) makes ``runs
    show`` fail at TASKDAEMON_SOURCE_TIMEOUT with one line, instead of hanging for the whole
    body."""

    def trickle(server: _Server, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        while not stop.wait(0.2):
            server.write(handler, b" ")

    with serving(trickle) as server:
        done = taskdaemon(
            home,
            "runs",
            "show",
            RUN_ID,
            "--source",
            f"tempo+{server.url}",
            timeout=60,
            TASKDAEMON_SOURCE_TIMEOUT="1",
        )
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

    def trickle(server: _Server, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
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


def _answering(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Callable[..., None]:
    """A ``serving`` handler answering ``status``, ``headers`` (JSON's content type unless
    given) and ``body``, with its length."""
    headers = {"Content-Type": "application/json"} if headers is None else headers

    def answer(server: _Server, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            handler.send_header(name, value)
        handler.end_headers()
        server.write(handler, body)

    return answer


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

    answer = _answering(
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

    def trickle(server: _Server, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
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
        serving(_answering(body, status=203, headers={"X-Kind": "test"})) as server,
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

    def stall(server: _Server, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
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


# --- a cap on results -----------------------------------------------------------------------------


def test_tempo_search_fetches_at_most_limit_traces_newest_first() -> None:
    """A search answered with 1,000 ids fetches only ``limit`` traces, the newest, and stops
    asking the v2 endpoint once an old Tempo answered on v1: 1 + 1 + limit requests."""
    ids = [f"{number:032x}" for number in range(1, 1001)]
    start = {trace_id: 1_700_000_000_000_000_000 + n * 10**9 for n, trace_id in enumerate(ids)}

    def tempo(server: _Server, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        path = handler.path.split("?", 1)[0]
        if path == "/api/search":
            found = [{"traceID": i, "startTimeUnixNano": str(start[i])} for i in ids]
            _reply(server, handler, 200, {"traces": found})
        elif path.startswith("/api/traces/"):
            trace_id = path.rsplit("/", 1)[1]
            _reply(server, handler, 200, _run_trace(trace_id, start[trace_id]))
        else:
            _reply(server, handler, 404, {"error": "not found"})

    with serving(tempo) as server, TempoSource(server.url) as source:
        runs = source.search(since=1_600_000_000, until=1_800_000_000, limit=5)
        paths = [path.split("?", 1)[0] for path, _ in server.requests]
    expected = (ids[-5:][::-1], 7, 1, 1)
    actual = (
        [run.run_id for run in runs],
        len(paths),
        paths.count("/api/search"),
        sum(p.startswith("/api/v2/") for p in paths),
    )
    assert expected == actual


def test_a_refused_search_names_its_url_in_at_most_200_characters() -> None:
    """The search's URL holds the filters a client sent (the web page's ``pipeline``, up to
    16 KiB): a Tempo that refuses it is named by the URL's start, not the whole query."""

    def refusing(server: _Server, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        _reply(server, handler, 400, {"error": "query too long"})

    with (
        serving(refusing) as server,
        TempoSource(server.url) as source,
        pytest.raises(SpanSourceError) as caught,
    ):
        source.search(pipeline="A" * 12_000)
    message = str(caught.value)
    assert (message.startswith(server.url), "A" * 200 in message, len(message) < 600) == (
        True,
        False,
        True,
    ), message[:600]


# --- a cap on the body ----------------------------------------------------------------------------


def test_an_endless_body_is_refused_at_the_size_cap() -> None:
    """A response that never ends is read only up to the cap, then refused with a one-line
    error naming the limit; the client stops reading (the server sees it go), so memory stays
    near the cap."""

    def endless(server: _Server, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()  # HTTP/1.0, no length: the body runs until the connection closes
        chunk = b"[" + b" " * 65535
        while not stop.is_set():
            server.write(handler, chunk)

    limits = RemoteLimits(deadline=30.0, max_bytes=2**20)
    with serving(endless) as server, TempoSource(server.url, limits=limits) as source:
        with pytest.raises(SpanSourceError) as caught:
            source.get_trace(RUN_ID)
        message = str(caught.value)
    expected = (True, True, 1)
    actual = (
        "response larger than 1048576 bytes" in message,
        server.sent < 64 * 2**20,
        len(message.splitlines()),
    )
    assert expected == actual, (message, server.sent)


@pytest.mark.slow
def test_runs_show_refuses_an_endless_body_in_one_line(home: Path) -> None:
    """``runs show`` against an endless body exits 2 with one line once
    TASKDAEMON_SOURCE_MAX_BYTES is read."""

    def endless(server: _Server, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.end_headers()
        while not stop.is_set():
            server.write(handler, b" " * 65536)

    with serving(endless) as server:
        done = taskdaemon(
            home,
            "runs",
            "show",
            RUN_ID,
            "--source",
            f"tempo+{server.url}",
            timeout=60,
            TASKDAEMON_SOURCE_MAX_BYTES="1000000",
        )
    expected = (1, 1, True)  # a source that cannot answer: exit 1
    actual = (
        done.returncode,
        len(done.stderr.splitlines()),
        "response larger than 1000000 bytes" in done.stderr,
    )
    assert expected == actual, done.stderr


# --- answers dense in values ----------------------------------------------------------------------

#: The real Tempo v2 answer (tests/fixtures/tempo/README.md) and the run id of its trace.
TEMPO_V2 = (FIXTURES / "api_v2_traces_response.json").read_bytes()
TEMPO_V2_RUN = "5b8efff798038103d269b633813fc700"
#: Where its one span's attribute list opens, to splice attributes into.
_ATTRIBUTES = b'"attributes":['


def _with_attributes(attribute: bytes, count: int) -> bytes:
    """The real v2 answer with ``count`` more attributes ``attribute`` (each followed by a
    comma) on its span, ahead of its own."""
    head, _, tail = TEMPO_V2.rpartition(_ATTRIBUTES)
    return head + _ATTRIBUTES + attribute * count + tail


#: Answers of a few megabytes that each decode to tens or hundreds of megabytes: 2 million
#: empty lists, lists nested 90 deep (within the depth limit) side by side, and a million
#: attributes of 23 bytes on the real answer's span.
DENSE_ANSWERS = {
    "empty lists": b"[" + b"[]," * 2_000_000 + b"[]]",
    "nested lists": b"[" + (b"[" * 90 + b"]" * 90 + b",") * 30_000 + b"[]]",
    "tiny attributes": _with_attributes(b'{"key":"k","value":{}},', 1_000_000),
}


@pytest.mark.parametrize("kind", ["tempo", "jaeger"])
@pytest.mark.parametrize("answer", sorted(DENSE_ANSWERS))
def test_an_answer_dense_in_values_is_refused_before_it_is_decoded(kind: str, answer: str) -> None:
    """Tempo and Jaeger alike refuse an answer with more values than one per 8 bytes, in one
    line naming the URL and the count, whatever its shape."""
    body = DENSE_ANSWERS[answer]
    opened = TempoSource if kind == "tempo" else JaegerSource
    with serving(_answering(body)) as server, opened(server.url) as source:
        with pytest.raises(SpanSourceError) as caught:
            source.get_trace(TEMPO_V2_RUN)
        message = str(caught.value)
    expected = (True, True, 1)
    actual = (
        message.startswith(server.url),
        f"JSON body holds {_values(body)} values in {len(body)} bytes" in message,
        len(message.splitlines()),
    )
    assert expected == actual, message


def _values(body: bytes) -> int:
    """The values of one of the answers above (its strings hold no bracket nor comma)."""
    return body.count(b"[") + body.count(b"{") + body.count(b",")


def test_a_real_answer_with_many_real_attributes_is_read_within_the_bound() -> None:
    """The real answer with 50,000 more attributes as Tempo writes them (a key and a string
    value each) is not refused: it is read, its span keeping the first ``MAX_SPAN_ITEMS``
    attributes (``spans.bounded``); the span's own one, after them, is counted as not read."""
    attribute = b'{"key":"stage.output.field","value":{"stringValue":"a value, of text"}},'
    body = _with_attributes(attribute, 50_000)
    with serving(_answering(body)) as server, TempoSource(server.url) as source:
        (span,) = source.get_trace(TEMPO_V2_RUN)
    assert ({"stage.output.field": "a value, of text"}, 50_001 - MAX_SPAN_ITEMS) == (
        dict(span.attributes),
        span.dropped_attributes,
    )


@pytest.mark.slow
def test_runs_show_refuses_a_dense_answer_in_one_line(home: Path) -> None:
    """``runs show`` against an answer of 2 million empty lists exits 1 with one line."""
    body = DENSE_ANSWERS["empty lists"]
    with serving(_answering(body)) as server:
        done = taskdaemon(
            home, "runs", "show", TEMPO_V2_RUN, "--source", f"tempo+{server.url}", timeout=60
        )
    expected = (1, 1, True)
    actual = (
        done.returncode,
        len(done.stderr.splitlines()),
        f"holds {_values(body)} values in {len(body)} bytes" in done.stderr,
    )
    assert expected == actual, done.stderr


@pytest.mark.slow
def test_runs_list_refuses_a_dense_otlp_json_file_in_one_line(home: Path) -> None:
    """An OTLP-JSON file holding a span with a million tiny attributes is refused by ``runs
    list`` in one line (a line of JSON lines that dense is skipped with a warning, as any
    undecodable line)."""
    path = home / "dense.json"
    body = DENSE_ANSWERS["tiny attributes"]
    path.write_bytes(body)
    done = taskdaemon(home, "runs", "list", "--source", f"otlp-json://{path}", timeout=60)
    expected = (1, 1, True)
    actual = (
        done.returncode,
        len(done.stderr.splitlines()),
        f"{path}: holds {_values(body)} values in {len(body)} bytes" in done.stderr,
    )
    assert expected == actual, done.stderr


@pytest.mark.parametrize("value", ["0", "-1", "abc", "inf", "nan"])
def test_invalid_limits_are_one_line_errors(value: str) -> None:
    """A limit that is not a finite positive number is a wrong setting, naming the variable."""
    with pytest.raises(SettingsError, match="TASKDAEMON_SOURCE_TIMEOUT"):
        RemoteLimits.from_env({"TASKDAEMON_SOURCE_TIMEOUT": value})


@pytest.mark.parametrize("value", ["0", "-1", "2.5", "1e3", "many"])
def test_an_invalid_size_cap_is_a_one_line_error(value: str) -> None:
    """A size cap that is not a whole number above 0 is a wrong setting, naming the variable."""
    with pytest.raises(SettingsError, match="TASKDAEMON_SOURCE_MAX_BYTES"):
        RemoteLimits.from_env({"TASKDAEMON_SOURCE_MAX_BYTES": value})


def test_limits_are_read_from_their_variables_below_one_too() -> None:
    """Both limits are taken from their variables (a deadline under a second and a cap of one
    byte included); unset or blank is the default."""
    given = {"TASKDAEMON_SOURCE_TIMEOUT": " 0.25 ", "TASKDAEMON_SOURCE_MAX_BYTES": "1"}
    blank = {"TASKDAEMON_SOURCE_TIMEOUT": " ", "TASKDAEMON_SOURCE_MAX_BYTES": ""}
    assert (
        RemoteLimits.from_env(given),
        RemoteLimits.from_env(blank),
        RemoteLimits.from_env({}),
    ) == (RemoteLimits(deadline=0.25, max_bytes=1), RemoteLimits(), RemoteLimits())


# --- credentials ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("tempo+http://user:s3cret@tempo:3200/x", "tempo+http://user:[REDACTED]@tempo:3200/x"),
        ("tempo+https://u:p%40ss@[::1]:3200", "tempo+https://u:[REDACTED]@[::1]:3200"),
        ("jaeger+http://u:a@b@host?org=1", "jaeger+http://u:[REDACTED]@host?org=1"),
        ("tempo+http://user@tempo:3200", "tempo+http://user@tempo:3200"),
        ("tempo+http://user:pa:ss@tempo", "tempo+http://user:[REDACTED]@tempo"),
        ("tempo+http://Xu:s3cret@tempo/a@b/c", "tempo+http://Xu:[REDACTED]@tempo/a@b/c"),
        (
            "tempo+http://u:s3cret@tempo/x?to=http://a:b@c",
            "tempo+http://u:[REDACTED]@tempo/x?to=http://a:b@c",
        ),
        ("://user:s3cret@tempo", "://user:[REDACTED]@tempo"),
        ("tempo+http://tempo:3200/a@b", "tempo+http://tempo:3200/a@b"),
        ("sqlite:///var/spans.db", "sqlite:///var/spans.db"),
    ],
)
def test_display_url_hides_only_the_password(url: str, shown: str) -> None:
    """A password in a URL's user information is shown as ``[REDACTED]``; the rest stays."""
    assert shown == display_url(url)


def test_credentials_go_as_basic_auth_and_never_into_messages() -> None:
    """A source URL's user and password reach the backend as HTTP basic auth; the error a
    failing backend causes names the URL without them."""

    def failing(server: _Server, handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        _reply(server, handler, 500, {"error": "boom"})

    with serving(failing) as server:
        url = server.url.replace("http://", "tempo+http://user:s3cret@")
        source = open_source(url, backoff=0.0)
        with source, pytest.raises(SpanSourceError) as caught:
            source.get_trace(RUN_ID)
        authorizations = {auth for _, auth in server.requests}
    expected_auth = "Basic " + base64.b64encode(b"user:s3cret").decode()
    expected = ({expected_auth}, False, True)
    actual = (authorizations, "s3cret" in str(caught.value), "HTTP 500" in str(caught.value))
    assert expected == actual


@pytest.mark.parametrize(
    "url",
    [
        "tempo+http://user:s3cret@host:99999",
        "tempo+http://user:s3cret@",
        "nosuch://user:s3cret@host",
    ],
)
def test_bad_source_urls_are_refused_without_their_password(url: str) -> None:
    """A source URL refused as malformed or unknown is echoed without its password, its user
    still shown (``user:[REDACTED]@``, for an unknown scheme as for a bad host or port)."""
    with pytest.raises(SpanSourceError) as caught:
        open_source(url)
    assert ("s3cret" in str(caught.value), "user:" in str(caught.value)) == (False, True)


@pytest.mark.parametrize(
    ("url", "split"),
    [
        ("http://user:p%40ss@tempo:3200/x", ("http://tempo:3200/x", ("user", "p@ss"))),
        ("http://us%40er:pw@tempo", ("http://tempo", ("us@er", "pw"))),
        ("http://u:a@b@tempo/x@y", ("http://tempo/x@y", ("u", "a@b"))),
        ("http://:p:w@tempo", ("http://tempo", ("", "p:w"))),
        ("http://tempo/x@y", ("http://tempo/x@y", None)),
    ],
)
def test_split_credentials_decodes_percent_escapes(
    url: str, split: tuple[str, tuple[str, str] | None]
) -> None:
    """The URL without its user information, and the user and password it held, decoded as
    the HTTP client reads them: the last ``@`` of the authority ends them, the first ``:``
    parts them (``user:p%40ss@host`` gives ``("user", "p@ss")``)."""
    assert split == split_credentials(url)
