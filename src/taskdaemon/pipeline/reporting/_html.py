"""The HTML report: one self-contained file (no script, no external link) with inline SVG charts.

Charts are drawn by matplotlib (the ``[report]`` extra) into SVG text embedded in the page, so
the file opens offline in any browser and weighs tens of kilobytes, where a JavaScript plotting
library would inline megabytes per file. Per pipeline: a box plot of each stage's durations
(box p25-p75, line at the median, whiskers min and p99, a dot at the maximum), the median run's
timeline (one bar per attempt, its queue wait drawn lighter before it), and each stage's p90 per
day of the window. Every text a run contributes (names, errors) is HTML-escaped.

A chart draws at most ``CHART_STAGES`` stages, the slowest by p90, and its caption says so: a
pipeline of 300 stages drew a 135-inch box plot and timeline and a p90 chart whose legend held
300 lines, none of which could be read, and matplotlib took seconds a chart to draw them. The
table above the charts still lists every stage.
"""

from __future__ import annotations

import html
import io
from typing import Any, cast

from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.reporting._markdown import render_markdown
from taskdaemon.pipeline.reporting._model import PipelineReport, Report
from taskdaemon.pipeline.reporting._text import empty_sentence, format_seconds, slowest
from taskdaemon.pipeline.run_state import is_failed

__all__ = ["MISSING_EXTRA", "render_html"]

