"""The HTML report: one self-contained file (no script, no external link) with inline SVG charts.

Charts are SVG text written by ``reporting._charts`` and embedded in the page, so the file
opens offline in any browser and weighs tens of kilobytes, where a JavaScript plotting library
would inline megabytes per file. Per pipeline: a box plot of each stage's durations (box
p25-p75, line at the median, whiskers min and p99, a dot at the maximum), the median run's
timeline (one bar per attempt, its queue wait drawn lighter before it), and each stage's p90 per
day of the window. Every text a run contributes (names, errors) is HTML-escaped, its control
characters written as escapes (``reporting._text.html_text``).

A chart draws at most ``CHART_STAGES`` stages, the slowest by p90, and its caption says so: a
pipeline of 300 stages drew a box plot and a timeline thousands of pixels tall and a p90 chart
whose legend held 300 lines, none of which could be read. The table above the charts still
lists every stage.

For a screen reader, each chart is one image named by its caption (``aria-labelledby``; it was
named by all its axis labels run together, "0 0.1 0.2 ... compile") and described by its
figures in words, one a mark as its tooltip says them (its ``<desc>``: chromium gives no
description from the list in a closed ``<details>``), listed under it in that ``<details>``
for the reader who cannot hover a mark. Each table has a ``<caption>``: the stages table's
names it (it has no heading), one under a heading repeats the heading for a screen reader's
list of tables only (``.for-screen-readers``, not drawn twice).
"""

from __future__ import annotations

from taskdaemon.pipeline.reporting._charts import (
    Chart,
    daily_svg,
    distribution_svg,
    timeline_svg,
)
from taskdaemon.pipeline.reporting._markdown import md_plain, render_markdown
from taskdaemon.pipeline.reporting._model import PipelineReport, Report
from taskdaemon.pipeline.reporting._text import (
    empty_sentence,
    format_seconds,
    html_text,
    slowest,
)

__all__ = ["render_html"]

#: The page follows the reader's colour scheme, as the web page does: dark on a dark desktop
#: (the web page's colours), the charts' marks drawn in the page's colours too (the box plot's
#: dark blue read 2:1 on the dark background). Only on a screen: printed, it stays dark on
#: white, whatever the desktop's scheme. Every text keeps WCAG AA's 4.5:1 in both.
#:
#: A phone's browser lays the page out at its own width (the viewport's ``<meta>``): a table or
#: chart wider than that scrolls in its box, and a name or run id without a space breaks, so the
#: page never does; without them a 375-pixel phone drew a page 1,134 pixels wide, shrunk.
_CSS = """
body { font-family: system-ui, sans-serif; color: #222; }
body { margin: 2em auto; padding: 0 1em; max-width: 72em; }
h1, h2, h3, p, figcaption { overflow-wrap: anywhere; }
table { display: block; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
figure { margin: 1em 0; overflow-x: auto; } figcaption { font-weight: 600; margin-bottom: 0.3em; }
.for-screen-readers { position: absolute; width: 1px; height: 1px; overflow: hidden; }
.for-screen-readers { clip-path: inset(50%); white-space: nowrap; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
details { margin: 0.3em 0 0; font-size: 0.9em; }
.note { background: #fff8dc; padding: 0.5em; border-left: 4px solid #e0c000; }
@media screen and (prefers-color-scheme: dark) {
  :root { color-scheme: dark; }
  body { color: #e8e8ea; background: #121316; }
  th, td { border-color: #4a4d55; }
  th { background: #26282d; }
  .note { background: #2b2713; border-left-color: #c8a800; }
  svg text { fill: #e8e8ea; }
  svg .grid { stroke: #3a3c42; }
  svg .frame { stroke: #8a8d94; }
  svg .whisker, svg .box { stroke: #8ab4f8; }
  svg .box { fill: #121316; }
  svg .outlier { fill: #8ab4f8; }
}
"""


#: The most stages a chart draws: the slowest by p90 when a pipeline has more.
CHART_STAGES = 20


