"""The JSON side of the HTTP API: reading request bodies, answering errors.

Bodies reach these functions already bounded in size and time (``http_limits.py``). A body is
a JSON object or empty; anything else is a 400 with a one-line reason, never a 500: bad UTF-8,
bad JSON and deep nesting are refused by ``bounded.loads_bounded``.
A ``by`` field is refused outright: who approves, cancels or resumes is whoever the token
stands for, and a client that believes it can name someone else must hear that it cannot, in
the route's words (only an approval takes a ``comment`` to put notes in).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taskdaemon.pipeline.approval_audit import note_field
from taskdaemon.pipeline.bounded import BoundedInputError, loads_bounded

__all__ = [
    "BadRequestError",
    "bad_request",
    "error_response",
    "json_body",
    "text_field",
]


class BadRequestError(Exception):
    """Raised by handlers when the request body is not what the route needs."""


async def bad_request(request: Request, exc: Exception) -> Response:
    """The exception handler answering :class:`BadRequestError` with a 400."""
    return error_response(400, str(exc))


async def json_body(request: Request, *, approval: bool = False) -> dict[str, Any]:
    """The body as a JSON object (``{}`` when empty); BadRequestError otherwise. ``approval``:
    the route decides an approval (its refusal of ``by`` names the approver and ``comment``)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = loads_bounded(raw)  # 400, never 500, for deep nesting and bytes that are not UTF-8
    except BoundedInputError as exc:
        raise BadRequestError(f"body is {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError("body must be a JSON object")
    if "by" in body:
        if approval:
            raise BadRequestError(
                '"by" is not accepted: the approver is the authenticated principal; '
                'put notes in "comment"'
            )
        raise BadRequestError('"by" is not accepted: who acts is the authenticated principal')
    return body


def text_field(body: Mapping[str, Any], name: str) -> str:
    """An optional text field (a comment, a reason): ``approval_audit.note_field``'s rule, a
    400 when it is broken."""
    try:
        return note_field(body, name)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None


def error_response(status: int, message: str) -> Response:
    """``{"error": message}`` with ``status``; the message on one line (a client may log it
    as a line, and an exception's text can hold several)."""
    return JSONResponse({"error": " ".join(message.splitlines())}, status_code=status)
