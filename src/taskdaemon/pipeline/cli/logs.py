"""``taskdaemon logs RUN``: a run's log records from the embedded store, or a debug dump.

::

    taskdaemon logs RUN [--stage S [--attempt N]] [--level L] [--follow] [--json] [--source URL]

Prints the run's records in order: lifecycle records, engine decisions (runs made with
``--log-level debug|trace``), captured command output, and a handler's own ``logging`` records.
``RUN`` is a run id or a unique prefix (4+ hex digits). ``--stage`` keeps one stage's records,
``--attempt N`` with it those of its attempt N (every instance's), ``--level`` those at that
level and above. Decision: a retried stage's tries are read one at a time, as a scheduler's
page of logs per try shows them; an attempt the stage never made is refused as a misspelt
stage is (exit 1, naming the attempts it made), never an empty answer that reads as a quiet
try (with ``--follow`` it is waited for: a run still going may yet retry); ``--attempt``
without ``--stage`` is an argument error, since the same number is unrelated tries of
different stages. ``--follow`` polls the store (every ``--interval``
seconds) and prints records as another process writes them, until the run ends (then what was
written last); a whole run id not stored yet (a run just started: its store writer commits
every so often) is waited for up to :data:`APPEAR_TIMEOUT` seconds, as ``watch`` and ``dag
--watch`` wait for it, instead of "no run" at once. ``--source dump:///PATH.tar.gz`` reads the
records a debug dump holds (a finished snapshot: ``--follow`` prints them and ends). Text
lines read ``time LEVEL stage.instance.attempt [stream] message`` with control characters
escaped; ``--json`` prints one object a line with every id (``run_id``, ``pipeline``,
``stage``, ``instance``, ``attempt``, ``trace_id``, ``span_id``) and field, under the keys of a
JSON log line (``TASKDAEMON_LOG_FORMAT=json``: ``ts``, ``level``, ``logger``, ``msg``), with
``ts_ns`` beside ``ts``.

Exit codes: 0 ok, 1 the run (or its ``--stage`` or ``--attempt``) was not found or the store
cannot answer, 2 bad arguments (a source other than the embedded store too), 130 Ctrl-C, 143
SIGTERM, 129 SIGHUP: each stops it as it stops ``watch`` (``cli/sigterm.py``), between two
records, with no line of its own. SIGTERM's and SIGHUP's default action ended it where it
stood: a record cut in the middle on a pipe, the parent told of a death by signal rather than
an exit code.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from typing import Any, Final

from taskdaemon.pipeline.cli.log_options import LEVEL_CHOICES, level_name
from taskdaemon.pipeline.cli.options import (
    add_interval_option,
    add_source_option,
    source_exit_code,
    whole_number,
)
from taskdaemon.pipeline.cli.refusal import refuse, say
from taskdaemon.pipeline.durations import log_time
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError, no_such_stage
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.terminal_text import json_shown, shown

__all__ = ["register"]

#: After the run ended, polls go on until the run's last lifecycle record is stored and a
#: poll finds nothing more (the log writer may trail the span writer), at most this long: a
#: run killed outright, or logged above INFO, has no such record.
_DRAIN_SECONDS = 5.0


def register(subparsers: Any) -> None:
    """Add the ``logs`` sub-command."""
    parser = subparsers.add_parser(
        "logs",
        help="print a run's log records (lifecycle, decisions, command output)",
        description="Print a run's log records from the embedded store (or a debug dump): "
        "lifecycle records, engine decisions, command output and handlers' own logging, "
        "in order. Exit codes: 0 ok, 1 the run (or its --stage or --attempt) was not found or "
        "the store cannot answer, 2 invalid arguments, 130 interrupted.",
    )
    parser.add_argument("run_id", metavar="RUN", help="run id, or a unique prefix (4+ hex)")
    parser.add_argument("--stage", help="only this stage's records")
    parser.add_argument(
        "--attempt",
        type=whole_number,
        metavar="N",
        help="with --stage: only the records of its attempt N (1 is the first try)",
    )
    parser.add_argument(
        "--level",
        type=level_name,
        metavar="LEVEL",
        help=f"{LEVEL_CHOICES}: this level and above (default: every level stored)",
    )
    parser.add_argument("--follow", "-f", action="store_true", help="poll until the run ends")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    add_interval_option(parser)
    add_source_option(parser, forms="sqlite:///PATH or dump:///PATH.tar.gz")
    parser.set_defaults(func=logs_command, writes_home=False)  # cli._foreign_home


def _text(row: Any) -> str:
    where = row.stage or "run"
    if row.stage and row.instance is not None and row.attempt is not None:
        where = f"{row.stage}.{row.instance}.{row.attempt}"
    stream = row.attributes.get("log.iostream")
    head = f"{where} [{stream}] " if stream else f"{where} "
    # The engine's own records name their run or stage first ("run ID of P started", "stage
    # a.0.1 started", "a.0.1 waits for a worker slot"): the column would say it twice.
    if not stream and row.body.startswith((head, f"stage {head}")):
        head = ""
    return shown(f"{log_time(row.time_ns)} {row.level:<7} {head}{row.body}")


#: Seconds ``--follow`` waits for a whole run id to be stored (``watch``'s bound).
APPEAR_TIMEOUT = 30.0


def _wait_for_run(source: Any, run_id: str, interval: float) -> None:
    """Return once the store holds run ``run_id``; RunNotFoundError after
    :data:`APPEAR_TIMEOUT` seconds without it."""
    deadline = time.monotonic() + APPEAR_TIMEOUT
    while True:
        try:
            if not source.missing:
                source.run_start(run_id)
                return
        except RunNotFoundError:
            pass
        if time.monotonic() >= deadline:
            raise RunNotFoundError(
                f"no run {run_id} in {source.path} (waited {APPEAR_TIMEOUT:g} s for it)"
            )
        time.sleep(interval)


def logs_command(args: argparse.Namespace) -> int:
    """Print (and with ``--follow`` keep printing) the run's records; returns the exit code."""
    if args.attempt is not None and args.stage is None:
        return refuse("logs", 2, "--attempt needs --stage: which stage's attempt")
    from taskdaemon.pipeline.cli.sigterm import exit_code, sigterm_raises  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.log_read import connect_store  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.sources import open_source  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.store import SpanStore  # noqa: PLC0415

    try:
        source = open_source(args.source)
    except SpanSourceError as error:
        return refuse("logs", source_exit_code(error), str(error))
    try:
        dump = _dump_path(args.source)
        if not isinstance(source, SpanStore) and dump is None:
            return refuse(
                "logs",
                2,
                "run logs are kept in the embedded store (a sqlite:/// source) and in debug "
                "dumps (dump:///)",
            )
        if dump is not None:  # a dump is a finished snapshot: --follow has nothing to wait for
            record = source.get_run(args.run_id)
            unknown = _unknown_stage(args.stage, record, args.attempt)
            if unknown is not None:
                return refuse("logs", 1, unknown)
            if not _write(args, _dump_rows(dump, record.run_id, args)):
                _say_none(args, record.run_id)
            return 0
        assert isinstance(source, SpanStore)
        run_id = source.resolve_run_id(args.run_id)
        if args.follow:
            _wait_for_run(source, run_id, args.interval)
        if args.stage is not None:
            attempt = None if args.follow else args.attempt  # a later try may yet come
            unknown = _unknown_stage(args.stage, source.get_run(run_id), attempt)
            if unknown is not None:
                return refuse("logs", 1, unknown)
        if source.missing:  # the home's store, no run made yet: a full id is not resolved
            raise RunNotFoundError(f"no run {run_id} in {source.path}")
        conn = connect_store(source.path)
        try:
            with sigterm_raises():
                return _print(args, conn, run_id, source)
        finally:
            conn.close()
    except RunNotFoundError as error:
        return refuse("logs", 1, str(error))
    except (SpanSourceError, sqlite3.Error) as error:
        return refuse("logs", source_exit_code(error), str(error))
    except KeyboardInterrupt as stop:
        return exit_code(stop)
    finally:
        source.close()


