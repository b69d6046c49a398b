"""The HTML report's charts (``reporting/_html.py``, ``reporting/_charts.py``): for pipelines of
many stages, and in headless chromium (Playwright) with a stage name holding markup."""

from __future__ import annotations

import html
import itertools
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from browser_support import browser_page, chromium_browser
from taskdaemon.pipeline.record_fields import replace as replace_record
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord
from taskdaemon.pipeline.reporting import render_report
from taskdaemon.pipeline.reporting._charts import _log_scale
from taskdaemon.pipeline.reporting._model import PipelineReport, Report, StageReport

DAY = 86400.0


#: A stage name a browser would parse as markup, and quotes that would end an attribute.
HOSTILE = """<script>alert("x")</script> & 'q'"""


def _names(count: int) -> list[str]:
    return [f"s{i:02d}" for i in range(count)]


def _report(names: list[str]) -> Report:
    """A pipeline of these stages, the first the fastest (p90 1 s) and each next one a second
    slower, with every chart's data for each stage."""
    count = len(names)
    rows = tuple(
        StageReport(name, 1, 0.0, 0, i + 1.0, i + 1.0, i + 1.0, None, None, None, None, 0.0)
        for i, name in enumerate(names)
    )
    attempts = [
        AttemptRecord(f"{name}.0.1", 0, 1, "success", i, i + 1.0) for i, name in enumerate(names)
    ]
    run = RunRecord(
        "a" * 32,
        "wide",
        "success",
        0.0,
        float(count),
        tuple(
            StageRecord(name, "sh", "success", (attempt,))
            for name, attempt in zip(names, attempts, strict=True)
        ),
        (),
    )
    pipeline = PipelineReport(
        "wide",
        1,
        1.0,
        0.0,
        1.0,
        1.0,
        1.0,
        rows,
        None,
        None,
        (),
        distributions={
            name: (i, i, i + 0.5, i + 1, i + 1, i + 1, i + 1.0) for i, name in enumerate(names)
        },
        daily_p90={name: ((0.0, i + 1.0), (DAY, i + 1.0)) for i, name in enumerate(names)},
        median_run=run,
    )
    return Report(0.0, 2 * DAY, "sqlite:///x", (pipeline,))


def _charts(page: str) -> list[tuple[str, list[str]]]:
    """Each figure's caption and the stage names its drawing writes."""
    figures = re.findall(r"<figcaption[^>]*>(.*?)</figcaption>(.*?)</figure>", page, re.S)
    return [(caption, sorted(set(re.findall(r">(s\d\d)</text>", svg)))) for caption, svg in figures]


def test_the_charts_of_a_pipeline_of_many_stages_draw_its_20_slowest() -> None:
    """A pipeline of 25 stages gets charts of its 20 slowest stages by p90, each caption
    saying so; its table still lists all 25. A 300-stage pipeline's report drew a box plot
    and a timeline 135 inches tall and a p90 chart with a legend of 300 lines."""
    page = render_report(_report(_names(25)), "html")
    slowest = [f"s{i:02d}" for i in range(5, 25)]
    which = "the 20 slowest stages by p90 (of 25 in the table)"
    assert [
        (f"Duration distribution of {which}", slowest),
        (f"Timeline of the median run {'a' * 32} (25.0s): {which}", slowest),
        (f"p90 duration per UTC day, by run start: {which}", slowest),
    ] == _charts(page)
    assert 25 == len(re.findall(r"<tr><td>s\d\d</td>", page))


def test_the_charts_of_a_pipeline_of_20_stages_draw_every_stage() -> None:
    """Up to 20 stages, every chart draws every stage, under its plain caption."""
    every = [f"s{i:02d}" for i in range(20)]
    assert [
        ("Duration distribution per stage", every),
        (f"Timeline of the median run {'a' * 32} (20.0s)", every),
        ("p90 duration per UTC day, by run start", every),
    ] == _charts(render_report(_report(_names(20)), "html"))


