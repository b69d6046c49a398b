"""``web/_live_document``: the live document kept between changes, each delta built from the
stages that changed (``DagWatcher.changes``), equal to what rendering the whole run gives, and
costing what changed, not the run."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from live_changes_support import (
    RUN,
    Clock,
    apply_delta,
    pipeline,
    random_events,
    stage_end,
    stage_start,
    started,
)
from operation_count_support import steps
from taskdaemon.pipeline.visualization import DagWatcher
from taskdaemon.pipeline.web._live_document import LiveDocument
from taskdaemon.pipeline.web._views import run_state


def _render(clock: Clock, max_rows: int) -> Any:
    def render(snapshot: Any, quiet_since: Any, rows: int) -> dict[str, Any]:
        return run_state(
            snapshot,
            now=clock.now,
            can_control=True,
            debug=True,
            quiet_since=quiet_since,
            max_rows=rows,
        )

    return render


async def _follow(seed: int, stages: int, max_rows: int) -> tuple[int, int]:
    """A random run followed as changes: each change's whole document and delta checked
    against the whole render. Returns (deltas, whole documents) after the first."""
    rng = random.Random(seed)
    clock = Clock()
    watcher = DagWatcher()
    definition = pipeline(stages)
    watcher.on_event(started(definition, clock))
    changes = watcher.changes(RUN)
    document = LiveDocument(_render(clock, max_rows), max_rows)
    events = random_events(rng, stages, clock)
    deltas = wholes = 0
    base = 0
    sent = None
    try:
        async for item in changes:
            base += 1
            delta = document.update(item, base - 1)
            clock.tick()  # the document's clock: the open rows end at now, which moved on
            expected = run_state(
                watcher.snapshot(RUN),
                now=clock.now - 0.1,
                can_control=True,
                debug=True,
                max_rows=max_rows,
            )
            assert document.whole() == expected
            if sent is not None:
                if delta is None:
                    wholes += 1
                else:
                    deltas += 1
                    assert delta["base"] == base - 1
                    assert apply_delta(sent, delta["state"]) == expected
            sent = expected
            for _ in range(rng.randint(1, 3)):
                event = next(events, None)
                if event is not None:
                    watcher.on_event(event)
    finally:
        await changes.aclose()  # type: ignore[attr-defined]
    return deltas, wholes


@pytest.mark.parametrize("max_rows", [5, 40, 2000])
@pytest.mark.parametrize("seed", range(6))
def test_each_change_is_the_whole_render_and_its_delta_makes_it(seed: int, max_rows: int) -> None:
    # A cut of 5 or 40 rows falls inside the run's timeline and moves as rows are added
    # before it, after it and at it; 2000 cuts none.
    deltas, wholes = asyncio.run(_follow(seed, 30, max_rows))
    assert deltas > 5 * wholes  # a change is a delta but for the run's end and big ones


def _one_change_steps(stages: int) -> int:
    """Python steps of a stage's start in a run of ``stages`` whose every other stage ended:
    from the watcher's event to the delta made."""
    clock = Clock()
    watcher = DagWatcher()
    watcher.on_event(started(pipeline(stages), clock))
    for i in range(stages - 1):
        watcher.on_event(stage_start(f"s{i}", clock))
        watcher.on_event(stage_end(f"s{i}", clock))
    loop = asyncio.new_event_loop()
    changes = watcher.changes(RUN)
    document = LiveDocument(_render(clock, 2000))
    made: list[Any] = []

    async def change() -> None:
        watcher.on_event(stage_start(f"s{stages - 1}", clock))
        made.append(document.update(await anext(changes), 1))

    try:
        document.update(loop.run_until_complete(anext(changes)), 0)  # the whole first one
        count = steps(lambda: loop.run_until_complete(change()))
        loop.run_until_complete(changes.aclose())  # type: ignore[attr-defined]
    finally:
        loop.close()
    assert made[0]["state"]["nodes"]["put"][0][1]["name"] == f"s{stages - 1}"
    return count


def test_a_change_costs_what_changed_not_the_run() -> None:
    # Rendering the whole run at each change (before), a run ten times as big cost about ten
    # times the steps; built from what changed, about the same.
    _one_change_steps(50)  # imports and first-use caches paid
    small, large = _one_change_steps(100), _one_change_steps(1000)
    assert large < 1.3 * small, (small, large)
