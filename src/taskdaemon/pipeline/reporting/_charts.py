"""The HTML report's three charts, written as SVG text: no plotting library, no script.

They are simple (rows of bars and boxes on one axis, and a few lines over days), and
drawing them with matplotlib cost the report its import and two layouts a figure, seconds
for a page of three charts. Every text a run contributes (stage names) is escaped, attribute
and text alike (``html_text``), so a name holding markup, quotes or control characters is
shown, never parsed. Each mark has a
``<title>`` with its figures: a browser shows it on hover and a screen reader reads it.

The two duration axes (the box plot's and the p90 chart's) turn logarithmic when their values
span more than two orders of magnitude (``_duration_scale``): on a linear axis a stage of
minutes squeezed stages of milliseconds onto its zero line, one over the other, so a legend of
four stages showed two lines. Below that spread a linear axis reads more easily, and is kept.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import NamedTuple

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.reporting._text import format_seconds, html_text
from taskdaemon.pipeline.status_rules import is_failed
from taskdaemon.pipeline.terminal_text import CONTROL_ESCAPES

__all__ = ["Chart", "daily_svg", "distribution_svg", "timeline_svg"]

WIDTH = 760
ROW = 34  # pixels a stage's row takes in the box plot and the timeline
LABEL = 40  # characters of a stage name a label shows: the table above has it whole
CHAR = 7  # the average width of a 12px system-ui character, to size the label margin
#: The width of a tick label's character: its digits, and the ``m`` of ``10m``, are wider
#: than a name's average letter, and a label sized by ``CHAR`` ran off the chart's edge.
DIGIT = 8
GAP = 6  # the fewest pixels between two tick labels written along an axis
TOP, BOTTOM, RIGHT = 10, 44, 20  # margins around the plot: the x axis's ticks and label below
PAD = 8  # pixels between the frame and the nearest tick, so no mark lies on the frame
DOT, RING = 3.5, 2.0  # a p90 dot's radius, and the width of each ring around one over it
#: The charts' colours on a light page. Marks drawn in the page's own colours carry a class
#: (``grid``, ``frame``, the box plot's ``whisker``, ``box`` and ``outlier``), and the HTML
#: report's dark scheme redraws them (``reporting._html``); the others read on either.
GRID = "#dddddd"
BOX, MEDIAN = "#1f4e79", "#ff7f0e"
RAN, FAILED, QUEUED = "#5b9bd5", "#d9534f", "#cfe2f3"
_QUANTILES = ("min", "p25", "median", "p75", "p90", "p99", "max")
# matplotlib's "tab10", the p90 chart's colours as they were: one per stage, then again.
LINES = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


#: A log axis's floor: a shorter duration (zero, or under the clock's resolution) is drawn at
#: it, as its axis label says, since a logarithm has no place for zero. A millisecond, as the
#: views write no finer unit: a finer floor would spend decades of the axis on nothing shown.
FLOOR = 0.001
#: The most a duration axis's values may span (highest over lowest, the lowest no less than
#: ``FLOOR``) and stay linear: a mark a hundredth of the axis's length is a few pixels wide.
SPREAD = 100.0
#: The pixels a tick's label takes across a vertical axis: its line of 12px text and a gap.
LINE = 16


#: A log axis's ticks, in seconds, with their labels: the units a reader counts durations in,
#: as the report writes them (``1m``, ``1h``, the ``m`` and ``h`` of ``format_seconds``'s
#: ``2h46m``). Each tick stands where its logarithm puts it, so the steps of six (10s to 1m,
#: 10m to 1h) are a little shorter than the tens and the step from 1h to 1d longer: the axis
#: stays true while its labels stay words a reader knows. Powers of ten of seconds past a
#: minute (``16m40s``, ``2h46m``, ``27h46m``) were tried and read as nobody's units.
LOG_TICKS = (
    (0.001, "1ms"),
    (0.01, "10ms"),
    (0.1, "100ms"),
    (1.0, "1s"),
    (10.0, "10s"),
    (60.0, "1m"),
    (600.0, "10m"),
    (3600.0, "1h"),
    *((86400.0 * 10**power, f"{10**power:,}d") for power in range(7)),
)
#: The index of ``1s`` in ``LOG_TICKS``: when not every tick can be labelled, the labelled
#: ones are counted from it, so ``1s`` is always among them.
_SECOND = 3


class _Scale(NamedTuple):
    """A map of data [lo, hi] onto pixels [start, end], linear or (``log``) logarithmic with
    values under ``FLOOR`` drawn at it, and the ticks along it."""

    lo: float
    hi: float
    start: float
    end: float
    ticks: tuple[float, ...]
    log: bool = False
    labels: tuple[str, ...] = ()  # on a log axis, each tick's label ("" for none)
    digits: int = 0  # on a linear axis, the decimals its ticks are written with

    def at(self, value: float) -> float:
        if self.log:
            lo, hi, value = (math.log10(max(v, FLOOR)) for v in (self.lo, self.hi, value))
        else:
            lo, hi = self.lo, self.hi
        return self.start + (value - lo) / (hi - lo) * (self.end - self.start)

    def label(self, tick: float) -> str:
        """A tick's text: a duration on a log axis (none between labelled ticks), a number of
        the axis's unit otherwise."""
        if not self.log:  # never with an exponent: a run of weeks read 1e+06, 2e+06
            text = f"{tick:,.{self.digits}f}"
            return text.rstrip("0").rstrip(".") if "." in text else text
        return self.labels[self.ticks.index(tick)]


