"""``taskdaemon runs list|show``: run history from stored spans.

Exit codes: 0 ok, 1 the run was not found (``runs list``: the source holds no run of
``--pipeline`` at all) or the span source cannot answer, 2 bad arguments (a span source URL
that names no source too).

``runs list`` says on stderr when ``--limit`` cut the list (``20 of 34 runs; --limit N for
more``), so that a pipe reads only rows.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

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
from taskdaemon.pipeline.cli.refusal import note, refuse
from taskdaemon.pipeline.cli.run_tables import format_run_table, format_runs_table
from taskdaemon.pipeline.durations import format_duration, parse_when
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError
from taskdaemon.pipeline.home import home_directory
from taskdaemon.pipeline.landing import landing_delay
from taskdaemon.pipeline.record_fields import as_dict
from taskdaemon.pipeline.run_id_form import run_id_problem
from taskdaemon.pipeline.status_rules import RUN_RECORD_STATUSES
from taskdaemon.pipeline.tracking import open_source
from taskdaemon.pipeline.wording import counted, unknown_pipeline

__all__ = ["register"]

STATUSES = RUN_RECORD_STATUSES


def register(subparsers: Any) -> None:
    """Add ``runs`` (``list``, ``show``)."""
    runs = subparsers.add_parser(
        "runs",
        help="list and inspect past and running runs",
        description="List and inspect past and running runs, rebuilt from stored spans "
        "(--source, else TASKDAEMON_SPAN_SOURCE, else the embedded store). Exit codes: 0 ok, "
        "1 the run was not found (list: no run of --pipeline at all) or the span source cannot "
        "answer, 2 invalid arguments.",
    )
    # Not required here: ``_dispatch`` says a missing one after the unknown options.
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION")

    list_p = runs_sub.add_parser(
        "list",
        help="runs, newest first",
        description="List runs, newest first. A replay names the run it replayed: the "
        "REPLAY OF column (shown when a listed run is a replay), replay_of in --json. A run "
        "serve --pipeline scheduled says how late it started: the LATE column (shown when a "
        "listed run was scheduled), landing_delay in --json. An interrupted run's DURATION "
        "reads 'at least' its time up to its process's last sign of life (lasted_at_least in "
        "--json; duration stays null). When --limit cuts the list, a note on stderr says how "
        "many runs match.",
    )
    add_pipeline_filter(list_p)
    # STATUS, not the choices' braces: they made a usage line of 93 columns, past 80.
    list_p.add_argument(
        "--status",
        type=any_case(STATUSES),
        choices=STATUSES,
        metavar="STATUS",
        help=f"only runs with this status: {', '.join(STATUSES)}",
    )
    list_p.add_argument("--since", metavar="T", help=f"started at or after T: {WHEN_FORMAT}")
    list_p.add_argument("--until", metavar="T", help=f"started at or before T: {WHEN_FORMAT}")
    list_p.add_argument(
        "--limit",
        type=whole_number,
        default=20,
        metavar="N",
        help=f"at most N runs (default 20, at most {MAX_LIST})",
    )
    list_p.add_argument("--json", action="store_true", help="JSON instead of a table")
    add_wide_option(list_p)
    add_source_option(list_p)
    list_p.set_defaults(func=_list, writes_home=False)  # cli._foreign_home

    show_p = runs_sub.add_parser(
        "show",
        help="one run and its stages",
        description="Show one run and its stages. INSTANCES is how many instances of a stage "
        "ran; ATTEMPTS the most attempts one instance needed (1: no retry), as in the run "
        "summary. DURATION runs from the first start to the last end: '-' while an attempt "
        "has not ended. ERROR is the last error, the skip reason, or why the stage was "
        "cancelled. In a terminal narrower than the table, they read INST, TRIES and TOOK, "
        "and the columns left out are named under it. "
        "--json gives every attempt of every instance.",
    )
    show_p.add_argument(
        "run_id",
        metavar="RUN",
        help="the run id (= trace id, 32 hex); in the embedded store also a unique prefix",
    )
    show_p.add_argument("--json", action="store_true", help="JSON instead of a table")
    add_wide_option(show_p)
    add_source_option(show_p)
    show_p.add_argument(
        "--at", metavar="T", help="the run as it stood T after its start (12.5s, 1m30s)"
    )
    show_p.set_defaults(func=_show, writes_home=False)


def _list(args: argparse.Namespace) -> int:
    now = time.time()  # one "now" for both bounds, as report reads them
    try:
        since = parse_when(args.since, clock=lambda: now) if args.since else None
        until = parse_when(args.until, clock=lambda: now) if args.until else None
    except ValueError as exc:
        return refuse("runs list", 2, str(exc))
    if since is not None and until is not None and until < since:
        # As report refuses it: "no runs" sent the reader to look for runs that no window
        # could hold (``--since 1d --until 3d``, the two ages swapped).
        return refuse(
            "runs list", 2, f"--until {args.until} must not be before --since {args.since}"
        )
    if not 1 <= args.limit <= MAX_LIST:  # past it, SQLite's integers overflow (a traceback)
        return refuse("runs list", 2, f"--limit must be 1 to {MAX_LIST}")
    filters = {"pipeline": args.pipeline, "status": args.status, "since": since, "until": until}
    total: int | None = None
    try:
        source = open_source(args.source)
        try:
            # One more than asked tells whether the limit cut the list, on any source.
            runs = source.search(**filters, limit=args.limit + 1)
            if len(runs) > args.limit:
                runs = runs[: args.limit]
                count = getattr(source, "count", None)  # the embedded store counts cheaply
                total = count(**filters) if callable(count) else None
                total = max(total, args.limit + 1) if total is not None else -1
            # Not one run of it in the whole source (a typo, say): "no runs" sent the reader
            # to widen filters that were not the cause.
            unknown = None if runs else unknown_pipeline(source, args.pipeline)
        finally:
            source.close()
    except SpanSourceError as exc:
        return refuse("runs list", source_exit_code(exc), str(exc))
    if unknown is not None:
        return refuse("runs list", 1, unknown)
    if args.json:
        rows = [
            {
                **as_dict(r),
                "duration": r.duration,
                "lasted_at_least": r.lasted_at_least,
                "landing_delay": r.landing_delay,
            }
            for r in runs
        ]
        print(json.dumps(rows, indent=2))
    elif runs:
        print(format_runs_table(runs, table_width(args)))
    else:
        print("no runs")
    if total is not None:
        shown = (
            f"{len(runs)} of {counted(total, 'run')}"
            if total >= 0
            else f"{counted(len(runs), 'run')}, more match"
        )
        note(f"{shown}; --limit N for more")  # after the table, in a log of both streams too
    return 0


def _show(args: argparse.Namespace) -> int:
    """``runs show``; with ``--at``, the view says which instant it shows (a line above the
    table, ``at`` seconds in JSON): nothing else in it tells a cut view from the whole run, so
    a saved ``running`` table read later could pass for the run's record."""
    at = None
    try:
        source = open_source(args.source)
        try:
            run = source.get_run(args.run_id)
            if args.at is not None:
                from taskdaemon.pipeline.replay.timeline import parse_offset, run_at  # noqa: PLC0415

                at = parse_offset(args.at)
                run = run_at(source.get_trace(run.run_id), at)
        finally:
            source.close()
    except ValueError as exc:
        return refuse("runs show", 2, str(exc))
    except RunNotFoundError as exc:
        return refuse("runs show", 1, f"{exc}{_started_here(args.run_id)}")
    except SpanSourceError as exc:
        return refuse("runs show", source_exit_code(exc), str(exc))
    if args.json:
        print(
            json.dumps(_run_json(run) | ({} if at is None else {"at": at}), indent=2, default=str)
        )
    else:
        if at is not None:
            print(f"the run as it stood {format_duration(at)} after its start (--at)")
        print(format_run_table(run, table_width(args)))
    return 0


