"""The run page on the deltas of a run of this process (``web/_live_document`` makes them; the
page applies them in ``static/app.js`` and ``timeline.js``): drawn only where a delta names,
it ends as the page drawn from the final whole state, and a delta touches about as much of
the page in a run of 3,000 stages as in one of 600.

Both tests serve a made-up stream (``page.route``) of events the server's own parts made from
engine events (``live_changes_support.live_stream``) to Debian's chromium, on the page of a
stored run (the stream replaces its state; the page draws what the stream says).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from browser_support import SHARED_BROWSER_LOOP, TOKEN, browser_page, stored_runs_server
from live_changes_support import (
    Clock,
    live_stream,
    pipeline,
    random_events,
    sse_body,
    stage_end,
    stage_start,
)
from pipeline_tracking_support import store_with

#: The stages table and the timeline as the page draws them, each bar's place and length in
#: pixels from its track's left (rounded to a tenth), its classes and its title.
PAGE = """() => {
  const cells = (tr) => [...tr.cells].map((c) => c.textContent);
  const bars = (row) => {
    const track = row.querySelector(".track").getBoundingClientRect();
    return [...row.querySelectorAll(".seg")].map((s) => {
      const box = s.getBoundingClientRect();
      return [s.className, s.title, Math.round(10 * (box.left - track.left)) / 10,
        Math.round(10 * box.width) / 10];
    });
  };
  return {
    status: document.getElementById("run-status").textContent,
    stages: [...document.querySelectorAll("#stages tbody tr")].map(
      (tr) => [tr.dataset.stage, tr.dataset.state, ...cells(tr)]),
    rows: [...document.querySelectorAll("#timeline > *")].map((r) => r.classList.contains("row")
      ? [r.dataset.stage, r.dataset.instance, r.dataset.attempt,
        r.querySelector(".label-rest").textContent, bars(r)]
      : r.textContent),
  };
}"""

#: The page's clock stands still (no tick redraws the open bars between events): both pages
#: show their state's own ``now``.
NO_TICK = "window.setInterval = () => 0;"

#: Counts what the page changes (MutationObserver records) up to each delta it applies.
COUNT_MUTATIONS = """(() => {
  window.__marks = [];
  let count = 0;
  const watcher = new MutationObserver((records) => { count += records.length; });
  watcher.observe(document,
    { subtree: true, childList: true, attributes: true, characterData: true });
  window.__mutations = () => count + watcher.takeRecords().length;
  let real;
  Object.defineProperty(window, "taskdaemonDeltas", {
    configurable: true,
    get() { return real; },
    set(value) {
      real = { ...value, apply(state, delta) {
        count += watcher.takeRecords().length;
        window.__marks.push(count);
        return value.apply(state, delta);
      } };
    },
  });
})();"""


async def _shown(
    browser: Any, url: str, run_id: str, body: str, last: int, *, init: str = ""
) -> tuple[Any, Any]:
    """The page of ``run_id`` on the stream ``body`` once it applied event ``last``: what it
    draws (``PAGE``) and the mutation marks (``COUNT_MUTATIONS``, when given)."""
    async with browser_page(browser) as (page, errors):

        async def stream(route: Any) -> None:
            await route.fulfill(status=200, content_type="text/event-stream", body=body)

        await page.route("**/api/runs/*/stream?*", stream)
        await page.add_init_script(NO_TICK + init)
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector(f'body[data-last-event-id="{last}"]')
        shown = await page.evaluate(PAGE)
        marks = await page.evaluate(
            "window.__marks ? [...window.__marks, window.__mutations()] : null"
        )
        assert [] == errors
    return shown, marks


@pytest.mark.slow
@SHARED_BROWSER_LOOP
@pytest.mark.parametrize("seed", [1, 2])
async def test_the_page_after_deltas_is_the_page_of_the_final_state(
    shared_chromium: Any, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    clock = Clock()
    definition = pipeline(25)
    events = list(random_events(rng, 25, clock))[:-1]  # the run still going at the end
    batches = []
    while events:
        size = rng.randint(1, 3)
        batches.append(events[:size])
        events = events[size:]
    sent, final = await asyncio.to_thread(live_stream, definition, [], batches)
    assert sum(name == "delta" for name, _ in sent) > len(sent) // 2
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with stored_runs_server(tmp_path / "spans.db") as url:
        applied, _ = await _shown(shared_chromium, url, run_id, sse_body(sent), len(sent))
        whole, _ = await _shown(shared_chromium, url, run_id, sse_body([(None, final)]), 1)
    assert whole == applied
    assert len(applied["stages"]) == 25
    assert len(applied["rows"]) > 25


def _chain(stages: int, changes: int) -> list[tuple[str | None, Any]]:
    """A chain of ``stages`` half ended, then ``changes`` changes of one stage each."""
    clock = Clock()
    before = []
    for i in range(stages // 2):
        before += [stage_start(f"s{i}", clock), stage_end(f"s{i}", clock)]
    batches = []
    for i in range(stages // 2, stages // 2 + changes // 2):
        batches += [[stage_start(f"s{i}", clock)], [stage_end(f"s{i}", clock)]]
    sent, _final = live_stream(pipeline(stages), before, batches)
    assert all(name == "delta" for name, _ in sent[1:])
    return sent


@pytest.mark.slow
@SHARED_BROWSER_LOOP
async def test_a_delta_touches_what_it_names_not_the_whole_page(
    shared_chromium: Any, tmp_path: Path
) -> None:
    # Drawn from the whole state at each event, the page set every stage row's state and
    # every bar's place (the timeline's scale moves with the run's clock): about five times
    # the changes at five times the stages.
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    touched = {}
    async with stored_runs_server(tmp_path / "spans.db") as url:
        for stages in (600, 3000):
            sent = await asyncio.to_thread(_chain, stages, 20)
            _, marks = await _shown(
                shared_chromium, url, run_id, sse_body(sent), len(sent), init=COUNT_MUTATIONS
            )
            per_delta = [after - before for before, after in itertools.pairwise(marks)]
            touched[stages] = sum(per_delta) / len(per_delta)
    print("mutations a delta", touched)
    assert touched[3000] < 1.2 * touched[600] + 2, touched
    assert touched[3000] < 40, touched
