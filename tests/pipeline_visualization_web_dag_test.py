"""When the run page draws its DAG, in Debian's headless chromium (Playwright).

The page's live stream is replaced (``page.route``) by events made from the run's real first
event, so each test says exactly which states and labels arrive; the drawings are the real
server's, and the test counts the page's requests for them (each one a ``dot`` run).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from browser_support import TOKEN, browser_page, stored_runs_server
from pipeline_tracking_support import store_with
from web_events_support import run_page_with, with_stages


async def test_ticking_durations_do_not_redraw_the_dag(tmp_path: Path) -> None:
    """Three events whose stages keep their states while their durations tick are one drawing:
    a new layout is asked for when states change, not labels."""
    states = ["running", "pending"]

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        return [with_stages(event, states, f"{n}.0s") for n in (1, 2, 3)]

    async with run_page_with(tmp_path, make) as (page, errors, drawings):
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')
        drawn = len(drawings)
    assert 1 == drawn
    assert [] == errors


async def test_a_state_change_redraws_a_small_dag_at_once(tmp_path: Path) -> None:
    """A small DAG is drawn again as soon as a stage's state changes."""

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        return [with_stages(event, ["running"], "1.0s"), with_stages(event, ["success"], "2.0s")]

    async with run_page_with(tmp_path, make) as (page, errors, drawings):
        await page.wait_for_selector('#dag g.node[data-stage="work"][data-state="success"]')
        drawn = len(drawings)
    assert 2 == drawn
    assert [] == errors


async def test_a_big_dag_is_redrawn_at_most_every_ten_seconds(tmp_path: Path) -> None:
    """A DAG of more than 100 stages whose states change is drawn, then waits ten seconds
    (the browser's clock) before its next drawing, which shows the last state."""

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            with_stages(event, ["pending"] * 150, ""),
            with_stages(event, ["running"] + ["pending"] * 149, ""),
            with_stages(event, ["success", "running"] + ["pending"] * 148, ""),
        ]

    async with run_page_with(tmp_path, make, fake_clock=True) as (page, errors, drawings):
        await page.wait_for_selector('#dag[data-dag-state="waiting"]')
        before = len(drawings)
        await page.clock.fast_forward(10_000)
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')
        after = len(drawings)
        node = await page.get_attribute('#dag g.node[data-stage="work"]', "data-state")
    assert (1, 2, "success") == (before, after, node)
    assert [] == errors


async def test_a_dag_of_more_than_500_stages_is_not_drawn(tmp_path: Path) -> None:
    """A DAG of 501 stages is not drawn (fit into the page it would be specks): the page says
    how many stages there are and where to see them, and asks the server for no drawing."""

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        return [with_stages(event, ["pending"] * 501, "")]

    async with run_page_with(tmp_path, make) as (page, errors, drawings):
        await page.wait_for_selector('#dag[data-dag-state="too-big"]')
        said = await page.text_content("#dag")
        run_id = await page.get_attribute("body", "data-run-id")
    expected = (
        "501 stages: too many to draw readably here (the page draws up to 500). The stages"
        f" table lists each with its state; taskdaemon dag --run {run_id} --format svg"
        " -o dag.svg draws the whole DAG."
    )
    assert expected == said
    assert [] == drawings
    assert [] == errors


_SIZES = """[
  document.querySelector("#dag svg").width.baseVal.value,
  document.getElementById("dag").clientWidth,
  document.querySelector("#dag svg").getBoundingClientRect().width,
  document.getElementById("dag-fit").getAttribute("aria-pressed"),
]"""


@pytest.mark.parametrize(("width", "fits"), [(420, True), (320, False)])
async def test_the_dag_fits_the_panel_unless_that_halves_it(
    tmp_path: Path, width: int, fits: bool
) -> None:
    """A drawing wider than its panel is shrunk to the panel's width, unless that would make it
    less than half its size (its labels unreadable): then it is shown at its size, to scroll.
    The "Fit to width" button turns either way over."""
    (run_id,) = await asyncio.to_thread(store_with, tmp_path / "spans.db", [10])
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(width=width) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')
        natural, panel, shown, pressed = await page.evaluate(_SIZES)
        await page.click("#dag-fit")
        *_, shown_after, pressed_after = await page.evaluate(_SIZES)
    assert (True, fits) == (natural > panel, natural <= 2 * panel)
    fitted, whole = round(min(natural, panel)), round(natural)
    expected = [(str(fits).lower(), fitted if fits else whole)]
    expected.append((str(not fits).lower(), whole if fits else fitted))
    assert expected == [(pressed, round(shown)), (pressed_after, round(shown_after))]
    assert [] == errors
