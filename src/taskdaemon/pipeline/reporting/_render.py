"""Writing a ``Report``: ``table`` (terminal text), ``markdown``, ``json``, ``html``.

JSON keys: durations in seconds (``*_s``, rounded to the microsecond), rates and shares as
fractions, times as ISO 8601 UTC. ``html`` is written by ``reporting._html``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from taskdaemon.pipeline.reporting._markdown import render_markdown
from taskdaemon.pipeline.reporting._model import PipelineReport, Report
from taskdaemon.pipeline.reporting._stats import CriticalPath
from taskdaemon.pipeline.reporting._text import (
    NO_STAGE,
    NOT_COMPARED,
    STAGE_HEADER,
    empty,
    format_seconds,
    heading,
    highlights,
    labelled_paths,
    ran,
    stage_rows,
    summary,
)
from taskdaemon.pipeline.table_fit import (
    MIN_GIVEN,
    cut_columns,
    fit,
    hidden_note,
    text_columns,
    wrapped,
)
from taskdaemon.pipeline.terminal_text import CONTROL_ESCAPES

__all__ = ["REPORT_FORMATS", "render_report", "report_to_dict"]

REPORT_FORMATS = ("table", "markdown", "json", "html")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _path_dict(path: CriticalPath | None) -> dict[str, Any] | None:
    if path is None:
        return None
    return {
        "run_id": path.run_id,
        "run_duration_s": _s(path.run_duration),
        "steps": [
            {
                "stage": step.stage,
                "start": _iso(step.start),
                "wait_s": _s(step.wait),
                "duration_s": _s(step.duration),
                "to_event": step.event,
            }
            for step in path.steps
        ],
    }


def _pipeline_dict(p: PipelineReport) -> dict[str, Any]:
    return {
        "pipeline": p.pipeline,
        "runs": p.runs,
        "success_rate": round(p.success_rate, 6),
        "failure_rate": round(p.failure_rate, 6),
        "cancelled_rate": round(p.cancelled_rate, 6),
        "duration_s": {"p50": _s(p.p50), "p90": _s(p.p90), "p99": _s(p.p99)},
        "stages": [
            {
                "stage": s.stage,
                "executions": s.executions,
                "failure_rate": round(s.failure_rate, 6),
                "retries": s.retries,
                "duration_s": {"p50": _s(s.p50), "p90": _s(s.p90), "p99": _s(s.p99)},
                "queue_wait_s": {"p50": _s(s.queue_p50), "p90": _s(s.queue_p90)},
                "cpu_s_mean": _s(s.cpu_seconds),
                "peak_memory_bytes": s.peak_memory_bytes,
                "critical_path_share": round(s.critical_share, 6),
            }
            for s in p.stages
        ],
        "critical_path": {
            "median_run": _path_dict(p.median_path),
            "slowest_run": _path_dict(p.slowest_path),
        },
        "previous_window_runs": p.previous_runs,
        "regressions": [
            {
                "stage": r.stage,
                "previous_p90_s": _s(r.previous_p90),
                "current_p90_s": _s(r.current_p90),
                "change": round(r.change, 6),
            }
            for r in p.regressions
        ],
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    """The JSON document of ``report``."""
    return {
        "since": _iso(report.since),
        "until": _iso(report.until),
        "source": report.source,
        "notes": list(report.notes),
        "pipelines": [_pipeline_dict(p) for p in report.pipelines],
    }


def _named(name: str, template: str, width: int | None) -> str:
    """``template`` with ``{}`` replaced by ``name``, the name cut (to no fewer than
    ``MIN_GIVEN`` columns) so that the line fits in ``width`` columns when given: a stage's
    or a pipeline's name gives way, never the figures beside it."""
    if width is not None:
        room = max(MIN_GIVEN, width - text_columns(template) + 2)
        name = cut_columns(name, room)
    return template.replace("{}", name, 1)


def _path_lines(label: str, path: CriticalPath, width: int | None) -> list[str]:
    took = format_seconds(path.run_duration)
    lines = wrapped(f"critical path of the {label} run {path.run_id} ({took}):", width)
    lines += [
        _named(step.stage, f"  {{}}: waited {format_seconds(step.wait)}, ran {ran(step)}", width)
        for step in path.steps
    ]
    return lines


def _regression_lines(p: PipelineReport, width: int | None) -> list[str]:
    if p.previous_runs == 0:
        return wrapped(f"regressions: {NOT_COMPARED}", width)
    if not p.regressions:
        return wrapped(
            "regressions: none (no stage p90 rose more than 20% against the previous window)",
            width,
        )
    lines = ["regressions (p90, previous window -> this window):"]
    lines += [
        _named(
            r.stage,
            f"  {{}}: {format_seconds(r.previous_p90)} -> {format_seconds(r.current_p90)} "
            f"(+{r.change * 100:.0f}%)",
            width,
        )
        for r in p.regressions
    ]
    return lines