def _started_here(run_id: str) -> str:
    """What ``runs show`` adds to "no run ID" when the home holds the run's workspace: the run
    did start. Decision: said, because the id comes from ``run``'s first line, and a process
    killed before its start could be stored (docs/span-store.md, "A process killed outright")
    stores nothing; "no run" alone read as a wrong id. Retention
    deletes runs and keeps workspaces, so the line names that cause too."""
    workspace = home_directory() / "workspaces" / run_id
    if run_id_problem(run_id, full=True) is not None or not workspace.is_dir():
        return ""
    return (
        f" (it started here: {workspace} is its workspace; its process was killed before its"
        " spans were stored, could not store them, or retention deleted them since)"
    )


def _run_json(run: Any) -> dict[str, Any]:
    data = as_dict(run)
    data["duration"] = run.duration  # None while running or interrupted: never a guess
    data["lasted_at_least"] = run.lasted_at_least  # an interrupted run's known part, else None
    data["landing_delay"] = landing_delay(run.attributes, run.start)  # None: not scheduled
    data["attributes"] = dict(run.attributes)
    for stage, stage_data in zip(run.stages, data["stages"], strict=True):
        for attempt, attempt_data in zip(stage.attempts, stage_data["attempts"], strict=True):
            attempt_data["duration"] = attempt.duration
    return data
