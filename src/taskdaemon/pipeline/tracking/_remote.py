"""Bounds and manners of the remote span sources (Tempo, Jaeger): no credential in any message,
an overall deadline per query, a cap on the bytes of each response.

* Credentials: a source URL may carry ``user:password@``. :func:`split_credentials` takes them
  out of the URL the HTTP client uses (they travel as HTTP basic auth), so no request URL in an
  error holds them; :func:`display_url` is the form of any URL shown to a person: the password
  replaced by ``[REDACTED]``, the redaction module's mask.
* Deadline: every query (``get_run``, ``get_trace``, ``search``) finishes within
  ``TASKDAEMON_SOURCE_TIMEOUT`` seconds (default 30) in all, retries and every request of a
  search included: a backend that trickles a byte every few seconds never trips a per-read
  timeout, so each read is also bounded by what is left of the deadline. The answer's
  decoding, which no read bounds, is the one step not cut short at it (``http_sources``).
* Body size: a response is streamed and counted while read (after decompression, so a small
  gzip bomb counts as what it expands to); past ``TASKDAEMON_SOURCE_MAX_BYTES`` (default
  64 MiB, the size of a very large run's trace) the query fails with a one-line error.
  The body is inflated here, a mebibyte at a time, not by the HTTP client, which inflates each
  piece that arrives whole (64 KiB of a bomb is 64 MiB) and inflates the whole of one layer
  into the next for every encoding the answer names (``Content-Encoding: gzip, gzip``: 2 KB
  held a GiB at once, and each further layer multiplies that by a thousand). One encoding,
  ``gzip`` or ``deflate``, is read; an answer naming more, or another, is refused in one line,
  and so is one whose compressed stream stops before its end (a proxy or a backend that cut the
  answer, with a ``Content-Length`` that says the cut size): read as it was, it inflated to a
  part of the JSON, or to nothing, which Jaeger's answer of no trace is, and ``runs list`` said
  "no runs" with exit 0. A body of no byte at all is read as empty, whatever encoding it names.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from taskdaemon.pipeline.ascii_number import ascii_only
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.variables import reader

if TYPE_CHECKING:  # the HTTP client loads with the first remote query (CLI start-up time)
    import httpx

from taskdaemon.pipeline.errors import SettingsError, SpanSourceError

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BYTES",
    "RemoteLimits",
    "display_url",
    "read_bounded",
    "split_credentials",
]

DEFAULT_DEADLINE: Final = 30.0  # seconds per query, all requests and retries included
DEFAULT_MAX_BYTES: Final = 64 * 2**20  # per response body, decoded
# Headers that describe the body as it came over the wire; the bounded copy is already decoded.
_WIRE_HEADERS: Final = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})
# What one call to inflate may hand back: the cap is checked between pieces.
_INFLATE_STEP: Final = 1 << 20
# Content encodings read, to the zlib window bits that read them (deflate: the zlib format, or
# gzip's, whichever header the body has).
_ENCODINGS: Final = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": 32 + zlib.MAX_WBITS,
}


def _authority_bounds(url: str) -> tuple[int, int] | None:
    """Start and end of the authority (``user:pass@host:port``) in ``url``, if it has one."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    start = scheme_end + 3
    end = len(url)
    for stop in "/?#":
        found = url.find(stop, start)
        if found >= 0:
            end = min(end, found)
    return start, end


