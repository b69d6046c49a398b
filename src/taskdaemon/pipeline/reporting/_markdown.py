"""A report as Markdown (``taskdaemon report --format markdown``, and the HTML page's text)."""

from __future__ import annotations

from collections.abc import Sequence

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

__all__ = ["render_markdown"]


def _md_cell(text: str) -> str:
    # Names come from spans, a remote source's as sent: no control character reaches the file.
    return text.translate(CONTROL_ESCAPES).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: Report) -> str:
    """``report`` as a Markdown document."""
    lines = [f"# Pipeline report: {heading(report)}"]
    lines += [f"\n> {note}" for note in report.notes]
    if not report.pipelines:
        lines += ["", _md_cell(empty_sentence(report))]
    for p in report.pipelines:
        lines += ["", f"## {_md_cell(p.pipeline)}", "", summary(p) + "."]
        lines += [f"\n{line.translate(CONTROL_ESCAPES)}." for line in highlights(p)]
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
