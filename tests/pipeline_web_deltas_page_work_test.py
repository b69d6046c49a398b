"""The page's work at each delta of the live stream (``web/_deltas.py`` makes them, the page's
``static/deltas.js`` and ``app.js`` apply them): the JavaScript it runs is the size of what
the delta changed, not of the run, and ``deltas.js``'s book of the state it keeps (a key's
item, the open rows, the counts the page says, the drawing's layout) stays true from delta
to delta.

The work is counted, not timed: V8's block coverage (the Chrome DevTools Protocol's
``Profiler.takePreciseCoverage``, Debian's chromium) counts each block of the page's scripts
each time it runs, a loop's body once an item.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from browser_support import SHARED_BROWSER_LOOP, TOKEN, browser_page, stored_runs_server
from live_changes_support import Clock, live_stream, pipeline, sse_body, stage_end, stage_start
from pipeline_tracking_support import store_with
from taskdaemon.pipeline.web._deltas import state_delta

STATIC = Path(__file__).resolve().parent.parent / "src/taskdaemon/pipeline/web/static"

#: The page's clock stands still (no tick between events): only the events make work.
NO_TICK = "window.setInterval = () => 0;"

DELTAS = 20


def _chain(stages: int) -> list[tuple[str | None, Any]]:
    """A chain of ``stages`` half ended, then ``DELTAS`` changes of one stage each."""
    clock = Clock()
    before = []
    for i in range(stages // 2):
        before += [stage_start(f"s{i}", clock), stage_end(f"s{i}", clock)]
    batches = []
    for i in range(stages // 2, stages // 2 + DELTAS // 2):
        batches += [[stage_start(f"s{i}", clock)], [stage_end(f"s{i}", clock)]]
    sent, _final = live_stream(pipeline(stages), before, batches)
    assert len(sent) == DELTAS + 1
    assert all(name == "delta" for name, _ in sent[1:])
    return sent


async def _blocks(browser: Any, url: str, run_id: str, sent: list[Any]) -> int:
    """The blocks of the page's own scripts run while it applies the deltas of ``sent``,
    which come on a second stream (the page reconnects as the first, of the whole state,
    ends) once the blocks of the first are counted."""
    deltas = asyncio.Event()
    whole = sse_body(sent[:1])
    bodies = [
        whole.replace("retry: 600000", "retry: 1"),
        "retry: 600000\n\n" + sse_body(sent)[len(whole) :],
    ]

    async def stream(route: Any) -> None:
        if len(bodies) == 1:
            await deltas.wait()
        await route.fulfill(status=200, content_type="text/event-stream", body=bodies.pop(0))

    async with browser_page(browser) as (page, errors):
        await page.route("**/api/runs/*/stream?*", stream)
        await page.add_init_script(NO_TICK)
        await page.goto(f"{url}/?token={TOKEN}")
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Profiler.enable")
        await cdp.send("Profiler.startPreciseCoverage", {"callCount": True, "detailed": True})
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector('body[data-last-event-id="1"]')
        await cdp.send("Profiler.takePreciseCoverage")
        deltas.set()
        await page.wait_for_selector(f'body[data-last-event-id="{len(sent)}"]')
        coverage = await cdp.send("Profiler.takePreciseCoverage")
        await cdp.send("Profiler.stopPreciseCoverage")
        await cdp.detach()
        assert [] == errors
    return sum(
        block["count"]
        for script in coverage["result"]
        if "/static/" in script["url"]
        for function in script["functions"]
        for block in function["ranges"]
    )


@pytest.mark.slow
@SHARED_BROWSER_LOOP
async def test_a_delta_costs_the_page_the_same_work_at_600_and_3000_stages(
    shared_chromium: Any, tmp_path: Path
) -> None:
    # Before: deltas.js rebuilt the stages' and the rows' lists, and app.js counted the
    # stages in each state, those to approve and to resume, and the drawing's key over all
    # of them, at each event: about 22 blocks a stage at each delta (13,427 at 600 stages).
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    work = {}
    async with stored_runs_server(tmp_path / "spans.db") as url:
        for stages in (600, 3000):
            sent = await asyncio.to_thread(_chain, stages)
            work[stages] = await _blocks(shared_chromium, url, run_id, sent) / DELTAS
    print("blocks a delta", work)
    assert work[3000] < 1.1 * work[600] + 20, work
    assert work[3000] < 600, work


def _node(name: str, rng: random.Random) -> dict[str, Any]:
    waits = rng.random() < 0.2
    return {
        "name": name,
        "state": rng.choice(["pending", "running", "success", "failure"]),
        "attempts": rng.randint(0, 2),
        "approvable": waits,
        "resumable": not waits and rng.random() < 0.1,
    }


def _row(key: tuple[str, int], now: float, rng: random.Random) -> dict[str, Any]:
    is_open = rng.random() < 0.4
    return {
        "stage": key[0],
        "instance": 0,
        "attempt": key[1],
        "status": "running" if is_open else "success",
        "open": is_open,
        "segments": [{"kind": "running", "start": 1.0, "end": now if is_open else 1.5}],
    }


def _next(rng: random.Random, state: dict[str, Any], now: float) -> dict[str, Any]:
    """``state`` a moment later: a few stages changed; rows dropped from the top, added at the
    end, now and then in the middle; open rows' ends at the new ``now``."""
    new = copy.deepcopy(state)
    new["now"] = new["timeline"]["end"] = now
    for i in rng.sample(range(len(new["nodes"])), 2):
        new["nodes"][i] = _node(new["nodes"][i]["name"], rng)
    if rng.random() < 0.1:
        new["run"]["status"] = rng.choice(["running", "paused"])
    rows = new["timeline"]["rows"]
    del rows[: rng.choice([0, 0, 1, 2])]
    for _ in range(rng.randint(0, 2)):
        key = (f"s{rng.randrange(30):02}", int(now * 10) + len(rows))
        rows.insert(
            len(rows) if rng.random() < 0.8 else rng.randint(0, len(rows)), _row(key, now, rng)
        )
    if rows and rng.random() < 0.3:
        rows[rng.randrange(len(rows))]["open"] = False
    if len(rows) > 3 and rng.random() < 0.1:
        rows.pop(rng.randrange(1, len(rows)))
    for row in rows:
        if row["open"]:
            row["segments"][-1]["end"] = now
    return new


