"""Who may drive the HTTP API: a token, a session cookie, and Host/Origin allow-lists.

The model is the one Jupyter's server uses, tightened where it is loose:

* **Token.** ``TASKDAEMON_API_TOKEN`` when set (at least 16 characters), else 48 random hex
  digits generated at start (:meth:`ApiAuth.generate`). A generated token is written with
  mode 0600 to ``$TASKDAEMON_HOME/api-token.PORT``, and to ``api-token`` unless a running
  server of the home holds that name (``token_files``: one file per server, held while it
  runs, removed when it stops) and shown in the sign-in URL ``http://host:port/?token=…`` on a
  terminal only, never logged (``cli.sign_in``). A configured token is never written
  anywhere: its owner already has it.
* **Credentials.** ``Authorization: Bearer T`` or ``Authorization: token T``; or the session
  cookie ``taskdaemon-session-<port>`` (HMAC-signed with a per-process key, ``HttpOnly``,
  ``SameSite=Strict``, ``Path=/``; ``Secure`` when ``TASKDAEMON_API_PUBLIC_URL`` is https,
  below) that ``GET /?token=T`` sets before redirecting to ``/`` (so
  the token leaves the address bar), as a browser's ``GET`` of any other page with the token
  does, redirecting to that page (the sign-in URL ``serve`` shows, a link); or ``?token=T`` on
  any request, taken off the query the app is given (a redirect or a link it makes from the
  query would hold it). Tokens are compared with :func:`hmac.compare_digest`. A session cookie
  dies with the process that signed it.
* **Sign-in form.** The sign-in page's box posts the token as a form
  (``application/x-www-form-urlencoded``) to the page it stands for, so that the token is in
  no URL, not even for one redirect (a ``GET`` form put it in the address bar and the
  browser's history): a right one starts a session and a wrong one is counted, as by
  ``?token=``, each answered by a redirect to the page (``sign_in_page`` reads the body,
  bounded). Forgery: a page of any site can post such a form (its content type needs no CORS
  preflight), so this ``POST`` needs an ``Origin`` naming this server (every browser sends
  one on a ``POST``; without one it is 403), where the JSON ones are checked only when they
  send one. The session cookie's ``SameSite=Strict`` does not help here: a forged sign-in
  needs no cookie, it would set one.
* **Wrong tokens.** Counted per client address (``token_failures``): past the bound in a
  window, that address's requests are answered 429 with ``Retry-After`` before any token is
  compared (a valid session cookie still passes; a browser opening a page gets the sign-in
  page saying when to try again, not JSON), and each window is one log line.
* **Open routes.** ``/metrics``, ``/healthz`` and ``/readyz`` need nothing (Prometheus and
  orchestrators' probes do not authenticate; metrics are not secret). Every other path,
  including unknown ones, needs a credential: 401 with ``WWW-Authenticate: Bearer``, the
  JSON error, or for a browser opening a page outside ``/api`` a sign-in page saying why
  (a page asked with a wrong ``?token=`` is first redirected to itself without it, so that the
  refused token, likely most of the right one, leaves the address bar).
* **Host.** On authenticated paths the ``Host`` header must name a loopback address
  (:func:`is_loopback`: ``localhost``, ``127.0.0.0/8`` including shorthand such as ``127.1``,
  ``::1``, ``::ffff:127.0.0.1``), the bind host, a name in ``TASKDAEMON_API_ALLOWED_HOSTS`` (``*``
  allows any), or, on a wildcard bind (``0.0.0.0``, ``::``), any IP literal or this machine's
  host name (with a port or none: a name followed by anything else names none of them).
  Anything else is 403: this is what stops DNS rebinding, where a web page's own name
  resolves to 127.0.0.1. A request without ``Host`` (HTTP/1.0, never a browser) passes.
* **Origin.** When present it must name an allowed host as well (``null`` never does): a
  cross-site page cannot use the browser's cookie (``SameSite=Strict`` already withholds it).
* **No state change on a simple content type.** ``POST``, ``PUT``, ``PATCH`` and ``DELETE``
  need ``Content-Type: application/json`` even with an empty body (415 otherwise): browsers
  send those only after a CORS preflight, which this server never grants. The sign-in form is
  the one exception, and is never given to the app.
* **Principal.** The token stands for one principal: ``TASKDAEMON_API_USER``, else the OS user
  running the server (whoever holds the token could read it from that user's files or
  environment). Approvals record this name; a request body cannot choose it.
* **Behind a proxy ending TLS.** The server speaks plain HTTP; nginx or Caddy in front of it
  may end TLS. Decision: the operator says so, ``TASKDAEMON_API_PUBLIC_URL=https://host``
  (the session cookie is then ``Secure``, and ``host`` is allowed as a ``Host`` and
  ``Origin``); no forwarded header is trusted (``X-Forwarded-Proto``, ``-For``, ``Forwarded``)
  but ``X-Forwarded-For`` from a proxy named in ``TASKDAEMON_API_TRUSTED_PROXY``
  (``forwarded_for``, its own decisions).
  Uvicorn trusts them by default from loopback (its ``forwarded_allow_ips``), and Jupyter
  when ``trust_xheaders`` is set; on a machine whose loopback other users share, any of them
  could then choose the address its wrong tokens count under (``token_failures``: a fresh
  budget a request) and the scheme. The request's client is the socket's peer unless the
  operator names that peer as a proxy: behind a proxy on this machine every client is
  otherwise loopback, one budget, which the proxy may bound itself per real client.
* **Exposure.** Serving on a non-loopback address needs a configured token
  (:func:`check_exposure`): a token printed on a shared machine's console is no secret.

The CLI never uses this API: ``approve``, ``publish`` and ``cancel`` go through the per-user
control socket (see ``control.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import pwd
import re
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit
from urllib.parse import quote as url_quote

from starlette.types import ASGIApp, Receive, Scope, Send

from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.errors import SettingsError
from taskdaemon.pipeline.forwarded_for import NO_PROXIES, TrustedProxies
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.sign_in_page import (
    is_page,
    is_sign_in_form,
    read_sign_in_form,
    sign_in_page,
)
from taskdaemon.pipeline.token_failures import TokenFailures

__all__ = [
    "OPEN_PATHS",
    "TOKEN_FILE_NAME",
    "UI_TOKEN_FILE_NAME",
    "ApiAuth",
    "SecurityMiddleware",
    "check_exposure",
    "host_name",
    "is_loopback",
    "send_error",
    "server_user",
    "wants_page",
]

_log = logging.getLogger(__name__)

#: Paths served to anyone (probes and scrapers do not authenticate).
OPEN_PATHS: Final = frozenset({"/metrics", "/healthz", "/readyz"})
#: The files under ``TASKDAEMON_HOME`` holding a generated token (``api-token.PORT``, and
#: ``api-token`` for the first server of the home: ``token_files``).
TOKEN_FILE_NAME: Final = "api-token"  # noqa: S105 - a file name, not a secret
#: The same for ``taskdaemon ui``'s generated token: ``api-token`` names a server that can
#: control runs, which a read-only ``ui`` beside it must not pass for.
UI_TOKEN_FILE_NAME: Final = "ui-token"  # noqa: S105 - a file name, not a secret
MIN_TOKEN_LENGTH: Final = 16

_STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_AUTH_HEADER: Final = re.compile(r"^\s*(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)
_IPV4_SHORTHAND: Final = re.compile(r"^(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}$")
_WILDCARDS: Final = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognised, not bound


# --- addresses -----------------------------------------------------------------------------------


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP literal in any form the C resolver accepts (``127.1``, ``0x7f.1``), else None."""
    name = text.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        pass
    # ``ipaddress`` refuses the shorthand forms inet_aton and browsers accept; inet_aton also
    # accepts trailing garbage after a space, hence the shape check first.
    if not _IPV4_SHORTHAND.match(name):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals, IPv4-mapped and shorthand forms too."""
    name = host.strip().rstrip(".").lower()
    if name == "localhost":
        return True
    address = _ip(name)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address is not None and address.is_loopback


def host_name(header: str) -> str:
    """The host part of a ``Host`` header value (port and IPv6 brackets removed), lowercase.
    What follows a name but a port stays part of it (so it names no allowed host): the app
    writes the header back into the URLs it redirects to."""
    value = header.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        return name if not rest or (rest[0] == ":" and ascii_digits(rest[1:])) else value
    name, sep, port = value.rpartition(":")
    if sep and ascii_digits(port) and ":" not in name:
        return name
    return value


def server_user() -> str:
    """The OS user name of this process (the default principal)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def check_exposure(host: str, *, token_configured: bool) -> None:
    """Refuse (SettingsError) to serve the API beyond loopback without a configured token."""
    if not is_loopback(host) and not token_configured:
        raise SettingsError(
            [
                (
                    "TASKDAEMON_API_TOKEN",
                    f"refusing to serve the run API on {host or 'all interfaces'} without a "
                    f"configured token; set TASKDAEMON_API_TOKEN ({MIN_TOKEN_LENGTH}+ characters)"
                    " or bind 127.0.0.1",
                )
            ]
        )


