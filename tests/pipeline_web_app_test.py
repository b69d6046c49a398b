"""The web page's app (``web/_app.py``): what its pages say about where runs come from."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_support import taskdaemon
from pipeline_engine_support import Resolver, after, pipeline, stage
from pipeline_tracking_support import store_with
from server_support import GATED_PIPELINE, ApprovalSeen, Blocks, data_of, serving
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.graphviz import missing
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter
from taskdaemon.pipeline.web import WebOptions
from taskdaemon.pipeline.web._logs import MAX_STAGE_NAME

TOKEN = "qa-web-app-token-0123456789"


async def test_the_runs_page_names_its_source_without_its_secrets() -> None:
    """A span source URL holding a password and a ``token=`` query is named on the runs page
    with both redacted."""
    source = "tempo+http://alice:hunter2pw@127.0.0.1:9?org=acme&token=qtokensecret"
    app = create_app(
        auth=ApiAuth.configured(TOKEN), web=WebOptions(source_url=source, read_only=True)
    )
    server = MonitorServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client:
            page = (await client.get("/")).text
    finally:
        await server.aclose()
        app.state.web.close()
    expected = (True, False, False)
    actual = (
        "Stored runs from <code>tempo+http://alice:" in page,
        "hunter2pw" in page,
        "qtokensecret" in page,
    )
    assert expected == actual


@contextlib.asynccontextmanager
async def stored(db: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A read-only page server over the store ``db`` and a client holding its token."""
    app = create_app(
        auth=ApiAuth.configured(TOKEN),
        web=WebOptions(source_url=f"sqlite:///{db}", read_only=True),
    )
    server = MonitorServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client:
            yield client
    finally:
        await server.aclose()
        app.state.web.close()


async def test_the_run_record_of_one_stage_holds_that_stage_alone(tmp_path: Path) -> None:
    """``GET /api/runs/{id}?stage=S`` (what the stage panel asks) answers the run with ``S``'s
    record and edges only and no run attributes, so selecting a stage of a 2,000-stage run does
    not fetch all 2,000 with the definition."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with stored(tmp_path / "spans.db") as client:
        answer = (await client.get(f"/api/runs/{run_id}", params={"stage": "slow"})).json()
    expected = (run_id, ["slow"], [("work", "slow"), ("slow", "done")], {})
    actual = (
        answer["run_id"],
        [stage["name"] for stage in answer["stages"]],
        [(edge["source"], edge["target"]) for edge in answer["edges"]],
        answer["attributes"],
    )
    assert expected == actual


async def test_the_run_record_of_a_stage_the_run_lacks_is_404_naming_its_stages(
    tmp_path: Path,
) -> None:
    """``?stage=`` naming no stage of the run is 404 with the run's stages, as the logs
    routes answer it, not a record without stages."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with stored(tmp_path / "spans.db") as client:
        response = await client.get(f"/api/runs/{run_id}", params={"stage": "sloww"})
    stages = "(its stages: work, fast, slow, done); did you mean 'slow'?"
    expected = (404, f"run {run_id} has no stage 'sloww' {stages}")
    actual = (response.status_code, response.json()["error"])
    assert expected == actual


def run_ids(page: str) -> list[str]:
    """The runs a runs page lists, in its order."""
    return re.findall(r'<tr data-run-id="([0-9a-f]+)"', page)


async def test_a_full_runs_page_links_to_the_runs_older_than_its_last(tmp_path: Path) -> None:
    """A runs page showing as many runs as its limit says so and links to the older ones:
    following the link lists the runs after its last row, newest first."""
    ids = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10, 10, 10])
    async with stored(tmp_path / "spans.db") as client:
        first = (await client.get("/", params={"limit": 2})).text
        link = re.search(r'<a id="older-runs" href="([^"]+)"', first)
        older = (await client.get(html.unescape(link.group(1)) if link else "/nowhere")).text
    expected = ([ids[2], ids[1]], [ids[0]])
    actual = (run_ids(first), run_ids(older))
    assert expected == actual


