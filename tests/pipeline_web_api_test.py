"""The web page's HTTP side without a browser: pages, the run/DAG/pipelines API, the event
stream's framing, bounds and access, and the pure views behind them.

Servers are real (:class:`MonitorServer` on a free loopback port, a real engine); the stream
hub's bounds are checked directly on its objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from server_support import GATED_PIPELINE as PIPELINE
from server_support import ApprovalSeen, Blocks, data_of
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.visualization import STATES, DagWatcher, dag_snapshot
from taskdaemon.pipeline.web import WebOptions
from taskdaemon.pipeline.web._streams import StreamHub, StreamLimitError
from taskdaemon.pipeline.web._views import (
    MAX_ERROR,
    STATE_NAMES,
    grafana_trace_url,
    run_state,
    timeline,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "web-api-token-0123456789abcdef"
BEARER = {"authorization": f"Bearer {TOKEN}"}
HOSTILE = "<img src=x onerror=alert(1)>"


class Resolver:
    """``build`` fails with a hostile message when asked to; ``deploy`` returns."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def handler(ctx: StageContext) -> Mapping[str, Any]:
            if self.fail and stage.name == "build":
                raise ValueError(HOSTILE)
            return {"stage": stage.name}

        return handler


@contextlib.asynccontextmanager
async def served(
    *, fail: bool = False, web: WebOptions | None = None
) -> AsyncIterator[tuple[str, str, Any]]:
    """A served engine with one run (waiting for ``deploy``'s approval unless ``fail``);
    yields (server URL, run id, app)."""
    seen = ApprovalSeen()
    async with Engine(resolver=Resolver(fail=fail), observers=[seen]) as engine:
        app = create_app(engine=engine, auth=ApiAuth.configured(TOKEN), web=web)
        server = MonitorServer(app, host="127.0.0.1", port=0)
        await server.start()
        try:
            handle = await engine.start_run(parse_pipeline(PIPELINE), {})
            if fail:
                await handle.wait()
            else:
                await seen.event.wait()
            yield server.url, handle.run_id, app
            handle.cancel()
        finally:
            await server.aclose()


async def events(response: httpx.Response, count: int) -> list[str]:
    """The first ``count`` blocks of an event stream."""
    return await Blocks(response).take(count)


@pytest.mark.slow
async def test_stream_frames_events_and_answers_a_reconnect_with_a_full_snapshot() -> None:
    """The stream starts with ``retry:``, gives every event an id and a full snapshot, sends a
    heartbeat comment when idle, answers ``Last-Event-ID`` with the current snapshot, and ends
    with ``event: end`` once the approved run finished."""
    web = WebOptions(heartbeat=0.2)
    async with (
        served(web=web) as (url, run_id, _app),
        httpx.AsyncClient(headers=BEARER, timeout=30) as client,
    ):
        stream_url = f"{url}/api/runs/{run_id}/stream"
        async with client.stream("GET", stream_url) as response:
            first = await events(response, 3)
        headers = {"last-event-id": "1"}
        async with client.stream("GET", stream_url, headers=headers) as response:
            reader = Blocks(response)
            again = await reader.take(2)
            approved = await client.post(f"{url}/api/runs/{run_id}/approve/deploy", json={})
            rest = await reader.take(10)
    assert "text/event-stream; charset=utf-8" == response.headers["content-type"]
    assert ["retry: 2000", ": ping"] == [first[0], first[2]]
    assert first[1].startswith("id: 1\n")
    state = data_of(first[1])
    nodes = {node["name"]: (node["state"], node["approvable"]) for node in state["nodes"]}
    assert {"build": ("success", False), "deploy": ("waiting", True)} == nodes
    assert data_of(again[1])["nodes"] == state["nodes"]
    assert 202 == approved.status_code
    assert "event: end" in rest[-1]
    assert "success" == data_of(rest[-2])["run"]["status"]


async def test_a_stream_tells_the_browser_the_reconnect_delay_the_options_give() -> None:
    """``retry_ms`` is the ``retry:`` a stream starts with (the browser's EventSource waits so
    long before it reconnects), not the default's 2000."""
    async with (
        served(web=WebOptions(retry_ms=750)) as (url, run_id, _app),
        httpx.AsyncClient(headers=BEARER, timeout=30) as client,
        client.stream("GET", f"{url}/api/runs/{run_id}/stream") as response,
    ):
        first = await events(response, 1)
    assert ["retry: 750"] == first


