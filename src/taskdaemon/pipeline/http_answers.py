"""What every HTTP answer looks like, whichever route (or none) produced it.

* **Errors** are ``{"error": "<one line>"}`` with ``Content-Type: application/json``: the
  routes' own (``http_json.error_response``), and Starlette's 404 (no such route) and 405 (a
  method the route does not serve, with ``Allow``), which would otherwise be plain text; an
  unhandled exception is a 500 of the same shape (the traceback goes to the server's log only).
  One exception, chosen in ``server.py`` (this module knows no page): a browser opening a page
  no route serves (``http_security.wants_page``) gets the web page's 404 page, saying the same.
* ``OPTIONS`` on a route answers 204 with ``Allow`` (no CORS headers: the server never grants a
  cross-origin request). It needs the token like any other method.
* **Headers.** Every answer carries ``X-Content-Type-Options: nosniff``, and every one but a
  static file of the page (a ``GET`` or ``HEAD`` under ``/static/`` answered below 400)
  ``Cache-Control: no-store`` (run data, tokens in sign-in redirects and health verdicts must
  not be kept by a proxy or a browser's cache), unless the route set its own. A ``/static/``
  error (no such file, a refused credential or method) is an error like any other: without
  ``no-store`` (HTTP lets a cache keep a 404 by its own rule), a browser could keep a file's
  absence past a newer server that has it.
* **Ranges of a static file** (``StaticFolder``). A ``Range`` past the file's end is a 416 of
  the same JSON shape (with ``Content-Range: bytes */<size>``), and a malformed byte range
  (``bytes=5-2``) a 400 of it, where Starlette answered plain text (RFC 9110 lets a server
  reject or ignore an invalid range: refused, a client's mistake shows). A range unit other than
  ``bytes`` is ignored (the whole file, 200), as RFC 9110 requires, where Starlette refused it.
* **Compression.** An answer of ``GZIP_FROM`` bytes or more is gzipped for a client that
  accepts it (``Vary: Accept-Encoding``; ``server.py`` adds :class:`GzipMiddleware`, Starlette's
  ``GZipMiddleware`` asking :func:`accepts_gzip`):
  the page, DAG and state of a run of hundreds of stages are repetitive JSON, SVG and HTML
  that gzip shrinks tenfold and more, and on a slow line the DAG showed only once all of them
  had come whole. Starlette leaves ``text/event-stream`` alone (an event must reach the page
  when sent, not when a compressor flushes): a stream gzips itself, flushed at each event
  (``web._streams``, "Compression"). Nor is a range (206) compressed, nor ``/metrics``, which
  gzips its own. Whether a client accepts gzip is one rule for them all, :func:`accepts_gzip`:
  ``gzip`` or ``*`` named without ``q=0`` (RFC 9110, 12.5.3: ``q=0`` is "not acceptable").
  Starlette's middleware and prometheus_client's ``gzip_accepted`` looked for the word
  ``gzip`` alone, so a client saying ``gzip;q=0`` (one that wants to read the bytes as they
  are, or to measure them) got gzip from the page and ``/metrics``, and plain text from the
  event streams. Prometheus's own ``/metrics`` (Go's client_golang, which weighs the ``q``
  values) honours ``q=0``. No answer's body holds a
  secret (the token and the session are in headers only), so the length of a compressed
  answer that echoes a request (BREACH) has nothing to give away.
* **Redirects** name a path on this server, never a host: a path with a trailing ``/`` too
  many or too few (``/api/runs/``) is sent (307) to the one a route serves, as Starlette's
  router does, but with ``Location: /api/runs`` (query kept) where Starlette wrote the
  request's ``Host`` into it: with ``TASKDAEMON_API_ALLOWED_HOSTS=*`` any ``Host`` passes, and
  the server would send a browser to whatever host a client or a poisoned cache named.
* **Query parameters.** ``/api`` routes refuse a parameter they do not read (400 naming the ones
  they do), so a misspelt filter is an error rather than a silently unfiltered answer;
  ``token`` (``http_security.py``) is accepted everywhere.
* **Run ids.** A ``{run_id}`` in an ``/api`` path that cannot name a run (run ids are 32 hex
  digits, and span sources take a prefix of at least 4) is a 400, not a 404: the client sent
  something else than an id (a name, a path, a URL-encoded slash). The rule and its message
  are ``run_id_form``'s, the span store's too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl
from urllib.parse import quote as url_quote

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware, GZipResponder, IdentityResponder
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    MalformedRangeHeader,
    RangeNotSatisfiable,
    RedirectResponse,
    Response,
)
from starlette.routing import Match, Router
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.http_json import error_response
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.run_id_form import run_id_problem

__all__ = [
    "ANSWER_HEADERS",
    "GZIP_FROM",
    "AnswerHeadersMiddleware",
    "GzipMiddleware",
    "RequestCheckMiddleware",
    "StaticFolder",
    "accepts_gzip",
    "http_error",
    "nothing_at",
    "relative_slash_redirects",
    "server_error",
]

_ALWAYS: Final = frozenset({"token"})
#: Characters of a path a 404 or 405 names: a run's routes are under 80; the rest of a 16 KiB
#: path is not sent back.
_PATH_SHOWN: Final = 80
#: The smallest body gzipped (the module docstring): below it, gzip's own header and a packet
#: or two saved are not worth the work.
GZIP_FROM: Final = 1024
#: The headers every answer carries (a static file no ``no-store``: the module docstring).
ANSWER_HEADERS: Final = (("cache-control", "no-store"), ("x-content-type-options", "nosniff"))
_RAW_HEADERS: Final = tuple((name.encode(), value.encode()) for name, value in ANSWER_HEADERS)
#: A static file's: it may be cached.
_STATIC_HEADERS: Final = tuple(h for h in _RAW_HEADERS if h[0] != b"cache-control")


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value takes ``gzip``: named with a ``q`` over 0 (none is
    1), or not named and ``*`` so (a coding named has its own weight: ``*, gzip;q=0`` refuses
    gzip). A ``q`` that is no number is a refusal."""
    weights: dict[str, float] = {}
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.partition(";")
        name, _, q = params.partition("=")
        try:
            weight = float(q) if name.strip() == "q" else 1.0
        except ValueError:
            weight = 0.0
        weights.setdefault(coding.strip(), weight)
    return weights.get("gzip", weights.get("*", 0.0)) > 0


