"""The token check as the API's gate: every rule of ``SecurityMiddleware`` (open paths, Host and
Origin allow-lists, each credential form, the session start, simple content types) driven with
raw ASGI requests, and the token's helpers (generation, the file, exposure)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
from collections.abc import MutableMapping
from typing import Any

import pytest

from taskdaemon.pipeline.errors import SettingsError
from taskdaemon.pipeline.http_security import (
    OPEN_PATHS,
    ApiAuth,
    SecurityMiddleware,
    check_exposure,
    host_name,
    is_loopback,
    server_user,
)

TOKEN = "s3cret-token-0123456789"
PORT = 8123
COOKIE = f"taskdaemon-session-{PORT}"


class _Inner:
    """The app behind the gate: records that a request reached it, and answers with the
    query string it was given."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(scope.get("path", scope["type"]))
        if scope["type"] != "http":
            return
        request = await receive()  # the app gets the client's stream, untouched
        assert request["type"] == "http.request"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope.get("query_string", b"")})


class _Answer:
    """What the gate sent, checked against the ASGI protocol (a start message, then body
    messages): status, headers (lowercase names, first of each) and body."""

    def __init__(self, messages: list[MutableMapping[str, Any]], reached: bool) -> None:
        start, *rest = messages
        assert start["type"] == "http.response.start"
        assert rest
        assert all(m["type"] == "http.response.body" for m in rest)
        self.status: int = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in reversed(start["headers"])}
        self.body: bytes = b"".join(m["body"] for m in rest)
        self.reached = reached

    def error(self) -> str:
        return str(json.loads(self.body)["error"])


async def _request(
    path: str = "/api/runs",
    *,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    query: str | None = "",
    auth: ApiAuth | None = None,
    bind_host: str = "127.0.0.1",
    scheme: str = "http",
    server: tuple[str, int] | None = ("127.0.0.1", PORT),
) -> _Answer:
    inner = _Inner()
    gate = SecurityMiddleware(inner, auth=auth or ApiAuth.configured(TOKEN), bind_host=bind_host)
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "scheme": scheme}
    if query is not None:
        scope["query_string"] = query.encode()
    if headers is not None:
        scope["headers"] = [(k.encode(), v.encode()) for k, v in headers]
    if server is not None:
        scope["server"] = server
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await gate(scope, receive, send)
    return _Answer(sent, bool(inner.calls))


def _bearer(token: str = TOKEN) -> tuple[str, str]:
    return ("authorization", f"Bearer {token}")


# --- open paths and the 401 ----------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(OPEN_PATHS))
async def test_probes_pass_without_credentials_and_whatever_the_host(path: str) -> None:
    """/metrics, /healthz and /readyz reach the app with no token and a foreign Host."""
    answer = await _request(path, headers=[("host", "attacker.example"), ("origin", "null")])
    assert (answer.status, answer.reached) == (200, True)


async def test_open_paths_are_exactly_the_three_probes() -> None:
    """The open set is the three probe paths, nothing else."""
    assert frozenset({"/metrics", "/healthz", "/readyz"}) == OPEN_PATHS


@pytest.mark.parametrize("path", ["/api/runs", "/", "/no/such/route", "/metrics/", "/healthzx"])
async def test_every_other_path_needs_a_credential(path: str) -> None:
    """Without a credential any other path, unknown ones too, is a 401 JSON error with a
    ``WWW-Authenticate: Bearer`` challenge; the app never sees it."""
    answer = await _request(path)
    assert (answer.status, answer.reached) == (401, False)
    assert answer.headers["www-authenticate"] == 'Bearer realm="taskdaemon"'
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == str(len(answer.body))
    assert answer.error() == (
        "authentication required: send 'Authorization: Bearer <token>' (the token is "
        "TASKDAEMON_API_TOKEN, or the file the server wrote under TASKDAEMON_HOME: "
        "api-token.PORT for serve, ui-token.PORT for ui)"
    )


async def test_a_scope_without_headers_or_query_is_judged_like_an_empty_one() -> None:
    """Missing ``headers`` and ``query_string`` keys mean none: a 401, not a crash; with the
    token in the query and no headers at all, the request passes."""
    bare = await _request(headers=None, query=None)
    by_query = await _request(headers=None, query=f"token={TOKEN}")
    assert (bare.status, by_query.status) == (401, 200)


