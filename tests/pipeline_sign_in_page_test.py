"""The sign-in page's form ``POST`` as the security middleware judges it, with raw ASGI
requests: a right token starts a session and goes back to the page as a ``GET``, a wrong one
is counted like a wrong ``?token=``, a body is bounded in size and time, a form without an
``Origin`` naming this server is refused, and none of it reaches the app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote

import pytest

from taskdaemon.pipeline import sign_in_page
from taskdaemon.pipeline.http_security import ApiAuth, SecurityMiddleware
from taskdaemon.pipeline.sign_in_page import SIGN_IN_BODY_BYTES, is_page
from taskdaemon.pipeline.token_failures import TokenFailures

TOKEN = "s3cret-token-0123456789"
PORT = 8123
ORIGIN = ("origin", f"http://127.0.0.1:{PORT}")
FORM = ("content-type", "application/x-www-form-urlencoded")


class _Sent:
    """What the gate answered (status, headers by lowercase name, body) and whether the app
    behind it was called."""

    def __init__(self) -> None:
        self.messages: list[MutableMapping[str, Any]] = []
        self.reached = False

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.messages[0]["headers"]}

    def error(self) -> str:
        return str(json.loads(b"".join(m.get("body", b"") for m in self.messages[1:]))["error"])


async def _post(
    body: list[bytes] | None,
    *,
    path: str = "/runs/r1",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    auth: ApiAuth | None = None,
    failures: TokenFailures | None = None,
    client: str = "127.0.0.1",
) -> _Sent:
    """``POST path?query`` with ``body`` in those chunks (None: a client that never sends)."""
    sent = _Sent()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        sent.reached = True

    gate = SecurityMiddleware(app, auth=auth or ApiAuth.configured(TOKEN), failures=failures)
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "scheme": "http",
        "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in (headers or [ORIGIN, FORM])],
        "server": ("127.0.0.1", PORT),
        "client": (client, 50000),
    }
    chunks = list(body or [])

    async def receive() -> dict[str, Any]:
        if body is None:
            await asyncio.Event().wait()  # a client that never sends its body
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.messages.append(message)

    await gate(scope, receive, send)
    return sent


async def test_the_right_token_signs_in_and_goes_back_to_the_page() -> None:
    """The token in the form body (percent-encoded, in two chunks) sets the session cookie and
    answers 303 to the page it was posted to, its query kept but a former refusal's flag."""
    auth = ApiAuth.configured(TOKEN)
    body = f"token={quote(TOKEN)}".encode()
    sent = await _post(
        [body[:7], body[7:]], query="limit=5&sign_in_refused=1", auth=auth, path="/runs/r1"
    )
    cookie = sent.headers["set-cookie"].partition("=")[2].partition(";")[0]
    assert (sent.status, sent.reached, sent.headers["location"]) == (303, False, "/runs/r1?limit=5")
    assert auth.session_valid(cookie)


async def test_a_wrong_token_is_counted_and_goes_back_to_the_sign_in_page() -> None:
    """A wrong token sets no cookie, goes back to the page with the flag its sign-in page
    reads its reason from, and counts as one wrong token of the address: past the bound (10)
    the form, the right token too, gets the sign-in page (429), not JSON."""
    failures = TokenFailures()
    sent = await _post([b"token=not-the-token-0123"], failures=failures)
    assert (sent.status, "set-cookie" in sent.headers) == (303, False)
    assert sent.headers["location"] == "/runs/r1?sign_in_refused=1"
    for _ in range(9):
        await _post([b"token=not-the-token-0123"], failures=failures)
    last = await _post([f"token={TOKEN}".encode()], failures=failures)
    assert (last.status, last.headers["content-type"]) == (429, "text/html; charset=utf-8")
    assert "retry-after" in last.headers


async def test_a_right_token_in_the_form_makes_its_address_known_in_a_flood() -> None:
    """An address signed in through the form is no newcomer any more, as one that showed the
    token in a header: once wrong tokens from elsewhere pass the server's total, newcomers
    are refused before their token is compared, and that address is not."""
    failures = TokenFailures(total_limit=3)
    signed = await _post([f"token={TOKEN}".encode()], failures=failures, client="192.0.2.7")
    assert signed.status == 303
    for n in range(3):
        await _post([b"token=not-the-token-0123"], failures=failures, client=f"198.51.100.{n}")
    assert failures.retry_after("203.0.113.9") is not None  # a newcomer, in the flood
    assert failures.retry_after("192.0.2.7") is None


@pytest.mark.parametrize(
    ("headers", "body", "status", "error"),
    [
        ([FORM], [f"token={TOKEN}".encode()], 403, "an Origin naming this server"),
        ([("origin", "http://attacker.example"), FORM], [b"token=x"], 403, "is not allowed"),
        ([ORIGIN, FORM], [b"tok=x"], 400, "one 'token' field"),
        ([ORIGIN, FORM], [b"a=1&b=2&c=3&d=4&e=5&token=x"], 400, "one 'token' field"),
        ([ORIGIN, FORM, ("content-length", "5000")], [b""], 413, "at most 4096 bytes"),
        ([ORIGIN, FORM], [b"x" * 4000, b"x" * 4000], 413, "at most 4096 bytes"),
    ],
)
async def test_a_bad_form_is_one_line_and_reaches_nothing(
    headers: list[tuple[str, str]], body: list[bytes], status: int, error: str
) -> None:
    """Forged (no Origin, another site's), fieldless, over-long or too large: one JSON line,
    no cookie, the app not called."""
    sent = await _post(body, headers=headers)
    assert (sent.status, sent.reached, "set-cookie" in sent.headers) == (status, False, False)
    assert error in sent.error()
    assert SIGN_IN_BODY_BYTES == 4096


async def test_a_form_whose_length_is_no_number_is_400_as_an_api_body_is() -> None:
    """A ``Content-Length`` that is no number is refused as the app's body bound refuses it
    (h11 refuses it first; another server may not), its body not read."""
    sent = await _post([b"token=x"], headers=[ORIGIN, FORM, ("Content-Length", "ten")])
    assert (sent.status, sent.reached) == (400, False)
    assert sent.error() == "the sign-in form's Content-Length is not a number"


async def test_a_body_that_never_comes_is_408_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A form whose body never comes is answered 408 when its time is up."""
    monkeypatch.setattr(sign_in_page, "SIGN_IN_BODY_SECONDS", 0.2)
    sent = await asyncio.wait_for(_post(None), 5)
    assert (sent.status, sent.reached) == (408, False)
    assert "did not come within 0.2s" in sent.error()


@pytest.mark.parametrize("path", ["/api/runs", "/api", "/static/app.js"])
async def test_a_form_to_the_api_is_still_refused_as_a_simple_content_type(path: str) -> None:
    """Only pages take the form: the API and the assets answer 415 (with the token) as
    before."""
    sent = await _post(
        [b"token=x"], path=path, headers=[ORIGIN, FORM, ("authorization", f"Bearer {TOKEN}")]
    )
    assert (sent.status, sent.reached) == (415, False)


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/", True),
        ("/runs/r1", True),
        ("/apidocs", True),  # not under /api: a page the app may serve, or its 404 page
        ("/static", True),  # the folder itself is no asset
        ("/api", False),
        ("/api/runs", False),
        ("/static/app.js", False),
    ],
)
def test_a_page_is_any_path_but_the_api_and_the_assets(path: str, page: bool) -> None:
    """The one rule the form and a browser's page request share: the form posts to a page,
    and only a page is answered with the sign-in page."""
    assert page == is_page(path)
