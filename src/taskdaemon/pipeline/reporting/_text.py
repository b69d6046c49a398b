"""The cells and lines every text format of a report shares: table, Markdown and HTML."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from taskdaemon.pipeline.byte_sizes import format_bytes
from taskdaemon.pipeline.durations import format_duration as format_seconds
from taskdaemon.pipeline.reporting._model import PipelineReport, Report, StageReport
from taskdaemon.pipeline.reporting._stats import CriticalPath, CriticalStep
from taskdaemon.pipeline.terminal_text import CONTROL_ESCAPES
from taskdaemon.pipeline.wording import counted

__all__ = [
    "NOT_COMPARED",
    "NO_STAGE",
    "STAGE_HEADER",
    "empty",
    "empty_sentence",
    "format_seconds",
    "heading",
    "highlights",
    "html_text",
    "percent",
    "ran",
    "slowest",
    "stage_rows",
    "summary",
    "window_time",
]


def html_text(text: str) -> str:
    """``text`` for the HTML page: each control, bidi and invisible character as its escape,
    as the table and Markdown show it, then markup escaped. XML, the charts' syntax, allows
    no control character, not even as a character reference, and a bidi override in a
    stage's name would reverse the figures written after it."""
    return html.escape(text.translate(CONTROL_ESCAPES))


def percent(value: float) -> str:
    """A fraction as a percentage with one decimal: ``0.123`` -> ``12.3%``."""
    return f"{value * 100:.1f}%"


def ran(step: CriticalStep) -> str:
    """How long a critical step ran, and the event whose publish ended it if one did:
    ``3ms (to spec.ready)``."""
    took = format_seconds(step.duration)
    return took if step.event is None else f"{took} (to {step.event})"


def window_time(epoch: float) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM UTC``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


STAGE_HEADER = (
    "STAGE", "EXEC", "FAILED", "RETRIES", "P50", "P90", "P99", "QUEUE P50", "QUEUE P90",
    "CPU/EXEC", "PEAK MEM", "CRITICAL",
)  # fmt: skip


def stage_rows(p: PipelineReport) -> list[tuple[str, ...]]:
    """One row of cells per stage, in ``STAGE_HEADER``'s order."""
    return [
        (
            s.stage,
            str(s.executions),
            percent(s.failure_rate),
            str(s.retries),
            format_seconds(s.p50),
            format_seconds(s.p90),
            format_seconds(s.p99),
            format_seconds(s.queue_p50),
            format_seconds(s.queue_p90),
            format_seconds(s.cpu_seconds),
            format_bytes(s.peak_memory_bytes),
            percent(s.critical_share),
        )
        for s in p.stages
    ]


#: A stage table longer than this hides what a reader looks for first: the report names the
#: stages that failed most and the slowest above it (``highlights``), ``NAMED`` of each.
HIGHLIGHTED = 20
NAMED = 5


def slowest(p: PipelineReport) -> list[StageReport]:
    """The stages with a duration, slowest p90 first (by name among equals)."""
    timed = [s for s in p.stages if s.p90 is not None]
    return sorted(timed, key=lambda s: (-(s.p90 or 0.0), s.stage))


def highlights(p: PipelineReport) -> list[str]:
    """For a pipeline of more than ``HIGHLIGHTED`` stages, two lines naming what its table
    would make a reader search for: how many stages failed and which failed most often (by
    failure rate, then executions), and the slowest by p90. None for a shorter table."""
    if len(p.stages) <= HIGHLIGHTED:
        return []
    failing = sorted(
        (s for s in p.stages if s.failure_rate > 0),
        key=lambda s: (-s.failure_rate, -s.executions, s.stage),
    )
    if failing:
        most = ", ".join(
            f"{s.stage} {percent(s.failure_rate)} of {s.executions}" for s in failing[:NAMED]
        )
        failed = (
            f"{len(failing)} of {counted(len(p.stages), 'stage')} failed; "
            f"most often (of their executions): {most}"
        )
    else:
        failed = f"none of {counted(len(p.stages), 'stage')} failed"
    ranked = ", ".join(f"{s.stage} {format_seconds(s.p90)}" for s in slowest(p)[:NAMED])
    return [failed, f"slowest by p90: {ranked}"]


#: What the report says in place of the stage table when no stage of the window's runs ran
#: (each was cancelled before its first stage, or skipped them all): a table of headers alone,
#: and the HTML page without a chart, said nothing of why.
NO_STAGE = "no stage ran in these runs"

#: What the report says of regressions when the previous window had no ended run.
NOT_COMPARED = "not compared (no ended run in the previous window of the same length)"


def summary(p: PipelineReport) -> str:
    """The pipeline's one-line summary: runs, success and failure rates (and the cancelled
    runs' when some were), duration percentiles."""
    cancelled = f", {percent(p.cancelled_rate)} cancelled" if p.cancelled_rate else ""
    return (
        f"{counted(p.runs, 'run')}, {percent(p.success_rate)} succeeded, "
        f"{percent(p.failure_rate)} "
        f"failed{cancelled}; duration p50 {format_seconds(p.p50)}, p90 {format_seconds(p.p90)}, "
        f"p99 {format_seconds(p.p99)}"
    )


def empty(report: Report) -> str:
    """What a report without figures says: no ended run in its window (a ``--pipeline`` of
    which the source holds no run at all is refused before: ``wording.unknown_pipeline``)."""
    return "no ended runs in this window"


def empty_sentence(report: Report) -> str:
    """``empty(report)`` as a sentence of its own, capitalised and ending in a full stop: what
    the Markdown and HTML documents say (the table's line stays as ``empty`` has it)."""
    text = empty(report)
    return f"{text[:1].upper()}{text[1:]}."


def heading(report: Report) -> str:
    """The report's window (and source) as a heading."""
    source = f" ({report.source})" if report.source else ""
    return f"runs started {window_time(report.since)} to {window_time(report.until)}{source}"


def labelled_paths(p: PipelineReport) -> list[tuple[str, CriticalPath]]:
    """The critical paths a text report shows, each with the run it describes: the median
    run's and the slowest run's, or one path labelled ``median and slowest`` when both are the
    same run (one run in the window, say), which would otherwise be printed twice."""
    both = (("median", p.median_path), ("slowest", p.slowest_path))
    paths = [(label, path) for label, path in both if path is not None and path.steps]
    if len(paths) == 2 and paths[0][1].run_id == paths[1][1].run_id:
        return [("median and slowest", paths[0][1])]
    return paths
