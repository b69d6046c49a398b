"""An error never sends the refused text back at length: whatever a client put in a header, a
path segment, a query parameter or a body field, the answer quotes at most its first 40
characters (``quoting.quote``), so a 16 KiB header or a 1 MiB body field costs its sender, not
the server, and a log line that carries the answer stays a line.

Every test talks to a real server (:func:`server_support.waiting_run`: Uvicorn on a free loopback
port, over a real engine whose run waits for an approval) over TCP.
"""

from __future__ import annotations

import json

import pytest

import server_support

TOKEN = "echoes-test-token-0123456789"
BEARER = {"authorization": f"Bearer {TOKEN}"}
JSON = {**BEARER, "content-type": "application/json"}
#: The refused text: longer than the quote by far, within h11's 16 KiB bound on a request head.
LONG = "A" * 12_000


def assert_quotes_the_start_only(body: bytes, status: int, got: int, most: int = 40) -> str:
    """The answer is ``status``, one JSON error quoting the start of :data:`LONG` (fewer than
    ``most`` of its characters, then an ellipsis) and no more of it."""
    message = json.loads(body)["error"]
    assert (got, "AAAAAAAAAA…" in message, "A" * most in message, len(message) < 300) == (
        status,
        True,
        False,
        True,
    ), message[:300]
    return str(message)


@pytest.mark.parametrize(
    ("header", "value", "says"),
    [
        ("host", LONG, "Host 'AAA"),
        ("origin", "http://" + LONG, "Origin 'http://AAA"),
    ],
)
async def test_a_refused_host_or_origin_is_quoted_short_without_a_token(
    header: str, value: str, says: str
) -> None:
    """The DNS-rebinding checks answer before authentication: anyone on the machine can send
    a 12,000-character Host or Origin, and gets 40 of them back, not 12,000."""
    async with server_support.waiting_run(TOKEN) as (client, _run_id):
        response = await client.get("/api/runs", headers={header: value})
    assert says in assert_quotes_the_start_only(response.content, 403, response.status_code)


@pytest.mark.parametrize(
    ("method", "path", "status", "says"),
    [
        ("GET", "/api/runs/recent?status={long}", 400, "unknown status 'AAA"),
        ("GET", "/api/runs/recent?since={long}", 400, "not a time: 'AAA"),
        ("GET", "/api/runs/recent?until=9{long}", 400, "not a time: '9AAA"),
        ("GET", "/api/runs/recent?since={nines}d", 400, "not a duration: '999"),
        ("GET", "/api/runs/{run}?stage={long}", 404, "has no stage 'AAA"),
        ("GET", "/api/runs/{run}/dag?format={long}", 400, "unknown format 'AAA"),
        ("GET", "/api/{long}", 404, "nothing at /api/AAA"),
        ("PUT", "/api/runs/{run}/approve/{long}", 405, "PUT is not allowed on /api/runs/"),
        ("POST", "/api/runs/{run}/approve/{long}", 404, "has no stage 'AAA"),
        ("POST", "/api/runs/{run}/reject/{long}", 404, "has no stage 'AAA"),
        ("POST", "/api/runs/{run}/debug/{long}", 404, "no debug action 'AAA"),
    ],
)
async def test_a_refused_query_parameter_or_path_segment_is_quoted_short(
    method: str, path: str, status: int, says: str
) -> None:
    """Every route that names a refused parameter or path segment quotes its start only."""
    async with server_support.waiting_run(TOKEN) as (client, run_id):
        url = path.format(run=run_id, long=LONG, nines="9" * 5000)
        response = await client.request(method, url, headers=JSON, content=b"{}")
    if "{nines}" in path:  # digits, not A's: the same bound, told by its length
        message = json.loads(response.content)["error"]
        assert (response.status_code, says in message, len(message) < 300) == (400, True, True)
        return
    most = 80 if says.startswith(("nothing at", "PUT is not")) else 40  # a path: 80 characters
    assert says in assert_quotes_the_start_only(
        response.content, status, response.status_code, most
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/api/runs/{run}/events", {"type": "{long}"}, 409, "listening to 'AAA"),
        ("PUT", "/api/runs/{run}/debug/breakpoints", {"stage": "{long}"}, 404, "no stage 'AAA"),
        ("POST", "/api/runs/{run}/debug/step", {"stage": "{long}"}, 404, "no stage 'AAA"),
        ("POST", "/api/runs/{run}/debug/skip", {"stage": "{long}"}, 404, "no stage 'AAA"),
        ("POST", "/api/runs/{run}/debug/retry", {"stage": "{long}"}, 404, "no stage 'AAA"),
    ],
)
async def test_a_refused_body_field_is_quoted_short(
    method: str, path: str, body: dict[str, str], status: int, says: str
) -> None:
    """A name in a body (up to the 1 MiB body limit) that names nothing is quoted by its start:
    a 500,000-character event type or stage got 500 KB back, ``skip`` and ``retry`` 1 MB (it
    was quoted twice). A stage the run does not have is a 404 for every debug command."""
    field = {name: value.replace("{long}", "A" * 500_000) for name, value in body.items()}
    async with server_support.waiting_run(TOKEN) as (client, run_id):
        url = path.format(run=run_id)
        response = await client.request(method, url, headers=JSON, content=json.dumps(field))
    assert says in assert_quotes_the_start_only(response.content, status, response.status_code)


async def test_the_run_page_of_a_text_that_is_no_run_id_quotes_its_start() -> None:
    """``/runs/{id}`` (a page, outside the API's request check) named a 12,000-character id
    whole in its 404; it refuses it as the API does, quoting 40 characters."""
    async with server_support.waiting_run(TOKEN) as (client, _run_id):
        response = await client.get(f"/runs/{LONG}", headers=BEARER)
    assert (response.status_code, "not a run id" in response.text, "A" * 41 in response.text) == (
        404,
        True,
        False,
    )
