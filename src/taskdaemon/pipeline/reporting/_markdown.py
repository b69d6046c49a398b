"""A report as Markdown (``taskdaemon report --format markdown``, and the HTML page's text).

Every text a run brings (a pipeline's or stage's name, from a span source anyone may have
written) is written as text (``md_text``): its control characters as escapes, and a backslash
before each character Markdown reads as markup inside a line, ``MARKUP``. Before, a name holding
``<img src=x onerror=...>`` was raw HTML to a renderer that passes HTML (CommonMark's default),
``[fix](https://...)`` a link, ``&#x202e;`` a U+202E that reversed the rest of the line, and a
``\\|`` a table bar, its row shifted a cell. Emphasis (``*``, ``_``, ``~``) is left as written:
a name may only emphasise itself with it, and ``build_image`` stays as written in the file.
The HTML page, built from these lines, takes the backslashes off again (``md_plain``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from taskdaemon.pipeline.reporting._model import Report
from taskdaemon.pipeline.reporting._text import (
    NO_STAGE,
    NOT_COMPARED,
    STAGE_HEADER,
    empty_sentence,
    format_seconds,
    heading,
    highlights,
    labelled_paths,
    ran,
    stage_rows,
    summary,
)
from taskdaemon.pipeline.terminal_text import CONTROL_ESCAPES

__all__ = ["md_plain", "render_markdown"]

#: Backslash, raw HTML and autolinks, links and images, entities, table bars, code spans.
MARKUP: Final = "\\<[&|`"
_AS_TEXT: Final = CONTROL_ESCAPES | {ord(char): "\\" + char for char in MARKUP}
_ESCAPED: Final = re.compile("\\\\([" + re.escape(MARKUP) + "])")


def md_text(text: str) -> str:
    """``text`` as Markdown text: its control characters escaped, ``MARKUP`` after a
    backslash."""
    return text.translate(_AS_TEXT)


def md_plain(line: str) -> str:
    """A line of this module's Markdown with ``md_text``'s backslashes taken off."""
    return _ESCAPED.sub(r"\1", line)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: Report) -> str:
    """``report`` as a Markdown document."""
    lines = [f"# Pipeline report: {heading(report)}"]
    lines += [f"\n> {md_text(note)}" for note in report.notes]
    if not report.pipelines:
        lines += ["", md_text(empty_sentence(report))]
    for p in report.pipelines:
        lines += ["", f"## {md_text(p.pipeline)}", "", summary(p) + "."]
        lines += [f"\n{md_text(line)}." for line in highlights(p)]
        if p.stages:
            lines += ["", *_md_table(STAGE_HEADER, stage_rows(p))]
        else:
            lines += ["", f"{NO_STAGE[:1].upper()}{NO_STAGE[1:]}."]
        for label, path in labelled_paths(p):
            lines += [
                "",
                f"### Critical path of the {label} run `{path.run_id}` "
                f"({format_seconds(path.run_duration)})",
                "",
            ]
            lines += _md_table(
                ("STAGE", "WAITED", "RAN"),
                [(s.stage, format_seconds(s.wait), ran(s)) for s in path.steps],
            )
        lines += ["", "### Regressions", ""]
        if p.previous_runs == 0:
            lines.append(f"{NOT_COMPARED[:1].upper()}{NOT_COMPARED[1:]}.")
        elif p.regressions:
            lines += _md_table(
                ("STAGE", "P90 BEFORE", "P90 NOW", "CHANGE"),
                [
                    (
                        r.stage,
                        format_seconds(r.previous_p90),
                        format_seconds(r.current_p90),
                        f"+{r.change * 100:.0f}%",
                    )
                    for r in p.regressions
                ],
            )
        else:
            lines.append("None: no stage p90 rose more than 20% against the previous window.")
    return "\n".join(lines) + "\n"