# --- the token -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiAuth:
    """The API's credentials and allow-lists (see the module docstring).

    ``generated`` says the token was made at start (and may be written to a file) rather than
    configured. ``secure_cookie``: people open the server over https, a proxy in front of it
    ending TLS (``TASKDAEMON_API_PUBLIC_URL``), so the session cookie is ``Secure``.
    ``trusted_proxies``: the proxies whose ``X-Forwarded-For`` names the client wrong tokens
    count under (``TASKDAEMON_API_TRUSTED_PROXY``, ``forwarded_for``). ``repr`` never shows
    the token or the cookie key.
    """

    token: str = field(repr=False)
    principal: str
    generated: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    secure_cookie: bool = False
    trusted_proxies: TrustedProxies = NO_PROXIES
    cookie_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def __post_init__(self) -> None:
        if len(self.token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"an API token needs at least {MIN_TOKEN_LENGTH} characters")

    @classmethod
    def generate(
        cls,
        *,
        principal: str | None = None,
        allowed_hosts: Iterable[str] = (),
        secure_cookie: bool = False,
        trusted_proxies: TrustedProxies = NO_PROXIES,
    ) -> ApiAuth:
        """A fresh random token (``secrets.token_hex(24)``) for ``principal`` (default: us)."""
        return cls(
            token=secrets.token_hex(24),
            principal=principal or server_user(),
            generated=True,
            allowed_hosts=_normalise_hosts(allowed_hosts),
            secure_cookie=secure_cookie,
            trusted_proxies=trusted_proxies,
        )

    @classmethod
    def configured(
        cls,
        token: str,
        *,
        principal: str | None = None,
        allowed_hosts: Iterable[str] = (),
        secure_cookie: bool = False,
        trusted_proxies: TrustedProxies = NO_PROXIES,
    ) -> ApiAuth:
        """A token the operator chose (``TASKDAEMON_API_TOKEN``)."""
        return cls(
            token=token,
            principal=principal or server_user(),
            allowed_hosts=_normalise_hosts(allowed_hosts),
            secure_cookie=secure_cookie,
            trusted_proxies=trusted_proxies,
        )

    def token_matches(self, candidate: str) -> bool:
        """Constant-time comparison with the token (bytes: non-ASCII input is just wrong)."""
        return hmac.compare_digest(candidate.encode("utf-8"), self.token.encode("utf-8"))

    def new_session(self) -> str:
        """A session cookie value: a random nonce and its HMAC under the per-process key."""
        nonce = secrets.token_hex(16)
        return f"{nonce}.{self._sign(nonce)}"

    def session_valid(self, value: str) -> bool:
        """True for a cookie value :meth:`new_session` of this process made."""
        nonce, sep, signature = value.partition(".")
        if not sep or not nonce:
            return False
        return hmac.compare_digest(signature.encode(), self._sign(nonce).encode())

    def _sign(self, nonce: str) -> str:
        return hmac.new(self.cookie_key, nonce.encode(), hashlib.sha256).hexdigest()

    def host_allowed(self, host: str, *, bind_host: str) -> bool:
        """Whether a ``Host``/``Origin`` host name may address this server."""
        name = host.strip().rstrip(".").lower()
        if is_loopback(name) or "*" in self.allowed_hosts or name in self.allowed_hosts:
            return True
        bind = bind_host.strip().lower()
        if name == bind:
            return True
        if bind in _WILDCARDS:
            return _ip(name) is not None or name in _machine_names()
        return False


