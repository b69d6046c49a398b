"""``taskdaemon report``: performance over stored runs, per pipeline and per stage.

::

    taskdaemon report [--pipeline P] [--since 7d] [--until T] [--format table|markdown|json|html]
                      [--source URL] [--limit N] [-o FILE] [--wide]

The window holds the ended runs that started in [since, until) (``--since``: an age such as
``7d`` or an ISO time, default 7 days ago; ``--until``: default now). Regressions compare it
with the window of the same length just before it. The embedded store answers from the
aggregates it keeps (any number of runs); any other source (Tempo, Jaeger, OTLP-JSON) has the
runs of both windows rebuilt, the newest ``--limit`` (default 1000), and the report says when
the limit left runs out. Runs of the window that had not ended (still running, or
``interrupted``) are left out, and the report's notes say how many, per pipeline. What each
figure means: docs/reports.md. Exit codes: 0 written, 1 the source could not be read or holds
no run of ``--pipeline`` at all (a typo: ``wording.unknown_pipeline``), 2 invalid arguments or
settings.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Final

from taskdaemon.pipeline.cli.options import (
    MAX_LIST,
    WHEN_FORMAT,
    add_pipeline_filter,
    add_source_option,
    add_wide_option,
    any_case,
    source_exit_code,
    table_width,
    whole_number,
)
from taskdaemon.pipeline.cli.output_file import (
    add_output_option,
    output_format,
    output_target,
    write_output,
)
from taskdaemon.pipeline.cli.refusal import refuse
from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.errors import PipelineError, SettingsError, SpanSourceError
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.wording import counted, unknown_pipeline

__all__ = ["register", "run_report"]

_FORMATS = ("table", "markdown", "json", "html")
#: The format ``-o FILE``'s suffix chooses when no ``--format`` is given (``cli/output_file.py``).
_BY_SUFFIX = {".html": "html", ".htm": "html", ".md": "markdown", ".json": "json"}
#: The file ``-o FOLDER/`` gets, per format.
_IN_FOLDER = {
    "table": "report.txt",
    "markdown": "report.md",
    "json": "report.json",
    "html": "report.html",
}


def register(subparsers: Any) -> None:
    """Add the ``report`` sub-command."""
    parser = subparsers.add_parser(
        "report",
        help="performance report over stored runs (percentiles, critical path, regressions)",
        description="Performance over the ended runs that started in [--since, --until): per "
        "pipeline and per stage, percentiles, failure rates, critical paths and regressions "
        "against the previous window of the same length. Exit codes: 0 written, 1 the source "
        "could not be read, holds no run of --pipeline or the output could not be written, 2 "
        "invalid arguments or settings.",
    )
    add_pipeline_filter(parser)
    parser.add_argument(
        "--since", default="7d", metavar="T", help=f"runs started at or after T: {WHEN_FORMAT} "
        "(default 7d)"
    )  # fmt: skip
    parser.add_argument(
        "--until", metavar="T", help=f"runs started before T: {WHEN_FORMAT} (default now)"
    )
    parser.add_argument(
        "--format",
        "-f",
        type=any_case(_FORMATS),
        choices=_FORMATS,
        help="output format (default: -o FILE's suffix, .html .md .json, else table)",
    )
    add_source_option(parser)
    parser.add_argument(
        "--limit",
        type=whole_number,
        default=1000,
        metavar="N",
        help="sources without aggregates: rebuild at most N runs (default 1000)",
    )
    add_output_option(parser, "report.txt, .md, .json or .html")
    add_wide_option(parser)
    parser.set_defaults(func=run_report, writes_home=False)  # cli._foreign_home


def _remote_data(source: Any, args: argparse.Namespace, since: float, until: float) -> Any:
    from taskdaemon.pipeline.reporting import RecordData  # noqa: PLC0415

    previous = since - (until - since)
    found = source.search(pipeline=args.pipeline, since=previous, until=until, limit=args.limit)
    runs = []
    for summary in found:
        # A run that had not ended is only counted for the notes: the window's alone are read.
        if summary.start < until and (summary.end is not None or summary.start >= since):
            runs.append(source.get_run(summary.run_id))
    notes = []
    if len(found) >= args.limit:
        notes.append(
            f"the source was read for its newest {counted(args.limit, 'run')} only (--limit); "
            "older runs of the window are left out"
        )
    return RecordData(runs), notes


def run_report(args: argparse.Namespace) -> int:
    """Compute and write the report ``args`` asks for; returns the exit code."""
    from taskdaemon.pipeline.durations import parse_when  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.sources import open_source  # noqa: PLC0415

    args.format = output_format(args.format, args.output, _BY_SUFFIX, "table")
    if not 1 <= args.limit <= MAX_LIST:
        return refuse("report", 2, f"--limit must be 1 to {MAX_LIST}")
    now = time.time()
    try:
        since = parse_when(args.since, clock=lambda: now)
        until = parse_when(args.until, clock=lambda: now) if args.until else now
    except ValueError as exc:
        return refuse("report", 2, str(exc))
    if until <= since:
        # Each bound as the user gave it, or its default: "--until 2020-01-01" alone met the
        # default --since of 7d, which the line did not name.
        first = f"--since {args.since}" + (" (the default)" if args.since == "7d" else "")
        last = f"--until {args.until}" if args.until else "--until (now, the default)"
        return refuse("report", 2, f"{last} must be after {first}")
    url = args.source
    try:
        if url is None:
            from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

            url = load_settings().span_source
        source = open_source(url)
    except SettingsError:
        raise
    except ValueError as exc:
        return refuse("report", 2, str(exc))
    except (PipelineError, SpanSourceError) as exc:
        return refuse("report", source_exit_code(exc), str(exc))
    try:
        # Asked first: a typo's "no ended runs in this window" sent the reader to widen a
        # window that held nothing either, and exited 0 as a quiet week does.
        unknown = unknown_pipeline(source, args.pipeline)
        if unknown is not None:
            return refuse("report", 1, unknown)
        text = _compute(source, args, since, until, url)
    except (PipelineError, SpanSourceError) as exc:
        return refuse("report", source_exit_code(exc), str(exc))
    except _DAMAGED as exc:
        from taskdaemon.pipeline.tracking.store import SpanStore  # noqa: PLC0415

        if not isinstance(source, SpanStore):
            raise
        reason = cut(f"{type(exc).__name__}: {exc}", 200)
        return refuse("report", 1, f"{source.path}: the report's aggregates are damaged ({reason})")
    finally:
        source.close()
    problem = write_output(text, output_target(args.output, _IN_FOLDER[args.format]))
    if problem:
        return refuse("report", 1, problem)
    return 0


#: What a report from the store's aggregates raises on a value of the wrong type in them
#: (edited outside taskdaemon: SQLite keeps any value in any column). They are read as the
#: writer wrote them: checking every row would cost the report a scan of each table it
#: otherwise reads a bucket of; a damaged one is refused in one line instead.
_DAMAGED: Final = (TypeError, ValueError, OverflowError, AttributeError)


def _compute(
    source: Any,
    args: argparse.Namespace,
    since: float,
    until: float,
    url: str,
) -> str:
    """The report's text."""
    from taskdaemon.pipeline.reporting import build_report, render_report  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.aggregates import StoreReportData  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.store import SpanStore  # noqa: PLC0415

    notes: list[str] = []
    # A home's store no run has made yet reads as no runs; its aggregates would create it.
    if isinstance(source, SpanStore) and not source.missing:
        data: Any = StoreReportData(source)
    else:
        data, notes = _remote_data(source, args, since, until)
    try:
        report = build_report(
            data,
            since,
            until,
            pipeline=args.pipeline,
            # A report is shared: the backend's password or token in its URL stays here.
            source=redact_text(url),
            charts=args.format == "html",
            notes=notes,
        )
    finally:
        if isinstance(data, StoreReportData):
            data.close()
    # A table for a terminal is fitted to it; one written to a file (-o) is whole.
    width = table_width(args) if args.output is None else None
    text: str = render_report(report, args.format, width)
    return text
