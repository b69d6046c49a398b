"""HTTP security and limits as units: loopback detection, tokens, cookies, the token file, the
Host/Origin allow-list, the log rate limiter, control-character escaping and the settings."""

from __future__ import annotations

import io
import logging
import resource
import sys
from collections.abc import Iterator

import pytest

from taskdaemon.pipeline.errors import SettingsError
from taskdaemon.pipeline.http_limits import HttpLimits, RateLimitFilter
from taskdaemon.pipeline.http_security import (
    ApiAuth,
    check_exposure,
    host_name,
    is_loopback,
)
from taskdaemon.pipeline.logs import TextFormatter, configure_logging, escape_controls
from taskdaemon.pipeline.settings import load_settings

TOKEN = "s3cret-token-0123456789"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1", True),
        ("127.0.1", True),
        ("0x7f.1", True),
        ("2130706433", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:10.0.0.1", False),
        ("127.0.0.1 evil", False),
        ("attacker.example", False),
        ("localhost.attacker.example", False),
        ("", False),
    ],
)
def test_loopback_detection_understands_every_spelling(host: str, loopback: bool) -> None:
    """Shorthand IPv4, IPv4-mapped IPv6 and bracketed forms are loopback; look-alikes are not."""
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:9090", "127.0.0.1"),
        ("[::1]:9090", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("Attacker.Example:80", "attacker.example"),
        ("localhost", "localhost"),
        # A port in another script's digits is no port: the value stays whole, not loopback.
        ("localhost:\u00b2", "localhost:\u00b2"),
        ("localhost:\uff18\uff10", "localhost:\uff18\uff10"),
    ],
)
def test_host_header_parsing(header: str, name: str) -> None:
    """The host part of a Host header drops the port and IPv6 brackets."""
    assert host_name(header) == name


def test_host_allow_list() -> None:
    """Loopback, the bind host and configured names pass; other names fail; '*' allows all."""
    auth = ApiAuth.configured(TOKEN, allowed_hosts=["ci.internal"])
    verdicts = [
        auth.host_allowed(name, bind_host="127.0.0.1")
        for name in ("127.1", "localhost", "ci.internal", "attacker.example", "10.1.2.3")
    ]
    bound = auth.host_allowed("10.1.2.3", bind_host="10.1.2.3")
    wildcard_ip = auth.host_allowed("192.168.7.7", bind_host="0.0.0.0")
    wildcard_name = auth.host_allowed("attacker.example", bind_host="0.0.0.0")
    anything = ApiAuth.configured(TOKEN, allowed_hosts=["*"]).host_allowed(
        "attacker.example", bind_host="127.0.0.1"
    )
    expected = ([True, True, True, False, False], True, True, False, True)
    assert expected == (verdicts, bound, wildcard_ip, wildcard_name, anything)


def test_tokens_compare_exactly_and_never_show_in_repr() -> None:
    """Only the exact token matches (non-ASCII input is just wrong); repr hides it."""
    auth = ApiAuth.generate(principal="alice")
    matches = [
        auth.token_matches(candidate)
        for candidate in (auth.token, auth.token[:-1], auth.token + "x", "é" * 48, "")
    ]
    expected = ([True, False, False, False, False], 48, False, "alice", True)
    assert expected == (
        matches,
        len(auth.token),
        auth.token in repr(auth),
        auth.principal,
        auth.generated,
    )


def test_short_tokens_are_refused() -> None:
    """A configured token shorter than 16 characters is refused."""
    with pytest.raises(ValueError, match="at least 16"):
        ApiAuth.configured("short")


def test_session_cookies_are_signed_per_process() -> None:
    """A session value verifies with its own key only; tampering or another key fails it."""
    auth, other = ApiAuth.configured(TOKEN), ApiAuth.configured(TOKEN)
    value = auth.new_session()
    nonce, _, signature = value.partition(".")
    expected = (True, False, False, False)
    assert expected == (
        auth.session_valid(value),
        other.session_valid(value),
        auth.session_valid(f"{nonce}x.{signature}"),
        auth.session_valid(nonce),
    )