def _summary_lines(p: PipelineReport, width: int | None) -> list[str]:
    """``pipeline NAME: <summary>``; wider than ``width``, its durations go to a line of their
    own (after the ``;``), and each part breaks between its clauses, rather than between a
    percentile and its figure or a rate and its word (``20.0%`` over ``cancelled;``)."""
    line = f"{_named(p.pipeline, 'pipeline {}:', width)} {summary(p)}"
    if width is None or text_columns(line) <= width:
        return [line]
    rates, _, durations = line.partition("; ")
    return [*_clauses(f"{rates};", width), *_clauses(f"    {durations}", width)]


def _clauses(line: str, width: int | None) -> list[str]:
    """``line`` as is, or, wider than ``width``, wrapped between its clauses (``, ``), its
    later lines indented by four: ``d012 307ms`` stays whole, where a wrap between words put
    the stage's name at the end of one line and its p90 on the next. A clause wider than
    ``width`` alone wraps between words (``table_fit.wrapped``) at once, so that the next
    clause joins its last line: wrapped only at the end, a long pipeline name's first clause
    (``pipeline NAME: 5 runs``) left ``5 runs,`` alone on a line."""
    if width is None or text_columns(line) <= width:
        return [line]
    lines: list[str] = []
    for clause in line.split(", "):
        if lines and text_columns(f"{lines[-1]}, {clause},") <= width:
            lines[-1] += f", {clause}"
            continue
        if lines:
            lines[-1] += ","
        lines += wrapped(f"    {clause}" if lines else clause, width)
    return lines


#: The stage table's columns a narrow terminal leaves out, first to last: what a stage cost
#: (PEAK MEM, CPU/EXEC), then the queue's tail and median, then the tail of its durations. EXEC,
#: FAILED, RETRIES, P50, P90 and CRITICAL are what the report is read for, and stay.
_DROPPED = tuple(
    STAGE_HEADER.index(name) for name in ("PEAK MEM", "CPU/EXEC", "QUEUE P90", "QUEUE P50", "P99")
)


def _stage_table(p: PipelineReport, width: int | None) -> list[str]:
    """The stage table, fitted to ``width`` when given: STAGE gives way first, then the
    ``_DROPPED`` columns are left out one by one (``table_fit``), a line naming them."""
    if not p.stages:
        return [NO_STAGE]
    rows = [[cell.translate(CONTROL_ESCAPES) for cell in row] for row in stage_rows(p)]
    table = fit(STAGE_HEADER, rows, width, (0,), _DROPPED)
    return [*table.lines, *hidden_note(table.hidden, width)]


def _render_table(report: Report, width: int | None = None) -> str:
    """The ``table`` format; ``width``: the terminal's columns (``render_report``)."""
    lines = wrapped(f"Report: {heading(report)}", width)  # the source's URL is copied: whole
    for note in report.notes:
        lines += wrapped(f"note: {note}", width)
    if not report.pipelines:
        lines += wrapped(empty(report), width)
    for p in report.pipelines:
        lines += ["", *_summary_lines(p, width)]
        for line in highlights(p):
            lines += _clauses(line, width)
        lines += ["", *_stage_table(p, width)]
        for label, path in labelled_paths(p):
            lines += ["", *_path_lines(label, path, width)]
        lines += ["", *_regression_lines(p, width)]
    # Names come from spans (a remote source's as sent): a control character in one, a line
    # break included, is shown as its escape, so it can neither drive the terminal nor add a line.
    return "\n".join(line.translate(CONTROL_ESCAPES) for line in lines) + "\n"


def _render_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), indent=2) + "\n"


def _render_html(report: Report) -> str:
    from taskdaemon.pipeline.reporting._html import render_html  # noqa: PLC0415

    return render_html(report)


_RENDERERS: dict[str, Callable[[Report], str]] = {
    "table": _render_table,
    "markdown": render_markdown,
    "json": _render_json,
    "html": _render_html,
}


def render_report(report: Report, fmt: str = "table", width: int | None = None) -> str:
    """``report`` as text in ``fmt`` (one of ``REPORT_FORMATS``); ValueError for another
    format. ``width``: the columns of the terminal a ``table`` is written to, which it then
    fits (None: a pipe, a file, ``--wide``: every line whole). Only what is wider than the
    terminal changes, in this order:

    * names give way (a stage's, a pipeline's), cut with an ellipsis to no fewer than 12
      columns, never the figures beside them;
    * the stage table leaves out PEAK MEM, then CPU/EXEC, then QUEUE P90, QUEUE P50 and P99,
      one at a time while it is still wider, and says which under it (``--wide`` shows them):
      its figures are never cut, and 12 columns of figures and their headers take 97
      characters before the first stage name, so at 80 something must go, and what a stage
      cost goes before how long it took and how often it failed;
    * prose (the heading, a note, a pipeline's summary, a critical path's heading) wraps
      between words, its later lines indented by four: a run id and the source's URL, which
      a reader copies, are never cut.
    """
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(REPORT_FORMATS)})")
    if fmt == "table":
        return _render_table(report, width)
    return renderer(report)
