"""The fuzzer's span store target: a real store file changed as a hand or a failing disk would
change it, read back by every command that reads the store and by the web page's routes
(docs/input-limits.md, "Fuzzing"); its report target: runs as a span source may rebuild them,
odd in every field the report reads, reported in each format; its web target: odd requests,
with the token, a wrong one or none, to the web page over that store, whose answers must
never hold the token; and its api target: the same to ``serve``'s app over a live run
(:func:`api_answers`). :data:`TARGETS` holds these targets and those before them
(``fuzz_env_support``'s, and theirs); ``fuzz_wire_support`` holds the last ones.

The commands run in-process as ``fuzz_targets_support.run_command`` runs them, the store being
the temporary home's own; the web page is the real app (``taskdaemon ui``'s, read-only) over
the file, asked through httpx's ASGI transport. Its oracle: no answer of 500 or more but 502,
the page's one-line answer when its span source fails, and nothing escapes the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import html.parser
import random
import re
import sqlite3
import tempfile
import xml.etree.ElementTree
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

import fuzz_env_support
import fuzz_support
from fuzz_support import ServerError, Target
from fuzz_targets_support import mutated_json, run_command, scratch
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord
from taskdaemon.pipeline.reporting import REPORT_FORMATS, RecordData, build_report, render_report
from taskdaemon.pipeline.server import create_app
from taskdaemon.pipeline.web import WebOptions

STORED_RUN = "5" * 32  # the run of the store's seed, given a fixed id
_STORE: list[bytes] = []


def _store_seed() -> bytes:
    """The bytes of a real store holding one ``taskdaemon run`` (a stage with output, then
    another), made once; the run's id set to ``STORED_RUN`` so cases name it."""
    if not _STORE:
        from cli_support import taskdaemon

        with tempfile.TemporaryDirectory() as folder:
            home = Path(folder)
            (home / "p.yaml").write_text(STORED_PIPELINE)
            done = taskdaemon(home, "run", str(home / "p.yaml"), cwd=home)
            assert 0 == done.returncode, done.stderr
            with contextlib.closing(sqlite3.connect(home / "spans.db")) as conn, conn:
                conn.execute("PRAGMA journal_mode = DELETE")  # one file holds it all
                for table in ("traces", "runs", "logs"):
                    conn.execute(f"UPDATE {table} SET trace_id = ?", (STORED_RUN,))
            _STORE.append((home / "spans.db").read_bytes())
    return _STORE[0]


STORED_PIPELINE = """\
name: p
stages:
  - {name: a, command: "echo out; echo err >&2", triggers: [{manual: {approval_required: false}}]}
  - {name: b, command: "true", triggers: [{on_completion: {stage: a}}]}
"""
#: What a column is set to: each of SQLite's types, and the values readers trip on.
STORED_VALUES: tuple[Any, ...] = (
    None, 0, -1, 2**63 - 1, -(2**63), 0.5, 1e308, float("inf"), "", "x", "9" * 30, "1e400",
    "\x00", b"", b"\xff\xfe", "[]", "{}", "[1,2]", '"a"', "x" * 100_000, STORED_RUN, "running",
)  # fmt: skip