def test_a_name_of_control_and_bidi_characters_shows_their_escapes() -> None:
    """A pipeline and a stage named with a terminal's escape, a line break and a right-to-left
    override (a span source's names, as sent) were written raw into the page: XML allows no
    control character, so no chart parsed as SVG, and the override reversed what followed it.
    Each is now its escape, as the table and Markdown show it."""
    name = "s\x1b[2J\r\n\u202eevil"
    report = _report(["s00", name])
    page = render_report(
        replace(report, pipelines=(replace(report.pipelines[0], pipeline=name),)), "html"
    )
    charts = re.findall(r"<svg .*?</svg>", page, re.S)
    drawn = [
        sorted({t.text or "" for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")})
        for svg in charts
    ]
    shown = "s\\x1b[2J\\x0d\\x0a\\u202eevil"
    assert (3, True, f"<h2>{shown}</h2>") == (
        len(charts),
        page.replace("\n", "").isprintable(),
        re.search(r"<h2>.*?</h2>", page)[0],
    )
    assert [True] * 3 == [shown in texts for texts in drawn], drawn


def test_a_negative_duration_is_drawn_inside_its_chart() -> None:
    """An attempt that ended before it started (a source's odd times) lasts a negative time:
    its box plot whisker and its p90 dot were drawn outside the frame, over the labels and the
    dates, the axes starting at zero. They now start below the lowest value."""
    report = _report(["s00"])
    negative = replace(
        report.pipelines[0],
        distributions={"s00": (-5.0, -1.0, 0.5, 1.0, 1.0, 1.0, 1.0)},
        daily_p90={"s00": ((0.0, -3.0), (DAY, 1.0))},
    )
    page = render_report(replace(report, pipelines=(negative,)), "html")
    box, _, daily = (ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, re.S))
    svg = "{http://www.w3.org/2000/svg}"
    frame = box.find(f"{svg}rect")
    assert frame is not None
    left = float(frame.get("x", ""))
    whisker = box.find(f"{svg}g/{svg}path")
    assert whisker is not None
    starts = [float(x) for x in re.findall(r"M([-\d.]+)", whisker.get("d", ""))]
    frame = daily.find(f"{svg}rect")
    assert frame is not None
    bottom = float(frame.get("y", "")) + float(frame.get("height", ""))
    dots = [
        float(c.get("cy", ""))
        for c in daily.iter(f"{svg}circle")
        if c.find(f"{svg}title") is not None
    ]
    assert (True, True) == (
        all(x > left for x in starts),
        all(y <= bottom for y in dots),
    ), (left, starts, bottom, dots)


@pytest.mark.slow
async def test_chromium_draws_each_chart_with_a_name_of_markup_as_text(tmp_path: Path) -> None:
    """In headless chromium each chart is drawn (a box of its own size) and shows every stage
    name as text, one of them markup with quotes and an ampersand: the page holds no script,
    and logged no error. The file was written without a script to run."""
    page_path = tmp_path / "report.html"
    written = render_report(_report(["s00", HOSTILE]), "html")
    page_path.write_text(written)
    async with browser_page() as (page, errors):
        await page.goto(page_path.as_uri())
        scripts = await page.locator("script").count()
        charts = await page.eval_on_selector_all(
            "figure svg",
            """svgs => svgs.map(svg => {
                const box = svg.getBoundingClientRect();
                const texts = Array.from(svg.querySelectorAll('text'), t => t.textContent);
                return [box.width > 100 && box.height > 100, texts];
            })""",
        )
    assert "<script" not in written
    assert html.escape(HOSTILE) in written
    assert 0 == scripts
    names = [(drawn, sorted(t for t in texts if t in ("s00", HOSTILE))) for drawn, texts in charts]
    assert [(True, sorted(["s00", HOSTILE]))] * 3 == names
    assert [] == errors


#: Whether the page needs no sideways scroll, and for each table and chart whether its box
#: ends inside the window (a wider one scrolls in it).
PHONE_LAYOUT = """() => [document.documentElement.scrollWidth <= window.innerWidth,
  Array.from(document.querySelectorAll("table, figure"),
             (box) => box.getBoundingClientRect().right <= window.innerWidth)]"""


@pytest.mark.slow
async def test_a_phone_reads_the_report_without_a_sideways_scroll(tmp_path: Path) -> None:
    """At 375 pixels the report of a pipeline named with 70 letters and no space, its stage
    table of 12 columns and its 760-pixel charts, needs no sideways scroll of the page: the
    name breaks, and each table and chart scrolls in its own box. The page was 1,134 pixels
    wide, and had no viewport ``<meta>``, so a phone drew it shrunk to a third."""
    report = _report(["s00", "s01"])
    long = replace(report, pipelines=(replace(report.pipelines[0], pipeline="a" * 70),))
    written = render_report(long, "html")
    (tmp_path / "report.html").write_text(written)
    async with browser_page(width=375) as (page, errors):
        await page.goto((tmp_path / "report.html").as_uri())
        fits, boxes = await page.evaluate(PHONE_LAYOUT)
    assert (True, [True] * 4) == (fits, boxes)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in written
    assert [] == errors


def test_durations_within_two_orders_of_magnitude_keep_linear_axes() -> None:
    """Stages of medians 0.5 s to 3.5 s, the fastest one's shortest attempt of no time, keep
    linear axes in seconds: a log axis is drawn only when a linear one would hide a stage."""
    page = render_report(_report(_names(4)), "html")
    linear = (">duration (s)</text>", ">p90 duration (s)</text>", ", log (")
    assert (1, 1, 0) == tuple(page.count(text) for text in linear)


#: Four stages' durations, three fast beside one of three minutes.
FAST_AND_SLOW = {"s00": 0.005, "s01": 0.010, "s02": 0.040, "s03": 180.0}

#: Per chart drawn, each mark's position in its chart (left to right for the box plot's
#: medians, bottom to top for the p90 chart's dots; a dot's stage read from its tooltip) and
#: the texts that read as durations, in order.
MARKS = """() => Array.from(document.querySelectorAll("figure svg"), (svg) => {
  const origin = svg.getBoundingClientRect();
  const medians = Array.from(svg.querySelectorAll('path[stroke-width="2"]'),
    (p) => Math.round(p.getBoundingClientRect().x - origin.x));
  const dots = Array.from(svg.querySelectorAll("circle > title"))
    .filter((title) => title.textContent.includes(" on 1970-01-01"))
    .map((title) => Math.round(origin.bottom - title.parentNode.getBoundingClientRect().bottom));
  const ticks = Array.from(svg.querySelectorAll("text"), (t) => t.textContent)
    .filter((t) => /^\\d[\\d,]*(ms|s|m|h|d)$/.test(t));
  return [medians.concat(dots), ticks];
})"""


def _fast_and_slow() -> Report:
    """A report of ``FAST_AND_SLOW``, the fastest stage's shortest attempt lasting no time."""
    report = _report(list(FAST_AND_SLOW))
    pipeline = replace(
        report.pipelines[0],
        distributions={
            name: (
                0.0 if name == "s00" else v * 0.8,
                v * 0.9,
                v,
                v * 1.1,
                v * 1.2,
                v * 1.3,
                v * 1.5,
            )
            for name, v in FAST_AND_SLOW.items()
        },
        daily_p90={name: ((0.0, v), (DAY, v)) for name, v in FAST_AND_SLOW.items()},
    )
    return replace(report, pipelines=(pipeline,))


async def _drawn_at_two_widths(tmp_path: Path, written: str, script: str) -> list[Any]:
    """What ``script`` reads from the page ``written`` in chromium at 1,280 and 400 pixels;
    neither logged an error."""
    page_path = tmp_path / "report.html"
    page_path.write_text(written)
    drawn = []
    async with chromium_browser() as browser:
        for width in (1280, 400):
            async with browser_page(browser, width=width) as (page, errors):
                await page.goto(page_path.as_uri())
                drawn.append(await page.evaluate(script))
                assert [] == errors
    return drawn


@pytest.mark.slow
async def test_stages_of_milliseconds_beside_one_of_minutes_are_each_drawn_apart(
    tmp_path: Path,
) -> None:
    """Stages of 5 ms, 10 ms, 40 ms and 3 min: each stage's median in the box plot and its
    p90 dot are drawn in chromium at least 10 pixels from the next stage's, in order, on a log
    axis whose ticks read as durations, the same at 1,280 and 400 pixels. On the linear axis the
    three fast stages were drawn on the zero line, one over the other."""
    written = render_report(_fast_and_slow(), "html")
    drawn = await _drawn_at_two_widths(tmp_path, written, MARKS)
    (box, ticks), _timeline, (dots, p90_ticks) = drawn[0]
    gaps = [
        later - earlier
        for positions in (box, dots)
        for earlier, later in itertools.pairwise(positions)
    ]
    durations = ["1ms", "10ms", "100ms", "1s", "10s", "1m", "10m"]
    assert (4, 4, True) == (len(box), len(dots), all(gap >= 10 for gap in gaps)), (box, dots)
    assert (durations, durations) == (ticks, p90_ticks)
    assert drawn[0] == drawn[1]
    assert "duration, log (under 1ms at 1ms)" in written


#: Per duration chart (the box plot, then the p90 chart), along its duration axis in pixels
#: from the chart's corner: each grid line, each tick label's centre and text, each mark (the
#: medians, then the p90 dots), and whether every label lies whole in the chart, apart from
#: the next and, on the p90 chart, right of the turned axis label.
AXES = """() => {
  const centre = (box, origin, across) => across
    ? Math.round(box.y + box.height / 2 - origin.y)
    : Math.round(box.x + box.width / 2 - origin.x);
  const svgs = Array.from(document.querySelectorAll("figure svg"));
  return [[svgs[0], "line", 'path[stroke-width="2"]', false],
          [svgs[2], 'path[stroke="#dddddd"]', "circle:has(title)", true]]
    .map(([svg, grid, marks, across]) => {
      const origin = svg.getBoundingClientRect();
      const at = (e) => centre(e.getBoundingClientRect(), origin, across);
      const ticks = Array.from(svg.querySelectorAll("text"))
        .filter((t) => /^\\d/.test(t.textContent) && !t.textContent.includes("-"));
      const boxes = ticks.map((t) => t.getBoundingClientRect());
      const turned = Array.from(svg.querySelectorAll("text[transform]"))
        .filter((t) => t.textContent.includes("duration"))
        .map((t) => t.getBoundingClientRect().right);
      const apart = boxes.slice(1).every((box, i) => across
        ? box.bottom <= boxes[i].top : box.left >= boxes[i].right)
        && boxes.every((box) => turned.every((right) => box.left >= right));
      const inside = boxes.every((box) => box.left >= origin.left && box.right <= origin.right
        && box.top >= origin.top && box.bottom <= origin.bottom);
      return [Array.from(svg.querySelectorAll(grid), at),
              ticks.map((t) => [at(t), t.textContent]),
              Array.from(svg.querySelectorAll(marks), at),
              apart && inside];
    });
}"""

#: Three stages: of 2 ms, of an hour (a tick), and of 20 days.
UNITS = {"s00": 0.002, "s01": 3600.0, "s02": 20 * DAY}
#: A log axis's ticks from 1 ms to 100 days, in seconds, and their labels.
UNIT_TICKS = {
    "1ms": 0.001,
    "10ms": 0.01,
    "100ms": 0.1,
    "1s": 1.0,
    "10s": 10.0,
    "1m": 60.0,
    "10m": 600.0,
    "1h": 3600.0,
    "1d": DAY,
    "10d": 10 * DAY,
    "100d": 100 * DAY,
}


@pytest.mark.slow
async def test_a_log_axis_has_a_labelled_grid_line_at_each_unit_past_ten_days(
    tmp_path: Path,
) -> None:
    """Stages of 2 ms, 1 h and 20 days: in chromium, both duration axes have a grid line at
    1ms, 10ms, 100ms, 1s, 10s, 1m, 10m, 1h, 1d, 10d and 100d, each where its logarithm puts
    it and labelled at its line, whole and apart from the next; the stage of an hour lies on
    its line and the one of 20 days where its logarithm puts it, the same at 1,280 and 400
    pixels. The ticks stopped at 10 days."""
    pipeline = replace(
        _report(list(UNITS)).pipelines[0],
        distributions={name: (v,) * 7 for name, v in UNITS.items()},
        daily_p90={name: ((0.0, v),) for name, v in UNITS.items()},
    )
    report = replace(_report(list(UNITS)), pipelines=(pipeline,))
    drawn = await _drawn_at_two_widths(tmp_path, render_report(report, "html"), AXES)
    decades = math.log10(100 * DAY / 0.001)
    for grid, ticks, marks, fits in drawn[0]:
        step = (grid[-1] - grid[0]) / decades
        at = [grid[0] + math.log10(value / 0.001) * step for value in UNIT_TICKS.values()]
        logs = [grid[0] + math.log10(value / 0.001) * step for value in UNITS.values()]
        assert (list(UNIT_TICKS), grid, True) == (
            [t for _, t in ticks],
            [x for x, _ in ticks],
            fits,
        )
        assert at == pytest.approx(grid, abs=1)
        assert (grid[7], logs) == (marks[1], pytest.approx(marks, abs=1))
    assert drawn[0] == drawn[1]


def test_a_log_axis_too_narrow_for_every_label_labels_every_other_tick() -> None:
    """Eleven ticks from 1 ms to 100 days along 200 pixels are too close for their labels:
    every other one is labelled, counted from 1 s, and every tick keeps its grid line (the
    labels were written over one another). Along 600 pixels each is labelled; across an axis
    of 80 pixels (``room``: the p90 chart's lines of text, 16 pixels each) every third is."""
    narrow = _log_scale(0.002, 20 * DAY, 0, 200, None)
    wide = _log_scale(0.002, 20 * DAY, 0, 600, None)
    across = _log_scale(0.002, 20 * DAY, 80, 0, 16)
    assert (list(UNIT_TICKS.values()), ["10ms", "1s", "1m", "1h", "10d"]) == (
        list(narrow.ticks),
        [label for label in narrow.labels if label],
    )
    assert list(UNIT_TICKS) == list(wide.labels)
    assert ["1ms", "1s", "10m", "10d"] == [label for label in across.labels if label]


def test_a_log_axis_past_its_last_tick_ends_at_the_longest_value() -> None:
    """Durations past the last tick (a clock gone wrong by millennia) keep the last two ticks
    and an axis reaching the longest value: an index past the ticks' end raised."""
    axis = _log_scale(1e11, 2e11, 0, 600, None)
    assert ((100_000 * DAY, 1_000_000 * DAY), ("100,000d", "1,000,000d"), 2e11) == (
        axis.ticks,
        axis.labels,
        axis.hi,
    )


def _svgs(report: Report, **changes: Any) -> list[ET.Element]:
    """The charts of ``report``'s pipeline with ``changes``, parsed."""
    pipeline = replace(report.pipelines[0], **changes)
    page = render_report(replace(report, pipelines=(pipeline,)), "html")
    return [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, re.S)]