# The checkout's extra, as the README installs it: ``taskdaemon`` on PyPI is another project,
# and ``pip install 'taskdaemon[report]'`` where this one was not installed would fetch it.
MISSING_EXTRA = (
    "the HTML report needs matplotlib: pip install -e '.[report]' in the taskdaemon checkout, "
    "or pip install 'matplotlib>=3.8' (or use --format table, markdown or json)"
)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
figure { margin: 1em 0; } figcaption { font-weight: 600; margin-bottom: 0.3em; }
.note { background: #fff8dc; padding: 0.5em; border-left: 4px solid #e0c000; }
"""


#: The most stages a chart draws: the slowest by p90 when a pipeline has more.
CHART_STAGES = 20


def _charted(p: PipelineReport) -> tuple[frozenset[str] | None, str]:
    """The stages the charts draw (None: every stage) and what their captions add."""
    if len(p.stages) <= CHART_STAGES:
        return None, ""
    chosen = frozenset(stage.stage for stage in slowest(p)[:CHART_STAGES])
    return chosen, f"the {len(chosen)} slowest stages by p90 (of {len(p.stages)} in the table)"


def _figure_svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: inline SVG


def _distribution_svg(p: PipelineReport, chosen: frozenset[str] | None) -> str | None:
    from matplotlib.figure import Figure  # noqa: PLC0415

    names = [
        name
        for name, q in p.distributions.items()
        if len(q) == 7 and (chosen is None or name in chosen)
    ]
    if not names:
        return None
    stats = []
    for name in names:
        q0, q25, q50, q75, _q90, q99, q100 = p.distributions[name]
        stats.append(
            {
                "label": name,
                "whislo": q0,
                "q1": q25,
                "med": q50,
                "q3": q75,
                "whishi": q99,
                "fliers": [q100] if q100 > q99 else [],
            }
        )
    figure = Figure(figsize=(8, 0.45 * len(names) + 1.2))
    axes = figure.add_subplot()
    axes.bxp(stats, orientation="horizontal", showfliers=True)
    axes.set_xlabel("duration (s)")
    axes.grid(axis="x", alpha=0.3)
    return _figure_svg(figure)


def _timeline_svg(run: RunRecord, chosen: frozenset[str] | None) -> str | None:
    from matplotlib.figure import Figure  # noqa: PLC0415

    stages = [s for s in run.stages if s.attempts and (chosen is None or s.name in chosen)]
    if not stages:
        return None
    figure = Figure(figsize=(8, 0.45 * len(stages) + 1.2))
    axes = figure.add_subplot()
    for row, stage in enumerate(stages):
        for attempt in stage.attempts:
            start = attempt.start - run.start
            end = (attempt.end if attempt.end is not None else run.end or attempt.start) - run.start
            if attempt.queue_time:
                axes.broken_barh(
                    [(start - attempt.queue_time, attempt.queue_time)],
                    (row - 0.3, 0.6),
                    color="#cfe2f3",
                )
            color = "#d9534f" if is_failed(attempt.status) else "#5b9bd5"
            axes.broken_barh([(start, max(end - start, 1e-6))], (row - 0.3, 0.6), color=color)
    axes.set_yticks(range(len(stages)), [stage.name for stage in stages])
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the run started (light: queue wait; red: failed)")
    axes.grid(axis="x", alpha=0.3)
    return _figure_svg(figure)


def _daily_svg(p: PipelineReport, chosen: frozenset[str] | None) -> str | None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from matplotlib.figure import Figure  # noqa: PLC0415

    if not p.daily_p90:
        return None
    figure = Figure(figsize=(8, 3.5))
    axes = figure.add_subplot()
    for name, points in sorted(p.daily_p90.items()):
        if chosen is not None and name not in chosen:
            continue
        days = [datetime.fromtimestamp(day, UTC) for day, _ in points]
        axes.plot(cast(Any, days), [value for _, value in points], marker="o", label=name)
    axes.set_ylabel("p90 duration (s)")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _figure_svg(figure)


def _section(title: str, svg: str | None) -> str:
    if svg is None:
        return ""
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{svg}</figure>\n"


def _markdown_tables_as_html(report: Report) -> dict[str, str]:
    """Each pipeline's tables, as HTML, built from the Markdown rendering's rows."""
    out: dict[str, str] = {}
    current: str | None = None
    parts: list[str] = []
    in_table = False
    for line in render_markdown(report).splitlines():
        if line.startswith("## "):
            if current is not None:
                out[current] = "".join(parts)
            current, parts, in_table = line[3:].replace("\\|", "|"), [], False
            continue
        if current is None:
            continue
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]
            if set(line) <= {"|", "-"}:
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                parts.append("<table>")
                in_table = True
            parts.append(
                "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"
            )
            continue
        if in_table:
            parts.append("</table>")
            in_table = False
        if line.startswith("### "):
            parts.append(f"<h3>{html.escape(line[4:].replace('`', ''))}</h3>")
        elif line.strip():
            parts.append(f"<p>{html.escape(line)}</p>")
    if current is not None:
        if in_table:
            parts.append("</table>")
        out[current] = "".join(parts)
    return out


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page; ImportError naming the extra when
    matplotlib is missing."""
    try:
        import matplotlib  # noqa: PLC0415, F401
    except ImportError:
        raise ImportError(MISSING_EXTRA) from None
    from matplotlib import rc_context  # noqa: PLC0415

    tables = _markdown_tables_as_html(report)
    title = "Pipeline report"
    body = [f"<h1>{title}</h1>"]
    body.append(
        f"<p>Runs started from {html.escape(_when(report.since))} to "
        f"{html.escape(_when(report.until))}"
        + (f", read from {html.escape(report.source)}" if report.source else "")
        + ".</p>"
    )
    body += [f'<p class="note">{html.escape(note)}</p>' for note in report.notes]
    if not report.pipelines:
        body.append(f"<p>{html.escape(empty_sentence(report))}</p>")
    # Deterministic SVG ids and text kept as text (smaller, searchable, selectable).
    with rc_context({"svg.hashsalt": "taskdaemon", "svg.fonttype": "none"}):
        for p in report.pipelines:
            body.append(f"<h2>{html.escape(p.pipeline)}</h2>")
            body.append(tables.get(p.pipeline, ""))
            chosen, which = _charted(p)
            body.append(
                _section(
                    "Duration distribution " + (f"of {which}" if which else "per stage"),
                    _distribution_svg(p, chosen),
                )
            )
            if p.median_run is not None:
                caption = (
                    f"Timeline of the median run {p.median_run.run_id} "
                    f"({format_seconds(p.median_run.duration)})" + (f": {which}" if which else "")
                )
                body.append(_section(caption, _timeline_svg(p.median_run, chosen)))
            daily = "p90 duration per day" + (f": {which}" if which else "")
            body.append(_section(daily, _daily_svg(p, chosen)))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body></html>\n"
    )


def _when(epoch: float) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