class GzipMiddleware(GZipMiddleware):
    """Starlette's ``GZipMiddleware`` deciding by :func:`accepts_gzip` (the module docstring,
    "Compression")."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        excluded = {"exclude_content_types": self.exclude_content_types}
        responder: Any = (
            GZipResponder(
                self.app,
                self.minimum_size,
                compresslevel=self.compresslevel,
                thread_minimum_size=self.thread_minimum_size,
                **excluded,
            )
            if accepts_gzip(Headers(scope=scope).get("accept-encoding", ""))
            else IdentityResponder(self.app, self.minimum_size, **excluded)
        )
        await responder(scope, receive, send)


def _allowed(request: Request) -> str:
    """Every method the request's path is served with, ``OPTIONS`` included: Starlette's own
    ``Allow`` names only the first route of the path, and a path can have one per method.

    The app's routes are matched from the app's root: an error raised inside a mount
    (``/static``) comes with the mount's scope, whose ``root_path`` ends in the mount's path,
    and no route of the app matched it (a ``POST`` of a static file was allowed only
    ``OPTIONS``)."""
    scope = request.scope
    root = {
        "method": "OPTIONS",
        "root_path": scope.get("app_root_path", scope.get("root_path", "")),
    }
    methods = {"OPTIONS"}
    for route in request.app.routes:
        match, _child = route.matches({**scope, **root})
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ("GET", "HEAD"))
    return ", ".join(sorted(methods))


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 (and any other ``HTTPException``) as a JSON error; OPTIONS
    on a route that does not list it: 204 with ``Allow``."""
    if not isinstance(exc, HTTPException):  # registered for HTTPException only
        return await server_error(request, exc)
    headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
    method, path = request.method, request.url.path
    if exc.status_code == 405:
        headers["allow"] = _allowed(request)
        if method == "OPTIONS":
            return Response(status_code=204, headers=headers)
        shown = cut(path, _PATH_SHOWN)
        message = f"{method} is not allowed on {shown}; allowed: {headers['allow']}"
    elif exc.status_code == 404:
        message = f"{nothing_at(path)} (GET /api lists the routes)"
    else:
        message = str(exc.detail)
    response = error_response(exc.status_code, message)
    response.headers.update(headers)
    return response


def nothing_at(path: str) -> str:
    """What a 404 of no route says, JSON or (``server.py``) a browser's page."""
    return f"nothing at {cut(path, _PATH_SHOWN)}"


def relative_slash_redirects(router: Router) -> None:
    """Makes ``router`` send a path no route serves to its twin with a ``/`` added or the
    trailing ones taken off, when a route serves that, by a ``Location`` without a host (the
    module docstring); anything else is its 404 still."""
    router.redirect_slashes = False
    not_found = router.not_found

    async def unrouted(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] == "http" and path != "/":
            twin = path.rstrip("/") if path.endswith("/") else path + "/"
            if any(
                route.matches({**scope, "path": twin})[0] is not Match.NONE
                for route in router.routes
            ):
                query = scope.get("query_string", b"").decode("latin-1")
                # one leading "/": "//host" in a Location names another server
                location = "/" + url_quote(twin.lstrip("/")) + (f"?{query}" if query else "")
                await RedirectResponse(location, status_code=307)(scope, receive, send)
                return
        await not_found(scope, receive, send)

    router.default = unrouted


