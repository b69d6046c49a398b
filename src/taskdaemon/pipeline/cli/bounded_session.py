"""The HTTP session of the OTLP/HTTP exporters: a collector's answer read within bounds.

The SDK's OTLP/HTTP exporters send through a ``requests.Session``, which reads a response's
whole body into memory, and its timeout bounds each socket read, not the body: an endpoint
that answers an export with an endless body (a misconfigured address, a proxy, a hostile
listener) grew the exporting process by gigabytes while the run went on, until the telemetry
shutdown abandoned the export. An OTLP answer is a small protobuf message (an
``Export*ServiceResponse``: at most a partial-success count and a message), so
:class:`BoundedSession` reads at most ``MAX_RESPONSE_BYTES`` of it, within the request's own
timeout; past either bound the export fails as a failed request does (counted in
``taskdaemon.spans.export_failed`` for spans, logged by the exporter), and the connection is
closed.

A session chosen through the SDK's credential-provider variables
(``OTEL_PYTHON_EXPORTER_OTLP_HTTP[_TRACES|_METRICS|_LOGS]_CREDENTIAL_PROVIDER``) is the user's
own: :func:`bounded_session` then gives None and the exporter loads that one, unbounded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any, Final

import requests
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

__all__ = ["MAX_RESPONSE_BYTES", "BoundedSession", "ResponseTooLargeError", "bounded_session"]

#: Bytes of a collector's answer read at most (an OTLP answer is a few bytes).
MAX_RESPONSE_BYTES: Final = 1 << 20
_CHUNK: Final = 64 * 1024
#: The SDK's variables naming a credential-provider session, generic first, per signal.
_PROVIDER: Final = "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER"
_SIGNAL_PROVIDER: Final = "OTEL_PYTHON_EXPORTER_OTLP_HTTP_{}_CREDENTIAL_PROVIDER"


class ResponseTooLargeError(requests.exceptions.RequestException):
    """A collector's answer went past ``MAX_RESPONSE_BYTES``."""


class BoundedSession(requests.Session):
    """A ``requests.Session`` whose responses are read whole before they are returned, at most
    ``max_bytes`` of body within the request's ``timeout`` (seconds, counted from the request's
    start); ``ResponseTooLargeError`` or ``requests.exceptions.ReadTimeout`` past them."""

    def __init__(self, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        super().__init__()
        self.max_bytes = max_bytes

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        started = time.monotonic()
        timeout = kwargs.get("timeout")
        kwargs["stream"] = True
        response = super().send(request, **kwargs)
        body = bytearray()
        try:
            for chunk in _arriving(response):
                body += chunk
                if len(body) > self.max_bytes:
                    raise ResponseTooLargeError(
                        f"{response.status_code} answer larger than {self.max_bytes} bytes; "
                        "not read further"
                    )
                if isinstance(timeout, int | float) and time.monotonic() - started > timeout:
                    raise requests.exceptions.ReadTimeout(
                        f"answer not read whole within {timeout:g} s"
                    )
        finally:
            response.close()
        # The body as ``requests`` keeps a body it read itself (``stream=False``).
        response._content = bytes(body)
        return response


def _arriving(response: requests.Response) -> Iterator[bytes]:
    """The (decoded) body of a streamed ``response`` as it arrives, at most ``_CHUNK`` bytes a
    piece, with requests' exceptions for urllib3's, as ``iter_content`` gives them.

    ``iter_content(n)`` returns a piece only once ``n`` bytes (or the end) have come: a body
    trickled a byte at a time within the per-read timeout reached the caller's checks once
    every ``n`` bytes, so the request's timeout held only for ``n`` times the trickle's pace
    (hours). ``read1`` returns as soon as some bytes are there. urllib3 before 2.3 has no
    ``read1``: there the body is read as ``iter_content`` reads it.
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:
        yield from response.iter_content(_CHUNK)
        return
    try:
        while chunk := read1(_CHUNK, decode_content=True):
            yield chunk
    except ProtocolError as error:
        raise requests.exceptions.ChunkedEncodingError(error) from error
    except DecodeError as error:
        raise requests.exceptions.ContentDecodingError(error) from error
    except ReadTimeoutError as error:
        raise requests.exceptions.ConnectionError(error) from error
    except SSLError as error:
        raise requests.exceptions.SSLError(error) from error


def bounded_session(signal: str) -> BoundedSession | None:
    """A :class:`BoundedSession` for the OTLP/HTTP exporter of ``signal`` (``TRACES``,
    ``METRICS``, ``LOGS``); None when a credential-provider variable names the user's own."""
    if os.environ.get(_PROVIDER) or os.environ.get(_SIGNAL_PROVIDER.format(signal)):
        return None
    return BoundedSession()