def test_exposure_beyond_loopback_needs_a_configured_token() -> None:
    """Binding a non-loopback address without a configured token is a settings error."""
    check_exposure("127.1", token_configured=False)
    check_exposure("0.0.0.0", token_configured=True)
    with pytest.raises(SettingsError, match="TASKDAEMON_API_TOKEN: refusing to serve"):
        check_exposure("0.0.0.0", token_configured=False)


def test_settings_refuse_an_empty_metrics_host_and_a_short_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An empty TASKDAEMON_METRICS_HOST is an error, not 'all interfaces'; so is a short token."""
    monkeypatch.setenv("TASKDAEMON_METRICS_HOST", " ")
    monkeypatch.setenv("TASKDAEMON_API_TOKEN", "short")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    names = [name for name, _ in caught.value.problems]
    assert ["TASKDAEMON_METRICS_HOST", "TASKDAEMON_API_TOKEN"] == names


def test_settings_read_the_api_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token (kept secret in repr), user and allowed hosts come from the environment."""
    monkeypatch.setenv("TASKDAEMON_API_TOKEN", TOKEN)
    monkeypatch.setenv("TASKDAEMON_API_USER", "ops")
    monkeypatch.setenv("TASKDAEMON_API_ALLOWED_HOSTS", "a.example, b.example")
    settings = load_settings()
    expected = (TOKEN, "ops", ("a.example", "b.example"), False)
    assert expected == (
        settings.api_token.get_secret_value() if settings.api_token else None,
        settings.api_user,
        settings.api_allowed_hosts,
        TOKEN in repr(settings),
    )


def test_rate_limit_filter_passes_a_burst_and_counts_the_rest() -> None:
    """Within a window only `burst` records pass; the next window's first says how many were
    dropped."""
    now = [0.0]
    limiter = RateLimitFilter(burst=3, interval=10.0, clock=lambda: now[0])
    logger = logging.getLogger("taskdaemon.test.ratelimit")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.addFilter(limiter)
    try:
        for i in range(10):
            logger.error("accept failed %d", i)
        now[0] = 11.0
        logger.error("accept failed again")
    finally:
        logger.removeFilter(limiter)
        logger.removeHandler(handler)
    expected = [
        "accept failed 0",
        "accept failed 1",
        "accept failed 2",
        "accept failed again [7 similar records suppressed before this one]",
    ]
    assert (expected, 7) == (stream.getvalue().splitlines(), limiter.suppressed_total)


def test_escape_controls_keeps_one_line() -> None:
    """Newlines, carriage returns, ANSI escapes and Unicode line separators become escapes."""
    escaped = escape_controls("ok\n2026 INFO forged\r\x1b[2K\u2028é")
    assert "ok\\n2026 INFO forged\\r\\x1b[2K\\u2028é" == escaped


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_text_log_lines_cannot_be_forged() -> None:
    """A rejection reason with a newline stays on its own record's line in text format."""
    stream = io.StringIO()
    configure_logging(load_settings(log_format="text"), stream=stream)
    logging.getLogger("taskdaemon.audit").warning(
        "approval of %s rejected by %s: %s", "deploy", "root", "no\nFAKE INFO approved by admin"
    )
    lines = stream.getvalue().splitlines()
    expected = (1, True)
    assert expected == (len(lines), lines[0].endswith("no\\nFAKE INFO approved by admin"))


def test_text_formatter_keeps_tracebacks_multiline() -> None:
    """Only the message and ids are escaped: a traceback keeps its lines."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = sys.exc_info()
    text = TextFormatter().format(record)
    assert (True, True) == (text.count("\n") >= 2, text.rstrip().endswith("RuntimeError: boom"))


def test_connection_cap_leaves_descriptors_for_the_process() -> None:
    """The connection cap never exceeds the descriptor limit minus a reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = HttpLimits(max_connections=10**9).connection_cap()
    assert cap == max(8, soft - 128)
