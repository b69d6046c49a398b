"""The HTTP API as a client meets it: one error shape, status codes, headers, query parameters,
run ids, and the run list's field names (``http_answers.py``, ``api_views.py``).

Every test talks to a real server (:func:`server_support.serving`: Uvicorn on a free loopback
port) over a real engine, as a client would, over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest

import server_support
from taskdaemon.pipeline.api_views import RunView
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.http_json import error_response
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Pipeline, Stage

TOKEN = "answers-test-token-0123456789"
BEARER = {"authorization": f"Bearer {TOKEN}"}
JSON = {**BEARER, "content-type": "application/json"}

QUICK = """
name: quick
loops: {work: {handler: "unused:unused"}}
stages:
  - name: only
    loop: work
    triggers: [{manual: {approval_required: false}}]
"""


class Resolver:
    """Every stage returns at once."""

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def handler(ctx: StageContext) -> Mapping[str, Any]:
            return {"stage": stage.name}

        return handler


def waiting_run() -> contextlib.AbstractAsyncContextManager[tuple[httpx.AsyncClient, str]]:
    """``server_support.waiting_run`` with this file's token."""
    return server_support.waiting_run(TOKEN)


def assert_one_json_error(response: httpx.Response, status: int) -> str:
    """The response is ``status`` with ``{"error": "<one line>"}``, JSON, never cached; the
    message is returned."""
    body = json.loads(response.content)
    assert (
        response.status_code,
        response.headers["content-type"],
        response.headers["cache-control"],
        list(body),
        isinstance(body["error"], str) and "\n" not in body["error"] and bool(body["error"]),
    ) == (status, "application/json", "no-store", ["error"], True)
    return str(body["error"])


# --- field names ---------------------------------------------------------------------------------


async def test_the_run_list_names_times_and_stages_as_the_record_does() -> None:
    """``GET /api/runs`` has the record's ``start``, ``end`` and stage ``name``, and still the
    first names (``started_at``, ``finished_at``; ``stage``, ``started_at``, ``ended_at``) with
    the same values, for the clients written against them."""
    async with waiting_run() as (client, run_id):
        (run,) = (await client.get("/api/runs", headers=BEARER)).json()["runs"]
        record = (await client.get(f"/api/runs/{run_id}", headers=BEARER)).json()
    assert {"start", "end"} <= set(record)
    assert (run["start"], run["end"]) == (run["started_at"], run["finished_at"])
    assert isinstance(run["start"], float)
    build = next(stage for stage in run["stages"] if stage["name"] == "build")
    assert (build["stage"], build["start"], build["end"]) == (
        "build",
        build["started_at"],
        build["ended_at"],
    )
    assert (type(build["start"]), type(build["end"])) == (float, float)
    (attempt,) = next(s for s in record["stages"] if s["name"] == "build")["attempts"]
    assert {"name", "start", "end"} - set(build) == set()
    assert {"start", "end", "instance", "attempt", "status"} <= set(attempt)
    assert sorted(s["name"] for s in run["stages"]) == sorted(s["name"] for s in record["stages"])