def _scale(lo: float, hi: float, start: float, end: float) -> _Scale:
    """[lo, hi] widened to round ticks, 1, 2 or 5 times a power of ten apart, at most 8."""
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / 6
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(lo / step), math.ceil(hi / step)
    digits = max(0, -math.floor(math.log10(step)))
    ticks = tuple(round(i * step, digits) for i in range(first, last + 1))
    return _Scale(ticks[0], ticks[-1], start, end, ticks, digits=digits)


def _log_scale(lo: float, hi: float, start: float, end: float, room: float | None) -> _Scale:
    """[lo, hi] (lo at least ``FLOOR``) widened to the ``LOG_TICKS`` on either side of it, a
    grid line at each. Two labels need ``room`` pixels between their ticks (None: half of
    each one's width and ``GAP``, for labels written along the axis); when ticks are closer
    than that, only every second (third...) one is labelled, counted from 1 s, and the others
    keep their grid line: labels written over one another read as none."""
    seconds = [tick for tick, _ in LOG_TICKS]
    # At most the last tick but one: the axis ends past the last tick for longer durations.
    first = min(
        max((i for i, tick in enumerate(seconds) if tick <= lo), default=0), len(seconds) - 2
    )
    last = min((i for i, tick in enumerate(seconds) if tick >= hi), default=len(seconds) - 1)
    last = max(last, first + 1)
    ticks = tuple(seconds[first : last + 1])
    plain = _Scale(ticks[0], max(ticks[-1], hi), start, end, ticks, log=True)
    for every in range(1, len(ticks) + 1):
        shown = [i for i in range(first, last + 1) if (i - _SECOND) % every == 0]
        apart = (
            abs(plain.at(seconds[b]) - plain.at(seconds[a]))
            - (
                (DIGIT * (len(LOG_TICKS[a][1]) + len(LOG_TICKS[b][1]))) / 2 + GAP
                if room is None
                else room
            )
            for a, b in itertools.pairwise(shown)
        )
        if all(left >= 0 for left in apart):
            break
    labels = tuple(LOG_TICKS[i][1] if i in shown else "" for i in range(first, last + 1))
    return plain._replace(labels=labels)


def _duration_scale(
    values: list[float],
    marks: list[float],
    start: float,
    end: float,
    what: str,
    *,
    room: float | None = None,
) -> tuple[_Scale, str]:
    """An axis of durations showing ``values`` and its label (``what`` they are): logarithmic
    when the highest value is more than ``SPREAD`` times the lowest of ``marks`` (counted as
    ``FLOOR`` when shorter), the figures each stage is read by (a median, a p90), so that the
    fastest stage can be read beside the slowest; linear from zero otherwise, or when a value
    is negative (a clock stepped back), which no logarithm can place. ``marks`` and not every
    value: a stage's one attempt of no time (a whisker at zero) would turn every axis log.
    ``room``: as ``_log_scale``'s."""
    lo, hi = min(values), max(values)
    if lo < 0 or hi <= SPREAD * max(min(marks), FLOOR):
        return _scale(min(0.0, lo), hi, start, end), f"{what} (s)"
    label = f"{what}, log (under {LOG_TICKS[0][1]} at {LOG_TICKS[0][1]})"
    return _log_scale(max(lo, FLOOR), hi, start, end, room), label