def _normalise_hosts(hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(h.strip().rstrip(".").lower() for h in hosts if h.strip())


def _machine_names() -> frozenset[str]:
    names = {socket.gethostname().lower()}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn().lower())
    return frozenset(names)


# --- the middleware ------------------------------------------------------------------------------


class SecurityMiddleware:
    """ASGI middleware enforcing the rules of the module docstring before the app sees a request.

    ``bind_host`` is the address the server listens on (for the Host allow-list), or a
    function returning it: the app is built before the server binds. ``failures`` counts the
    wrong tokens of each client address and refuses one past its bound (``token_failures``);
    by default one of its own, with the default bounds.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: ApiAuth,
        bind_host: str | Callable[[], str] = "127.0.0.1",
        failures: TokenFailures | None = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self._bind_host = bind_host
        self.failures = failures if failures is not None else TokenFailures()

    @property
    def bind_host(self) -> str:
        """The address the server listens on."""
        bind = self._bind_host
        return bind if isinstance(bind, str) else bind()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get("host")
        if host is not None and not self.auth.host_allowed(
            host_name(host), bind_host=self.bind_host
        ):
            await send_error(
                send, 403, f"Host {quote(host)} is not allowed (DNS rebinding protection)"
            )
            return
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin):
            await send_error(send, 403, f"Origin {quote(origin)} is not allowed")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        cookie_name = _cookie_name(scope)
        client = self.auth.trusted_proxies.client(scope)
        signed_in = self._signed_in(headers, cookie_name)
        retry = None if signed_in else self.failures.retry_after(client)
        form = is_sign_in_form(scope, headers)
        if retry is not None:
            wait = [(b"retry-after", str(retry).encode())]
            if wants_page(scope, headers) or form:
                # A browser gets a page it can read, whose box works again once the wait is over.
                reason = f"Too many wrong tokens from this address: try again in {retry} s."
                await sign_in_page(send, reason, status=429, extra=wait)
            else:
                reason = f"too many wrong tokens from this address: try again in {retry} s"
                await send_error(send, 429, reason, extra=wait)
            return
        if form:
            await self._form_sign_in(scope, receive, send, query=query)
            return
        via = self._authenticate(headers, query, signed_in=signed_in)
        if via is not None:
            self.failures.succeeded(client)  # no newcomer any more (``token_failures``)
        else:
            tried = ("token" in query) + bool(_AUTH_HEADER.match(headers.get("authorization", "")))
            if tried:  # each token compared is a guess: a header and a query are two
                self.failures.failed(client, tried)
            if wants_page(scope, headers) and "token" in query:
                # A wrong token leaves the address bar (the sign-in box hides what is typed:
                # a mistyped token is most of the right one); the next page says why.
                await _redirect(send, _page_without_token(scope, query, [(_REFUSED, "1")]))
                return
            if wants_page(scope, headers):
                await sign_in_page(send, _why_signed_out(query, headers, cookie_name))
                return
            await send_error(
                send,
                401,
                "authentication required: send 'Authorization: Bearer <token>' (the token is "
                "TASKDAEMON_API_TOKEN, or the file the server wrote under TASKDAEMON_HOME: "
                "api-token.PORT for serve, ui-token.PORT for ui)",
                extra=[(b"www-authenticate", b'Bearer realm="taskdaemon"')],
            )
            return
        method = scope["method"]
        if method in _STATE_CHANGING and not _is_json(headers.get("content-type", "")):
            await send_error(send, 415, f"{method} needs Content-Type: application/json")
            return
        if (
            via == "query"
            and method == "GET"
            and (scope["path"] == "/" or wants_page(scope, headers))
        ):
            await self._start_session(scope, send, _page_without_token(scope, query))
            return
        if "token" in query:
            scope = {**scope, "query_string": _without_token(scope["query_string"])}
        await self.app(scope, receive, send)

    def _origin_allowed(self, origin: str) -> bool:
        if origin.strip().lower() == "null":
            return False
        try:
            parts = urlsplit(origin.strip())
            hostname = parts.hostname
        except ValueError:
            return False
        return (
            parts.scheme in {"http", "https"}
            and hostname is not None
            and self.auth.host_allowed(hostname, bind_host=self.bind_host)
        )

    def _authenticate(
        self, headers: dict[str, str], query: dict[str, str], *, signed_in: bool
    ) -> str | None:
        """How the request proved it holds the token: header, cookie (``signed_in``: its
        session cookie is valid, :meth:`_signed_in`), query; None if it did not."""
        match = _AUTH_HEADER.match(headers.get("authorization", ""))
        if match and self.auth.token_matches(match.group(1)):
            return "header"
        if signed_in:
            return "cookie"
        token = query.get("token")
        if token is not None and self.auth.token_matches(token):
            return "query"
        return None

    def _signed_in(self, headers: dict[str, str], cookie_name: str) -> bool:
        """Whether the request carries a session cookie this server signed."""
        cookie = _cookies(headers.get("cookie", "")).get(cookie_name)
        return cookie is not None and self.auth.session_valid(cookie)

    async def _start_session(self, scope: Scope, send: Send, location: str) -> None:
        """Set the session cookie and redirect to ``location`` (the page signed in to, without
        the token)."""
        cookie = (
            f"{_cookie_name(scope)}={self.auth.new_session()}; Path=/; HttpOnly; SameSite=Strict"
            + ("; Secure" if self.auth.secure_cookie or scope.get("scheme") == "https" else "")
        )
        await _redirect(send, location, cookie)

    async def _form_sign_in(
        self, scope: Scope, receive: Receive, send: Send, *, query: dict[str, str]
    ) -> None:
        """The sign-in form's ``POST``: its token starts a session and goes back to the page
        as a ``GET`` (303); a wrong one is counted and goes back to the page's sign-in page
        saying so, as a wrong ``?token=`` does."""
        headers = _headers(scope)
        if "origin" not in headers:  # one not naming this server was refused already
            await send_error(send, 403, "the sign-in form needs an Origin naming this server")
            return
        token = await read_sign_in_form(scope, receive)
        if isinstance(token, tuple):
            await send_error(send, *token)
            return
        client = self.auth.trusted_proxies.client(scope)
        if self.auth.token_matches(token):
            self.failures.succeeded(client)  # no newcomer any more, as a header's token
            await self._start_session(scope, send, _page_without_token(scope, query))
            return
        self.failures.failed(client, 1)
        await _redirect(send, _page_without_token(scope, query, [(_REFUSED, "1")]))


#: The query parameter a refused token's redirect adds, so that the sign-in page says why.
_REFUSED: Final = "sign_in_refused"


def _page_without_token(
    scope: Scope, query: dict[str, str], extra: list[tuple[str, str]] | None = None
) -> str:
    """The requested page's URL without ``token`` (and without a former ``_REFUSED``), with
    ``extra``. The location is a path on this server: ``//host`` would name another."""
    kept = [(k, v) for k, v in query.items() if k not in {"token", _REFUSED}]
    rest = urlencode(kept + (extra or []))
    return "/" + url_quote(scope["path"].lstrip("/")) + (f"?{rest}" if rest else "")