def _unknown_stage(stage: str | None, record: Any, attempt: int | None = None) -> str | None:
    """Why ``--stage`` names no stage of the run, or ``--attempt`` no attempt it made, if so:
    a stage that logged nothing prints nothing, and a typo must not look the same."""
    stages = [item.name for item in record.stages]
    if stage is None:
        return None
    if stage not in stages:
        return f"run {record.run_id} of pipeline {record.pipeline!r} {no_such_stage(stage, stages)}"
    made = sorted({item.attempt for item in record.stages[stages.index(stage)].attempts})
    if attempt is None or attempt in made:
        return None
    tries = ", ".join(map(str, made)) if made else "none: it never started"
    run = record.run_id
    return f"stage {quote(stage)} of run {run} has no attempt {attempt} (its attempts: {tries})"


def _dump_path(url: str | None) -> str | None:
    """The archive's path when ``url`` names a debug dump (its run logs are in it)."""
    from taskdaemon.pipeline.tracking.source_urls import logs_place  # noqa: PLC0415

    place = logs_place(url) if url is not None else None
    return str(place.path) if place is not None and place.dump else None


def _dump_rows(path: str, run_id: str, args: argparse.Namespace) -> list[Any]:
    """The dump's records of ``run_id``, filtered as ``read_logs`` filters the store's."""
    from taskdaemon.pipeline.log_levels import level_number, severity_number  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.dump_logs import dump_log_records  # noqa: PLC0415

    rows = dump_log_records(path, run_id, stage=args.stage)
    if args.attempt is not None:
        rows = [row for row in rows if row.attempt == args.attempt]
    if args.level is None:
        return rows
    lowest = severity_number(level_number(args.level))
    return [row for row in rows if row.severity >= lowest]