def _label(name: str) -> str:
    """A stage's name as its label shows it: escaped as ``html_text`` escapes it (the margin is
    sized to what is drawn), then cut."""
    return cut(name.translate(CONTROL_ESCAPES), LABEL)


def _text(x: float, y: float, text: str, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra} aria-hidden="true">{html_text(text)}</text>'


class Chart(NamedTuple):
    """A chart's SVG and its figures in words, one a mark, as the marks' tooltips say them:
    the chart's text alternative. To a screen reader the SVG is one image (``role="img"``),
    its name and description the page's to give; its labels and marks are hidden from it
    (``aria-hidden``: chromium read them out after the image, the marks by their tooltips)."""

    svg: str
    figures: tuple[str, ...]


def _svg(width: float, height: float, parts: Iterable[str], figures: Iterable[str]) -> Chart:
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="system-ui, sans-serif" '
        f'font-size="12" role="img">' + "".join(parts) + "</svg>"
    )
    return Chart(svg, tuple(figures))


def _vline(x: float, top: float, bottom: float) -> str:
    return (
        f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
        f'stroke="{GRID}" class="grid"/>'
    )


def _frame(left: float, top: float, right: float, bottom: float) -> str:
    return (
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
        f'height="{bottom - top:.1f}" fill="none" stroke="#333" class="frame"/>'
    )


def _rows(
    names: list[str], axis: Callable[[float, float], tuple[_Scale, str]]
) -> tuple[list[str], _Scale]:
    """A chart of one row per name, labelled at its left, with grid lines at the ticks of the
    scale and label ``axis`` gives for the pixels from and to, their values under the plot and
    the axis's label: its parts and x scale."""
    labels = [_label(name) for name in names]
    left = CHAR * max(len(text) for text in labels) + 16
    bottom = TOP + ROW * len(names)
    scale, label = axis(left + PAD, WIDTH - RIGHT - PAD)
    # The last tick's label, centred on it, must end inside the chart, with a few pixels to
    # spare as fonts differ: a long last label ("1,000,000d") was cut.
    overhang = (DIGIT * len(scale.label(scale.ticks[-1])) + PAD) / 2 - RIGHT - PAD
    if overhang > 0:
        scale, label = axis(left + PAD, WIDTH - RIGHT - PAD - overhang)
    parts = [_frame(left, TOP, WIDTH - RIGHT, bottom)]
    for tick in scale.ticks:
        parts.append(_vline(scale.at(tick), TOP, bottom))
        if text := scale.label(tick):
            parts.append(_text(scale.at(tick), bottom + 15, text, ' text-anchor="middle"'))
    parts.append(_text((left + WIDTH - RIGHT) / 2, bottom + 34, label, ' text-anchor="middle"'))
    for row, text in enumerate(labels):
        parts.append(_text(left - 6, TOP + ROW * row + ROW / 2 + 4, text, ' text-anchor="end"'))
    return parts, scale


def _bar(scale: _Scale, row: int, start: float, end: float, *, colour: str, title: str) -> str:
    x = scale.at(start)
    width = max(scale.at(end) - x, 1.0)  # an instant stays visible
    y = TOP + ROW * row + ROW * 0.2
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{ROW * 0.6:.1f}" '
        f'fill="{colour}" aria-hidden="true"><title>{html_text(title)}</title></rect>'
    )


