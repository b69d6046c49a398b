"""``taskdaemon logs RUN``: a run's log records from the embedded store.

::

    taskdaemon logs RUN [--stage S] [--level L] [--follow] [--json] [--source URL]

Prints the run's records in order: lifecycle records, engine decisions (runs made with
``--log-level debug|trace``), captured command output, and a handler's own ``logging`` records.
``RUN`` is a run id or a unique prefix (4+ hex digits). ``--stage`` keeps one stage's records,
``--level`` those at that level and above. ``--follow`` polls the store (every ``--interval``
seconds) and prints records as another process writes them, until the run ends (then what was
written last). Text lines read ``time LEVEL stage.instance.attempt [stream] message`` with
control characters escaped; ``--json`` prints one object a line with every id (``run_id``,
``pipeline``, ``stage``, ``instance``, ``attempt``, ``trace_id``, ``span_id``) and field.

Exit codes: 0 ok, 1 the run (or its ``--stage``) was not found or the store cannot answer, 2 bad
arguments (a source other than the embedded store too), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from typing import Any

from taskdaemon.pipeline.cli.options import (
    add_interval_option,
    add_source_option,
    source_exit_code,
)
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError, no_such_stage
from taskdaemon.pipeline.terminal_text import shown

__all__ = ["register"]

_LEVELS = ("trace", "debug", "info", "warning", "error", "critical")
#: After the run ended, polls go on until the run's last lifecycle record is stored and a
#: poll finds nothing more (the log writer may trail the span writer), at most this long: a
#: run killed outright, or logged above INFO, has no such record.
_DRAIN_SECONDS = 5.0


def register(subparsers: Any) -> None:
    """Add the ``logs`` sub-command."""
    parser = subparsers.add_parser(
        "logs",
        help="print a run's log records (lifecycle, decisions, command output)",
        description="Print a run's log records from the embedded store: lifecycle records, "
        "engine decisions, command output and handlers' own logging, in order.",
    )
    parser.add_argument("run_id", metavar="RUN", help="run id, or a unique prefix (4+ hex)")
    parser.add_argument("--stage", help="only this stage's records")
    parser.add_argument("--level", type=str.lower, choices=_LEVELS, help="this level and above")
    parser.add_argument("--follow", "-f", action="store_true", help="poll until the run ends")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    add_interval_option(parser)
    add_source_option(parser, embedded_only=True)
    parser.set_defaults(func=logs_command)


def _iso(time_ns: int) -> str:
    seconds = time_ns / 1e9
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{time_ns // 1_000_000 % 1000:03d}Z"


def _text(row: Any) -> str:
    where = row.stage or "run"
    if row.stage and row.instance is not None and row.attempt is not None:
        where = f"{row.stage}.{row.instance}.{row.attempt}"
    stream = row.attributes.get("log.iostream")
    prefix = f"[{stream}] " if stream else ""
    return shown(f"{_iso(row.time_ns)} {row.level:<7} {where} {prefix}{row.body}")


def _fail(code: int, message: str) -> int:
    print(f"taskdaemon logs: {message}", file=sys.stderr, flush=True)
    return code


def logs_command(args: argparse.Namespace) -> int:
    """Print (and with ``--follow`` keep printing) the run's records; returns the exit code."""
    from taskdaemon.pipeline.tracking.log_read import connect_store  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.sources import open_source  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.store import SpanStore  # noqa: PLC0415

    try:
        source = open_source(args.source)
    except SpanSourceError as error:
        return _fail(source_exit_code(error), str(error))
    try:
        if not isinstance(source, SpanStore):
            return _fail(2, "run logs are kept in the embedded store only (a sqlite:/// source)")
        run_id = source.resolve_run_id(args.run_id)
        if args.stage is not None:
            # A stage that logged nothing prints nothing: a typo must not look the same.
            record = source.get_run(run_id)
            stages = [stage.name for stage in record.stages]
            if args.stage not in stages:
                where = f"run {run_id} of pipeline {record.pipeline!r}"
                return _fail(1, f"{where} {no_such_stage(args.stage, stages)}")
        if source.missing:  # the home's store, no run made yet: a full id is not resolved
            raise RunNotFoundError(f"no run {run_id} in {source.path}")
        conn = connect_store(source.path)
        try:
            return _print(args, conn, run_id, source)
        finally:
            conn.close()
    except RunNotFoundError as error:
        return _fail(1, str(error))
    except (SpanSourceError, sqlite3.Error) as error:
        return _fail(source_exit_code(error), str(error))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        source.close()


def _print(args: argparse.Namespace, conn: sqlite3.Connection, run_id: str, source: Any) -> int:
    from taskdaemon.pipeline.tracking.log_read import (  # noqa: PLC0415
        read_logs,
        run_end_logged,
        run_ended,
    )

    last = 0
    drain_until: float | None = None
    while True:
        interrupted = args.follow and source.is_interrupted(run_id)
        ended = args.follow and (interrupted or run_ended(conn, run_id))
        # Read before the rows: a record stored after this check is still read below.
        complete = ended and (interrupted or run_end_logged(conn, run_id))
        rows = read_logs(conn, run_id, stage=args.stage, level=args.level, after=last)
        for row in rows:
            if args.json:
                sys.stdout.write(json.dumps(row.as_json(), default=str, ensure_ascii=False))
            else:
                sys.stdout.write(_text(row))
            sys.stdout.write("\n")
        sys.stdout.flush()
        if rows:
            last = rows[-1].id
        if not args.follow:
            return 0
        if ended:
            now = time.monotonic()
            drain_until = drain_until if drain_until is not None else now + _DRAIN_SECONDS
            if (complete and not rows) or now >= drain_until:
                return 0
        time.sleep(args.interval)