@pytest.mark.slow
async def test_stream_needs_the_token_or_the_session_cookie() -> None:
    """Without credentials the stream is 401; the cookie ``/?token=`` sets opens it (what a
    browser's EventSource sends)."""
    async with served() as (url, run_id, _app), httpx.AsyncClient(timeout=30) as client:
        refused = await client.get(f"{url}/api/runs/{run_id}/stream")
        signed = await client.get(f"{url}/?token={TOKEN}")
        cookie = signed.headers["set-cookie"].split(";", 1)[0]
        async with client.stream(
            "GET", f"{url}/api/runs/{run_id}/stream", headers={"cookie": cookie}
        ) as response:
            blocks = await events(response, 2)
    assert (401, 303, 200) == (refused.status_code, signed.status_code, response.status_code)
    assert "deploy" in {node["name"] for node in data_of(blocks[1])["nodes"]}


@pytest.mark.slow
async def test_streams_beyond_the_cap_are_refused_with_retry_after() -> None:
    """With ``max_streams=1`` a second stream gets 503, ``Retry-After`` and the reason while
    the first is open, and is served again once it closed."""
    async with (
        served(web=WebOptions(max_streams=1)) as (url, run_id, app),
        httpx.AsyncClient(headers=BEARER, timeout=30) as client,
    ):
        stream_url = f"{url}/api/runs/{run_id}/stream"
        async with client.stream("GET", stream_url) as first:
            # Keep the reader: a dropped text iterator closes its response, and the first
            # stream with it, when the garbage collector gets to it.
            reader = Blocks(first)
            opened = await reader.take(2)
            # The body of a refusal only: were the cap broken, reading this stream's body
            # would never end.
            async with client.stream("GET", stream_url) as second:
                refused = second.status_code == 503
                refusal = (await second.aread()).decode() if refused else ""
        await left(app)
        async with client.stream("GET", stream_url) as third:
            await events(third, 2)
    assert (503, "5", 200, "id: 1") == (
        second.status_code,
        second.headers.get("retry-after"),
        third.status_code,
        opened[1][:5],  # a snapshot, not a "problem" event that ended the first stream
    ), opened
    assert refusal == '{"error":"1 event streams are open (the limit)"}'


async def test_the_stream_says_what_this_server_controls_and_why_a_run_has_none() -> None:
    """The stream's state offers approval and the debugger's buttons where this server's
    engine runs the run and serves its debugger, and neither on a read-only server
    (``taskdaemon ui``) of the same run; a run no source holds is a 404 naming the id."""
    states = []
    for web in (None, WebOptions(read_only=True)):
        async with (
            served(web=web) as (url, run_id, _app),
            httpx.AsyncClient(headers=BEARER, timeout=30) as client,
        ):
            async with client.stream("GET", f"{url}/api/runs/{run_id}/stream") as response:
                state = data_of((await events(response, 2))[1])
            missing = await client.get(f"{url}/api/runs/{'0' * 32}/stream")
        deploy = next(node for node in state["nodes"] if node["name"] == "deploy")
        states.append((state["controls"], deploy["approvable"]))
    assert states == [
        ({"approve": True, "debug": True}, True),
        ({"approve": False, "debug": False}, False),
    ]
    said = f"no run '{'0' * 32}' here or in the span source"
    assert (missing.status_code, missing.json()) == (404, {"error": said})


async def test_an_ended_runs_one_snapshot_is_not_paced_before_its_end() -> None:
    """Pacing holds a feed after a large snapshot so that a fast-changing run does not flood a
    slow client; the last snapshot of a run is not held, so a run that has ended gets its
    state and ``event: end`` at once however large it is (here every byte is "large" and
    paced at 1 byte/s: held, it would take minutes)."""
    web = WebOptions(pace_over=1, pace_rate=1.0)
    async with (
        served(fail=True, web=web) as (url, run_id, _app),
        httpx.AsyncClient(headers=BEARER, timeout=30) as client,
        client.stream("GET", f"{url}/api/runs/{run_id}/stream") as response,
    ):
        blocks = await asyncio.wait_for(events(response, 4), timeout=20)
    assert [data_of(blocks[1])["run"]["status"], blocks[2:]] == [
        "failure",
        ["event: end\ndata: {}"],
    ]


async def left(app: Any) -> tuple[int, int, int]:
    """(open streams, feeds, subscribers of the engine's watcher) once none is left, or as
    they are after ten seconds: the server sees a client leave on its own thread."""
    web = app.state.web
    for _ in range(1000):
        counts = (web.hub.stats().open, web.hub.stats().feeds, len(web.data.live._waiters))
        if counts == (0, 0, 0):
            break
        await asyncio.sleep(0.01)
    return counts


