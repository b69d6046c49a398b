"""The OTLP/HTTP exporters' session (``cli/bounded_session.py``) against local servers, and
the one a credential provider gives them in its place."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from cli_support import (
    BEARER_SESSION,
    ONE_STAGE_PIPELINE,
    PROVIDED_AUTHORIZATION,
    credential_provider,
    pythonpath_with,
    taskdaemon,
    write,
)
from collector_support import answered, answering_posts
from taskdaemon.pipeline.cli.bounded_session import (
    BoundedSession,
    ResponseTooLargeError,
    bounded_session,
)


@contextmanager
def _answering(answer: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    """A collector whose every POST gets ``answer(handler)``; yields its traces URL."""
    with answering_posts(answer) as base:
        yield f"{base}/v1/traces"


def test_a_small_answer_is_returned_whole() -> None:
    """An answer within the bounds comes back with its status and its whole body."""

    def small(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    with _answering(small) as url, BoundedSession() as session:
        response = session.post(url, data=b"x", timeout=5)
    assert (200, b"ok") == (response.status_code, response.content)


def test_an_answer_past_the_cap_is_refused() -> None:
    """An answer of 1 MiB and one byte, to a session capped at 1 MiB, raises
    ResponseTooLargeError."""

    def big(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(2**20 + 1))
        handler.end_headers()
        handler.wfile.write(b"\0" * (2**20 + 1))

    with (
        _answering(big) as url,
        BoundedSession(max_bytes=2**20) as session,
        pytest.raises(ResponseTooLargeError),
    ):
        session.post(url, data=b"x", timeout=5)


def _body(size: int, declared: int | None = None) -> Callable[[BaseHTTPRequestHandler], None]:
    """An answer handler sending ``size`` bytes of body with a Content-Length of
    ``declared`` (``size`` by default)."""

    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(size if declared is None else declared))
        handler.end_headers()
        handler.wfile.write(b"\0" * size)

    return send


def test_an_answer_of_exactly_the_cap_is_returned_whole() -> None:
    """An answer of exactly ``max_bytes`` bytes is within the bound."""
    with _answering(_body(10)) as url, BoundedSession(max_bytes=10) as session:
        response = session.post(url, data=b"x", timeout=5)
    assert b"\0" * 10 == response.content


def test_the_refusal_names_the_status_and_the_cap() -> None:
    """The error for an answer past the cap says its status and the cap."""
    with (
        _answering(_body(11)) as url,
        BoundedSession(max_bytes=10) as session,
        pytest.raises(ResponseTooLargeError) as raised,
    ):
        session.post(url, data=b"x", timeout=5)
    assert "200 answer larger than 10 bytes; not read further" == str(raised.value)


def test_an_answer_past_the_cap_is_refused_before_its_end() -> None:
    """An answer that sends one byte past the cap, then holds its (declared) rest back, is
    refused at once: the body is read as it comes, never waited for whole."""
    release = threading.Event()
    send = _body(2**20 + 1, declared=2**21)

    def unfinished(handler: BaseHTTPRequestHandler) -> None:
        send(handler)
        handler.wfile.flush()
        release.wait(60)

    with _answering(unfinished) as url, BoundedSession(max_bytes=2**20) as session:
        try:
            session.post(url, data=b"x", timeout=10)
            outcome = "answered"
        except requests.exceptions.RequestException as error:
            outcome = type(error).__name__
        finally:
            release.set()
    assert "ResponseTooLargeError" == outcome


def test_a_body_trickled_past_the_timeout_is_a_read_timeout() -> None:
    """A body sent a byte every 0.1 s, which never trips the per-read timeout, ends the
    request as a ReadTimeout once the request's timeout (1 s) has passed."""

    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"\0")
            handler.wfile.flush()
            time.sleep(0.1)

    with (
        _answering(trickle) as url,
        BoundedSession() as session,
        pytest.raises(requests.exceptions.ReadTimeout, match=r"^answer not read whole within 1 s$"),
    ):
        session.post(url, data=b"x", timeout=1)


