"""When the run page draws its DAG, in Debian's headless chromium (Playwright).

The page's live stream is replaced (``page.route``) by events made from the run's real first
event, so each test says exactly which states and labels arrive; the drawings are the real
server's, and the test counts the page's requests for them (each one a ``dot`` run).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import SHARED_BROWSER_LOOP, TOKEN, browser_page, stored_runs_server
from pipeline_tracking_support import store_stages
from web_events_support import run_page_with, with_stages


@SHARED_BROWSER_LOOP
async def test_ticking_durations_do_not_redraw_the_dag(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """Three events whose stages keep their states while their durations tick are one drawing:
    a new layout is asked for when states change, not labels."""
    states = ["running", "pending"]

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        return [with_stages(event, states, f"{n}.0s") for n in (1, 2, 3)]

    async with run_page_with(tmp_path, make, browser=shared_chromium) as (page, errors, drawings):
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')
        drawn = len(drawings)
    assert 1 == drawn
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_state_change_redraws_a_small_dag_at_once(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A small DAG is drawn again as soon as a stage's state changes."""

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        return [with_stages(event, ["running"], "1.0s"), with_stages(event, ["success"], "2.0s")]

    async with run_page_with(tmp_path, make, browser=shared_chromium) as (page, errors, drawings):
        await page.wait_for_selector('#dag g.node[data-stage="work"][data-state="success"]')
        drawn = len(drawings)
    assert 2 == drawn
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_big_dag_is_redrawn_at_most_every_ten_seconds(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A DAG of more than 100 stages whose states change is drawn, then waits ten seconds
    (the browser's clock) before its next drawing, which shows the last state."""

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            with_stages(event, ["pending"] * 150, ""),
            with_stages(event, ["running"] + ["pending"] * 149, ""),
            with_stages(event, ["success", "running"] + ["pending"] * 148, ""),
        ]

    page_with = run_page_with(tmp_path, make, browser=shared_chromium, fake_clock=True)
    async with page_with as (page, errors, drawings):
        await page.wait_for_selector('#dag[data-dag-state="waiting"]')
        before = len(drawings)
        await page.clock.fast_forward(10_000)
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')
        after = len(drawings)
        node = await page.get_attribute('#dag g.node[data-stage="work"]', "data-state")
    assert (1, 2, "success") == (before, after, node)
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_dag_of_more_than_500_stages_is_not_drawn(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """A DAG of 501 stages is not drawn (fit into the page it would be specks): the page says
    how many stages there are and where to see them, and asks the server for no drawing. It
    offers no Fit button either (it offered one, pressed, that had nothing to fit)."""

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        return [with_stages(event, ["pending"] * 501, "")]

    async with run_page_with(tmp_path, make, browser=shared_chromium) as (page, errors, drawings):
        await page.wait_for_selector('#dag[data-dag-state="too-big"]')
        said = await page.text_content("#dag")
        run_id = await page.get_attribute("body", "data-run-id")
        fit_shown = await page.is_visible("#dag-fit")
    assert not fit_shown
    expected = (
        "501 stages: too many to draw readably here (the page draws up to 500). The stages"
        f" table lists each with its state; taskdaemon dag --run {run_id} --format svg"
        " -o dag.svg draws the whole DAG."
    )
    assert expected == said
    assert [] == drawings
    assert [] == errors


@SHARED_BROWSER_LOOP
async def test_a_run_whose_server_stopped_before_its_last_drawing_says_so(
    shared_chromium: Any, tmp_path: Path
) -> None:
    """``run --serve`` stops its server as its run ends, often before a big DAG's last
    drawing is made: that request finds no server. The page dims the drawing it has and says
    that the stages table, not the drawing, shows the end. It said "The server is
    unreachable; the drawing may be out of date." under a run that had ended, in place of
    "The run has ended.", over a drawing that showed it running."""

    def make(event: dict[str, Any]) -> list[dict[str, Any]]:
        ended = with_stages(event, ["success"] * 149 + ["failure"], "")
        ended["run"]["status"] = "failure"
        return [with_stages(event, ["running"] * 150, ""), ended]

    answered: list[str] = []

    async def server_gone_after_the_first(route: Any) -> None:
        answered.append(route.request.url)
        if len(answered) == 1:
            await route.continue_()
        else:
            await route.abort("connectionrefused")

    page_with = run_page_with(
        tmp_path,
        make,
        browser=shared_chromium,
        clock_stopped=True,
        drawing_route=server_gone_after_the_first,
    )
    async with page_with as (page, errors, _drawings):
        await page.wait_for_selector("#dag.stale svg")
        note = await page.text_content("#stream-note")
        state = await page.get_attribute('#dag g.node[data-stage="work"]', "data-state")
    assert (
        "The run has ended and its server with it, before the DAG of its end was drawn: the"
        " dimmed drawing shows an earlier state; the stages table shows the end."
    ) == note
    assert ("running", 2) == (state, len(answered))
    assert all("ERR_CONNECTION_REFUSED" in error for error in errors), errors


def png_size(png: bytes) -> tuple[int, int]:
    """The width and height of a PNG (its IHDR chunk, the first)."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def chain(count: int) -> tuple[list[str], list[tuple[str, str]]]:
    """``count`` stages, each after the one before: a drawing as long as they are many (past
    six, top to bottom: docs/architecture.md, "Output formats")."""
    names = [f"s{i:03d}" for i in range(count)]
    return names, list(itertools.pairwise(names))


def fan_out(count: int) -> tuple[list[str], list[tuple[str, str]]]:
    """One stage, then ``count`` after it: a drawing as tall as they are many."""
    names = ["root"] + [f"s{i:03d}" for i in range(count)]
    return names, [("root", name) for name in names[1:]]


@contextlib.asynccontextmanager
async def drawn_shape(
    browser: Any, tmp_path: Path, shape: tuple[list[str], list[tuple[str, str]]], width: int
) -> AsyncIterator[tuple[Any, list[str]]]:
    """The run page, ``width`` pixels wide, of a stored run of ``shape`` (its stages and
    edges; the last stage failed), once its DAG is drawn; and the page's console errors."""
    names, edges = shape
    run_id = await asyncio.to_thread(
        store_stages, tmp_path / "spans.db", "shape", names, "x", step=1_000_000, edges=edges
    )
    async with (
        stored_runs_server(tmp_path / "spans.db") as url,
        browser_page(browser, width=width) as (page, errors),
    ):
        await page.goto(f"{url}/?token={TOKEN}")
        await page.goto(f"{url}/runs/{run_id}")
        await page.wait_for_selector('#dag[data-dag-state="drawn"]')
        yield page, errors


#: The drawing's size, as drawn and as shown; the box's inner size, how far it scrolls and
#: the pixels it covers on the screen; the fit button's state and the note by it.
_FIT = """() => {
  const box = document.getElementById("dag"), svg = box.querySelector("svg");
  const shown = svg.getBoundingClientRect(), note = document.getElementById("dag-note");
  const r = box.getBoundingClientRect();
  return {natural: [svg.width.baseVal.value, svg.height.baseVal.value],
          shown: [shown.width, shown.height], box: [box.clientWidth, box.clientHeight],
          scrolls: [box.scrollWidth, box.scrollHeight],
          pixels: [Math.ceil(r.right) - Math.floor(r.left),
                   Math.ceil(r.bottom) - Math.floor(r.top)],
          pressed: document.getElementById("dag-fit").getAttribute("aria-pressed"),
          note: note.hidden ? "" : note.textContent};
}"""


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize(
    ("shape", "size", "width"),
    [
        (chain, 200, 1280),
        (chain, 200, 360),
        (fan_out, 300, 1280),
        (fan_out, 300, 360),
        (chain, 5, 1280),
        (chain, 5, 900),
        (chain, 5, 360),
    ],
)
async def test_fit_shows_the_whole_dag_or_half_its_size_and_says_so(
    shared_chromium: Any, tmp_path: Path, shape: Any, size: int, width: int
) -> None:
    """Fit (the default) shows the whole drawing in its box, the panel's width and at most 80%
    of the window's height, never larger than drawn (five stages in a wide window), shrunk
    to fit (five stages in a 900-pixel one); where that would take it below half its size
    (a chain of 200 stages, a fan-out of 300, five stages in a 360-pixel window), it is
    shown at half size, scrolling in its box, and a note says so. A screenshot of the box
    is the size the box says. Unpressed, the drawing is at its size. Fit used to fit the
    width only: a fan-out of 300 scrolled through 25,000 pixels in fit mode, and a chain
    pressed to fit shrank to a 40th, specks."""
    async with drawn_shape(shared_chromium, tmp_path, shape(size), width) as (page, errors):
        fit = await page.evaluate(_FIT)
        shot = png_size(await page.locator("#dag").screenshot())
        await page.click("#dag-fit")
        unfit = await page.evaluate(_FIT)
        window = await page.evaluate("window.innerHeight")
    (w, h), (sw, sh), (bw, bh) = fit["natural"], fit["shown"], fit["box"]
    scale = sw / w
    assert abs(sh / h - scale) < 0.01, "the drawing keeps its proportions"
    whole = min(bw / w, 0.8 * window / h, 1)
    assert "true" == fit["pressed"]
    if whole >= 0.5:
        assert abs(scale - whole) < 0.01
        assert (fit["scrolls"], "") == ([bw, bh], fit["note"])
    else:
        assert abs(scale - 0.5) < 0.01
        assert fit["scrolls"][0] > bw or fit["scrolls"][1] > bh
        assert "half its size" in fit["note"]
    assert fit["pixels"] == list(shot)
    assert shot[1] <= 0.8 * window + 2, "the box is no taller than 80% of the window"
    as_drawn = [round(w), round(h)]
    assert ("false", as_drawn, "") == (
        unfit["pressed"],
        [round(x) for x in unfit["shown"]],
        unfit["note"],
    )
    assert [] == errors


#: Whether the failed stage's shape is wholly inside the DAG box's visible part, and how far
#: the box is scrolled.
_FAILED_IN_BOX = """() => {
  const box = document.getElementById("dag");
  const shape = box.querySelector('g.node[data-state="failure"]').getBoundingClientRect();
  const r = box.getBoundingClientRect();
  const left = r.left + box.clientLeft, top = r.top + box.clientTop;
  return {seen: shape.left >= left && shape.right <= left + box.clientWidth
                && shape.top >= top && shape.bottom <= top + box.clientHeight,
          scrolled: [box.scrollLeft, box.scrollTop]};
}"""

#: Resolves once the page has handled a resize: its events are dispatched before the next
#: frame's callbacks.
_AFTER_RESIZE = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


@SHARED_BROWSER_LOOP
@pytest.mark.parametrize(("shape", "size", "width"), [(fan_out, 300, 1280), (chain, 200, 360)])
async def test_a_dag_larger_than_its_box_opens_on_the_failed_stage(
    shared_chromium: Any, tmp_path: Path, shape: Any, size: int, width: int
) -> None:
    """A drawing that scrolls in its box opens with the failed stage (the last, at the
    bottom of a fan-out of 300 and the right end of a chain of 200) in view, where it opened
    on its top left corner: whitespace beside a fan-out's first stage, and nothing of what
    went wrong. Once the reader scrolls the box, a new fit (the window resized) leaves it
    where they put it."""
    async with drawn_shape(shared_chromium, tmp_path, shape(size), width) as (page, errors):
        opened = await page.evaluate(_FAILED_IN_BOX)
        assert opened["seen"], opened
        await page.hover("#dag")
        await page.mouse.wheel(-200, -200)
        await page.wait_for_function(
            "([x, y]) => { const b = document.getElementById('dag');"
            " return b.scrollLeft !== x || b.scrollTop !== y; }",
            arg=opened["scrolled"],
        )
        moved = await page.evaluate(_FAILED_IN_BOX)
        await page.set_viewport_size({"width": width - 20, "height": 720})
        await page.wait_for_function(f"() => window.innerWidth === {width - 20}")
        await page.evaluate(_AFTER_RESIZE)
        resized = await page.evaluate(_FAILED_IN_BOX)
    assert not moved["seen"]
    assert moved["scrolled"] == resized["scrolled"]
    assert [] == errors