@pytest.mark.slow
async def test_a_client_that_leaves_at_once_leaves_no_subscription() -> None:
    """A client that disconnects as soon as the stream's headers come ends its feed, and the
    engine's watcher is left with no subscriber."""
    async with (
        served() as (url, run_id, app),
        httpx.AsyncClient(headers=BEARER, timeout=30) as client,
    ):
        async with client.stream("GET", f"{url}/api/runs/{run_id}/stream") as response:
            pass
        counts = await left(app)
    assert (200, (0, 0, 0)) == (response.status_code, counts)


@pytest.mark.slow
async def test_dag_in_every_format_and_errors_for_bad_ones() -> None:
    """``/dag`` answers DOT, JSON, Mermaid and Graphviz SVG (state words included); an unknown
    format is 400, an unknown run 404 on every run route."""
    async with (
        served() as (url, run_id, _app),
        httpx.AsyncClient(headers=BEARER, timeout=30) as client,
    ):
        answers = {
            fmt: await client.get(f"{url}/api/runs/{run_id}/dag", params={"format": fmt})
            for fmt in ("dot", "json", "mermaid", "svg", "png")
        }
        missing = [
            (await client.get(f"{url}{path}")).status_code
            for path in (
                "/api/runs/" + "0" * 32,
                "/api/runs/" + "0" * 32 + "/dag",
                "/api/runs/" + "0" * 32 + "/stream",
                "/runs/" + "0" * 32,
            )
        ]
    assert [200, 200, 200, 200, 400] == [a.status_code for a in answers.values()]
    assert answers["dot"].text.startswith("digraph pipeline {")
    states = {n["name"]: n["state"] for n in answers["json"].json()["nodes"]}
    assert {"build": "success", "deploy": "waiting"} == states
    assert "\nflowchart LR\n" in answers["mermaid"].text
    svg = answers["svg"].text
    assert svg.startswith("<svg")
    assert "✓ success" in svg
    assert "waiting" in svg
    assert [404, 404, 404, 404] == missing


@pytest.mark.slow
async def test_pages_escape_hostile_text_under_a_strict_csp() -> None:
    """A stage error holding HTML is shown escaped on the run page, which (like the runs page)
    carries a CSP allowing scripts and styles from this server only; the record and the
    pipelines list answer JSON."""
    async with (
        served(fail=True) as (url, run_id, _app),
        httpx.AsyncClient(headers=BEARER, timeout=30) as client,
    ):
        page = await client.get(f"{url}/runs/{run_id}")
        runs = await client.get(f"{url}/")
        record = await client.get(f"{url}/api/runs/{run_id}")
        pipelines = await client.get(f"{url}/api/pipelines")
        recent = await client.get(f"{url}/api/runs/recent", params={"status": "failure"})
        bad = await client.get(f"{url}/api/runs/recent", params={"since": "yesterday-ish"})
        script = await client.get(f"{url}/static/app.js")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert csp == runs.headers["content-security-policy"]
    assert HOSTILE not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "failure" == record.json()["status"]
    assert ["gated"] == [p["name"] for p in pipelines.json()["pipelines"]]
    assert [run_id] == [r["run_id"] for r in recent.json()["runs"]]
    assert 400 == bad.status_code
    assert "not a time" in bad.json()["error"]
    assert 200 == script.status_code
    assert ".innerHTML" not in script.text


async def test_a_slow_client_is_dropped_and_the_rest_keep_their_events() -> None:
    """A subscriber whose queue is full is dropped (its queue freed, its stream ended); the
    feed renders each snapshot once for every subscriber; the hub counts the drop."""
    renders: list[int] = []
    gate = asyncio.Queue[int]()

    async def snapshots() -> AsyncIterator[int]:
        while (item := await gate.get()) >= 0:
            yield item

    def render(item: int) -> dict[str, int]:
        renders.append(item)
        return {"n": item}

    hub = StreamHub(queue_size=2, heartbeat=5.0)
    fast = hub.subscribe("run", render, snapshots)
    slow = hub.subscribe("run", render, snapshots)
    received: list[bytes] = []
    for n in range(4):
        await gate.put(n)
        chunk = await fast.next(5.0)
        assert chunk is not None
        received.append(chunk)
    await gate.put(-1)
    end = await fast.next(5.0)
    assert [0, 1, 2, 3] == renders
    assert [data_of(c.decode())["n"] for c in received] == [0, 1, 2, 3]
    assert end is not None
    assert b"event: end" in end
    assert (True, None, 1) == (slow.dropped, await slow.next(0.1), hub.stats().dropped)
    fast.close()
    slow.close()
    assert (0, 0) == (hub.stats().open, hub.stats().feeds)


