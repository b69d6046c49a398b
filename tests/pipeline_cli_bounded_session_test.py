"""The OTLP/HTTP exporters' session (``cli/bounded_session.py``) against local servers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from collector_support import answering_posts
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
        pytest.raises(requests.exceptions.ReadTimeout),
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