def _without_token(query: bytes) -> bytes:
    """``query`` without its ``token`` parameters: the app never needs them, and would echo
    them (a redirect to the path without its ``/``, the runs page's links to the next rows)."""
    kept = (
        part
        for part in query.split(b"&")
        if unquote_plus(part.partition(b"=")[0].decode("latin-1")) != "token"
    )
    return b"&".join(kept)


async def _redirect(send: Send, location: str, cookie: str | None = None) -> None:
    """A ``303`` to ``location``, setting ``cookie`` when given."""
    headers = [(b"location", location.encode("latin-1"))]
    if cookie is not None:
        headers.append((b"set-cookie", cookie.encode("latin-1")))
    headers += [(b"cache-control", b"no-store"), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def wants_page(scope: Scope, headers: dict[str, str]) -> bool:
    """A browser opening a page (``sign_in_page.is_page``): it gets a page, not JSON."""
    return (
        scope["method"] == "GET"
        and "text/html" in headers.get("accept", "")
        and is_page(scope["path"])
    )


def _why_signed_out(query: dict[str, str], headers: dict[str, str], cookie_name: str) -> str:
    if _REFUSED in query:
        return "The token you gave is not this server's token."
    if cookie_name in _cookies(headers.get("cookie", "")):
        return "Your session has ended: the server was restarted since you signed in."
    return "This page needs the server's token."


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers by lowercase name (the first of repeated ones)."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _cookies(header: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            found.setdefault(name, value)
    return found


def _cookie_name(scope: Scope) -> str:
    """Cookies are per host, not per port: the port keeps two local servers' sessions apart."""
    server = scope.get("server") or ("", 0)
    return f"taskdaemon-session-{server[1] or 0}"


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


async def send_error(
    send: Send, status: int, message: str, *, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer ``status`` with the API's one error shape, ``{"error": message}``, straight to
    ASGI's ``send`` (for the middlewares, which answer before any route runs); ``extra``
    headers after the content ones."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