async def test_a_feed_cancelled_before_it_started_holds_no_subscription() -> None:
    """A client that leaves before its feed's task first ran (it subscribes and leaves in one
    step of the loop) leaves the engine's watcher with no subscriber: the feed's task,
    cancelled unstarted, never iterated its stream, which subscribes only then."""
    watcher = DagWatcher()
    subscription = StreamHub().subscribe("live:r", dict, lambda: watcher.watch("r"))
    subscription.close()
    assert subscription.feed.task is not None
    await asyncio.wait([subscription.feed.task])
    assert (True, 0) == (subscription.feed.task.cancelled(), len(watcher._waiters))


async def test_the_hub_refuses_streams_past_its_cap() -> None:
    """``max_streams`` subscriptions are served; one more raises StreamLimitError, counted."""

    async def nothing() -> AsyncIterator[int]:
        await asyncio.Event().wait()
        yield 0

    hub = StreamHub(max_streams=2)
    first = hub.subscribe("a", str, nothing)
    second = hub.subscribe("b", str, nothing)
    with pytest.raises(StreamLimitError):
        hub.subscribe("c", str, nothing)
    refused = hub.stats().refused
    first.close()
    second.close()
    await asyncio.sleep(0)  # let the cancelled feeds finish
    assert 1 == refused


def test_timeline_cuts_attempts_into_queued_paused_and_running_segments() -> None:
    """Each attempt gets its queued segment before it started and its running one; an attempt
    paused now is an open paused segment ending at ``now``; a retry is a row of its own."""
    attempts = (
        AttemptRecord("a.0.1", 0, 1, "failure", start=10.0, end=12.0, queue_time=1.0),
        AttemptRecord("a.0.2", 0, 2, "success", start=13.0, end=14.0, queue_time=0.5),
    )
    paused = AttemptRecord("b.0.1", 0, 1, "paused", start=15.0, end=None)
    run = RunRecord(
        run_id="r" * 32,
        pipeline="p",
        status="running",
        start=8.0,
        end=None,
        stages=(
            StageRecord("a", "work", "success", attempts=attempts),
            StageRecord("b", "work", "paused", attempts=(paused,)),
        ),
        edges=(),
    )
    rows = timeline(dag_snapshot(None, run), now=20.0)
    cut = [
        (r["stage"], r["attempt"], [(s["kind"], s["start"], s["end"]) for s in r["segments"]])
        for r in rows["rows"]
    ]
    assert [
        ("a", 1, [("queued", 9.0, 10.0), ("running", 10.0, 12.0)]),
        ("a", 2, [("queued", 12.5, 13.0), ("running", 13.0, 14.0)]),
        ("b", 1, [("paused", 15.0, 20.0)]),
    ] == cut
    assert (8.0, 20.0) == (rows["start"], rows["end"])


def _one_stage_run(status: str, *attempts: AttemptRecord, error: str | None = None) -> RunRecord:
    """A run record of one stage, named after its attempts' stage, ended ``status``."""
    stage = attempts[0].task_run_id.split(".")[0]
    return RunRecord(
        run_id="r" * 32,
        pipeline="p",
        status=status,
        start=0.5,
        end=3.5,
        error=error,
        stages=(StageRecord(stage, "work", status, attempts=attempts),),
        edges=(),
    )


def test_a_megabyte_error_is_cut_in_every_live_update() -> None:
    """A stage failing with a 1 MB message (stored whole on its span) reaches the page's live
    document, which every event of every viewer carries, as its first ``MAX_ERROR``
    characters and an ellipsis, in the stage's row and in the run's error; the stage panel
    reads the attempt's whole error from the run record."""
    huge = "Z" * 1_000_000
    failed = AttemptRecord("a.0.1", 0, 1, "failure", start=1.0, end=2.0, error=huge)
    run = _one_stage_run("failure", failed, error=f"stage 'a' failure: {huge}")
    state = run_state(dag_snapshot(None, run), now=4.0, can_control=False)
    expected = ("Z" * (MAX_ERROR - 1) + "…", "stage 'a' failure: " + "Z" * (MAX_ERROR - 20) + "…")
    assert expected == (state["nodes"][0]["error"], state["run"]["error"])