#: What ``logs`` adds of a run whose process died (``os._exit`` in a handler, ``kill -9``):
#: the records it logged in its last moments were still queued for the store, and are gone.
#: docs/span-store.md, "A process killed outright".
_CUT_SHORT: Final = (
    "its process ended before it could store its end, so what it logged last may be missing"
)


def _say_none(args: argparse.Namespace, run_id: str) -> None:
    """On stderr, that nothing matched: an empty stdout alone read as a command that failed
    (or filtered on a typo, which ``_unknown_stage`` refuses), not as a stage that logged
    nothing (one skipped, say). Stdout stays empty for a script."""
    which = "" if args.stage is None else f" of stage {quote(args.stage)}"
    if args.attempt is not None:
        which += f" attempt {args.attempt}"
    level = "" if args.level is None else f" at level {args.level} or above"
    say("logs", f"no records{which}{level} in run {run_id}")


def _write(args: argparse.Namespace, rows: list[Any]) -> int:
    """Write ``rows``; how many."""
    for row in rows:
        if args.json:
            line = json_shown(json.dumps(row.as_json(), default=str, ensure_ascii=False))
        else:
            line = _text(row)
        sys.stdout.write(line + "\n")  # one call: a stop (SIGTERM) never comes mid-record
    sys.stdout.flush()
    return len(rows)


def _print(args: argparse.Namespace, conn: sqlite3.Connection, run_id: str, source: Any) -> int:
    from taskdaemon.pipeline.tracking.log_read import (  # noqa: PLC0415
        read_logs,
        run_end_logged,
        run_ended,
    )

    last = written = 0
    drain_until: float | None = None
    while True:
        interrupted = args.follow and source.is_interrupted(run_id)
        ended = args.follow and (interrupted or run_ended(conn, run_id))
        # Read before the rows: a record stored after this check is still read below.
        complete = ended and (interrupted or run_end_logged(conn, run_id))
        rows = read_logs(
            conn, run_id, stage=args.stage, level=args.level, after=last, attempt=args.attempt
        )
        written += _write(args, rows)
        if rows:
            last = rows[-1].id
        done = not args.follow
        if ended:
            now = time.monotonic()
            drain_until = drain_until if drain_until is not None else now + _DRAIN_SECONDS
            done = (complete and not rows) or now >= drain_until
        if done:
            if not written:
                _say_none(args, run_id)
            if interrupted or (not args.follow and source.is_interrupted(run_id)):
                say("logs", f"run {run_id} was interrupted: {_CUT_SHORT}")
            return 0
        time.sleep(args.interval)