async def test_a_page_after_a_run_the_source_lacks_or_no_run_id_is_refused(
    tmp_path: Path,
) -> None:
    """``before`` names the run a page follows: one the store does not hold, or text that
    is no run id, is a 400 saying which, on the page and in the API alike."""
    await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with stored(tmp_path / "spans.db") as client:
        gone = await client.get("/api/runs/recent", params={"before": "ab" * 16})
        bad = await client.get("/", params={"before": "x" * 60})
    assert (400, f"no run '{'ab' * 16}' in {tmp_path / 'spans.db'}") == (
        gone.status_code,
        gone.json()["error"],
    )
    assert 400 == bad.status_code
    assert "before: not a run id (32 hex digits): &#39;" + "x" * 39 + "…&#39;" in bad.text


def empty_rows(page: str) -> list[str]:
    """The line a runs page's table shows instead of rows, if any."""
    found = re.findall(r'<tr class="empty"><td colspan="8">([^<]*)</td>', page)
    return [html.unescape(text) for text in found]


async def test_a_pipeline_nobody_ran_is_said_so_as_runs_list_says_it(tmp_path: Path) -> None:
    """Filtered by a pipeline the store holds no run of, the page and its API say so in the
    words ``runs list --pipeline`` refuses it with (a typo reads as one), where filters that
    match no run of a pipeline the store holds say that no run matches."""
    db = tmp_path / "spans.db"
    await asyncio.to_thread(store_with, db, [10])  # a run of "etl", a success
    async with stored(db) as client:
        typo = (await client.get("/", params={"pipeline": "etll"})).text
        answer = (await client.get("/api/runs/recent", params={"pipeline": "etll"})).json()
        cancelled = {"pipeline": "etl", "status": "cancelled"}
        none = (await client.get("/", params=cancelled)).text
        listed = (await client.get("/api/runs/recent", params={"pipeline": "etl"})).json()
    cli = taskdaemon(tmp_path, "runs", "list", "--pipeline", "etll", "--source", f"sqlite:///{db}")
    said = "No run of pipeline 'etll' is known to this source; did you mean 'etl'?"
    refused = "taskdaemon runs list: no run of pipeline 'etll' is known to this source; "
    expected = ([said], {"runs": [], "empty": said}, ["No runs match."], (1, None), (1, True))
    actual = (
        empty_rows(typo),
        answer,
        empty_rows(none),
        (len(listed["runs"]), listed["empty"]),
        (cli.returncode, cli.stderr.startswith(refused)),
    )
    assert expected == actual, cli.stderr


@pytest.mark.slow
async def test_the_pipelines_count_every_stored_run_past_the_newest_thousand(
    tmp_path: Path,
) -> None:
    """``/api/pipelines`` says how many runs the store holds of each pipeline, not how many of
    the newest 1,000 runs it reads for the last run: a pipeline of 1,001 runs says 1,001."""
    db = tmp_path / "spans.db"
    ids = await asyncio.to_thread(store_with, db, [1] * 1001)
    async with stored(db) as client:
        answer = (await client.get("/api/pipelines")).json()
    expected = [("etl", 1001, ids[-1])]
    assert expected == [(p["name"], p["runs"], p["last_run"]) for p in answer["pipelines"]]


def logged(db: Path, run_id: str, stage: str, *bodies: str) -> None:
    """Log records ``bodies`` of ``stage`` of ``run_id``, written to the store ``db``."""
    writer = SqliteLogWriter(db)
    try:
        for body in bodies:
            writer.write_row(
                LogRow(
                    run_id, time.time_ns(), 13, "WARNING", "gated", stage, 0, 1, None, "s", body, {}
                )
            )
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def served_with_store(
    db: Path, *, poll_interval: float, max_streams: int = 256
) -> AsyncIterator[tuple[httpx.AsyncClient, MonitorServer, Any, Any]]:
    """A served engine whose span source is the store ``db``, and its gated run waiting for
    ``deploy``'s approval with a record ``one`` of ``build`` in the store; yields a client
    holding the token, the server, the engine and the run's handle."""
    approval = ApprovalSeen()
    web = WebOptions(
        source_url=f"sqlite:///{db}", poll_interval=poll_interval, max_streams=max_streams
    )
    async with (
        Engine(resolver=Resolver(), observers=[approval]) as engine,
        serving(engine, auth=ApiAuth.configured(TOKEN), web=web) as server,
        httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client,
    ):
        handle = await engine.start_run(parse_pipeline(GATED_PIPELINE), {})
        await approval.event.wait()
        await asyncio.to_thread(logged, db, handle.run_id, "build", "one")
        try:
            yield client, server, engine, handle
        finally:
            handle.cancel()
            await handle.wait()