def _said(state: dict[str, Any]) -> list[Any]:
    """What ``deltas.js`` tells of ``state`` (``SAID``), made in Python."""
    counts: dict[str, int] = {}
    for node in state["nodes"]:
        counts[node["state"]] = counts.get(node["state"], 0) + 1
    return [
        state,
        counts,
        [n["name"] for n in state["nodes"] if n["approvable"]],
        [n["name"] for n in state["nodes"] if n["resumable"]],
    ]


#: Applies each event to the state the page keeps (a whole state replaces it) and says the
#: state, its counts of stages by state, the stages to approve and to resume, and whether the
#: drawing's layout changed.
SAID = """(events) => {
  const D = window.taskdaemonDeltas;
  let state = null;
  return events.map(([name, data]) => {
    const layout = state === null ? null : D.layout(state);
    state = name === "delta" ? D.apply(state, data) : data;
    const counts = Object.fromEntries([...D.tally(state).states].filter(([, n]) => n > 0));
    return [JSON.parse(JSON.stringify(state)), counts,
      D.nodesWhere(state, "approvable").map((n) => n.name),
      D.nodesWhere(state, "resumable").map((n) => n.name), layout !== D.layout(state)];
  });
}"""


@pytest.mark.slow
@SHARED_BROWSER_LOOP
async def test_the_book_of_the_kept_state_stays_true_from_delta_to_delta(
    shared_chromium: Any,
) -> None:
    rng = random.Random(55)
    clock = 2.0
    state = {
        "run": {"status": "running"},
        "nodes": [_node(f"s{i:02}", rng) for i in range(30)],
        "timeline": {"start": 1.0, "end": clock, "rows": [], "hidden": 0, "last_seen": None},
        "now": clock,
    }
    events: list[list[Any]] = [[None, state]]
    wanted = [[*_said(state), True]]
    for step in range(400):
        new = _next(rng, state, clock + step)
        delta = state_delta(state, new, step)
        events.append([None, new] if delta is None else ["delta", delta["state"]])
        drawn = [(n["name"], n["state"], n["attempts"]) for n in new["nodes"]]
        moved = drawn != [(n["name"], n["state"], n["attempts"]) for n in state["nodes"]]
        # A whole state after a delta is laid out again: the page knows not what it shows.
        again = delta is None and events[-2][0] == "delta"
        wanted.append([*_said(new), again or moved or new["run"] != state["run"]])
        state = new
    async with browser_page(shared_chromium) as (page, errors):
        await page.add_script_tag(path=str(STATIC / "deltas.js"))
        said = await page.evaluate(SAID, json.loads(json.dumps(events)))
    assert [] == errors
    assert sum(name == "delta" for name, _ in events) > 350
    for number, (got, want) in enumerate(zip(said, wanted, strict=True)):
        assert want == got, number