def test_p90_dots_at_zero_and_at_the_top_tick_lie_inside_the_frame() -> None:
    """A stage whose every attempt took no time, beside one of 50 ms: its p90 dot was drawn on
    the frame's bottom line and the other's on its top line, each half hidden (two stages of
    no time, one dot over the other, showed one). Every dot now lies inside the frame."""
    svg = "{http://www.w3.org/2000/svg}"
    *_, daily = _svgs(
        _report(["s00", "s01"]), daily_p90={"s00": ((0.0, 0.0),), "s01": ((0.0, 0.05),)}
    )
    frame = daily.find(f"{svg}rect")
    assert frame is not None
    top = float(frame.get("y", ""))
    bottom = top + float(frame.get("height", ""))
    dots = [
        (float(c.get("cy", "")), float(c.get("r", "")))
        for c in daily.iter(f"{svg}circle")
        if c.find(f"{svg}title") is not None
    ]
    assert [True, True] == [top < y - r and y + r < bottom for y, r in dots], (top, bottom, dots)


def test_an_axis_of_seconds_of_weeks_writes_no_exponent() -> None:
    """A run of 20 days: its timeline's linear axis, in seconds, read ``1e+06`` and ``2e+06``;
    each tick is now written whole, with thousands separated."""
    report = _report(["s00"])
    run = report.pipelines[0].median_run
    assert run is not None
    attempt = replace_record(run.stages[0].attempts[0], start=0.0, end=20 * DAY)
    stage = replace_record(run.stages[0], attempts=(attempt,))
    long = replace_record(run, end=20 * DAY, stages=(stage,))
    _box, timeline, _daily = _svgs(report, median_run=long)
    texts = [t.text for t in timeline.iter("{http://www.w3.org/2000/svg}text")]
    assert ["0", "500,000", "1,000,000", "1,500,000", "2,000,000"] == texts[:5]