def tail_of(block: str) -> tuple[str, list[str], bool]:
    """(stage, record bodies, live) of a log stream's event block."""
    tail = data_of(block)
    return tail["stage"], [record["body"] for record in tail["records"]], tail["live"]


async def test_a_served_runs_stage_logs_are_read_from_its_store_live_until_it_ends(
    tmp_path: Path,
) -> None:
    """A run this server's engine holds has its stage's records read from the store: the tail
    says live while the engine runs it (the store holds no row of the run, which would read as
    ended), a stage's stream sends each new record and, once the run ended, the whole tail not
    live and ``event: end``; two stages' streams each get their own stage's tail."""
    db = tmp_path / "spans.db"
    async with served_with_store(db, poll_interval=0.01) as (client, _server, engine, handle):
        run_id = handle.run_id
        tail = (await client.get(f"/api/runs/{run_id}/logs", params={"stage": "build"})).json()
        stream = f"/api/runs/{run_id}/logs/stream"
        async with (
            client.stream("GET", stream, params={"stage": "build"}) as build,
            client.stream("GET", stream, params={"stage": "deploy"}) as deploy,
        ):
            build_blocks, deploy_blocks = Blocks(build), Blocks(deploy)
            first = (await build_blocks.take(2))[1]
            other = (await deploy_blocks.take(2))[1]
            await asyncio.to_thread(logged, db, run_id, "build", "two")
            second = (await build_blocks.take(1))[0]
            engine.approve(run_id, "deploy")
            await handle.wait()
            rest = await build_blocks.take(10)
    expected = (
        ("build", ["one"], True),
        ("build", ["one"], True),
        ("deploy", [], True),
        ("build", ["one", "two"], True),
        (("build", ["one", "two"], False), "event: end"),
    )
    actual = (
        (tail["stage"], [record["body"] for record in tail["records"]], tail["live"]),
        tail_of(first),
        tail_of(other),
        tail_of(second),
        (tail_of(rest[-2]), rest[-1].split("\n")[0]),
    )
    assert expected == actual


async def test_a_stage_log_stream_closed_after_its_run_ended_sends_the_stored_tail(
    tmp_path: Path,
) -> None:
    """A server closed after its run ended (``run --serve``) sends a stage's log stream the
    tail read from the store then, not live, and ``event: end``, though its follower had not
    polled since: the records written meanwhile are in it."""
    db = tmp_path / "spans.db"
    async with served_with_store(db, poll_interval=3600) as (client, server, engine, handle):
        run_id = handle.run_id
        async with client.stream(
            "GET", f"/api/runs/{run_id}/logs/stream", params={"stage": "build"}
        ) as build:
            blocks = Blocks(build)
            first = (await blocks.take(2))[1]
            await asyncio.to_thread(logged, db, run_id, "build", "two")
            engine.approve(run_id, "deploy")
            await handle.wait()
            await server.aclose()
            rest = await blocks.take(10)
    expected = (("build", ["one"], True), [("build", ["one", "two"], False)], "event: end")
    actual = (tail_of(first), [tail_of(b) for b in rest[:-1]], rest[-1].split("\n")[0])
    assert expected == actual


async def test_a_store_that_cannot_be_read_is_a_one_line_502_naming_it(tmp_path: Path) -> None:
    """A span source file that is no SQLite database answers a stage's logs, and a run the
    engine does not hold (looked for in that source), with a 502 in one line worded as every
    command words it: the file and its cause, once (not ``span store: PATH: cannot open span
    store: ...``)."""
    db = tmp_path / "spans.db"
    async with served_with_store(db, poll_interval=0.01) as (client, _server, _engine, handle):
        db.write_bytes(b"not a database" * 100)
        answer = await client.get(f"/api/runs/{handle.run_id}/logs", params={"stage": "build"})
        other = await client.get(f"/api/runs/{'0' * 32}/logs", params={"stage": "build"})
    said = f"{db}: cannot open span store: file is not a database"
    expected = ((502, said), (502, said))
    actual = (
        (answer.status_code, answer.json()["error"]),
        (other.status_code, other.json()["error"]),
    )
    assert expected == actual