def distribution_svg(
    distributions: dict[str, tuple[float, ...]], chosen: frozenset[str] | None
) -> Chart | None:
    """One row per stage (of ``chosen`` only, unless None): a box from p25 to p75 with a
    line at the median, whiskers from the minimum to p99, a dot at the maximum above p99."""
    rows = {
        name: q
        for name, q in distributions.items()
        if len(q) == 7 and (chosen is None or name in chosen)
    }
    if not rows:
        return None
    # From zero, or from below it: an attempt that ended before it started (a clock stepped
    # back, a source's odd times) lasted a negative time, drawn inside the frame too.
    values = [q[0] for q in rows.values()] + [q[6] for q in rows.values()]
    medians = [q[2] for q in rows.values()]
    parts, scale = _rows(
        list(rows), lambda start, end: _duration_scale(values, medians, start, end, "duration")
    )
    said = []
    for row, (name, quantiles) in enumerate(rows.items()):
        q0, q25, q50, q75, _q90, q99, q100 = (scale.at(v) for v in quantiles)
        y = TOP + ROW * row + ROW / 2
        low, high = y - ROW * 0.3, y + ROW * 0.3
        figures = ", ".join(
            f"{what} {format_seconds(value)}"
            for what, value in zip(_QUANTILES, quantiles, strict=True)
        )
        said.append(f"{name}: {figures}")
        parts.append(
            f'<g aria-hidden="true"><title>{html_text(said[-1])}</title>'
            f'<path d="M{q0:.1f} {y:.1f}H{q25:.1f}M{q75:.1f} {y:.1f}H{q99:.1f}'
            f"M{q0:.1f} {y - 5:.1f}V{y + 5:.1f}M{q99:.1f} {y - 5:.1f}V{y + 5:.1f}"
            f'" stroke="{BOX}" class="whisker"/>'
            f'<rect x="{q25:.1f}" y="{low:.1f}" width="{max(q75 - q25, 1.0):.1f}" '
            f'height="{high - low:.1f}" fill="#ffffff" stroke="{BOX}" class="box"/>'
            f'<path d="M{q50:.1f} {low:.1f}V{high:.1f}" stroke="{MEDIAN}" stroke-width="2"/>'
            + (
                f'<circle cx="{q100:.1f}" cy="{y:.1f}" r="3" fill="{BOX}" class="outlier"/>'
                if q100 > q99
                else ""
            )
            + "</g>"
        )
    return _svg(WIDTH, TOP + ROW * len(rows) + BOTTOM, parts, said)


def timeline_svg(run: RunRecord, chosen: frozenset[str] | None) -> Chart | None:
    """One row per stage of ``run`` (of ``chosen`` only, unless None), one bar per attempt
    from its start to its end, its queue wait drawn lighter before it, a failed one red."""
    stages = [s for s in run.stages if s.attempts and (chosen is None or s.name in chosen)]
    if not stages:
        return None
    # Per row, per attempt: queued from, started, ended (seconds since the run started), failed.
    rows = [
        [
            (
                a.start - (a.queue_time or 0.0) - run.start,
                a.start - run.start,
                (a.end if a.end is not None else run.end or a.start) - run.start,
                is_failed(a.status),
            )
            for a in stage.attempts
        ]
        for stage in stages
    ]
    bars = [bar for row in rows for bar in row]
    label = "seconds since the run started (light: queue wait; red: failed)"
    lo, hi = min(0.0, *(b[0] for b in bars)), max(b[2] for b in bars)
    parts, scale = _rows(
        [stage.name for stage in stages], lambda start, end: (_scale(lo, hi, start, end), label)
    )
    said = []
    for row, (stage, attempts) in enumerate(zip(stages, rows, strict=True)):
        for number, (queued, start, end, failed) in enumerate(attempts, 1):
            what = f"{stage.name} attempt {number}"
            if start > queued:
                title = f"{what}: queued {format_seconds(start - queued)}"
                parts.append(_bar(scale, row, queued, start, colour=QUEUED, title=title))
            title = f"{what}: {'failed' if failed else 'ran'} {format_seconds(end - start)}"
            colour = FAILED if failed else RAN
            parts.append(_bar(scale, row, start, end, colour=colour, title=title))
            waited = f", queued {format_seconds(start - queued)}" if start > queued else ""
            said.append(f"{title} from {format_seconds(start)}{waited}")
    return _svg(WIDTH, TOP + ROW * len(stages) + BOTTOM, parts, said)


