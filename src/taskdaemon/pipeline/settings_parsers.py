"""Each setting's parser: a variable's text (or an override's Python value) to the field's value.

``settings`` maps each field to its variable and one of these (``settings._FIELDS``) and
collects what they refuse; the rules they apply (ASCII digits, pydantic's wording of the
reasons, what an empty value means) are written in ``settings``' docstring and in
docs/architecture.md, "Settings". They live apart from the loader because they are a table's
cells, tested one by one (``tests/pipeline_settings_parsers_test.py``), while the loader is
about the environment: which variables, read when, how often. A parser answers the value or
raises ``ValueError`` with the reason; it never names the variable (the loader does).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskdaemon.pipeline.ascii_number import ascii_only
from taskdaemon.pipeline.bounded import BoundedInputError, loads_bounded
from taskdaemon.pipeline.home import home_path
from taskdaemon.pipeline.http_url import http_url, user_part
from taskdaemon.pipeline.log_levels import level_number
from taskdaemon.pipeline.quoting import quote, quote_value
from taskdaemon.pipeline.span_source_forms import SPAN_SOURCE_USAGE, unknown_scheme

__all__ = [
    "LOGS_EXPORTERS",
    "METRICS_EXPORTERS",
    "OTLP_PROTOCOLS",
    "TRACES_EXPORTERS",
    "Parser",
    "endpoint",
    "exporters",
    "grafana_url",
    "home",
    "host",
    "integer",
    "log_format",
    "log_level",
    "number",
    "optional",
    "patterns",
    "protocol",
    "resource_attributes",
    "span_source",
    "text",
    "utf8",
    "words",
]

TRACES_EXPORTERS = frozenset({"otlp", "otlp_proto_grpc", "otlp_proto_http", "console", "none"})
METRICS_EXPORTERS = frozenset(
    {"prometheus", "otlp", "otlp_proto_grpc", "otlp_proto_http", "console", "none"}
)
LOGS_EXPORTERS = frozenset({"otlp", "otlp_proto_grpc", "otlp_proto_http", "console", "none"})
OTLP_PROTOCOLS = frozenset({"grpc", "http/protobuf"})

Parser = Callable[[Any], Any]


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("Input should be a valid string")
    return value


def optional(parse: Parser) -> Parser:
    def parse_optional(value: Any) -> Any:
        return None if value is None else parse(value)

    return parse_optional


def _refused(reason: str, value: Any) -> ValueError:
    """The error refusing ``value``, quoted after the reason (redacted and cut, as every
    refused value is: ``quoting.quote_value``), so the one line a command prints shows what
    was wrong, as for the other settings (``not 'foo'``)."""
    return ValueError(f"{reason}, not {quote_value(value)}")


def _bounded(
    parsed: float, value: Any, ge: float | None, gt: float | None, le: float | None
) -> None:
    if gt is not None and not parsed > gt:
        raise _refused(f"Input should be greater than {gt:g}", value)
    if ge is not None and not parsed >= ge:
        raise _refused(f"Input should be greater than or equal to {ge:g}", value)
    if le is not None and not parsed <= le:
        raise _refused(f"Input should be less than or equal to {le:g}", value)


def _ascii(written: str, kind: str) -> None:
    """Refuse a number written with other than ASCII (``ascii_number``)."""
    try:
        ascii_only(written)
    except ValueError:
        raise _refused(f"Input should be a valid {kind}, in ASCII digits", written) from None


def integer(*, ge: int | None = None, le: int | None = None) -> Parser:
    def parse_integer(value: Any) -> int:
        if isinstance(value, str):
            _ascii(value, "integer")
            try:
                parsed = float(value) if "." in value else int(value)
            except ValueError:
                raise _refused(
                    "Input should be a valid integer, unable to parse string as an integer", value
                ) from None
        elif isinstance(value, int | float):
            parsed = value
        else:
            raise _refused("Input should be a valid integer", value)
        if isinstance(parsed, float):
            if not parsed.is_integer():
                raise _refused(
                    "Input should be a valid integer, got a number with a fraction", value
                )
            parsed = int(parsed)
        _bounded(parsed, value, ge, None, le)
        return int(parsed)

    return parse_integer


def number(*, gt: float | None = None, le: float | None = None) -> Parser:
    def parse_number(value: Any) -> float:
        if isinstance(value, str):
            _ascii(value, "number")
        try:
            parsed = float(value)
        except (TypeError, ValueError):
            raise _refused(
                "Input should be a valid number, unable to parse string as a number", value
            ) from None
        if math.isnan(parsed):  # no comparison holds: named, rather than a bound it misses
            raise ValueError("Input should be a number, not NaN")
        _bounded(parsed, value, None, gt, le)
        return parsed

    return parse_number


def words(value: Any) -> tuple[str, ...]:
    """A comma list (text), or a sequence of strings (an override)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError("Input should be a comma-separated list of strings")


def patterns(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) and value.strip().startswith("["):
        try:  # bounded: a list nested 2,000 deep was a RecursionError traceback
            value = loads_bounded(value)
        except BoundedInputError as exc:
            raise ValueError(f"invalid JSON list: {exc}") from None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError("Input should be a JSON list of strings")
    listed = words(value)
    for pattern in listed:
        try:
            # A FutureWarning ("possible nested set", ``x[[a]``) would be printed by every
            # command, two lines before its own output: the pattern's meaning is to change.
            with warnings.catch_warnings():
                warnings.simplefilter("error", FutureWarning)
                re.compile(pattern)
        except (re.error, FutureWarning) as exc:
            raise ValueError(f"invalid regular expression {quote(pattern)}: {exc}") from None
    return listed