async def test_a_stage_name_of_the_bound_is_looked_for_and_one_more_refused(
    tmp_path: Path,
) -> None:
    """``?stage=`` of ``MAX_STAGE_NAME`` characters is a stage name looked for in the run (404
    naming its stages), one character more is refused unread (400 saying the bound), on both
    logs routes; a run no one knows is a 404 naming it."""
    db = tmp_path / "spans.db"
    async with served_with_store(db, poll_interval=0.01) as (client, _server, _engine, handle):
        answers = [
            await client.get(f"/api/runs/{handle.run_id}/{route}", params={"stage": stage})
            for route in ("logs", "logs/stream")
            for stage in ("s" * MAX_STAGE_NAME, "s" * (MAX_STAGE_NAME + 1))
        ]
        unknown = await client.get(f"/api/runs/{'0' * 32}/logs", params={"stage": "build"})
    looked_for = (
        404,
        f"run {handle.run_id} has no stage '{'s' * 39}…' (its stages: build, deploy)",
    )
    refused = (400, f"?stage= must name a stage (1-{MAX_STAGE_NAME} chars)")
    expected = [looked_for, refused, looked_for, refused]
    assert expected == [(a.status_code, a.json()["error"]) for a in answers]
    assert (404, f"no run '{'0' * 32}' here or in the span source") == (
        unknown.status_code,
        unknown.json()["error"],
    )


async def test_a_run_record_says_whether_this_process_runs_it(tmp_path: Path) -> None:
    """``/api/runs/{id}`` of the run this server's engine holds says ``live`` (its page can
    approve it), a stored run's record does not, and an id no one knows is 404 naming it."""
    db = tmp_path / "spans.db"
    (stored_id,) = await asyncio.to_thread(store_with, db, [10])
    async with served_with_store(db, poll_interval=0.01) as (client, _server, _engine, handle):
        answers = [
            await client.get(f"/api/runs/{run_id}")
            for run_id in (handle.run_id, stored_id, "0" * 32)
        ]
    expected = [
        (200, True),
        (200, False),
        (404, f"no run '{'0' * 32}' here or in the span source"),
    ]
    actual = [
        (a.status_code, a.json()["live"] if a.status_code == 200 else a.json()["error"])
        for a in answers
    ]
    assert expected == actual


#: ``lint`` runs first (it succeeds), then ``build`` (the test's handler fails it).
LINT_THEN_BUILD = """
name: checked
loops: {work: {handler: "unused:unused"}}
stages:
  - name: lint
    loop: work
    triggers: [{manual: {approval_required: false}}]
  - name: build
    loop: work
    triggers: [{on_completion: {stage: lint}}]
"""


async def test_the_run_pages_error_cells_are_cut_and_empty_without_an_error() -> None:
    """The run page's stages table shows a long error as its first characters and an
    ellipsis, 200 in all, a prefix of its attempt's error in the record; a stage without an
    error has an empty cell."""

    async def long_failure(ctx: Any) -> Any:
        raise RuntimeError("E" * 1500)

    async with (
        Engine(resolver=Resolver({"build": long_failure})) as engine,
        serving(engine, auth=ApiAuth.configured(TOKEN)) as server,
        httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client,
    ):
        handle = await engine.start_run(parse_pipeline(LINT_THEN_BUILD), {})
        await handle.wait()
        page = (await client.get(f"/runs/{handle.run_id}")).text
        record = (await client.get(f"/api/runs/{handle.run_id}")).json()
    cells = {
        stage: html.unescape(cell)
        for stage, cell in re.findall(
            r'<tr data-stage="(\w+)".*?<td class="error-cell">(.*?)</td>', page, re.S
        )
    }
    (build,) = (stage for stage in record["stages"] if stage["name"] == "build")
    error = build["attempts"][-1]["error"]
    expected = (200, True, "")
    actual = (
        len(cells["build"]),
        cells["build"].endswith("…") and error.startswith(cells["build"][:-1]),
        cells["lint"],
    )
    assert expected == actual, cells