async def test_a_non_http_scope_passes_through() -> None:
    """Lifespan and other non-HTTP scopes are not requests: the gate lets them through."""
    inner = _Inner()
    gate = SecurityMiddleware(inner, auth=ApiAuth.configured(TOKEN))
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await gate({"type": "lifespan"}, lambda: None, send)
    assert inner.calls == ["lifespan"]


# --- credentials ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [f"Bearer {TOKEN}", f"token {TOKEN}", f"  BEARER   {TOKEN}  ", f"Token {TOKEN}"]
)
async def test_the_authorization_header_forms(value: str) -> None:
    """``Bearer T`` and ``token T`` (any case, surrounding blanks) are accepted."""
    answer = await _request(headers=[("authorization", value)])
    assert (answer.status, answer.reached) == (200, True)


@pytest.mark.parametrize(
    "value",
    [
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN} extra",
        f"Bearer{TOKEN}",
        TOKEN,
    ],
)
async def test_wrong_authorization_headers_are_401(value: str) -> None:
    """A wrong token, another scheme, or a malformed header is refused."""
    answer = await _request(headers=[("authorization", value)])
    assert (answer.status, answer.reached) == (401, False)


async def test_the_session_cookie_of_this_port_is_accepted() -> None:
    """A session cookie signed by this server, named for its port, authenticates; the same
    value under another port's name, a forged value or another server's cookie does not."""
    auth = ApiAuth.configured(TOKEN)
    session = auth.new_session()
    other = ApiAuth.configured(TOKEN).new_session()
    verdicts = [
        (await _request(headers=[("cookie", cookie)], auth=auth)).status
        for cookie in (
            f"theme=dark; {COOKIE}={session}; lang=en",
            f"{COOKIE}={session}",
            f"taskdaemon-session-9999={session}",
            f"{COOKIE}={session}x",
            f"{COOKIE}={other}",
            f"{COOKIE}",
        )
    ]
    assert verdicts == [200, 200, 401, 401, 401, 401]


async def test_the_first_of_repeated_cookies_counts() -> None:
    """With the session cookie twice, the first value is the one checked."""
    auth = ApiAuth.configured(TOKEN)
    good = auth.new_session()
    first_bad = await _request(
        headers=[("cookie", f"{COOKIE}=bad.sig; {COOKIE}={good}")], auth=auth
    )
    first_good = await _request(headers=[("cookie", f"{COOKIE}={good}; {COOKIE}=bad")], auth=auth)
    assert (first_bad.status, first_good.status) == (401, 200)


async def test_a_server_without_a_port_names_its_cookie_for_port_zero() -> None:
    """No ``server`` in the scope: the cookie is ``taskdaemon-session-0``."""
    auth = ApiAuth.configured(TOKEN)
    session = auth.new_session()
    answer = await _request(
        headers=[("cookie", f"taskdaemon-session-0={session}")], auth=auth, server=None
    )
    assert answer.status == 200


async def test_a_wrong_header_falls_back_to_the_cookie_and_the_query() -> None:
    """A stale Authorization header does not hide a valid cookie or ``?token=``."""
    auth = ApiAuth.configured(TOKEN)
    stale = ("authorization", "Bearer not-the-token-at-all")
    cookie = await _request(
        headers=[stale, ("cookie", f"{COOKIE}={auth.new_session()}")], auth=auth
    )
    query = await _request(headers=[stale], query=f"token={TOKEN}", auth=auth)
    assert (cookie.status, query.status) == (200, 200)


@pytest.mark.parametrize(("query", "status"), [(f"token={TOKEN}", 200), ("token=nope", 401)])
async def test_the_token_in_the_query_of_an_api_call(query: str, status: int) -> None:
    """``?token=T`` authenticates any request (a GET of /api is answered, not redirected)."""
    answer = await _request("/api/runs", query=query)
    assert answer.status == status


@pytest.mark.parametrize("credential", ["header", "query"])
async def test_the_app_is_given_the_query_without_the_token(credential: str) -> None:
    """The app's redirects and links repeat the query (a path with a trailing ``/`` is sent
    to the path without it): a fuzzed ``GET /runs/ID/?token=T`` answered a ``Location``
    holding the token."""
    headers = [_bearer()] if credential == "header" else []
    query = f"a=1&tok%65n=wrong&token&token={TOKEN}&b=%26token"
    answer = await _request("/runs/x/", headers=headers, query=query)
    assert (answer.status, answer.body) == (200, b"a=1&b=%26token")