def display_url(url: str) -> str:
    """``url`` as it may be shown: ``scheme://user:[REDACTED]@host/...`` when it holds a
    password (everything up to the last ``@`` of the authority counts as user information, as
    URL parsers read it). Anything else is returned unchanged.

    The mask is ``redaction.REDACTED``, the one docs/redaction.md names for a URL's password:
    a refused URL quoted by ``quoting.quote`` and every log line, span and export (redacted
    on the way out, which would turn ``user:***@`` into ``user:[REDACTED]@`` anyway) show it,
    so one URL reads the same wherever it is shown."""
    bounds = _authority_bounds(url)
    if bounds is None:
        return url
    start, end = bounds
    userinfo, at, host = url[start:end].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{url[:start]}{user}:{REDACTED}@{host}{url[end:]}"


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its user information, and the (user, password) it held, if any."""
    bounds = _authority_bounds(url)
    if bounds is None:
        return url, None
    start, end = bounds
    userinfo, at, host = url[start:end].rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    import httpx  # noqa: PLC0415

    parsed = httpx.URL(f"http://{userinfo}@x")  # percent-decoding as the HTTP client would
    return f"{url[:start]}{host}{url[end:]}", (parsed.username or user, parsed.password or password)


@frozen
class RemoteLimits:
    """The bounds of one remote source (see the module docstring)."""

    deadline: float = DEFAULT_DEADLINE
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RemoteLimits:
        """``TASKDAEMON_SOURCE_TIMEOUT`` (seconds > 0) and ``TASKDAEMON_SOURCE_MAX_BYTES`` (an
        integer > 0); unset means the default. SettingsError naming the variable when
        invalid: a wrong setting, exit 2 in every command, as every ``TASKDAEMON_*`` one
        (``open_source`` reads them for every source, so the embedded store's commands do not
        take one silently that their next remote query would refuse)."""
        lookup = reader(environ)
        deadline = _positive(lookup, "TASKDAEMON_SOURCE_TIMEOUT", float, DEFAULT_DEADLINE)
        max_bytes = _positive(lookup, "TASKDAEMON_SOURCE_MAX_BYTES", int, DEFAULT_MAX_BYTES)
        return cls(deadline=float(deadline), max_bytes=int(max_bytes))


def _positive(
    lookup: Callable[[str], str | None], name: str, kind: type[float] | type[int], default: float
) -> float:
    raw = (lookup(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(ascii_only(raw))
    except ValueError:
        raise SettingsError([(name, f"not a number: {quote(raw)}")]) from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError([(name, f"must be a finite number > 0, not {quote(raw)}")])
    return value


def read_bounded(
    client: httpx.Client,
    path: str,
    params: dict[str, Any] | None,
    *,
    read_timeout: float,
    deadline_at: float,
    max_bytes: int,
    shown: str,
) -> httpx.Response:
    """GET ``path`` and read its body within ``deadline_at`` (``time.monotonic()`` seconds) and
    ``max_bytes`` (decoded); the answer is a response whose body is in memory. Transport
    errors and timeouts raise ``httpx.TransportError`` (the caller retries them);
    SpanSourceError when the body is too large or the deadline passes while reading
    (``shown`` names the URL in messages)."""
    import httpx  # noqa: PLC0415

    from taskdaemon.pipeline.tracking import _deadline_io  # noqa: PLC0415 - with httpx

    remaining = deadline_at - time.monotonic()
    if remaining <= 0:
        raise httpx.ReadTimeout("deadline reached")
    per_read = min(read_timeout, remaining)
    timeout = httpx.Timeout(per_read, connect=min(3.0, per_read))
    # The deadline bounds each socket operation too: the status line and headers of a
    # trickling backend come before the body's loop below (``tracking._deadline_io``).
    with (
        _deadline_io.at(deadline_at),
        client.stream("GET", path, params=params, timeout=timeout) as response,
    ):
        chunks: list[bytes] = []
        size = 0
        for chunk in _decoded(response, shown):
            size += len(chunk)
            if size > max_bytes:
                raise SpanSourceError(
                    f"{shown}: response larger than {max_bytes} bytes "
                    "(TASKDAEMON_SOURCE_MAX_BYTES); refused"
                )
            chunks.append(chunk)
            if time.monotonic() > deadline_at:
                raise httpx.ReadTimeout("deadline reached")
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _WIRE_HEADERS]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=b"".join(chunks),
            request=response.request,
        )


def _decoded(response: httpx.Response, shown: str) -> Iterator[bytes]:
    """The body of ``response`` as it arrives, inflated at most :data:`_INFLATE_STEP` bytes at
    a time when it names one content encoding we read (SpanSourceError for any other)."""
    named = [
        value.strip().lower()
        for value in response.headers.get_list("content-encoding", split_commas=True)
    ]
    encodings = [value for value in named if value not in ("", "identity")]
    if not encodings:
        yield from response.iter_raw()
        return
    if len(encodings) > 1 or encodings[0] not in _ENCODINGS:
        raise SpanSourceError(
            f"{shown}: answer in content encoding {quote(', '.join(encodings))}; "
            "only one of gzip or deflate is read"
        )
    inflater = zlib.decompressobj(_ENCODINGS[encodings[0]])
    received = 0
    try:
        for raw in response.iter_raw():
            received += len(raw)
            data = raw
            while True:
                piece = inflater.decompress(data, _INFLATE_STEP)
                data = inflater.unconsumed_tail
                if piece:
                    yield piece
                elif not data:
                    break
            if inflater.eof:
                return  # what may follow the compressed body is not read (nor kept)
    except zlib.error as exc:
        raise SpanSourceError(f"{shown}: answer not valid {encodings[0]}: {exc}") from None
    if received:
        raise SpanSourceError(
            f"{shown}: answer in {encodings[0]} cut short: its {received} bytes end before "
            "the compressed stream does"
        )