async def test_the_dag_route_names_its_formats_and_locks_its_svg_down(tmp_path: Path) -> None:
    """An unknown ``?format=`` is a 400 naming the four formats; an unknown run's DAG a 404
    naming the run; the SVG, typed as one, may hold a stage's text: it carries a CSP of its
    own that allows nothing, and ``nosniff``."""
    db = tmp_path / "spans.db"
    async with served_with_store(db, poll_interval=0.01) as (client, _server, _engine, handle):
        dag = f"/api/runs/{handle.run_id}/dag"
        png = await client.get(dag, params={"format": "png"})
        svg = await client.get(dag, params={"format": "svg"})
        missing = await client.get(f"/api/runs/{'0' * 32}/dag")
    expected = (
        (400, "unknown format 'png': one of dot, json, mermaid, svg"),
        (404, f"no run '{'0' * 32}' here or in the span source"),
        (200, "image/svg+xml", "default-src 'none'", "nosniff"),
    )
    actual = (
        (png.status_code, png.json()["error"]),
        (missing.status_code, missing.json()["error"]),
        (
            svg.status_code,
            svg.headers["content-type"],
            svg.headers["content-security-policy"],
            svg.headers["x-content-type-options"],
        ),
    )
    assert expected == actual


async def test_an_svg_without_graphviz_is_a_503_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server started where no ``dot`` is on ``PATH`` answers the SVG with a 503 saying
    Graphviz is missing and how to install it, in one line; the other formats are served."""
    monkeypatch.setenv("PATH", str(tmp_path))
    async with served_with_store(tmp_path / "spans.db", poll_interval=0.01) as (
        client,
        _server,
        _engine,
        handle,
    ):
        dag = f"/api/runs/{handle.run_id}/dag"
        svg = await client.get(dag, params={"format": "svg"})
        dot = await client.get(dag, params={"format": "dot"})
    expected = (503, str(missing()), 200)
    assert expected == (svg.status_code, svg.json()["error"], dot.status_code)


async def test_graphviz_installed_while_the_server_runs_draws_the_next_svg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graphviz installed after the server started (a real ``dot`` appearing on ``PATH``)
    draws the next SVG: no 503 until a restart."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    async with served_with_store(tmp_path / "spans.db", poll_interval=0.01) as (
        client,
        _server,
        _engine,
        handle,
    ):
        dag = f"/api/runs/{handle.run_id}/dag"
        before = await client.get(dag, params={"format": "svg"})
        (folder / "dot").symlink_to("/usr/bin/dot")
        after = await client.get(dag, params={"format": "svg"})
    assert (503, 200, True) == (
        before.status_code,
        after.status_code,
        after.text.lstrip().startswith("<svg"),
    ), after.text[:200]


async def test_a_stage_log_stream_closed_while_its_run_goes_on_ends_without_its_end(
    tmp_path: Path,
) -> None:
    """A server closed while its run still goes on ends a stage's log stream with no last
    tail and no ``event: end``, so the page reconnects rather than show the run's logs
    complete."""
    db = tmp_path / "spans.db"
    async with served_with_store(db, poll_interval=3600) as (client, server, _engine, handle):
        stream = f"/api/runs/{handle.run_id}/logs/stream"
        async with client.stream("GET", stream, params={"stage": "build"}) as build:
            blocks = Blocks(build)
            first = (await blocks.take(2))[1]
            await server.aclose()
            rest = await blocks.take(10)
    assert (("build", ["one"], True), []) == (tail_of(first), rest)


async def test_a_stored_runs_logs_asked_by_a_prefix_of_its_id_are_its_own(tmp_path: Path) -> None:
    """``/api/runs/{prefix}/logs`` (a run id as ``runs list`` prints it) answers the stage's
    records of the run the prefix names, whose rows hold its whole id, not live: it ended."""
    db = tmp_path / "spans.db"
    (run_id,) = await asyncio.to_thread(store_with, db, [10])
    await asyncio.to_thread(logged, db, run_id, "work", "one")
    async with stored(db) as client:
        answer = await client.get(f"/api/runs/{run_id[:12]}/logs", params={"stage": "work"})
    tail = answer.json()
    expected = (200, ["one"], False)
    assert expected == (answer.status_code, [r["body"] for r in tail["records"]], tail["live"])


async def test_a_stage_log_stream_past_the_cap_is_a_503_with_retry_after(tmp_path: Path) -> None:
    """With ``max_streams=1`` and a stage's log stream open, a second one is refused with a
    503 saying the limit and ``Retry-After: 5``, as the run's streams are."""
    db = tmp_path / "spans.db"
    async with served_with_store(db, poll_interval=3600, max_streams=1) as (
        client,
        _server,
        _engine,
        handle,
    ):
        stream = f"/api/runs/{handle.run_id}/logs/stream"
        async with client.stream("GET", stream, params={"stage": "build"}) as first:
            reader = Blocks(first)  # kept: a dropped reader closes the first stream
            await reader.take(2)
            # Headers first: were the cap broken, this stream's body would never end.
            async with client.stream("GET", stream, params={"stage": "deploy"}) as second:
                body = await second.aread() if second.status_code == 503 else b"{}"
    expected = (503, "1 event streams are open (the limit)", "5")
    actual = (second.status_code, json.loads(body).get("error"), second.headers.get("retry-after"))
    assert expected == actual