def host(value: Any) -> str:
    name = text(value).strip()
    if not name:
        raise ValueError("must not be empty (use 0.0.0.0 to listen on every interface)")
    return name


def grafana_url(value: Any) -> str | None:
    """Grafana's base URL, checked at start as an OTLP endpoint is (``http_url``): a typo'd
    port or a space would otherwise show only as a dead link on a run's page. The check
    refuses nothing a Grafana can be reached at: a path prefix (``https://host/grafana``,
    Grafana behind a proxy), a query and any port from 0 to 65535 pass.

    A user or password in it (``http://admin:secret@grafana:3000``) is refused, in a line that
    does not quote the URL (a user alone may be a token): the URL is only ever a link, put on
    every run's page, so a password there reached whoever read the page, the browser's
    history and address bar, while it signed nobody in (Grafana's UI has its own sign-in).
    Refused rather than stripped, so the user learns it at start instead of trusting a link
    that quietly lost half of what they wrote; checked first, so no other refusal quotes it."""
    url = text(value).strip()
    if not url:
        return None
    if user_part(url) is not None:
        raise ValueError(
            "must hold no user or password (user:password@): it is only a link on the run"
            " pages, and Grafana signs its users in itself"
        )
    http_url(url)
    return url


def public_url(value: Any) -> str | None:
    """The address people open the server at when a proxy stands in front of it
    (``https://tasks.example.org``), checked at start: an ``http`` or ``https`` URL of a host
    and maybe a port, nothing else. A path is refused: the pages link from ``/``, so a proxy
    serving them under a prefix would break every link; a user or password too, in a line
    that does not quote the URL (no server signs in with it). ``https`` makes the session
    cookie ``Secure``, and the host is one the ``Host`` and ``Origin`` checks allow
    (``http_security``)."""
    url = text(value).strip()
    if not url:
        return None
    if user_part(url) is not None:
        raise ValueError("must hold no user or password (user:password@)")
    parts = http_url(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(
            f"must be the scheme, host and port alone, not {quote(url)}: the pages link from"
            " /, so serve them at the root of that host"
        )
    return url


def proxies(value: Any) -> tuple[str, ...]:
    """The proxies whose ``X-Forwarded-For`` names the client (``forwarded_for``): IP
    addresses or networks, a comma list, each checked at start (the module imported only
    then: every command reads the settings, few set this)."""
    from taskdaemon.pipeline.forwarded_for import proxy_networks  # noqa: PLC0415

    items = words(value)
    proxy_networks(items)
    return items


def span_source(value: Any) -> str | None:
    """A span source URL whose scheme is known (the rest is checked where it is opened): a
    typo such as ``ftp://`` would otherwise only show when a command reads the source, and
    ``run``, which only writes to the embedded store, would ignore it."""
    url = text(value).strip()
    if not url:
        return None
    if unknown_scheme(url):
        raise ValueError(f"must be {SPAN_SOURCE_USAGE}")
    return url


def log_format(value: Any) -> str:
    name = text(value).strip().lower()
    if name not in ("json", "text"):
        raise ValueError("Input should be 'json' or 'text'")
    return name


def log_level(value: Any) -> str:
    return str(logging.getLevelName(level_number(text(value))))  # ValueError names the choices


def exporters(allowed: frozenset[str]) -> Parser:
    def parse_exporters(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
            names = names or ("none",)
        else:
            names = words(value)
        unknown = [name for name in names if name not in allowed]
        if unknown:
            expected = ", ".join(sorted(allowed))
            raise ValueError(
                f"unknown exporter {', '.join(map(repr, unknown))}; expected {expected}"
            )
        return names

    return parse_exporters


def protocol(value: Any) -> str:
    name = text(value).strip().lower()
    if name == "http/json":
        raise ValueError("http/json is not supported by the Python SDK; use http/protobuf")
    if name not in OTLP_PROTOCOLS:
        raise ValueError(f"must be grpc or http/protobuf, not {quote(value)}")
    return name


def endpoint(value: Any) -> str:
    """An OTLP endpoint: checked at start (``http_url``), as the exporters only log a failed
    export, so a typo'd ``http://127..1:4318``, ``:43l7`` or ``http://col lector`` lost every
    span exported while the run succeeded.

    A user or password in it (``http://user:secret@collector:4318``) is refused, in a line
    that does not quote the URL (a user alone may be a token), as in Grafana's URL: the gRPC
    exporter, the default, dials ``user:secret@collector:4317`` as a host name, so every
    export failed, and its lines named that endpoint; the HTTP one sent it as Basic
    authentication, which the header variables send as well (``Authorization=Basic ...``)
    without putting a credential in a URL that exporters, proxies and error lines show.
    Refused rather than stripped, so no export goes out unauthenticated unsaid; checked first,
    so no other refusal quotes it."""
    url = text(value)
    if user_part(url) is not None:
        raise ValueError(
            "must hold no user or password (user:password@): send credentials in"
            " OTEL_EXPORTER_OTLP_HEADERS (Authorization=Basic ...)"
        )
    http_url(url)
    return url.strip()


def resource_attributes(value: Any) -> str:
    pairs = text(value)
    for part in pairs.split(","):
        if part.strip() and "=" not in part:
            raise ValueError(f"expected key=value pairs separated by commas, got {quote(part)}")
    return pairs


def home(value: Any) -> Path:
    """As every command finds the home (``home.home_path``): blank is the default."""
    return value if isinstance(value, Path) else home_path(text(value))


def utf8(value: str) -> None:
    """Refuse a variable's value holding bytes that are not UTF-8 (Python keeps them as lone
    surrogates): as the service name or a resource attribute, the store refused every span
    of the run with them, and an exporter would have too."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds bytes that are not UTF-8 text") from None