def test_the_stages_table_counts_attempts_as_every_table_does() -> None:
    """INSTANCES is how many instances ran, ATTEMPTS the most attempts one instance needed (as
    in ``runs show`` and the run summary): three instances, one retried once, read 3 and 2."""
    attempts = (
        AttemptRecord("fan.0.1", 0, 1, "success", start=1.0, end=2.0),
        AttemptRecord("fan.1.1", 1, 1, "failure", start=1.0, end=2.0, error="boom"),
        AttemptRecord("fan.1.2", 1, 2, "success", start=2.0, end=3.0),
        AttemptRecord("fan.2.1", 2, 1, "success", start=1.0, end=2.0),
    )
    state = run_state(
        dag_snapshot(None, _one_stage_run("success", *attempts)), now=4.0, can_control=False
    )
    (node,) = state["nodes"]
    assert (3, 2) == (node["instances"], node["attempts"])


def test_the_style_sheet_colours_every_state_like_the_dag() -> None:
    """Every state the page can show has a CSS class, in the DOT renderer's colour."""
    from taskdaemon.pipeline.visualization._snapshot import STATE_HEX

    css = (ROOT / "src/taskdaemon/pipeline/web/static/style.css").read_text()
    missing = [s for s in STATE_NAMES if f".state-{s} {{ background: " not in css]
    wrong = [s for s in STATES if f".state-{s} {{ background: {STATE_HEX[STATES[s]]}" not in css]
    assert ([], []) == (missing, wrong)


def test_grafana_link_opens_the_trace_in_explore() -> None:
    """The link names Grafana's Explore with the tempo datasource and the run's trace id."""
    link = grafana_trace_url("http://grafana:3000/", "ab" * 16)
    assert link.startswith("http://grafana:3000/explore?schemaVersion=1&orgId=1&panes=")
    assert "ab" * 16 in httpx.URL(link).params["panes"]


@pytest.mark.slow
def test_ui_refuses_a_bad_source_in_one_line(tmp_path: Path) -> None:
    """``taskdaemon ui --source`` with an unknown scheme exits 2 with one line, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "ui", "--source", "ftp://x"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TASKDAEMON_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 2 == done.returncode
    assert 1 == len(done.stderr.strip().splitlines())
    assert "unknown span source" in done.stderr


def test_grafana_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TASKDAEMON_GRAFANA_URL`` is read as given when http(s), refused otherwise."""
    from taskdaemon.pipeline.errors import SettingsError
    from taskdaemon.pipeline.settings import load_settings

    monkeypatch.setenv("TASKDAEMON_GRAFANA_URL", "https://grafana.example:3000")
    accepted = load_settings().grafana_url
    monkeypatch.setenv("TASKDAEMON_GRAFANA_URL", "javascript:alert(1)")
    with pytest.raises(SettingsError, match="TASKDAEMON_GRAFANA_URL"):
        load_settings()
    assert "https://grafana.example:3000" == accepted


@pytest.mark.slow
async def test_a_server_closed_as_its_run_ends_still_sends_the_end() -> None:
    """A server closed right after its run ended (``run --serve``) sends its streams the
    finished run and ``event: end``, so the page stops at the final state."""
    seen = ApprovalSeen()
    async with (
        Engine(resolver=Resolver(), observers=[seen]) as engine,
        httpx.AsyncClient(headers=BEARER, timeout=30) as client,
    ):
        app = create_app(engine=engine, auth=ApiAuth.configured(TOKEN))
        server = MonitorServer(app, host="127.0.0.1", port=0)
        await server.start()
        try:
            handle = await engine.start_run(parse_pipeline(PIPELINE), {})
            await seen.event.wait()
            stream_url = f"{server.url}/api/runs/{handle.run_id}/stream"
            async with client.stream("GET", stream_url) as response:
                reader = Blocks(response)
                await reader.take(2)  # retry, then the waiting run
                engine.approve(handle.run_id, "deploy")
                await handle.wait()
                await server.aclose()
                rest = await reader.take(10)
        finally:
            await server.aclose()
    assert ("success", "event: end") == (
        data_of(rest[-2])["run"]["status"],
        rest[-1].split("\n")[0],
    )


def test_an_interrupted_runs_duration_is_unknown_not_the_time_since_its_start() -> None:
    """A run whose process was killed (``interrupted``, no end) reads ``-``, as in ``runs
    show``; before, the page said the time since its start (1m35s for a run killed 5 s in,
    more at each load). A running run still counts up to now."""
    open_attempt = AttemptRecord("a.0.1", 0, 1, "interrupted", start=1.0, end=None)
    interrupted = replace(_one_stage_run("interrupted", open_attempt), end=None)
    running = replace(interrupted, status="running")
    durations = [
        run_state(dag_snapshot(None, run), now=95.5, can_control=False)["run"]["duration"]
        for run in (interrupted, running)
    ]
    assert ["-", "1m35s"] == durations
