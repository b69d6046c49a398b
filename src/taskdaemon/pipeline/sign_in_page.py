"""The sign-in page a browser gets for a page it may not see yet, and its form's ``POST``.

``http_security`` decides when a browser is signed out and what a token opens; this module
holds what the browser is shown and sends: the page (no script, no asset, only a reason
chosen from fixed texts), and the form's body, read bounded with its own, smaller bounds by
the reader the app's body bound uses too (``http_body``), since the security middleware reads
it before that bound (``http_limits``) applies. The form posts to the page it
stands for, so the token is in no URL, not even for one redirect.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from taskdaemon.pipeline.http_body import BodyStop, declared_length, read_body

__all__ = [
    "SIGN_IN_BODY_BYTES",
    "SIGN_IN_BODY_SECONDS",
    "is_page",
    "is_sign_in_form",
    "read_sign_in_form",
    "sign_in_page",
]

#: Bounds on the sign-in form's body (``token=`` and a token, percent-encoded: a token of up
#: to about 1,000 characters even when each is encoded as three).
SIGN_IN_BODY_BYTES: Final = 4096
SIGN_IN_BODY_SECONDS: Final = 10.0
_FORM: Final = "application/x-www-form-urlencoded"


def is_page(path: str) -> bool:
    """Whether ``path`` is one of the web page's pages: not the API (``/api`` and below it),
    not an asset (below ``/static/``). Only a page is answered with the sign-in page, and only
    a page takes its form."""
    return not path.startswith(("/api/", "/static/")) and path != "/api"


def is_sign_in_form(scope: Scope, headers: dict[str, str]) -> bool:
    """A browser's sign-in form: a form ``POST`` to a page (:func:`is_page`)."""
    return (
        scope["method"] == "POST"
        and headers.get("content-type", "").split(";", 1)[0].strip().lower() == _FORM
        and is_page(scope["path"])
    )


async def read_sign_in_form(scope: Scope, receive: Receive) -> str | tuple[int, str]:
    """The token the sign-in form sent, or why it was refused (status, message): over
    ``SIGN_IN_BODY_BYTES`` (by its ``Content-Length`` or as it comes), or not whole within
    ``SIGN_IN_BODY_SECONDS``, or a ``Content-Length`` that is no number, as the app's body
    bound refuses it. The rest of a refused body is bounded by the connection's own rule for a
    request answered before its body was read (``http_limits``)."""
    declared = declared_length(scope)
    if declared == -1:
        return (400, "the sign-in form's Content-Length is not a number")
    body = await read_body(
        receive, max_bytes=SIGN_IN_BODY_BYTES, seconds=SIGN_IN_BODY_SECONDS, declared=declared
    )
    if body is BodyStop.TOO_LARGE:
        return (413, f"a sign-in form's body is at most {SIGN_IN_BODY_BYTES} bytes")
    if body is BodyStop.TOO_LATE:
        return (408, f"the sign-in form's body did not come within {SIGN_IN_BODY_SECONDS:g}s")
    if body is BodyStop.GONE:
        return (400, "the sign-in form's request ended before its body")
    try:
        fields = parse_qsl(body.decode("latin-1"), max_num_fields=4)
    except ValueError:  # more fields than a sign-in form has
        fields = []
    token = dict(fields).get("token")
    return (400, "the sign-in form needs one 'token' field") if token is None else token


#: The page a browser gets for a page it may not see yet. No script, no asset (those need
#: a sign-in too), nothing from the request: only the reason, chosen from fixed texts (the
#: one for a refused address holds the seconds to wait, a number of ours).
#: Its form has no ``action``: the browser posts the token to the page it asked for (a
#: pasted link to a run opens that run once signed in, not the runs list).
SIGN_IN_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Sign in · taskdaemon</title></head>
<body><main>
<h1>Sign in to taskdaemon</h1>
<p><strong>{reason}</strong></p>
<form method="post"><label>Token
<input name="token" type="password" autocomplete="off" required autofocus></label>
<button type="submit">Sign in</button></form>
<p>The token is <code>TASKDAEMON_API_TOKEN</code> when the server has it, else the one it
generated and wrote under <code>TASKDAEMON_HOME</code>: <code>api-token.PORT</code> for
<code>serve</code>, <code>ui-token.PORT</code> for <code>ui</code>. The sign-in address the
server showed on its terminal (<code>/?token=TOKEN</code>) signs in too.</p>
</main></body></html>
"""


async def sign_in_page(
    send: Send, reason: str, *, status: int = 401, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = SIGN_IN_PAGE.format(reason=reason).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *(extra or []),
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="taskdaemon"'),
                (
                    b"content-security-policy",
                    b"default-src 'none'; form-action 'self'; base-uri 'none'; "
                    b"frame-ancestors 'none'",
                ),
                (b"x-content-type-options", b"nosniff"),
                # The form's POST carries an Origin under this policy (``Origin: null``
                # under ``no-referrer``), and the page's URL holds no token to leak.
                (b"referrer-policy", b"same-origin"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