def _place(xs: _Scale, ys: _Scale, point: tuple[float, float]) -> tuple[int, int]:
    """The pixel a p90 chart's point (day, value) is drawn at."""
    return round(xs.at(point[0])), round(ys.at(point[1]))


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def daily_svg(
    daily: dict[str, tuple[tuple[float, float], ...]], chosen: frozenset[str] | None
) -> Chart | None:
    """Each stage's p90 per day (of ``chosen`` only, unless None), a line of dots per stage
    under a date axis, and a legend naming the stages by colour."""
    names = sorted(name for name in daily if chosen is None or name in chosen)
    if not names:
        return None
    days = sorted({day for name in names for day, _ in daily[name]})
    bottom = 250
    values = [value for name in names for _, value in daily[name]]
    # ``PAD`` inside the frame, as the box plot's: a dot at zero or at the top tick was drawn
    # on the frame, half of it hidden beside a dot on the line below.
    ys, label = _duration_scale(values, values, bottom - PAD, TOP + PAD, "p90 duration", room=LINE)
    # The ticks' values stand right of the turned axis label: "100ms" is wider than "0.5".
    left = max(56, 32 + DIGIT * max(len(ys.label(tick)) for tick in ys.ticks))
    right = WIDTH - RIGHT - CHAR * max(len(_label(name)) for name in names) - 40
    pad = (days[-1] - days[0]) * 0.05 or 43200.0  # one day alone sits in the middle
    xs = _Scale(days[0] - pad, days[-1] + pad, left, right, ())
    parts = [_frame(left, TOP, right, bottom)]
    for tick in ys.ticks:
        y = ys.at(tick)
        parts.append(f'<path d="M{left} {y:.1f}H{right:.1f}" stroke="{GRID}" class="grid"/>')
        if text := ys.label(tick):
            parts.append(_text(left - 6, y + 4, text, ' text-anchor="end"'))
    middle = (TOP + bottom) / 2
    turn = f' text-anchor="middle" transform="rotate(-90 14 {middle:.1f})"'
    parts.append(_text(14, middle, label, turn))
    for day in days[:: math.ceil(len(days) / 10)]:  # at most 10 dates under the axis
        x = xs.at(day)
        parts.append(_vline(x, TOP, bottom))
        turn = f' text-anchor="end" transform="rotate(-30 {x:.1f} {bottom + 14})"'
        parts.append(_text(x, bottom + 14, _day(day), turn))
    # Stages of one p90 on one day share a place: each is drawn a ring wider than the one drawn
    # over it, so every colour shows; one dot over the other, stages of equal durations read
    # as a legend of two and one dot.
    places = Counter(_place(xs, ys, point) for name in names for point in daily[name])
    drawn: Counter[tuple[int, int]] = Counter()
    said = []
    for number, name in enumerate(names):
        colour = LINES[number % len(LINES)]
        points = [(xs.at(day), ys.at(value)) for day, value in daily[name]]
        path = "".join(f"{'L' if i else 'M'}{x:.1f} {y:.1f}" for i, (x, y) in enumerate(points))
        parts.append(f'<path d="{path}" stroke="{colour}" fill="none" stroke-width="1.5"/>')
        for (x, y), (day, value) in zip(points, daily[name], strict=True):
            place = _place(xs, ys, (day, value))
            drawn[place] += 1
            radius = DOT + RING * (places[place] - drawn[place])
            title = f"{name} on {_day(day)}: p90 {format_seconds(value)}"
            said.append(title)
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:g}" fill="{colour}" '
                f'aria-hidden="true"><title>{html_text(title)}</title></circle>'
            )
        key = TOP + 8 + 18 * number
        parts.append(
            f'<path d="M{right + 12:.1f} {key}h20" stroke="{colour}" stroke-width="1.5"/>'
            f'<circle cx="{right + 22:.1f}" cy="{key}" r="{DOT:g}" fill="{colour}"/>'
            + _text(right + 38, key + 4, _label(name))
        )
    return _svg(WIDTH, max(bottom + 80, TOP + 18 * len(names) + 8), parts, said)
