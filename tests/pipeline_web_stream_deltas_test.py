"""The run stream's deltas (``web/_deltas.py``): a page that asks for them (``?delta=true``)
gets the whole state first, then only what changed, and shows the same run as the store.

The browser test drives a real ``serve --pipeline`` run through a TCP proxy the test cuts in
the middle, so Debian's chromium reconnects (``Last-Event-ID``) and is sent the whole state
again; at the end its stages table and timeline must equal the stored run's state, read by a
``ui``-style server over the store. The form test applies the server's deltas of random
changes with the page's own ``deltas.js`` in chromium and compares each result with the state
the delta was made from.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import server_support
from browser_support import (
    SHARED_BROWSER_LOOP,
    TOKEN,
    browser_page,
    first_run,
    server_url,
    state_of,
    stored_runs_server,
    taskdaemon,
)
from pipeline_tracking_support import store_with
from taskdaemon.pipeline.web._deltas import state_delta
from taskdaemon.pipeline.web._streams import StreamHub
from web_events_support import first_event

STATIC = Path(__file__).resolve().parent.parent / "src/taskdaemon/pipeline/web/static"

#: Counts the deltas the page applies: ``deltas.js`` sets ``window.taskdaemonDeltas``.
COUNT_DELTAS = """(() => {
  let real;
  window.__deltas = 0;
  Object.defineProperty(window, "taskdaemonDeltas", {
    configurable: true,
    get() { return real; },
    set(value) {
      real = { ...value,
        apply(state, delta) { window.__deltas += 1; return value.apply(state, delta); } };
    },
  });
})();"""

#: The stages table's rows and the timeline's rows as the page shows them.
PAGE_STATE = """() => ({
  stages: [...document.querySelectorAll("#stages tbody tr")].map(
    (r) => [r.dataset.stage, r.dataset.state]),
  rows: [...document.querySelectorAll("#timeline .row")].map((r) => [
    r.dataset.stage, Number(r.dataset.instance), Number(r.dataset.attempt),
    r.querySelector(".label-rest").textContent,
    [...r.querySelectorAll(".seg")].map((s) => s.dataset.kind)]),
})"""


def _pipeline(workdir: Path) -> str:
    """A start, a fan of 12 quick stages beside two held ones in a chain, and two after them;
    ``hold-N`` runs until the file ``goN`` exists."""
    lines = [
        "name: deltas",
        "stages:",
        "  - {name: start, loop: command, command: 'true',"
        " triggers: [{manual: {approval_required: false}}]}",
    ]
    lines += [
        f"  - {{name: fan-{n:02}, loop: command, command: 'true',"
        " triggers: [{on_completion: {stage: start}}]}"
        for n in range(1, 13)
    ]
    chain = [
        ("hold-1", "start"),
        ("hold-2", "hold-1"),
        ("after-1", "hold-2"),
        ("after-2", "after-1"),
    ]
    for name, upstream in chain:
        command = (
            f"while [ ! -e {workdir}/go{name[-1]} ]; do sleep 0.05; done"
            if name.startswith("hold")
            else "true"
        )
        lines.append(
            f"  - {{name: {name}, loop: command, command: {json.dumps(command)},"
            f" triggers: [{{on_completion: {{stage: {upstream}}}}}]}}"
        )
    return "\n".join(lines) + "\n"


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 to ``port`` whose connections :meth:`cut` closes; it notes the
    heads of the ``GET`` requests sent through it (a chunk read that starts one)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.heads: list[bytes] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, asked: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while chunk := await reader.read(65536):
                if asked and chunk[:4] == b"GET ":
                    self.heads.append(chunk)
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._writers |= {writer, up_writer}
        both = [
            asyncio.ensure_future(self._pipe(reader, up_writer, asked=True)),
            asyncio.ensure_future(self._pipe(up_reader, writer, asked=False)),
        ]
        self._tasks.update(both)
        await asyncio.gather(*both)

    def stream_heads(self) -> list[str]:
        """The heads of the requests for the run's event stream, lower-cased."""
        texts = [head.decode("latin-1").lower() for head in self.heads]
        return [text for text in texts if text.startswith("get /api/runs/") and "/stream" in text]

    def cut(self) -> None:
        """Close every connection open now, both ends."""
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        try:
            yield f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        finally:
            self.server.close()
            self.cut()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.server.wait_closed()