async def test_the_index_lists_each_routes_query_parameters() -> None:
    """``GET /api`` says which parameters each route reads (the rest are refused)."""
    async with waiting_run() as (client, _run_id):
        routes = (await client.get("/api", headers=BEARER)).json()["routes"]
    query = {route["path"]: route["query"] for route in routes}
    assert (query["/api/runs"], query["/api/runs/{run_id}/dag"], query["/api"]) == (
        ["before", "finished", "limit"],
        ["format"],
        [],
    )


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "says"),
    [
        ("GET", "/api/nope", BEARER, None, 404, "nothing at /api/nope"),
        ("GET", "/api/runs/{run}/nope", BEARER, None, 404, "GET /api lists the routes"),
        ("GET", "/api/runs/..%2f..%2fetc", BEARER, None, 404, "nothing at"),
        ("DELETE", "/api/runs", JSON, None, 405, "allowed: GET, HEAD, OPTIONS"),
        ("GET", "/api/runs/{run}/cancel", BEARER, None, 405, "allowed: OPTIONS, POST"),
        ("GET", "/api/runs/nope", BEARER, None, 400, "not a run id"),
        ("GET", "/api/runs/{long}", BEARER, None, 400, "not a run id"),
        ("GET", "/api/runs/%00%0a", BEARER, None, 400, "not a run id"),
        ("POST", "/api/runs/deploy/cancel", JSON, b"{}", 400, "not a run id"),
        ("GET", "/api/runs?finshed=true", BEARER, None, 400, "unknown query parameter 'finshed'"),
        ("GET", "/api/runs?finished=maybe", BEARER, None, 400, "finished must be true or false"),
        ("GET", "/api/runs?limit=-1", BEARER, None, 400, "limit must be a whole number 1-500"),
        ("GET", "/api/runs?limit=0", BEARER, None, 400, "limit must be a whole number 1-500"),
        ("GET", "/api/runs?limit=501", BEARER, None, 400, "limit must be a whole number 1-500"),
        ("GET", "/api/runs?limit=" + "9" * 5000, BEARER, None, 400, "1-500"),
        ("GET", "/api/runs?limit=%C2%B2", BEARER, None, 400, "1-500"),
        ("GET", "/api/runs/recent?limit=0", BEARER, None, 400, "a whole number 1-500, got '0'"),
        ("GET", "/api/runs/recent?limit=%2B5", BEARER, None, 400, "got '+5'"),
        ("GET", "/api/runs/recent?limit=1_0", BEARER, None, 400, "got '1_0'"),
        ("GET", "/api/runs/recent?limit=%207%20", BEARER, None, 400, "got ' 7 '"),
        ("GET", "/api/runs/recent?limit=%C2%B2", BEARER, None, 400, "1-500, got '²'"),
        # Quoted as every refused value is (quoting.quote): 39 digits and an ellipsis, 40 in all.
        ("GET", "/api/runs/recent?limit=" + "9" * 5000, BEARER, None, 400, f"got '{'9' * 39}…'"),
        ("GET", "/api/runs?limit=%207%20", BEARER, None, 400, "got ' 7 '"),
        ("GET", "/api/runs/{run}/dag?fmt=svg", BEARER, None, 400, "(it reads: format)"),
        ("GET", "/api/pipelines?x=1", BEARER, None, 400, "(it reads: none)"),
        ("GET", "/api/runs", {}, None, 401, "authentication required"),
        ("OPTIONS", "/api/runs", {}, None, 401, "authentication required"),
        ("POST", "/api/runs/{run}/cancel", BEARER, b"{}", 415, "Content-Type: application/json"),
        ("POST", "/api/runs/{run}/events", JSON, b"[1]", 400, "body must be a JSON object"),
        ("POST", "/api/runs/{run}/approve/nosuch", JSON, None, 404, "has no stage 'nosuch'"),
        ("POST", "/api/runs/{run}/approve/build", JSON, None, 409, "build"),
        ("POST", "/api/runs/{other}/cancel", JSON, None, 404, "no run"),
    ],
)
async def test_every_error_is_one_json_line_with_its_status(
    *,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    says: str,
) -> None:
    """404 (no route, no run, no stage), 405, 400 (a parameter, a value, an id that is not one,
    a body), 401, 415 and 409 all answer ``{"error": "<one line>"}`` as JSON (413 closes the
    connection: reliability_http_test.py reads it over a raw socket)."""
    async with waiting_run() as (client, run_id):
        url = path.format(run=run_id, long="a" * 5000, other="0" * 32)
        response = await client.request(method, url, headers=headers, content=body)
    assert says in assert_one_json_error(response, status)