#: The tooltips of the p90 marks under the first p90 dot's centre and 1.5 pixels inside its
#: edge, as chromium finds them with the dot scrolled into view.
UNDER_THE_DOT = """() => {
  const svg = document.querySelectorAll("figure svg")[2];
  const circle = svg.querySelector("circle:has(title)");
  circle.scrollIntoView({block: "center", inline: "center"});
  const dot = circle.getBoundingClientRect();
  const x = dot.x + dot.width / 2, y = dot.y + dot.height / 2;
  return [[x, y], [x + dot.width / 2 - 1.5, y]].map(([px, py]) =>
    document.elementFromPoint(px, py).querySelector("title").textContent);
}"""


@pytest.mark.slow
async def test_stages_of_equal_p90_on_a_day_each_show_their_dot(tmp_path: Path) -> None:
    """Two stages of one p90 on one day: chromium shows the second's dot in the middle and the
    first's as a ring around it, each with its tooltip, at both widths. The second was drawn
    over the first, which no one could see or point at: a legend of two stages, one dot."""
    equal = dict.fromkeys(("s00", "s01"), ((0.0, 0.1),))
    pipeline = replace(_report(["s00", "s01"]).pipelines[0], daily_p90=equal)
    written = render_report(replace(_report(["s00", "s01"]), pipelines=(pipeline,)), "html")
    drawn = await _drawn_at_two_widths(tmp_path, written, UNDER_THE_DOT)
    shown = ["s01 on 1970-01-01: p90 100ms", "s00 on 1970-01-01: p90 100ms"]
    assert [shown, shown] == drawn