def _charted(p: PipelineReport) -> tuple[frozenset[str] | None, str]:
    """The stages the charts draw (None: every stage) and what their captions add."""
    if len(p.stages) <= CHART_STAGES:
        return None, ""
    chosen = frozenset(stage.stage for stage in slowest(p)[:CHART_STAGES])
    return chosen, f"the {len(chosen)} slowest stages by p90 (of {len(p.stages)} in the table)"


def _section(key: str, title: str, chart: Chart | None) -> str:
    """A chart in its figure, ``key`` unique in the page (its ids' stem)."""
    if chart is None:
        return ""
    described = f'<desc id="{key}-figures">{html_text("; ".join(chart.figures))}.</desc>'
    named = f'role="img" aria-labelledby="{key}" aria-describedby="{key}-figures">{described}'
    listed = "".join(f"<li>{html_text(line)}</li>" for line in chart.figures)
    return (
        f'<figure><figcaption id="{key}">{html_text(title)}</figcaption>'
        + chart.svg.replace('role="img">', named, 1)
        + f"<details><summary>The figures in words</summary><ul>{listed}</ul></details>"
        "</figure>\n"
    )


def _markdown_tables_as_html(report: Report) -> list[str]:
    """Each pipeline's tables, as HTML, built from the Markdown rendering's rows, in the
    report's order of pipelines (one ``## `` heading each). In order, not by name: the heading
    holds the name escaped, which a name with a control character does not equal, and such a
    pipeline's tables were left out of the page."""
    out: list[str] = []
    current: str | None = None
    parts: list[str] = []
    in_table = False
    heading: str | None = None  # the heading above the next table
    for line in render_markdown(report).splitlines():
        if line.startswith("## "):
            if current is not None:
                out.append("".join(parts))
            current, parts, in_table = md_plain(line[3:]), [], False
            heading = None
            continue
        if current is None:
            continue
        if line.startswith("|"):
            cells = [md_plain(c.strip()) for c in line.strip("|").split(" | ")]
            if set(line) <= {"|", "-"}:
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                caption = (
                    f'<caption class="for-screen-readers">{html_text(heading)}</caption>'
                    if heading
                    else f"<caption>Stages of {html_text(current)}</caption>"
                )
                parts.append(f"<table>{caption}")
                in_table, heading = True, None
            parts.append(
                "<tr>" + "".join(f"<{tag}>{html_text(c)}</{tag}>" for c in cells) + "</tr>"
            )
            continue
        if in_table:
            parts.append("</table>")
            in_table = False
        if line.startswith("### "):
            heading = line[4:].replace("`", "")
            parts.append(f"<h3>{html_text(heading)}</h3>")
        elif line.strip():
            parts.append(f"<p>{html_text(md_plain(line))}</p>")
    if current is not None:
        if in_table:
            parts.append("</table>")
        out.append("".join(parts))
    return out


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    tables = _markdown_tables_as_html(report)
    title = "Pipeline report"
    body = [f"<h1>{title}</h1>"]
    body.append(
        f"<p>Runs started from {html_text(_when(report.since))} to "
        f"{html_text(_when(report.until))}"
        + (f", read from {html_text(report.source)}" if report.source else "")
        + ".</p>"
    )
    body += [f'<p class="note">{html_text(note)}</p>' for note in report.notes]
    if not report.pipelines:
        body.append(f"<p>{html_text(empty_sentence(report))}</p>")
    for number, p in enumerate(report.pipelines):
        body.append(f"<h2>{html_text(p.pipeline)}</h2>")
        body.append(tables[number])
        chosen, which = _charted(p)
        key = f"chart-{number}"
        body.append(
            _section(
                f"{key}-a",
                "Duration distribution " + (f"of {which}" if which else "per stage"),
                distribution_svg(p.distributions, chosen),
            )
        )
        if p.median_run is not None:
            caption = (
                f"Timeline of the median run {p.median_run.run_id} "
                f"({format_seconds(p.median_run.duration)})" + (f": {which}" if which else "")
            )
            body.append(_section(f"{key}-b", caption, timeline_svg(p.median_run, chosen)))
        daily = "p90 duration per UTC day, by run start" + (f": {which}" if which else "")
        body.append(_section(f"{key}-c", daily, daily_svg(p.daily_p90, chosen)))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body></html>\n"
    )


def _when(epoch: float) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