# --- the session start ---------------------------------------------------------------------------


async def test_the_web_page_with_the_token_sets_the_cookie_and_drops_the_token() -> None:
    """``GET /?token=T&run=x`` answers 303 to ``/?run=x`` with a signed, HttpOnly, SameSite
    cookie for this port, ``no-store``, and an empty body; the app is not called."""
    auth = ApiAuth.configured(TOKEN)
    answer = await _request("/", query=f"run=x&token={TOKEN}", auth=auth)
    name, _, rest = answer.headers["set-cookie"].partition("=")
    value, _, attributes = rest.partition(";")
    assert (answer.status, answer.reached, answer.body) == (303, False, b"")
    assert (answer.headers["location"], name) == ("/?run=x", COOKIE)
    assert attributes.strip() == "Path=/; HttpOnly; SameSite=Strict"
    assert (answer.headers["cache-control"], answer.headers["content-length"]) == ("no-store", "0")
    assert auth.session_valid(value)


async def test_the_session_start_without_other_parameters_goes_to_the_root() -> None:
    """With only the token in the query the redirect goes to ``/``; over https the cookie is
    ``Secure``."""
    answer = await _request("/", query=f"token={TOKEN}", scheme="https")
    assert answer.headers["location"] == "/"
    assert answer.headers["set-cookie"].endswith("; Secure")


@pytest.mark.parametrize(
    ("path", "location"),
    [("/runs/r1", "/runs/r1?limit=5"), ("//attacker.example/x", "/attacker.example/x?limit=5")],
)
async def test_a_browser_opening_a_page_with_the_token_is_sent_back_to_it(
    path: str, location: str
) -> None:
    """The sign-in page's box sends the token to the page the browser asked for (a pasted
    link to a run): it gets its cookie and goes back to that page without the token, never to
    another host (``//host`` is a path here)."""
    auth = ApiAuth.configured(TOKEN)
    answer = await _request(
        path, headers=[("accept", "text/html")], query=f"token={TOKEN}&limit=5", auth=auth
    )
    cookie = answer.headers["set-cookie"].partition("=")[2].partition(";")[0]
    assert (answer.status, answer.reached, answer.headers["location"]) == (303, False, location)
    assert auth.session_valid(cookie)


async def test_a_page_asked_with_a_wrong_token_is_redirected_without_it() -> None:
    """The refused token leaves the address (the page's other parameters stay), replaced by
    the flag the sign-in page reads its reason from; no cookie is set."""
    answer = await _request(
        "/runs/r1",
        headers=[("accept", "text/html")],
        query="token=not-the-token-0123&limit=5&sign_in_refused=1",
    )
    assert (answer.status, answer.reached, "set-cookie" in answer.headers) == (303, False, False)
    assert "/runs/r1?limit=5&sign_in_refused=1" == answer.headers["location"]


@pytest.mark.parametrize(
    ("path", "method", "headers"),
    [
        ("/runs/r1", "GET", []),  # a page not asked by a browser: served, the token usable
        ("/api/runs", "GET", [("accept", "text/html")]),  # the API: never redirected
        ("/", "POST", [("content-type", "application/json")]),  # not a GET
        ("/", "GET", [("authorization", f"Bearer {TOKEN}")]),  # authenticated by header
    ],
)
async def test_only_a_get_of_a_page_by_query_token_starts_a_session(
    path: str, method: str, headers: list[tuple[str, str]]
) -> None:
    """Other requests carrying ``?token=`` go to the app, with no cookie set."""
    answer = await _request(path, method=method, headers=headers, query=f"token={TOKEN}")
    assert (answer.status, answer.reached, "set-cookie" in answer.headers) == (200, True, False)


# --- Host and Origin -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:9090", 200),
        ("localhost", 200),
        ("[::1]:9090", 200),
        ("LOCALHOST:80", 200),
        ("attacker.example", 403),
        ("attacker.example:9090", 403),
        ("10.0.0.7", 403),
        ("[::1]:x", 403),
    ],
)
async def test_the_host_header_must_name_this_server(host: str, status: int) -> None:
    """Loopback names pass; other names (a rebinding page's own name) are 403, even with the
    token, and the error says why."""
    answer = await _request(headers=[_bearer(), ("host", host)])
    assert (answer.status, answer.reached) == (status, status == 200)
    if status == 403:
        assert answer.error() == f"Host {host!r} is not allowed (DNS rebinding protection)"
        assert answer.headers["content-length"] == str(len(answer.body))