BROWSER = {**BEARER, "accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


async def test_a_browser_opening_no_page_gets_a_page_and_a_client_json() -> None:
    """A browser opening ``/runs`` (the runs are at ``/``) or a typo gets a 404 page saying
    what is not there, with a link to the runs: it read raw JSON. An API client (no HTML in
    its ``Accept``) keeps the JSON, and so do ``/api`` and ``/static`` addresses, whoever asks."""
    paths = ("/runs", "/runs/", "/x")
    async with waiting_run() as (client, _run_id):
        pages = [await client.get(path, headers=BROWSER) for path in paths]
        jsons = [
            await client.get("/runs", headers=BEARER),
            await client.get("/runs", headers={**BEARER, "accept": "application/json"}),
            await client.get("/api/nope", headers=BROWSER),
        ]
        asset = await client.get("/static/nope.js", headers=BROWSER)
    said = ("<h1>Page not found</h1>", "nothing at {}</p>", '<a href="/">All runs</a>')
    assert [
        (r.status_code, r.headers["content-type"], [s.format(path) in r.text for s in said])
        for path, r in zip(paths, pages, strict=True)
    ] == [(404, "text/html; charset=utf-8", [True, True, True])] * 3
    assert [assert_one_json_error(r, 404).split(" (")[0] for r in jsons] == [
        "nothing at /runs",
        "nothing at /runs",
        "nothing at /api/nope",
    ]
    assert (404, "application/json") == (asset.status_code, asset.headers["content-type"])


async def test_an_unhandled_exception_is_a_json_500_naming_nothing_inside() -> None:
    """A handler that fails unexpectedly answers 500 in the same shape; what failed stays in
    the server's log."""

    class Failing:
        """A run controller whose listing fails (the bug under test); no command is called."""

        def runs(self, **query: Any) -> Sequence[RunView]:
            raise RuntimeError("secret internals /etc/taskdaemon")

    async with (
        server_support.serving(Failing(), auth=ApiAuth.configured(TOKEN)) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        response = await client.get("/api/runs", headers=BEARER)
    message = assert_one_json_error(response, 500)
    assert message == "internal server error (logged by the server)"
    assert "Traceback" not in response.text


def test_an_error_message_of_several_lines_is_sent_as_one() -> None:
    """An exception's text with line breaks becomes one line (clients log errors as lines)."""
    response = error_response(409, "first\nsecond\r\nthird")
    assert json.loads(bytes(response.body)) == {"error": "first second third"}


# --- methods and headers -------------------------------------------------------------------------


async def test_options_and_405_list_every_method_the_path_is_served_with() -> None:
    """A path served by several routes (PUT and DELETE breakpoints) lists all their methods,
    not only the first route's; OPTIONS answers 204 with that list."""
    async with waiting_run() as (client, run_id):
        path = f"/api/runs/{run_id}/debug/breakpoints"
        options = await client.options(path, headers=BEARER)
        refused = await client.get(path, headers=BEARER)
        listed = await client.options("/api/runs", headers=BEARER)
    assert (options.status_code, options.content, refused.status_code) == (204, b"", 405)
    assert {"DELETE", "PUT", "OPTIONS"} <= set(options.headers["allow"].split(", "))
    assert refused.headers["allow"] == options.headers["allow"]
    assert listed.headers["allow"] == "GET, HEAD, OPTIONS"


async def test_data_answers_are_never_cached_and_the_static_files_may_be() -> None:
    """Run data (JSON, DAG drawings, streams' heads), HEAD answers and errors carry
    ``Cache-Control: no-store`` and ``nosniff``; the page's script, and its ``304``, may be
    cached, still ``nosniff``."""
    async with waiting_run() as (client, run_id):
        answers = [
            await client.get("/api/runs", headers=BEARER),
            await client.head(f"/api/runs/{run_id}", headers=BEARER),
            await client.get(f"/api/runs/{run_id}/dag?format=mermaid", headers=BEARER),
            await client.get(f"/api/runs/{run_id}/debug", headers=BEARER),
            await client.get("/healthz"),
        ]
        script = await client.get("/static/app.js", headers=BEARER)
        unchanged = await client.get(
            "/static/app.js", headers={**BEARER, "if-none-match": script.headers["etag"]}
        )
    assert [(r.status_code, r.headers.get("cache-control")) for r in answers] == [
        (200, "no-store")
    ] * len(answers)
    assert {r.headers.get("x-content-type-options") for r in answers} == {"nosniff"}
    assert [bool(r.headers.get("content-type")) for r in answers] == [True] * len(answers)
    assert [
        (r.status_code, r.headers.get("cache-control"), r.headers.get("x-content-type-options"))
        for r in (script, unchanged)
    ] == [(200, None, "nosniff"), (304, None, "nosniff")]


async def test_every_error_under_static_is_never_cached() -> None:
    """A missing file, the folder itself, no credential, a wrong ``Host``, a ``POST`` (JSON or
    not) and a ``HEAD`` of a missing file under ``/static/`` are errors like any other's:
    ``no-store`` and ``nosniff``. They had neither, so a cache could keep a 404 of a file."""
    async with waiting_run() as (client, _run_id):
        answers = [
            await client.get("/static/nope.js", headers=BEARER),
            await client.get("/static/", headers=BEARER),
            await client.get("/static/app.js"),
            await client.get("/static/app.js", headers={**BEARER, "host": "evil.example"}),
            await client.post("/static/app.js", headers=BEARER),
            await client.post("/static/app.js", headers=JSON),
            await client.head("/static/nope.js", headers=BEARER),
        ]
    assert [
        (r.status_code, r.headers.get("cache-control"), r.headers.get("x-content-type-options"))
        for r in answers
    ] == [(status, "no-store", "nosniff") for status in (404, 404, 401, 403, 415, 405, 404)]
    for answer in answers[:-1]:  # a HEAD answer has no body
        assert_one_json_error(answer, answer.status_code)


async def test_a_request_the_server_cannot_parse_is_a_json_error_never_cached() -> None:
    """A head that is no HTTP, and one past the 16 KiB bound, are refused by the protocol
    before any middleware: in the API's one error shape, ``no-store`` and ``nosniff`` (it was
    uvicorn's plain text "Invalid HTTP request received.", cacheable)."""
    heads = [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20_000 + b"\r\n\r\n"]
    answers = []
    async with waiting_run() as (client, _run_id):
        for head in heads:
            reader, writer = await asyncio.open_connection(
                client.base_url.host, client.base_url.port
            )
            writer.write(head)
            answers.append(_answer(await reader.read()))
            writer.close()
            await writer.wait_closed()
    for answer in answers:
        assert_one_json_error(answer, 400)
        assert "nosniff" == answer.headers["x-content-type-options"]


def _answer(raw: bytes) -> httpx.Response:
    """A whole HTTP/1.1 answer, as read off a socket."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {name: value for name, _, value in (line.partition(b": ") for line in lines)}
    return httpx.Response(int(status.split(b" ")[1]), headers=headers, content=body)


async def test_static_files_keep_their_own_rules_for_head_ranges_queries_and_methods() -> None:
    """Under ``/static/``: a ``HEAD`` of a file may be cached as its ``GET`` may, and so may a
    range of it (206); a range refused (400) is an error, never cached; a query
    (a script's version, ``?v=2``) is no ``/api`` parameter and is not refused, nor is one on
    ``/healthz``; a ``POST`` is a 405, and ``OPTIONS`` a 204, naming what the folder is served
    with (they named ``OPTIONS`` alone: the mount's scope matched no route of the app)."""
    async with waiting_run() as (client, _run_id):
        head = await client.head("/static/app.js", headers=BEARER)
        part = await client.get("/static/app.js", headers={**BEARER, "range": "bytes=0-3"})
        backwards = await client.get("/static/app.js", headers={**BEARER, "range": "bytes=5-2"})
        versioned = await client.get("/static/app.js?v=2", headers=BEARER)
        probed = await client.get("/healthz?probe=1")
        posted = await client.post("/static/app.js", headers=JSON)
        options = await client.options("/static/app.js", headers=BEARER)
    assert [
        (r.status_code, r.headers.get("cache-control"), r.headers.get("x-content-type-options"))
        for r in (head, part, backwards, versioned, probed)
    ] == [
        (200, None, "nosniff"),
        (206, None, "nosniff"),
        (400, "no-store", "nosniff"),
        (200, None, "nosniff"),
        (200, "no-store", "nosniff"),
    ]
    assert (len(part.content), head.content, bool(versioned.content)) == (4, b"", True)
    assert [posted.headers["allow"], options.headers["allow"], options.status_code] == [
        "GET, HEAD, OPTIONS",
        "GET, HEAD, OPTIONS",
        204,
    ]
    assert assert_one_json_error(posted, 405) == (
        "POST is not allowed on /static/app.js; allowed: GET, HEAD, OPTIONS"
    )


async def test_a_static_files_refused_range_is_the_one_json_error_shape() -> None:
    """A range past the file's end is a 416 and a backwards one a 400, both ``{"error": ...}``
    as every other error (Starlette answered them in plain text, the 416 with no body); a
    range unit other than ``bytes`` is ignored, the whole file served (RFC 9110 14.2)."""
    async with waiting_run() as (client, _run_id):
        whole = await client.get("/static/app.js", headers=BEARER)
        size = len(whole.content)
        past = await client.get("/static/app.js", headers={**BEARER, "range": f"bytes={size}-"})
        backwards = await client.get("/static/app.js", headers={**BEARER, "range": "bytes=5-2"})
        lines = await client.get("/static/app.js", headers={**BEARER, "range": "lines=0-3"})
    assert (
        assert_one_json_error(past, 416)
        == f"range 'bytes={size}-' starts past the file's {size} bytes"
    )
    assert past.headers["content-range"] == f"bytes */{size}"
    assert (
        assert_one_json_error(backwards, 400)
        == "range 'bytes=5-2': its first byte is past its last"
    )
    assert (lines.status_code, lines.content) == (200, whole.content)


async def test_a_malformed_byte_range_is_refused_in_words_of_its_own() -> None:
    """A ``bytes`` range with no ``=``, or whose ranges are no numbers, is a 400 saying what to
    write, in one sentence like every other error (Starlette's words said neither); it is not
    taken for another unit and ignored because a ``=`` follows later in it."""
    async with waiting_run() as (client, _run_id):
        answers = [
            await client.get("/static/app.js", headers={**BEARER, "range": given})
            for given in ("bytes", "bytes=0-1=2", "bytes=x-y")
        ]
    to_write = "names no byte range (write bytes=FIRST-LAST, bytes=FIRST- or bytes=-COUNT)"
    assert [assert_one_json_error(a, 400) for a in answers] == [
        f"range 'bytes': {to_write}",
        f"range 'bytes=0-1=2': {to_write}",
        f"range 'bytes=x-y': {to_write}",
    ]


async def test_a_header_the_route_sets_itself_is_sent_once() -> None:
    """The run page sets its own ``Cache-Control`` and ``nosniff``: the answer carries each
    once, not the route's and the server's side by side."""
    async with waiting_run() as (client, run_id):
        page = await client.get(f"/runs/{run_id}", headers=BEARER)
    assert (
        page.status_code,
        page.headers.get_list("cache-control"),
        page.headers.get_list("x-content-type-options"),
    ) == (200, ["no-store"], ["nosniff"])


async def test_a_parameter_given_without_a_value_is_refused_too() -> None:
    """``?finshed`` (no ``=``) and ``?zz=`` are parameters the route does not read, as with a
    value: refused, not ignored."""
    async with waiting_run() as (client, _run_id):
        answers = [
            await client.get("/api/runs?finshed", headers=BEARER),
            await client.get("/api/runs?zz=", headers=BEARER),
        ]
    assert [assert_one_json_error(a, 400).split(" for ")[0] for a in answers] == [
        "unknown query parameter 'finshed'",
        "unknown query parameter 'zz'",
    ]


# --- lists ---------------------------------------------------------------------------------------


async def test_limit_keeps_the_newest_runs_in_their_order() -> None:
    """``/api/runs?finished=true&limit=2`` lists the last two runs started, oldest first, as
    the whole list does."""
    pipeline = parse_pipeline(QUICK)
    async with (
        Engine(resolver=Resolver()) as engine,
        server_support.serving(engine, auth=ApiAuth.configured(TOKEN)) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        ids = []
        for _ in range(3):
            handle = await engine.start_run(pipeline, {})
            await handle.wait()
            ids.append(handle.run_id)
        every = (await client.get("/api/runs?finished=true", headers=BEARER)).json()["runs"]
        newest = (await client.get("/api/runs?finished=1&limit=2", headers=BEARER)).json()["runs"]
        active = (await client.get("/api/runs?finished=false", headers=BEARER)).json()["runs"]
    assert [run["run_id"] for run in every] == ids
    assert ([run["run_id"] for run in newest], active) == (ids[1:], [])


async def test_a_redirect_names_a_path_never_the_clients_host() -> None:
    """With ``TASKDAEMON_API_ALLOWED_HOSTS=*`` any ``Host`` passes the check. A path with a
    ``/`` too many or too few is still sent to the one a route serves, its query kept, by a
    ``Location`` without a host: Starlette's redirect wrote the request's, ``http://evil.example
    /api/runs``, where a poisoned link or cache would send a browser. Followed, it reaches the
    route; a path no route serves either way is a 404."""
    run = "0" * 32
    paths = [
        "/api/runs/?finished=true",
        f"/runs/{run}//",
        "/runs/nightlyX/",  # only the slashes are taken off, not what ends the name
        "/static",
        "/metrics/",
        "/x/",
    ]
    hostile = {**BEARER, "host": "evil.example"}
    async with (
        server_support.serving(auth=ApiAuth.configured(TOKEN, allowed_hosts=["*"])) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        answers = [await client.get(path, headers=hostile) for path in paths]
        followed = await client.get("/api/", headers=BEARER, follow_redirects=True)
    assert [(a.status_code, a.headers.get("location")) for a in answers] == [
        (307, "/api/runs?finished=true"),
        (307, f"/runs/{run}"),
        (307, "/runs/nightlyX"),
        (307, "/static/"),
        (307, "/metrics"),
        (404, None),
    ]
    assert ([307], 200) == ([r.status_code for r in followed.history], followed.status_code)
    assert f"{server.url}/api" == str(followed.url)


async def test_refusals_and_404_405_name_the_path_whole_up_to_80_characters() -> None:
    """The exact words of a 404, a 405 and a refused query: the path cut at 80 characters (a
    16 KiB path is not sent back), at most five unknown parameters named, sorted, and the
    parameters the route reads; a run id that is not one is refused before the method (the
    route serving another method still names the path's rule)."""
    long = "/api/" + "x" * 200
    async with waiting_run() as (client, run_id):
        run = f"/api/runs/{run_id}"
        answers = [
            await client.get(long, headers=BEARER),
            await client.request("DELETE", f"{run}/dag", headers=JSON),
            await client.get("/api/runs?g=1&f=1&e=1&d=1&c=1&b=1&a=1&limit=1", headers=BEARER),
            await client.request("DELETE", "/api/runs/nope", headers=JSON),
            await client.get(f"{run}/dag?format=mermaid&token=x&zz=1", headers=BEARER),
        ]
    assert [json.loads(a.content)["error"] for a in answers] == [
        f"nothing at {long[:79]}… (GET /api lists the routes)",
        f"DELETE is not allowed on {run}/dag; allowed: GET, HEAD, OPTIONS",
        "unknown query parameter 'a', 'b', 'c', 'd', 'e' for /api/runs"
        " (it reads: before, finished, limit)",
        "not a run id (32 hex digits, or a prefix of at least 4): 'nope'",
        f"unknown query parameter 'zz' for {run}/dag (it reads: format)",
    ]
    assert [a.status_code for a in answers] == [404, 405, 400, 400, 400]
