"""``taskdaemon dump RUN [-o FILE]``: write a debug dump (``.tar.gz``) of a run.

A run still served by its ``taskdaemon run`` / ``debug`` process (a control socket under
``$TASKDAEMON_HOME/control/``) is dumped by that process, with its live engine state; any other
run is dumped from the span source (``--source``, else ``TASKDAEMON_SPAN_SOURCE``, else the
embedded store) without it (the manifest says what is missing), and so is a run whose socket
is stale (its process was killed: the run reads ``interrupted``). The default file is
``$TASKDAEMON_HOME/dumps/<run_id>-<time>.tar.gz``; the written path goes to stdout. Exit codes:
0 written, 1 no such run or the dump failed (one line on stderr), 2 bad arguments. See
``dump.py`` for the contents and docs/debugging.md for what a dump may hold.
"""

from __future__ import annotations

import argparse
from typing import Any

from taskdaemon.pipeline.cli.options import add_source_option, source_exit_code
from taskdaemon.pipeline.cli.output_file import output_path
from taskdaemon.pipeline.cli.refusal import refuse, say
from taskdaemon.pipeline.errors import PipelineError, RunNotFoundError, SpanSourceError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``dump`` sub-command."""
    parser = subparsers.add_parser(
        "dump",
        help="write a debug dump (.tar.gz) of a run",
        description="Write a debug dump (.tar.gz) of a run: its spans, record, definition, DAG, "
        "environment and, for a run still served by its process, its live engine state. The "
        "written path goes to stdout. Exit codes: 0 written, 1 no such run or the dump failed, "
        "2 bad arguments.",
    )
    parser.add_argument("run_id", metavar="RUN", help="run id (a unique prefix is enough)")
    parser.add_argument(
        "-o",
        "--output",
        type=output_path,
        metavar="FILE",
        help="the archive to write, or a directory to write it in, made if missing when "
        "its name ends with / (default: "
        "$TASKDAEMON_HOME/dumps/<run_id>-<time>.tar.gz)",
    )
    add_source_option(parser)
    parser.set_defaults(func=dump_command)


def dump_command(args: argparse.Namespace) -> int:
    """Write the dump; returns the exit code."""
    from taskdaemon.pipeline.control import (  # noqa: PLC0415
        send_request,
        served_runs,
        shown_control_dir,
    )
    from taskdaemon.pipeline.dump import dump_output  # noqa: PLC0415

    output = dump_output(args.output) if args.output else None
    # An empty RUN names no run here (every id starts with it); the source refuses it. A
    # source given is read whatever the home serves: its control folder is not looked at.
    served: list[str] = []
    if args.run_id and not args.source:
        try:
            served = [run for run in served_runs() if run.startswith(args.run_id)]
        except OSError as exc:  # a path too long, another user's folder (EACCES): a traceback
            return refuse(
                "dump",
                1,
                f"cannot list the runs served under {shown_control_dir()}: {exc.strerror or exc}",
            )
    if len(served) == 1:
        _say_settling(send_request, served[0])
        try:
            answer = send_request(
                served[0], {"op": "debug", "action": "dump", "path": output}, timeout=120.0
            )
        except RunNotFoundError:
            # A stale socket: its process ended without removing it (``kill -9``, a crash).
            # The run's spans are in the store: dumped from there, as any ended run is.
            return _from_source(served[0], output, None)
        except PipelineError as exc:
            return refuse("dump", 1, str(exc))
        print(answer["path"], flush=True)
        if answer.get("missing"):  # the run's process has no spans of it to dump
            say("dump", answer["missing"])
        return 0
    return _from_source(args.run_id, output, args.source)


def _say_settling(send_request: Any, run_id: str) -> None:
    """Say first, in one line, that the served run's dump waits for its telemetry to load, and
    how long at most, as its prompt's ``dump`` and its SIGUSR1 say (``cli/_dump_hook.py``):
    the dump's answer comes only once it is written, up to a minute later. Nothing when it
    does not wait; nothing either from a process that cannot answer (older than
    ``settling``, or gone: the dump's own request says what is wrong)."""
    try:
        seconds = send_request(run_id, {"op": "debug", "action": "settling"}, timeout=10.0)
    except PipelineError:
        return
    if seconds.get("seconds"):
        say("dump", f"waiting for telemetry to settle first ({seconds['seconds']:g}s at most)")


def _from_source(run_id: str, output: str | None, url: str | None) -> int:
    from taskdaemon.pipeline.dump import default_dump_path, stored_logs, write_dump  # noqa: PLC0415
    from taskdaemon.pipeline.payloads import PayloadCapture  # noqa: PLC0415
    from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.sources import (  # noqa: PLC0415
        default_source_url,
        open_source,
    )

    settings = load_settings()
    try:
        source = open_source(url)
        try:
            resolve = getattr(source, "resolve_run_id", None)
            full_id = resolve(run_id) if callable(resolve) else run_id
            spans = source.get_trace(full_id)
            is_interrupted = getattr(source, "is_interrupted", None)  # the embedded store's
            interrupted = bool(is_interrupted(full_id)) if callable(is_interrupted) else False
        finally:
            source.close()
        full_id = spans[0].trace_id
        target = output or default_dump_path(settings.home, full_id)
        capture = PayloadCapture(
            max_bytes=settings.payload_max_bytes, redact_patterns=settings.redact_patterns
        )
        logs, logs_note = stored_logs(url or default_source_url(), full_id)
        try:
            written = write_dump(
                target,
                full_id,
                spans,
                settings=settings,
                capture=capture,
                logs=logs,
                logs_note=logs_note,
                interrupted=interrupted,
            )
        except OSError as exc:  # as dag -o and report -o say it, not the temporary's errno
            return refuse("dump", 1, f"cannot write {target}: {exc.strerror or exc}")
    except SpanSourceError as exc:
        return refuse("dump", source_exit_code(exc), str(exc).splitlines()[0])
    except (PipelineError, ValueError, OSError) as exc:
        return refuse("dump", 1, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    print(written.absolute(), flush=True)
    return 0