async def test_the_pages_times_are_iso_8601_in_utc_for_the_script(tmp_path: Path) -> None:
    """The runs page's and the run page's ``<time datetime>`` hold the run's start as ISO
    8601 in UTC (``Z``), the same instant as the API's, which the script shows in the
    browser's zone; until it does, each page names the server's zone its times are in."""
    db = tmp_path / "spans.db"
    (run_id,) = await asyncio.to_thread(store_with, db, [10])
    async with stored(db) as client:
        (row,) = (await client.get("/api/runs/recent")).json()["runs"]
        runs_page = (await client.get("/")).text
        run_page = (await client.get(f"/runs/{run_id}")).text
    listed = re.findall(r'<td><time datetime="([^"]*)">', runs_page)
    started = re.findall(r'<time id="run-started" datetime="([^"]*)">', run_page)
    times = listed + started
    expected = ([True, True], [True, True])
    actual = (
        [t.endswith("Z") for t in times],
        [abs(datetime.fromisoformat(t).timestamp() - row["start"]) < 1e-5 for t in times],
    )
    assert expected == actual, times
    offset = datetime.now().astimezone().strftime("%z")  # the server's zone: this process's
    zone = f"Times in the server's zone (UTC{offset[:3]}:{offset[3:]})"
    assert [zone in runs_page, zone in run_page] == [True, True]


async def test_the_first_drawing_of_a_paused_run_has_its_actions_column() -> None:
    """A run paused at a breakpoint, opened on the server whose engine runs it and serves its
    debugger, is drawn with the stages table's actions column (the paused stage's Continue
    and Step go there), before the stream's first update; once the run has ended the column is
    left out again."""
    gate = asyncio.Event()

    async def hold(ctx: Any) -> None:
        await gate.wait()

    tables = []
    async with Engine(resolver=Resolver({"hold": hold})) as engine:
        app = create_app(engine=engine, auth=ApiAuth.configured(TOKEN))
        handle = await engine.start_run(pipeline(stage("hold"), stage("a", *after("hold"))), {})
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://127.0.0.1",
            headers={"authorization": f"Bearer {TOKEN}"},
        ) as client:
            debug = f"/api/runs/{handle.run_id}/debug"
            put = await client.put(f"{debug}/breakpoints", json={"stage": "a"})
            gate.set()
            await engine.with_debug(True).wait_paused(handle.run_id)
            tables.append((await client.get(f"/runs/{handle.run_id}")).text)
            await client.post(f"{debug}/continue", json={})
            await handle.wait()
            tables.append((await client.get(f"/runs/{handle.run_id}")).text)
    classes = [
        re.findall(r'<table id="stages" class="([^"]*)"', page)
        + re.findall(r'<tr data-stage="a" data-state="(\w+)"', page)
        for page in tables
    ]
    assert (201, [["grid", "paused"], ["grid no-actions", "success"]]) == (
        put.status_code,
        classes,
    )