async def _stored_state(db: Path, run_id: str) -> dict[str, Any]:
    """The stored run's state: the first event of a plain (no delta) stream of a ``ui``-style
    server over ``db``, which is always the whole state."""
    async with (
        stored_runs_server(db) as url,
        httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}, timeout=30) as client,
        client.stream("GET", f"{url}/api/runs/{run_id}/stream") as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                state: dict[str, Any] = json.loads(line[len("data: ") :])
                return state
    raise AssertionError("the stream sent no state")


@pytest.mark.slow
@SHARED_BROWSER_LOOP
async def test_a_page_on_deltas_shows_the_stored_run_after_a_reconnect(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A real run followed on deltas, its connection cut while ``hold-2`` runs: the browser
    reconnects with ``Last-Event-ID``, applies deltas before and after the cut, and ends with
    the stages table and timeline of the stored run. Before deltas the page got whole states
    only (``window.__deltas`` stayed 0)."""
    (tmp_path / "deltas.yaml").write_text(_pipeline(tmp_path))
    argv = ["serve", "--pipeline", "deltas.yaml", "--max-runs", "1", "--port", "0"]
    with taskdaemon(argv, cwd=tmp_path) as process:
        real = server_url(process)
        run_id = await first_run(real)
        proxy = CuttingProxy(int(real.rsplit(":", 1)[1]))
        async with proxy.serving() as url, browser_page(shared_chromium) as (page, errors):
            await page.add_init_script(COUNT_DELTAS)
            await page.goto(f"{url}/?token={TOKEN}")
            await page.goto(f"{url}/runs/{run_id}")
            await page.wait_for_selector(state_of("hold-1", "running"))
            await page.wait_for_selector('body[data-stream-state="open"]')
            (tmp_path / "go1").touch()
            await page.wait_for_selector(state_of("hold-2", "running"))
            before_cut = await page.evaluate("window.__deltas")
            proxy.cut()
            await page.wait_for_selector('body[data-stream-state="reconnecting"]')
            await page.wait_for_selector('body[data-stream-state="open"]')
            (tmp_path / "go2").touch()
            await page.wait_for_selector('body[data-stream-state="ended"]')
            after = await page.evaluate("window.__deltas")
            shown = await page.evaluate(PAGE_STATE)
            heads = proxy.stream_heads()
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(timeout=30)
    stored = await _stored_state(tmp_path / "home" / "spans.db", run_id)
    assert "success" == stored["run"]["status"]
    assert [[node["name"], node["state"]] for node in stored["nodes"]] == shown["stages"]
    assert [
        [
            row["stage"],
            row["instance"],
            row["attempt"],
            (f" #{row['attempt']}" if row["attempt"] > 1 else "") + " · " + row["status"],
            [segment["kind"] for segment in row["segments"]],
        ]
        for row in stored["timeline"]["rows"]
    ] == shown["rows"]
    assert (True, True) == (before_cut > 0, after > before_cut), (before_cut, after)
    assert 2 == len(heads), heads
    assert "?delta=true" in heads[0]
    assert "last-event-id:" in heads[1]
    # the cut stream, which chromium reports; nothing else
    assert ["Failed to load resource: net::ERR_INCOMPLETE_CHUNKED_ENCODING"] == errors


def _state(rng: random.Random, stages: list[str], now: float) -> dict[str, Any]:
    """A run state of ``stages`` in random states, with rows for some of their attempts."""
    nodes = [
        {"name": name, "state": rng.choice(["pending", "running", "success"]), "attempts": 1}
        for name in stages
    ]
    rows = []
    for name in stages:
        for attempt in range(1, rng.randint(0, 3) + 1):
            is_open = rng.random() < 0.3
            end = now if is_open else round(now - rng.random(), 6)
            rows.append(
                {
                    "stage": name,
                    "instance": 0,
                    "attempt": attempt,
                    "status": "running" if is_open else "success",
                    "open": is_open,
                    "segments": [{"kind": "running", "start": 1.0, "end": end}],
                }
            )
    return {
        "run": {"status": "running", "duration": f"{now}s"},
        "nodes": nodes,
        "timeline": {"start": 1.0, "end": now, "rows": rows, "hidden": 0, "last_seen": None},
        "now": now,
        "quiet_since": None,
        "controls": {"approve": False, "debug": False},
    }


def _changed(
    rng: random.Random, state: dict[str, Any], stages: list[str], now: float
) -> dict[str, Any]:
    """``state`` a moment later: a few nodes and rows changed, rows added and dropped in
    place, open rows' ends at the new ``now``."""
    new = copy.deepcopy(state)
    new["now"] = new["timeline"]["end"] = now
    new["run"]["duration"] = f"{now}s"
    for node in rng.sample(new["nodes"], 2):
        node["state"] = rng.choice(["running", "success", "failure"])
    rows = new["timeline"]["rows"]
    for _ in range(rng.randint(0, 3)):
        if rows and rng.random() < 0.4:
            rows.pop(rng.randrange(len(rows)))
        else:
            key = (rng.choice(stages), rng.randint(1, 9), rng.randint(4, 999))
            if key not in {(r["stage"], r["instance"], r["attempt"]) for r in rows}:
                rows.insert(rng.randint(0, len(rows)), _row(key, now))
    for row in rows:
        if row["open"]:
            row["segments"][-1]["end"] = now
    if rows and rng.random() < 0.5:
        rows[rng.randrange(len(rows))]["status"] = "failure"
    return new


def _row(key: tuple[str, int, int], now: float) -> dict[str, Any]:
    """A new open row of ``key`` (stage, instance, attempt), queued since 2.0."""
    stage, instance, attempt = key
    return {
        "stage": stage,
        "instance": instance,
        "attempt": attempt,
        "status": "queued",
        "open": True,
        "segments": [{"kind": "queued", "start": 2.0, "end": now}],
    }


@pytest.mark.slow
@SHARED_BROWSER_LOOP
async def test_the_page_applies_each_delta_to_the_state_it_was_made_from(
    shared_chromium: Any,
) -> None:
    """300 random changes of a 40-stage state (rows inserted anywhere, dropped, changed, open
    rows ticking): each delta the server makes, applied by ``deltas.js`` in chromium to the
    state before it, gives the state after it exactly; a change of most items sends the whole
    state, and so does a reordering."""
    rng = random.Random(53)
    stages = [f"s{n:02}" for n in range(40)]
    state = _state(rng, stages, 10.0)
    cases = []
    for step in range(300):
        new = _changed(rng, state, stages, 10.0 + step)
        delta = state_delta(state, new, step)
        if delta is not None:
            cases.append([state, delta["state"], new])
        state = new
    async with browser_page(shared_chromium) as (page, errors):
        await page.add_script_tag(path=str(STATIC / "deltas.js"))
        applied = await page.evaluate(
            "text => JSON.parse(text).map(([s, d]) => window.taskdaemonDeltas.apply(s, d))",
            json.dumps(cases),
        )
    assert [case[2] for case in cases] == applied
    assert len(cases) > 250
    assert [] == errors
    everything = _state(rng, stages, 20.0)
    for node in everything["nodes"]:
        node["state"] = "failure"
    assert None is state_delta(_state(rng, stages, 20.0), everything, 1)
    reordered = copy.deepcopy(everything)
    reordered["nodes"].reverse()
    assert None is state_delta(everything, reordered, 1)


async def test_a_feed_sends_deltas_to_the_clients_that_asked_and_states_to_the_others() -> None:
    """One feed, three clients: a plain one gets every state whole, as before deltas; one that
    asked gets the whole state first, then deltas naming the event before as their base; one
    that joins later starts with the whole current state. Before: ``subscribe`` took no
    ``deltas``."""
    items: asyncio.Queue[int | None] = asyncio.Queue()

    async def source() -> AsyncIterator[int]:
        while (item := await items.get()) is not None:
            yield item

    def diff(old: Any, new: Any, base: int) -> Any:
        return {"base": base, "n": new["n"]}

    hub = StreamHub()
    subscribe = functools.partial(hub.subscribe, "run", lambda n: {"n": n}, source, diff=diff)
    plain, asked = subscribe(), subscribe(deltas=True)
    read = functools.partial(_events, hub)
    await items.put(1)
    first = [await read(plain), await read(asked)]
    await items.put(2)
    second = [await read(plain), await read(asked)]
    late = subscribe(deltas=True)
    joined = await read(late)
    await items.put(3)
    third = [await read(plain), await read(asked), await read(late)]
    await items.put(None)
    ends = [await read(s) for s in (plain, asked, late)]
    for subscription in (plain, asked, late):
        subscription.close()
    assert [("1", None, {"n": 1}), ("1", None, {"n": 1})] == first
    assert [("2", None, {"n": 2}), ("2", "delta", {"base": 1, "n": 2})] == second
    assert ("2", None, {"n": 2}) == joined
    assert [("3", None, {"n": 3})] + [("3", "delta", {"base": 2, "n": 3})] * 2 == third
    assert [(None, "end", {})] * 3 == ends


async def _events(hub: StreamHub, subscription: Any) -> tuple[str | None, str | None, Any]:
    """The next event of ``subscription`` (pings skipped): its id, name and data."""
    while True:
        chunk = await subscription.next(hub.heartbeat)
        assert chunk is not None
        fields = dict(line.split(": ", 1) for line in chunk.decode().splitlines() if ": " in line)
        if "data" in fields:
            return fields.get("id"), fields.get("event"), json.loads(fields["data"])


async def test_the_route_takes_delta_as_a_boolean_and_starts_with_the_whole_state() -> None:
    """``?delta=true`` over a real server: the first event is the whole state; a ``delta``
    that is no boolean is one line's 400, as ``finished`` of ``/api/runs`` is."""
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with server_support.waiting_run(TOKEN) as (client, run_id):
        refused = await client.get(f"/api/runs/{run_id}/stream?delta=maybe", headers=headers)
        async with client.stream(
            "GET", f"/api/runs/{run_id}/stream?delta=true", headers=headers
        ) as response:
            first = await anext(
                json.loads(line[len("data: ") :])
                async for line in response.aiter_lines()
                if line.startswith("data: ")
            )
    assert (400, {"error": "delta must be true or false, got 'maybe'"}) == (
        refused.status_code,
        refused.json(),
    )
    assert {"run", "nodes", "timeline", "now"} <= set(first)


@pytest.mark.slow
@SHARED_BROWSER_LOOP
async def test_a_delta_after_a_state_the_page_missed_makes_it_ask_for_the_whole_state(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A made-up stream (``page.route``) of a stored run: the whole state, a delta of it, then
    a delta whose ``base`` is an event the page never got. The page applies the first, not
    the second: it opens the stream again, whose whole state it shows."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    asked: list[str] = []
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(shared_chromium) as (page, errors),
    ):
        whole = await first_event(url, run_id)
        whole["run"]["status"] = "running"
        first = whole["nodes"][0]

        def put(state: str) -> dict[str, Any]:
            return {"nodes": {"put": [[None, {**first, "state": state}]], "drop": []}}

        def event(number: int, data: Any, name: str | None = None) -> str:
            return (
                f"id: {number}\n"
                + (f"event: {name}\n" if name else "")
                + (f"data: {json.dumps(data)}\n\n")
            )

        bodies = [
            event(1, whole)
            + event(2, {"base": 1, "state": put("running")}, "delta")
            + event(6, {"base": 5, "state": put("failure")}, "delta"),
            event(7, {**whole, "nodes": [{**first, "state": "success"}, *whole["nodes"][1:]]})
            + "event: end\ndata: {}\n\n",
        ]

        async def stream(route: Any) -> None:
            asked.append(route.request.url)
            body = "retry: 100\n\n" + bodies[min(len(asked), 2) - 1]
            await route.fulfill(status=200, content_type="text/event-stream", body=body)

        await page.route("**/api/runs/*/stream?*", stream)
        await page.add_init_script(COUNT_DELTAS)
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector('body[data-stream-state="ended"]')
        shown = await page.get_attribute(f'#stages tr[data-stage="{first["name"]}"]', "data-state")
        applied = await page.evaluate("window.__deltas")
    assert ("success", 1, 2) == (shown, applied, len(asked))
    assert [] == errors