async def test_the_host_check_comes_before_the_token() -> None:
    """A foreign Host is 403 without a token too (not 401): no hint the token was wrong."""
    answer = await _request(headers=[("host", "attacker.example")])
    assert answer.status == 403


async def test_the_first_of_repeated_host_headers_counts() -> None:
    """Header names are case-blind and the first Host header is the one checked."""
    refused = await _request(headers=[_bearer(), ("Host", "evil.example"), ("host", "localhost")])
    allowed = await _request(headers=[_bearer(), ("HOST", "localhost"), ("host", "evil.example")])
    assert (refused.status, allowed.status) == (403, 200)


async def test_a_request_without_host_passes() -> None:
    """HTTP/1.0 without Host (never a browser) is judged on its credentials alone."""
    answer = await _request(headers=[_bearer()])
    assert answer.status == 200


async def test_the_bind_host_and_a_wildcard_bind() -> None:
    """The bind address is an allowed Host; on a wildcard bind any IP literal and this
    machine's name are, other names are not."""
    bound = await _request(headers=[_bearer(), ("host", "10.1.2.3:9090")], bind_host="10.1.2.3")
    wildcard = [
        (await _request(headers=[_bearer(), ("host", host)], bind_host="0.0.0.0")).status
        for host in ("192.168.7.7:9090", socket.gethostname().upper(), "attacker.example")
    ]
    assert (bound.status, wildcard) == (200, [200, 200, 403])


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("http://127.0.0.1:9090", 200),
        ("https://localhost", 200),
        ("http://[::1]:9090", 200),
        ("null", 403),
        (" NULL ", 403),
        ("http://attacker.example", 403),
        ("ftp://127.0.0.1", 403),
        ("http://[::1", 403),
        ("http://", 403),
        ("127.0.0.1", 403),
    ],
)
async def test_the_origin_must_name_this_server(origin: str, status: int) -> None:
    """A cross-site, opaque (``null``), non-HTTP or malformed Origin is 403."""
    answer = await _request(headers=[_bearer(), ("origin", origin)])
    assert answer.status == status
    if status == 403:
        assert answer.error() == f"Origin {origin!r} is not allowed"


# --- simple requests -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_state_changes_need_json(method: str, content_type: str | None) -> None:
    """A state-changing method with a "simple" (or no) content type is 415, token or not."""
    headers = [_bearer()] + ([("content-type", content_type)] if content_type else [])
    answer = await _request(method=method, headers=headers)
    assert (answer.status, answer.reached) == (415, False)
    assert answer.error() == f"{method} needs Content-Type: application/json"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON; charset=utf-8",
        " application/json ",
        "application/json; charset=utf-8; profile=x",
    ],
)
async def test_json_state_changes_pass(content_type: str) -> None:
    """``application/json``, with parameters or in any case, is accepted."""
    answer = await _request(method="POST", headers=[_bearer(), ("content-type", content_type)])
    assert (answer.status, answer.reached) == (200, True)


async def test_reads_need_no_content_type() -> None:
    """GET with a simple content type is fine: it changes nothing."""
    answer = await _request(headers=[_bearer(), ("content-type", "text/plain")])
    assert answer.status == 200


# --- the token and its helpers -------------------------------------------------------------------


def test_generated_tokens_are_fresh_hex_for_this_user() -> None:
    """``generate()`` gives 48 hex digits, a new one each time, for the server's user."""
    first, second = ApiAuth.generate(), ApiAuth.generate(principal="bob")
    assert (len(first.token), int(first.token, 16) >= 0, first.token != second.token) == (
        48,
        True,
        True,
    )
    assert (first.principal, second.principal, first.generated) == (server_user(), "bob", True)


def test_generated_tokens_normalise_their_allowed_hosts() -> None:
    """``generate(allowed_hosts=...)`` trims and lowercases the names like ``configured``."""
    auth = ApiAuth.generate(allowed_hosts=[" Build.Example. ", "", "BUILDX"])
    assert auth.allowed_hosts == frozenset({"build.example", "buildx"})


def test_host_names_are_compared_whole() -> None:
    """Only dots are trimmed from a name's end (``LOCALHOSTX`` is no loopback name), and the
    bind host is compared case-blind."""
    auth = ApiAuth.configured(TOKEN)
    assert (
        auth.host_allowed("LOCALHOSTX", bind_host="127.0.0.1"),
        auth.host_allowed("localhost..", bind_host="127.0.0.1"),
        auth.host_allowed("myhost", bind_host="MyHost"),
    ) == (False, True, True)


