"""The one check of an http(s) URL a client will dial (``http_url``): what it accepts, each
refusal's one line, and the same line from the OTLP endpoint settings and the remote span
sources that use it."""

from __future__ import annotations

import pytest

from taskdaemon.pipeline.errors import SettingsError, SpanSourceURLError
from taskdaemon.pipeline.http_url import HTTP_SCHEMES, http_url
from taskdaemon.pipeline.quoting import quoted
from taskdaemon.pipeline.settings import load_settings
from taskdaemon.pipeline.tracking.sources import open_source

#: Bad URLs (without a scheme) and the line each is refused with, before the URL quoted.
REFUSALS = [
    ("127..1:4318", "its host name's labels are 1 to 63 characters"),
    ("x" * 64 + ":4318", "its host name's labels are 1 to 63 characters"),
    ("x:43l7", "its port is not a number from 0 to 65535"),
    ("x:65536/v1", "its port is not a number from 0 to 65535"),
    ("x:-1", "its port is not a number from 0 to 65535"),
    ("[::1:4317", "its host is not a host name nor an IPv6 address in brackets"),
    ("[not-an-address]:4317", "its host is not a host name nor an IPv6 address in brackets"),
    (" collector:4317", "it has white space inside"),
    ("col lector:4317", "it has white space inside"),
    ("a:4318/v1/\tlogs", "it has white space inside"),
    # what the HTTP client refuses (an InvalidURL traceback), which Python's checks let by
    ("999.0.0.1:4318", "its host is not an IPv4 address"),
    ("1.2.3.04", "its host is not an IPv4 address"),
    ("127.\ufeff1:4318", "its host is not an internationalised domain name"),
    ("x\u200by", "its host is not an internationalised domain name"),
    (":4317", "it has no host"),
    ("/v1/traces", "it has no host"),
    ("", "it has no host"),
]


@pytest.mark.parametrize(
    "url",
    [
        "http://glsa_s3cret0@collector:43l7",
        "ftp://glsa_s3cret0@collector/v1",
        "https://glsa_s3cret0@[::1/x",
        "http://glsa_s3cret0@x y/?a=b@c",
    ],
)
def test_a_user_alone_in_a_refused_url_is_not_shown(url: str) -> None:
    """A token pasted as a URL's user (no password) is hidden too, whatever the refusal."""
    refusal = _refusal(url)
    assert ("glsa_s3cret0" in refusal, "[REDACTED]@" in refusal) == (False, True), refusal


@pytest.mark.parametrize(("rest", "reason"), REFUSALS)
def test_a_bad_host_or_port_is_refused_in_one_line_naming_it(rest: str, reason: str) -> None:
    """Each refusal says what is wrong, then quotes the URL cut to 40 characters."""
    url = f"http://{rest}"
    assert f"{reason}, in {_quoted(url)}" == _refusal(url)


@pytest.mark.parametrize("url", ["localhost:4317", "ftp://x:21", "grpc://x:4317", "x"])
def test_another_scheme_is_refused_naming_the_schemes_taken(url: str) -> None:
    """Without ``http://`` or ``https://`` (the default schemes) the URL is refused as such."""
    assert f"must be an http:// or https:// URL, not {url!r}" == _refusal(url)


def test_the_schemes_taken_can_be_others() -> None:
    """A caller names its own schemes (a span source's ``tempo+http``); http is then refused."""
    parts = http_url("tempo+http://tempo:3200/base?org=a", ("tempo+http",))
    assert (
        ("tempo+http", "tempo:3200", "tempo", 3200, "/base", "org=a"),
        "must be an tempo+http:// URL, not 'http://tempo:3200'",
    ) == (
        (parts.scheme, parts.netloc, parts.hostname, parts.port, parts.path, parts.query),
        _refusal("http://tempo:3200", ("tempo+http",)),
    )


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("http://collector:4317", "collector", 4317),
        ("  https://Collector.Example/v1/traces ", "collector.example", None),
        ("HTTP://[::1]:4318", "::1", 4318),
        ("http://127.0.0.1:0", "127.0.0.1", 0),
        ("https://bücher.example:65535", "bücher.example", 65535),
        ("http://grafana:3000/login?next=https://x/d", "grafana", 3000),
    ],
)
def test_a_usable_url_is_cut_into_its_parts(url: str, host: str, port: int | None) -> None:
    """Surrounding spaces go, the scheme is any case, an IDNA host and ports 0 and 65535 pass,
    and the scheme is the first ``://``'s (a query may hold another URL)."""
    parts = http_url(url)
    assert (host, port) == (parts.hostname, parts.port)


def test_a_password_in_a_refused_url_is_not_shown() -> None:
    """The refusal quotes the URL with its password hidden."""
    refusal = _refusal("http://ops:hunter2hunter2@x:99999")
    assert (False, True) == (
        "hunter2" in refusal,
        refusal.endswith("'http://ops:[REDACTED]@x:99999'"),
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http:/ops:hunter2hunter2@x:4318", "'http:[REDACTED]@x:4318'"),
        ("ops:hunter2hunter2@x:4318", "'ops:[REDACTED]@x:4318'"),
        ("htp//ops:hunter2hunter2@x", "'htp//ops:[REDACTED]@x'"),
        ("http://ops:hunter2/hunter2@x:4318", "'http://ops:[REDACTED]@x:4318'"),
        ("http://ops:hunter2?hunter2@x", "'http://ops:[REDACTED]@x'"),
    ],
)
def test_a_password_in_what_is_not_quite_a_url_is_not_shown(url: str, shown: str) -> None:
    """A slash short of a URL, no scheme, or a password holding ``/`` or ``?``: the general
    redaction's shape (``scheme://user:password@``) did not match, and the refusal quoted the
    password (the fuzzer's ``env`` target, an endpoint's ``http://`` mistyped)."""
    refusal = _refusal(url)
    assert (False, True) == ("hunter2" in refusal, refusal.endswith(shown)), refusal


@pytest.mark.parametrize(("rest", "reason"), REFUSALS)
def test_the_settings_and_the_span_sources_refuse_with_the_same_words(
    monkeypatch: pytest.MonkeyPatch, rest: str, reason: str
) -> None:
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` and a ``tempo+http`` source are refused for the same
    mistake with the same reason, each quoting the URL it was given."""
    endpoint, source = f"http://{rest}", f"tempo+http://{rest}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    with pytest.raises(SettingsError) as setting:
        load_settings()
    with pytest.raises(SpanSourceURLError) as opened:
        open_source(source)
    assert (
        (("OTEL_EXPORTER_OTLP_ENDPOINT", f"{reason}, in {_quoted(endpoint)}"),),
        f"bad span source URL: {reason}, in {_quoted(source)}",
    ) == (setting.value.problems, str(opened.value))


def _refusal(url: str, schemes: tuple[str, ...] = HTTP_SCHEMES) -> str:
    """Why ``http_url`` refuses ``url``; ``accepted`` when it does not."""
    try:
        http_url(url, schemes)
    except ValueError as error:
        return str(error)
    return "accepted"


def _quoted(url: str) -> str:
    """``url`` as a refusal quotes it: cut to 40 characters, the last one ``…``, by the one
    quoting rule of messages (``quoting``)."""
    return quoted(url if len(url) <= 40 else url[:39] + "…")
