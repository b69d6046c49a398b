"""``taskdaemon runs list|show`` and ``taskdaemon retention``: run history from stored spans.

Exit codes: 0 ok, 1 the run was not found, 2 bad arguments or an unusable span source.

``runs list`` says on stderr when ``--limit`` cut the list (``20 of 34 runs; --limit N for
more``), so that a pipe reads only rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.run_state import RUN_RECORD_STATUSES
from taskdaemon.pipeline.tracking import (
    RetentionPolicy,
    SpanStore,
    format_run_table,
    format_runs_table,
    open_source,
    parse_age,
    parse_when,
)

__all__ = ["register"]

STATUSES = RUN_RECORD_STATUSES


def register(subparsers: Any) -> None:
    """Add ``runs`` (``list``, ``show``) and ``retention``."""
    runs = subparsers.add_parser(
        "runs",
        help="list and inspect past and running runs",
        description="List and inspect past and running runs, rebuilt from stored spans "
        "(--source, else TASKDAEMON_SPAN_SOURCE, else the embedded store).",
    )
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    list_p = runs_sub.add_parser(
        "list",
        help="runs, newest first",
        description="List runs, newest first. When --limit cuts the list, a note on stderr "
        "says how many runs match.",
    )
    list_p.add_argument("--pipeline", help="only this pipeline")
    list_p.add_argument("--status", choices=STATUSES, help="only runs with this status")
    list_p.add_argument("--since", help="started at or after: an age (1h, 7d) or ISO time")
    list_p.add_argument("--until", help="started at or before: an age or ISO time")
    list_p.add_argument("--limit", type=int, default=20, help="at most N runs (default 20)")
    list_p.add_argument("--json", action="store_true", help="JSON instead of a table")
    list_p.add_argument("--source", help="span source URL (default TASKDAEMON_SPAN_SOURCE)")
    list_p.set_defaults(func=_list)

    show_p = runs_sub.add_parser(
        "show",
        help="one run and its stages",
        description="Show one run and its stages. INSTANCES is how many instances of a stage "
        "ran; ATTEMPTS the most attempts one instance needed (1: no retry), as in the run "
        "summary. ERROR is the last error, the skip reason, or why the stage was cancelled. "
        "--json gives every attempt of every instance.",
    )
    show_p.add_argument(
        "run_id",
        metavar="RUN_ID",
        help="the run id (= trace id, 32 hex); in the embedded store also a unique prefix",
    )
    show_p.add_argument("--json", action="store_true", help="JSON instead of a table")
    show_p.add_argument("--source", help="span source URL (default TASKDAEMON_SPAN_SOURCE)")
    show_p.add_argument(
        "--at", metavar="T", help="the run as it stood T after its start (12.5s, 1m30s)"
    )
    show_p.set_defaults(func=_show)

    ret = subparsers.add_parser(
        "retention",
        help="delete old runs from the embedded span store, per pipeline",
        description="Delete old runs from the embedded span store, per pipeline.",
    )
    ret.add_argument("--max-age", default=None, help="delete runs older than this (e.g. 30d)")
    ret.add_argument("--keep", type=int, default=None, help="keep the newest N runs per pipeline")
    ret.add_argument(
        "--vacuum",
        action="store_true",
        help="then compact the whole file (VACUUM; writers wait while it runs)",
    )
    ret.add_argument("--source", help="sqlite:///PATH (default TASKDAEMON_SPAN_SOURCE)")
    ret.set_defaults(func=_retention)


def _error(message: str, code: int) -> int:
    print(f"taskdaemon: {redact_text(message)}", file=sys.stderr)
    return code


def _list(args: argparse.Namespace) -> int:
    try:
        since = parse_when(args.since) if args.since else None
        until = parse_when(args.until) if args.until else None
    except ValueError as exc:
        return _error(str(exc), 2)
    if args.limit < 1:
        return _error("--limit must be at least 1", 2)
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
        finally:
            source.close()
    except SpanSourceError as exc:
        return _error(str(exc), 2)
    if args.json:
        rows = [{**dataclasses.asdict(r), "duration": r.duration} for r in runs]
        print(json.dumps(rows, indent=2))
    elif runs:
        print(format_runs_table(runs))
    else:
        print("no runs")
    if total is not None:
        shown = f"{len(runs)} of {total} runs" if total >= 0 else f"{len(runs)} runs, more match"
        print(f"{shown}; --limit N for more", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        source = open_source(args.source)
        try:
            run = source.get_run(args.run_id)
            if args.at is not None:
                from taskdaemon.pipeline.replay.timeline import run_at  # noqa: PLC0415

                run = run_at(source.get_trace(run.run_id), args.at)
        finally:
            source.close()
    except ValueError as exc:
        return _error(str(exc), 2)
    except RunNotFoundError as exc:
        return _error(str(exc), 1)
    except SpanSourceError as exc:
        return _error(str(exc), 2)
    if args.json:
        print(json.dumps(_run_json(run), indent=2, default=str))
    else:
        print(format_run_table(run))
    return 0


def _run_json(run: Any) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data["duration"] = run.duration
    data["attributes"] = dict(run.attributes)
    for stage, stage_data in zip(run.stages, data["stages"], strict=True):
        for attempt, attempt_data in zip(stage.attempts, stage_data["attempts"], strict=True):
            attempt_data["duration"] = attempt.duration
    return data


def _retention(args: argparse.Namespace) -> int:
    try:
        max_age = parse_age(args.max_age) if args.max_age else None
    except ValueError as exc:
        return _error(f"--max-age: {exc}", 2)
    if args.keep is not None and args.keep < 0:
        return _error("--keep must be >= 0", 2)
    policy = RetentionPolicy(max_age=max_age, keep=args.keep)
    if not policy.is_active and not args.vacuum:
        return _error("nothing to do: give --max-age, --keep and/or --vacuum", 2)
    try:
        source = open_source(args.source, retention=RetentionPolicy())
    except (SpanSourceError, TypeError) as exc:
        return _error(f"retention applies to the embedded sqlite store only: {exc}", 2)
    try:
        if not isinstance(source, SpanStore):
            return _error("retention applies to the embedded sqlite:// store only", 2)
        result = source.apply_retention(policy)
        print(f"deleted {result.deleted_runs} runs ({result.deleted_spans} spans)")
        if args.vacuum:
            before, after = source.vacuum()
            print(f"vacuumed {source.path}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
    except SpanSourceError as exc:
        return _error(str(exc), 2)
    finally:
        source.close()
    return 0