def _store_change(rng: random.Random, conn: sqlite3.Connection) -> None:
    """One change to a store as someone editing it would make: a table or column dropped, a
    table emptied, or a column set, in the rows holding one of its values, to an odd value or
    its JSON text reshaped. What SQLite refuses (NULL in a NOT NULL column, dropping an indexed
    column) is not made."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    table = rng.choice(sorted(tables))
    columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
    column, roll = rng.choice(columns), rng.random()
    with contextlib.suppress(sqlite3.Error):
        if roll < 0.05:
            conn.execute(f'DROP TABLE "{table}"')
        elif roll < 0.12:
            conn.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        elif roll < 0.17:
            conn.execute(f'DELETE FROM "{table}"')
        else:
            keys = conn.execute(f'SELECT "{column}" FROM "{table}" ORDER BY 1').fetchall()
            if not keys:
                return
            (key,) = rng.choice(keys)
            new = rng.choice(STORED_VALUES)
            if isinstance(key, str) and key[:1] in "[{" and rng.random() < 0.6:
                new = mutated_json(rng, key)
            conn.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" IS ?', (new, key))


def _store_make(rng: random.Random) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder, "spans.db")
        db.write_bytes(_store_seed())
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            for _ in range(rng.randint(1, 3)):
                _store_change(rng, conn)
            if rng.random() < 0.1:
                conn.execute(f"PRAGMA user_version = {rng.choice((-1, 0, 1, 5, 10, 11, 13))}")
        data = bytearray(db.read_bytes())
    if rng.random() < 0.1:  # damaged pages: cut short, or bytes past the header changed
        if rng.random() < 0.5:
            return bytes(data[: rng.randrange(len(data))])
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(100, len(data))] = rng.randrange(256)
    return bytes(data)


#: What reads the store (the home's own, ``$TASKDAEMON_HOME/spans.db``).
STORE_COMMANDS = (
    ("runs", "list"),
    ("runs", "list", "--json"),
    ("runs", "show", STORED_RUN),
    ("runs", "show", "--json", STORED_RUN[:6]),
    ("dag", "--run", STORED_RUN, "--format", "json"),
    ("logs", STORED_RUN),
    ("replay", STORED_RUN, "--dry-run"),
    ("dump", STORED_RUN, "-o", "out.tar.gz"),
    ("report",),
    *(("report", "--since", "1900-01-01", "--format", fmt) for fmt in ("markdown", "json", "html")),
)


#: What the web page is asked of the store's run.
STORE_PAGES = (
    "/",
    f"/runs/{STORED_RUN}",
    "/api/runs/recent",
    "/api/pipelines",
    f"/api/runs/{STORED_RUN}",
    f"/api/runs/{STORED_RUN}/dag",
    f"/api/runs/{STORED_RUN}/logs?stage=a",
)


async def page_statuses(db: Path) -> list[int]:
    """The status of each of ``STORE_PAGES`` from ``taskdaemon ui``'s app over the store."""
    app = create_app(web=WebOptions(source_url=f"sqlite:///{db}", read_only=True))
    headers = {"authorization": f"Bearer {app.state.auth.token}"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return [(await client.get(path, headers=headers)).status_code for path in STORE_PAGES]
    finally:
        app.state.web.close()


def _store_run(data: bytes) -> None:
    with scratch() as root:
        db = root / "home" / "spans.db"
        db.write_bytes(data)
        for command in STORE_COMMANDS:
            run_command(list(command))
        failed = [status for status in asyncio.run(page_statuses(db)) if status in range(500, 600)]
        if set(failed) - {502}:
            raise ServerError(failed)


#: The web page's routes (``taskdaemon ui``'s, read-only, over the store's seed run), but its
#: streams: an answer reaches httpx's ASGI transport whole, and a stream never ends.
WEB_PATHS = ("/", "/", "/runs/{id}", "/runs/{short}", "/runs/{id}/", "/api/runs/recent",
             "/api/pipelines", "/api/runs/{id}", "/api/runs/{short}", "/api/runs/{id}/dag",
             "/api/runs/{id}/logs", "/static/app.js", "/nope", "//elsewhere/x", "/%2F%2Fx",
             "/runs/{id}/..")  # fmt: skip
WEB_QUERIES = ("limit=1", "limit=0", "limit=-1", "limit=99999999999999999999", "status=success",
               "status=running", "pipeline=p", "since=1h", "since=1900-01-01",
               "until=2199-12-31", "before={id}", "until={id}", "stage=a", "stage=b",
               "stage=", "format=json", "format=dot", "format=mermaid", "format=svg",
               "sign_in_refused=1", "token", "token=")  # fmt: skip
WEB_HOSTS = ("127.0.0.1", "localhost:8080", "[::1]:1", "127.1", "evil.example", "",
             "127.0.0.1.", "0x7f.1", "[::ffff:127.0.0.1]", "localhost:", "[", "\u00e9")  # fmt: skip
WEB_ORIGINS = ("http://127.0.0.1:8080", "null", "https://evil.example", "http://[::1",
               "file://", "http://localhost")  # fmt: skip
#: Where a request carries the token (``TOKEN``), a wrong one sharing its first characters
#: (``WRONG``: a mistyped token is most of the right one), or none.
WEB_CREDENTIALS = (
    ("authorization", "Bearer TOKEN"), ("authorization", "token TOKEN"),
    ("authorization", "bearer TOKEN"), ("authorization", "Bearer WRONG"), ("query", "TOKEN"),
    ("query", "WRONG"), ("cookie", "taskdaemon-session-80=WRONG"), ("none", ""),
)  # fmt: skip
#: How much of the token no answer may hold.
TOKEN_SHOWN = 24


@dataclass(frozen=True)
class WebRequest:
    """One request of the web target: ``TOKEN`` and ``WRONG`` in ``credential`` stand for
    the app's token and a wrong one, made when the app is."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    credential: tuple[str, str]
    body: str = ""


def _web_request(
    rng: random.Random, paths: tuple[str, ...] = WEB_PATHS, run_id: str = STORED_RUN
) -> WebRequest:
    """A request of one of ``paths``, where ``{id}`` is ``run_id`` (or stays, for the run the
    app makes) and ``{short}`` the first six characters of it."""
    path = rng.choice(paths).replace("{short}", run_id[:6]).replace("{id}", run_id)
    if rng.random() < 0.3:
        path = fuzz_support.mutate(rng, path, 2, 4096)
    query = "&".join(rng.choice(WEB_QUERIES) for _ in range(rng.randint(0, 3)))
    query = query.replace("{id}", run_id)
    if rng.random() < 0.4:
        query = fuzz_support.mutate(rng, query, 2, 4096)
    headers = []
    for name, values in (
        ("host", WEB_HOSTS),
        ("origin", WEB_ORIGINS),
        ("accept", ("text/html", "text/html,*/*;q=0.8", "application/json", "*/*")),
        ("content-type", ("application/json", "text/plain", "application/json; charset=x")),
    ):
        if rng.random() < 0.5:
            value = rng.choice(values)
            if rng.random() < 0.3:
                value = fuzz_support.mutate(rng, value, 2, 4096)
            headers.append((name, value))
    method = rng.choice(("GET", "GET", "GET", "HEAD", "POST", "OPTIONS"))
    return WebRequest(method, path, query, tuple(headers), rng.choice(WEB_CREDENTIALS))


def _web_make(rng: random.Random) -> list[WebRequest]:
    return [_web_request(rng) for _ in range(rng.randint(1, 4))]


def _header_value(text: str) -> bytes:
    """``text`` as a server's HTTP parser passes it to the app: UTF-8, without the control
    characters h11 refuses (a 400 before the app), spaces at the ends taken off."""
    kept = "".join(c for c in text if c == "\t" or not (c < " " or c == "\x7f"))
    return kept.strip(" \t").encode("utf-8", "surrogatepass")


async def _answers(app: Any, requests: list[WebRequest], run_id: str) -> list[httpx.Response]:
    """The answers of ``app`` to ``requests`` (``{id}`` in a path or query: ``run_id``), sent in
    turn by one client, which keeps the session cookie a sign-in sets."""
    token = app.state.auth.token
    wrong = token[:TOKEN_SHOWN] + "0" * (len(token) - TOKEN_SHOWN)
    transport = httpx.ASGITransport(app=app)
    answers = []
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for request in requests:
            place, value = request.credential
            value = value.replace("TOKEN", token).replace("WRONG", wrong)
            headers = [(name.encode(), _header_value(v)) for name, v in request.headers]
            query = request.query
            if place == "query":
                query += f"&token={value}"
            elif place != "none":
                headers.append((place.encode(), value.encode()))
            try:
                answer = await client.request(
                    request.method,
                    (request.path + "?" + query).replace("{id}", run_id),
                    headers=headers,
                    content=request.body.encode("utf-8", "surrogatepass"),
                )
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeEncodeError):
                continue  # the client would not send it: nothing to test
            answers.append(answer)
    return answers


async def web_answers(db: Path, requests: list[WebRequest]) -> tuple[str, list[httpx.Response]]:
    """The token of ``taskdaemon ui``'s app over the store ``db``, and its answers to
    ``requests``."""
    app = create_app(web=WebOptions(source_url=f"sqlite:///{db}", read_only=True))
    try:
        return app.state.auth.token, await _answers(app, requests, STORED_RUN)
    finally:
        app.state.web.close()


#: The API's routes and the page's, of a run waiting for an approval.
API_PATHS = (*fuzz_support.ROUTES, "/runs/{id}", "/runs/{id}/", "/api/runs/{id}/")


def _api_make(rng: random.Random) -> list[WebRequest]:
    requests = []
    for _ in range(rng.randint(1, 4)):
        request = _web_request(rng, API_PATHS, "{id}")
        body = rng.choice(fuzz_support.BODIES)
        if rng.random() < 0.7:
            body = fuzz_support.mutate(rng, body, 3)
        method = rng.choice(("GET", "POST", "POST", "PUT", "DELETE", "HEAD"))
        request = replace(request, method=method, body=body)
        if rng.random() < 0.6:  # past the gate, to the routes (the query may hold a token)
            kept = [h for h in request.headers if h[0] not in ("host", "origin", "content-type")]
            headers = (*kept, ("content-type", "application/json"))
            request = replace(request, headers=headers, credential=WEB_CREDENTIALS[0])
        requests.append(request)
    return requests


async def api_answers(requests: list[WebRequest]) -> tuple[str, list[httpx.Response]]:
    """The token of ``serve``'s app over an engine holding one run that waits for an approval
    (``fuzz_support.http_answers``'s), and its answers to ``requests``."""
    async with Engine() as engine:
        app = create_app(engine=engine)  # first: its watcher of the live runs sees the run start
        handle = await engine.start_run(fuzz_support.APPROVAL, {})
        try:
            return app.state.auth.token, await _answers(app, requests, handle.run_id)
        finally:
            handle.cancel()
            await handle.wait()


class BadAnswerError(Exception):
    """An answer holding the token, or a redirect naming a host (the client's ``Host`` written
    back, or another: ``//host`` and ``/\\host`` name one to a browser too)."""


def _web_run(requests: list[WebRequest]) -> None:
    with scratch() as root:
        db = root / "home" / "spans.db"
        db.write_bytes(_store_seed())
        _judge(*asyncio.run(web_answers(db, requests)))


def _api_run(requests: list[WebRequest]) -> None:
    with scratch():  # a run's span store: the home's
        _judge(*asyncio.run(api_answers(requests)))


def _judge(token: str, answers: list[httpx.Response]) -> None:
    """The web and api targets' oracle: no 5xx but 502 and 503 (a span source failing; no
    engine, as ``ui``'s API has none, no Graphviz), no redirect naming a host, and no answer
    holding the token."""
    for answer in answers:
        if answer.status_code >= 500 and answer.status_code not in (502, 503):
            raise ServerError(answer.status_code, answer.request.url, answer.text[:300])
        location = urlsplit(answer.headers.get("location", "/"))
        if location.netloc or location.path.startswith(("//", "/\\")):
            raise BadAnswerError(f"a redirect naming a host: {location.geturl()!r:.300}")
        shown = str(answer.headers) + answer.text
        if token[:TOKEN_SHOWN] in shown:
            raise BadAnswerError(f"{answer.request.url}: {shown[:300]!r}")


#: Names a source may give a pipeline or a stage: markup, quotes, control and bidi characters,
#: a combining mark, nothing, and text past any label.
REPORT_MARKUP = ('<svg onload="x">', "</svg><b>")
REPORT_NAMES = ("a", "b", "", " ", *REPORT_MARKUP, "'\"&amp;", "\x1b[31m\r\n", "\u202eevil",
                "\u0301", "\x00\x7f\x85", "ﬁ²", "x" * 10_000)  # fmt: skip
#: Times a span gives (whole nanoseconds, 1 to ``2**63 - 1``), in seconds: its first and last.
REPORT_TIMES = (1e-9, 1.7e9, 1.7e9 + 1e-9, 86400.0 * 20_000, (2**63 - 1) / 1e9)
#: What a queue time, CPU time or peak memory attribute may read (``NUMBER_BOUND``).
REPORT_MEASURES = (None, 0.0, 1e-9, -1.0, 2.0**63 - 1024, -(2.0**63) + 1024)
REPORT_STATUSES = ("success", "failure", "timeout", "cancelled", "skipped", "running",
                   "interrupted", "replayed", "", "\x1b")  # fmt: skip


def _report_attempt(rng: random.Random, start: float, number: int) -> AttemptRecord:
    roll = rng.random()
    took = 0.0 if roll < 0.2 else -rng.random() * 1e3 if roll < 0.3 else rng.random() * 1e3
    end = None if rng.random() < 0.1 else rng.choice((start + took, rng.choice(REPORT_TIMES)))
    return AttemptRecord(
        f"t.0.{number}", 0, number, rng.choice(REPORT_STATUSES), start, end,
        queue_time=rng.choice(REPORT_MEASURES), cpu_seconds=rng.choice(REPORT_MEASURES),
        peak_memory_bytes=rng.choice((None, 0, 2**63 - 1)),
    )  # fmt: skip


def _report_make(rng: random.Random) -> tuple[list[RunRecord], float, float]:
    """Runs as a source may rebuild them (times, measures and names at and past their bounds;
    runs and attempts without an end, runs without stages, thousands of stages or days) and a
    window ``[since, until)`` that holds some of them."""
    width = rng.choice((0, 1, 3, 30, 3000))  # stages a run has at most
    names = [*REPORT_NAMES, *(f"s{i}" for i in range(width))]
    base = rng.choice(REPORT_TIMES[:4])
    spread = rng.choice((0.0, 1.0, 86400.0, 86400.0 * 3000))
    runs = []
    for number in range(1 if width == 3000 else rng.choice((1, 2, 5, 40))):
        start = rng.choice((base, base + rng.random() * spread, rng.choice(REPORT_TIMES)))
        stages = []
        for name in rng.sample(names, min(len(names), width)):
            attempts = tuple(_report_attempt(rng, start + rng.random(), n) for n in range(1, 3))
            stages.append(StageRecord(name, "sh", rng.choice(REPORT_STATUSES), attempts))
        end = rng.choice((None, start, start + rng.random() * 60, start - 5, REPORT_TIMES[-1]))
        runs.append(
            RunRecord(
                f"{number:032x}", rng.choice(REPORT_NAMES), rng.choice(REPORT_STATUSES), start,
                end, tuple(stages), (),
            )
        )  # fmt: skip
    since = rng.choice((base - 86400.0 * 7, base, 1e-9, -2208988800.0))  # 1900 (``parse_when``)
    until = max(since + 1e-9, rng.choice((base + spread + 1.0, 7258118400.0)))  # 2200
    return runs, since, until


class BadPageError(Exception):
    """An HTML report not well formed, or holding markup or a control character of a name."""


def _report_run(case: tuple[list[RunRecord], float, float]) -> None:
    """Each format of the report of ``case`` (a table also fitted to 40 columns); the HTML page
    parsed, each chart as XML."""
    runs, since, until = case
    data = RecordData(runs)
    for fmt, width in [("table", 40), *((fmt, None) for fmt in REPORT_FORMATS)]:
        text = render_report(build_report(data, since, until, charts=fmt == "html"), fmt, width)
        text.encode("utf-8")
        if fmt != "html":
            continue
        html.parser.HTMLParser().feed(text)
        charts = re.findall(r"<svg .*?</svg>", text, re.S)
        for chart in charts:
            xml.etree.ElementTree.fromstring(chart)
        shown = text.replace("\n", "")
        if not shown.isprintable() or any(markup in text for markup in REPORT_MARKUP):
            raise BadPageError(shown[:300])


def _store_target(make: Callable[[random.Random], Any], run: Callable[[Any], None]) -> Target:
    """A target of the store's seed, made first: it takes a real run, whose seconds under a
    loaded machine passed the campaign's alarm on the first case (a timeout that is none)."""
    _store_seed()
    return Target(make, run, ())


TARGETS: dict[str, Callable[[], Target]] = {
    **fuzz_env_support.TARGETS,
    "store": lambda: _store_target(_store_make, _store_run),
    "report": lambda: Target(_report_make, _report_run, ()),
    "web": lambda: _store_target(_web_make, _web_run),
    "api": lambda: Target(_api_make, _api_run, ()),
}