def test_sessions_with_a_dotted_or_empty_nonce_are_invalid() -> None:
    """A value is split at its first dot, and an empty nonce is refused even when signed."""
    key = b"k" * 32
    auth = ApiAuth(token=TOKEN, principal="p", cookie_key=key)

    def signed(nonce: str) -> str:
        return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()

    assert (
        auth.session_valid(f"abc.{signed('abc')}"),
        auth.session_valid(f"a.b.{signed('a.b')}"),
        auth.session_valid(f".{signed('')}"),
    ) == (True, False, False)


def test_configured_tokens_keep_their_principal_and_normalise_hosts() -> None:
    """A configured token is not ``generated``; allowed hosts are trimmed, lowercased, without
    a trailing dot, and blanks are dropped."""
    auth = ApiAuth.configured(TOKEN, allowed_hosts=[" CI.Internal. ", "", "  "])
    default = ApiAuth.configured(TOKEN)
    assert (auth.generated, auth.allowed_hosts, default.principal) == (
        False,
        frozenset({"ci.internal"}),
        server_user(),
    )
    assert auth.host_allowed("ci.internal.", bind_host="127.0.0.1")


def test_sixteen_characters_is_the_shortest_token() -> None:
    """16 characters are accepted, 15 are not."""
    ApiAuth.configured("x" * 16)
    with pytest.raises(ValueError, match="at least 16 characters"):
        ApiAuth.configured("x" * 15)


def test_session_values_are_a_nonce_and_its_signature() -> None:
    """A session value is 32 hex digits, a dot, 64 hex digits; each is new; an empty nonce or
    a value without a dot is invalid."""
    auth = ApiAuth.configured(TOKEN)
    value, again = auth.new_session(), auth.new_session()
    nonce, _, signature = value.partition(".")
    assert (len(nonce), len(signature), value != again) == (32, 64, True)
    assert (auth.session_valid(f".{signature}"), auth.session_valid(nonce + signature)) == (
        False,
        False,
    )


def test_server_user_names_an_unknown_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    """A uid without a passwd entry is named ``uid-N``."""
    monkeypatch.setattr(os, "geteuid", lambda: 2_000_000_123)
    assert server_user() == "uid-2000000123"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("fe80::1%eth0", False),
        ("::1%lo", True),
        ("0x7f000001", True),
        ("127.0.0.1.", True),
        ("1.2.3.4.5", False),
        ("0x7g.1", False),
        ("[127.0.0.1]", True),
        (" 127.0.0.1 ", True),
        ("::1%a%b%c", True),
        ("x127.1]", False),
        ("[127.1x", False),
        ("LOCALHOSTX", False),
    ],
)
def test_loopback_detection_of_zones_hex_and_padding(host: str, loopback: bool) -> None:
    """Zone ids are ignored, hex and trailing dots understood, impossible forms refused."""
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("example.com:notaport", "example.com:notaport"),
        ("::1", "::1"),
        (" Host.Example ", "host.example"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("[::1]]:80", "[::1]]:80"),
        ("[::1]:[1", "[::1]:[1"),
        ("[::1]:", "[::1]:"),
        ("[::1]x", "[::1]x"),
    ],
)
def test_host_header_edge_cases(header: str, name: str) -> None:
    """A non-numeric port stays part of the name, after brackets too (the web target's seed
    2126: ``Host: [::1]:[[…]]1`` passed as ``::1``, and the app redirected to a URL of that
    host no client could read); a bare IPv6 address is kept whole."""
    assert host_name(header) == name


@pytest.mark.parametrize(("host", "shown"), [("0.0.0.0", "0.0.0.0"), ("", "all interfaces")])
def test_exposure_error_names_the_address_and_the_fix(host: str, shown: str) -> None:
    """The refusal names the address (or "all interfaces") and both ways out."""
    with pytest.raises(SettingsError) as caught:
        check_exposure(host, token_configured=False)
    [(name, message)] = caught.value.problems
    assert name == "TASKDAEMON_API_TOKEN"
    assert message == (
        f"refusing to serve the run API on {shown} without a configured token; set "
        "TASKDAEMON_API_TOKEN (16+ characters) or bind 127.0.0.1"
    )