def test_a_credential_provider_session_is_left_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a credential-provider variable set for traces, no session is given for traces
    (the SDK loads the user's), and one still is for logs."""
    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER", "mine")
    expected = (True, True)
    actual = (
        bounded_session("TRACES") is None,
        isinstance(bounded_session("LOGS"), BoundedSession),
    )
    assert expected == actual


def test_a_trickled_body_is_given_up_before_its_end() -> None:
    """A body trickled a byte every 0.1 s ends the request as a ReadTimeout soon after its
    timeout (1 s), long before 300 bytes have come: each piece is checked as it arrives, not
    once 64 KiB (or the declared end) have come."""
    sent = [0]
    release = threading.Event()

    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        while sent[0] < 300 and not release.wait(0.1):
            handler.wfile.write(b"\0")
            handler.wfile.flush()
            sent[0] += 1
        release.wait(60)

    with _answering(trickle) as url, BoundedSession() as session:
        try:
            session.post(url, data=b"x", timeout=1)
            outcome = "answered"
        except requests.exceptions.RequestException as error:
            outcome = type(error).__name__
        finally:
            at_the_end = sent[0]
            release.set()
    assert ("ReadTimeout", True) == (outcome, at_the_end < 300)


def test_a_gzip_answer_comes_back_decoded() -> None:
    """An answer sent gzip-encoded comes back decoded, as requests gives it."""

    def compressed(handler: BaseHTTPRequestHandler) -> None:
        body = gzip.compress(b"partial success")
        handler.send_response(200)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with _answering(compressed) as url, BoundedSession() as session:
        response = session.post(url, data=b"x", timeout=5)
    assert b"partial success" == response.content


def test_a_chunked_answer_comes_back_whole() -> None:
    """An answer sent in chunks comes back as its whole body."""

    def chunked(handler: BaseHTTPRequestHandler) -> None:
        handler.protocol_version = "HTTP/1.1"
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")

    with _answering(chunked) as url, BoundedSession() as session:
        response = session.post(url, data=b"x", timeout=5)
    assert b"abcde" == response.content


def _outcome(answer: Callable[[BaseHTTPRequestHandler], None], timeout: float = 5) -> str:
    """The exception a request to a collector answering with ``answer`` raises, as
    ``Name(NameOfWhatItHolds)``: requests' exception holding urllib3's, as ``iter_content``
    raises it (the exporter's log shows both)."""
    with _answering(answer) as url, BoundedSession() as session:
        try:
            session.post(url, data=b"x", timeout=timeout)
        except requests.exceptions.RequestException as error:
            cause = error.args[0] if error.args else None
            return f"{type(error).__name__}({type(cause).__name__})"
    return "answered"


def test_a_body_cut_short_is_a_chunked_encoding_error() -> None:
    """A connection closed before the declared body's end raises requests'
    ChunkedEncodingError holding urllib3's error, as ``iter_content`` reports it."""

    def short(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "10")
        handler.end_headers()
        handler.wfile.write(b"12345")

    assert "ChunkedEncodingError(ProtocolError)" == _outcome(short)


def test_a_body_that_cannot_be_decoded_is_a_content_decoding_error() -> None:
    """A body declared gzip that is not raises requests' ContentDecodingError holding
    urllib3's error."""

    def garbled(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", "10")
        handler.end_headers()
        handler.wfile.write(b"not gzip!!")

    assert "ContentDecodingError(DecodeError)" == _outcome(garbled)


def test_a_body_stalled_past_the_read_timeout_is_a_connection_error() -> None:
    """A body that stops coming for longer than the per-read timeout raises requests'
    ConnectionError holding urllib3's read timeout, as ``iter_content`` reports it."""
    release = threading.Event()

    def stalled(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "10")
        handler.end_headers()
        handler.wfile.write(b"12345")
        handler.wfile.flush()
        release.wait(60)

    try:
        outcome = _outcome(stalled, timeout=0.5)
    finally:
        release.set()
    assert "ConnectionError(ReadTimeoutError)" == outcome


@pytest.mark.slow
@pytest.mark.parametrize(
    "variable",
    [
        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
    ],
)
def test_a_run_exports_through_the_credential_provider_s_session(
    home: Path, tmp_path: Path, variable: str
) -> None:
    """A real ``taskdaemon run`` exporting its spans over OTLP/HTTP with a credential provider
    named (for every signal, or for traces) sends them with the provider's session, so its
    credentials (here an ``Authorization`` header) reach the collector; without it, none."""
    path = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    folder = credential_provider(tmp_path / "provider")

    def sent(provider: dict[str, str]) -> tuple[int, str, set[str | None]]:
        """A run's exit code, its stderr, and the Authorization headers of its exports."""
        seen: list[dict[str, str]] = []
        with answering_posts(answered(200), headers=seen) as collector:
            run = taskdaemon(
                home,
                "run",
                "-q",
                str(path),
                OTEL_TRACES_EXPORTER="otlp",
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                OTEL_EXPORTER_OTLP_ENDPOINT=collector,
                PYTHONPATH=pythonpath_with(folder),
                **provider,
            )
        said = {{k.lower(): v for k, v in headers.items()}.get("authorization") for headers in seen}
        return run.returncode, run.stderr, said

    assert [(0, "", {PROVIDED_AUTHORIZATION}), (0, "", {None})] == [
        sent({variable: BEARER_SESSION}),
        sent({}),
    ]
