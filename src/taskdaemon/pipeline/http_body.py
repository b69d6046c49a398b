"""A request body read whole, bounded in size and in time, and the length its
``Content-Length`` declares: one reader and one rule behind the API's body bound
(``http_limits``) and the sign-in form's (``sign_in_page``).

The reader answers nothing: it returns the body, or why it stopped (:class:`BodyStop`), and
each caller words the answer, and decides what a client gone deserves (the middleware, nothing;
the form, a 400 nobody reads). A body is refused as too large on its declared
``Content-Length`` before a byte is read, and again as it arrives, whatever it declared: under
a server that frames bodies by that header (h11) the two agree, but an ASGI server need not.
The deadline bounds the whole body, not each message, so a client trickling a byte at a time
is as late as one that stops; one ``asyncio.timeout`` bounds every ``receive``, with no task
per message.
"""

from __future__ import annotations

import asyncio
import enum

from starlette.types import Receive, Scope

__all__ = ["BodyStop", "declared_length", "read_body"]


class BodyStop(enum.Enum):
    """Why a body was not read whole."""

    TOO_LARGE = "too large"  # declared, or sent, over the bound
    TOO_LATE = "too late"  # not whole by the deadline
    GONE = "gone"  # the client went away (a message other than ``http.request``)


def declared_length(scope: Scope) -> int | None:
    """The length a request's ``Content-Length`` declares (the first, in any case, without the
    spaces around it): None without one, -1 when it is not ASCII digits. h11 refuses such a
    request before any app sees it; the callers refuse it too, for a server that does not."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() else -1  # bytes: ASCII digits only
    return None


async def read_body(
    receive: Receive, *, max_bytes: int, seconds: float, declared: int | None = None
) -> bytes | BodyStop:
    """The body ``receive`` brings, at most ``max_bytes`` of it (exactly that many is whole),
    all of it within ``seconds`` of the call; ``declared`` is its ``Content-Length``, None
    without one. A ``BodyStop`` leaves the rest of the body unread."""
    if declared is not None and declared > max_bytes:
        return BodyStop.TOO_LARGE
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return BodyStop.GONE
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    return BodyStop.TOO_LARGE
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        return BodyStop.TOO_LATE