async def server_error(request: Request, exc: Exception) -> Response:
    """An unhandled exception: a 500 that names no internals. Starlette answers it outside
    every middleware, hence the headers here; it then re-raises, and Uvicorn logs the
    traceback."""
    response = error_response(500, "internal server error (logged by the server)")
    response.headers.update(dict(ANSWER_HEADERS))
    return response


class AnswerHeadersMiddleware:
    """Adds ``Cache-Control: no-store`` and ``X-Content-Type-Options: nosniff`` to every
    answer that does not set them, but ``no-store`` to a static file the page loads (a
    ``GET`` or ``HEAD`` under ``cacheable`` answered below 400): its errors are not kept."""

    def __init__(self, app: ASGIApp, *, cacheable: str = "/static/") -> None:
        self.app = app
        self.cacheable = cacheable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["method"] in ("GET", "HEAD") and scope["path"].startswith(self.cacheable)

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                added = _STATIC_HEADERS if static and message["status"] < 400 else _RAW_HEADERS
                headers.extend(h for h in added if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestCheckMiddleware:
    """Refuses (400) a query parameter an ``/api`` route does not read, and a run id that is
    not one.

    ``params`` maps a route's path (as routed, ``/api/runs/{run_id}``) to the parameters it
    reads; ``routes`` returns the app's routes (the app is built after this middleware).
    A route missing from ``params`` reads none.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        params: Mapping[str, Collection[str]],
        routes: Callable[[], Collection[Any]],
    ) -> None:
        self.app = app
        self.params = params
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api"):
            refusal = self._refusal(scope)
            if refusal is not None:
                await error_response(400, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None. Unrouted requests pass (the router answers
        404 or 405)."""
        found = self._route(scope)
        if found is None:
            return None
        path, path_params = found
        run_id = path_params.get("run_id")
        if isinstance(run_id, str) and (problem := run_id_problem(run_id)) is not None:
            return problem
        raw = scope.get("query_string", b"").decode("latin-1")
        given = {name for name, _ in parse_qsl(raw, keep_blank_values=True)} - _ALWAYS
        known = frozenset(self.params.get(path, ()))
        unknown = sorted(given - known)
        if not unknown:
            return None
        reads = ", ".join(sorted(known)) or "none"
        names = ", ".join(quote(name) for name in unknown[:5])
        return f"unknown query parameter {names} for {scope['path']} (it reads: {reads})"

    def _route(self, scope: Scope) -> tuple[str, Mapping[str, Any]] | None:
        """The path and path parameters of the route the request matches (of one that serves
        another method when none serves this one); None when no route matches."""
        partial = None
        for route in self.routes():
            match, child = route.matches(scope)
            if match is Match.NONE:
                continue
            found = (getattr(route, "path", ""), child.get("path_params", {}))
            if match is Match.FULL:
                return found
            if partial is None:
                partial = found
        return partial


class _RangeCheckedFile(FileResponse):
    """A file whose refused ``Range`` is an ``HTTPException``, answered by ``http_error`` in
    the one error shape (Starlette's ``FileResponse`` answers it in plain text itself)."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        if http_range.partition("=")[0].strip().lower() != "bytes":
            return []  # RFC 9110, 14.2: a range unit not understood is ignored
        shown = f"range {quote(cut(http_range, _PATH_SHOWN))}"
        try:
            return super()._parse_range_header(http_range, file_size)
        except RangeNotSatisfiable:
            past = f"{shown} starts past the file's {file_size} bytes"
            raise HTTPException(416, past, {"content-range": f"bytes */{file_size}"}) from None
        except MalformedRangeHeader as exc:
            # Starlette's words ("Malformed range header.", "range must be requested") say
            # neither what is wrong nor what to write.
            why = (
                "its first byte is past its last"
                if "start must be less than end" in str(exc.content)
                else "names no byte range (write bytes=FIRST-LAST, bytes=FIRST- or bytes=-COUNT)"
            )
            raise HTTPException(400, f"{shown}: {why}") from None


class StaticFolder(StaticFiles):
    """Starlette's ``StaticFiles`` whose files refuse a bad ``Range`` in the one error shape
    (the module docstring)."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = _RangeCheckedFile(full_path, status_code=status_code, stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response
