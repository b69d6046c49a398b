"""``taskdaemon approve | publish | cancel | status``: act on a run in progress in another process.

::

    taskdaemon approve RUN STAGE [--reject [--reason TEXT]] [--by NAME] [--comment TEXT]
    taskdaemon publish RUN TYPE [--payload JSON]
    taskdaemon cancel RUN [--by NAME]
    taskdaemon status RUN

They work on any run in progress: they talk to the ``taskdaemon run`` process through the
control socket every run serves until it ends
(``$TASKDAEMON_HOME/control/<run_id>.sock``, see ``taskdaemon.pipeline.control``); RUN may be
any prefix naming exactly one served run. Exit codes: 0 done, 1 the run refused (e.g. the stage
is not waiting for an approval), 2 bad arguments, 3 no such run is served here (a run the home's
store has as ended is said to have ended). The run logs a decision it accepted on
``taskdaemon.audit``, with the comment and reason, as the HTTP API does (``approval_audit``).
What a command says it did repeats the caller's text (``--by``, the stage, the event type)
with its control characters escaped (``terminal_text.shown``), as a refusal does: a name
holding ESC or a line break would otherwise drive the terminal or forge a line.
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from taskdaemon.pipeline import control
from taskdaemon.pipeline.approval_audit import MAX_NOTE_CHARS, note_field
from taskdaemon.pipeline.bounded import BoundedInputError, loads_bounded
from taskdaemon.pipeline.cli.ended_runs import ended_run
from taskdaemon.pipeline.cli.refusal import refuse
from taskdaemon.pipeline.errors import PipelineError, RunNotFoundError
from taskdaemon.pipeline.terminal_text import shown

__all__ = ["register"]

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NO_RUN = 3


def register(subparsers: Any) -> None:
    """Add the ``approve``, ``publish``, ``cancel`` and ``status`` sub-commands."""
    home_help = "state directory (default: TASKDAEMON_HOME or ./.taskdaemon)"

    where = (
        "RUN is a run in progress on this machine: every taskdaemon run serves its run on a "
        "control socket under TASKDAEMON_HOME until it ends. RUN may be any prefix naming "
        "exactly one such run. Exit codes: 0 done, 1 the run refused, 2 bad arguments, 3 no "
        "such run in progress."
    )
    parser = subparsers.add_parser(
        "approve",
        help="approve (or --reject) a stage waiting for approval in a run in progress",
        description=f"Approve (or --reject) a stage waiting for approval. {where}",
    )
    parser.add_argument("run", metavar="RUN", help="run id (or a unique prefix)")
    parser.add_argument("stage", metavar="STAGE", help="the stage waiting for approval")
    parser.add_argument("--reject", action="store_true", help="refuse instead of approving")
    parser.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    parser.add_argument(
        "--comment",
        metavar="TEXT",
        help=f"why, in the run's audit log (at most {MAX_NOTE_CHARS} characters)",
    )
    parser.add_argument(
        "--reason",
        metavar="TEXT",
        help=f"with --reject: the reason, in the audit log (at most {MAX_NOTE_CHARS} characters)",
    )
    parser.add_argument("--home", metavar="DIR", help=home_help)
    parser.set_defaults(func=_approve)

    parser = subparsers.add_parser(
        "publish",
        help="publish an event into a run in progress",
        description=f"Publish an event into a run. {where}",
    )
    parser.add_argument("run", metavar="RUN", help="run id (or a unique prefix)")
    parser.add_argument("type", metavar="TYPE", help="event type, e.g. spec.ready")
    parser.add_argument(
        "--payload",
        metavar="JSON",
        default="{}",
        help="the event's payload, a JSON object (default {}): --payload '{\"ok\": true}'",
    )
    parser.add_argument("--home", metavar="DIR", help=home_help)
    parser.set_defaults(func=_publish)

    parser = subparsers.add_parser(
        "cancel", help="cancel a run in progress", description=f"Cancel a run. {where}"
    )
    parser.add_argument("run", metavar="RUN", help="run id (or a unique prefix)")
    parser.add_argument(
        "--by", metavar="NAME", help="who cancels, in the run's record (default: your user name)"
    )
    parser.add_argument("--home", metavar="DIR", help=home_help)
    parser.set_defaults(func=_cancel)

    parser = subparsers.add_parser(
        "status",
        help="show the live status of a run in progress (JSON)",
        description=f"Show the live status of a run as JSON. {where}",
    )
    parser.add_argument("run", metavar="RUN", help="run id (or a unique prefix)")
    parser.add_argument("--home", metavar="DIR", help=home_help)
    parser.set_defaults(func=_status)


def _call(command: str, request: dict[str, Any], args: argparse.Namespace) -> int:
    try:
        response = control.send_request(args.run, request, home=args.home)
    except RunNotFoundError as error:
        return refuse(command, EXIT_NO_RUN, ended_run(args.run, args.home) or str(error))
    except PipelineError as error:
        return refuse(command, EXIT_REFUSED, str(error))
    except OSError as error:
        return refuse(command, EXIT_REFUSED, f"cannot reach the run: {error}")
    if command == "status":
        # Not sorted: the stages in the pipeline's order, as every other view lists them.
        print(json.dumps(response.get("status", {}), indent=2))
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment nor the password database
        return "cli"


def _approve(args: argparse.Namespace) -> int:
    if args.reason and not args.reject:
        return refuse("approve", EXIT_USAGE, "--reason goes with --reject only")
    try:  # refused here, not only by the run: a line of usage, not the run's refusal
        notes = {name: note_field(vars(args), name) for name in ("by", "comment", "reason")}
    except ValueError as error:
        return refuse("approve", EXIT_USAGE, f"--{error}")
    by = notes.pop("by") or _user()
    op = "reject" if args.reject else "approve"
    code = _call("approve", {"op": op, "stage": args.stage, "by": by, **notes}, args)
    if code == 0:
        print(shown(f"{'rejected' if args.reject else 'approved'} {args.stage} (by {by})"))
    return code


def _publish(args: argparse.Namespace) -> int:
    try:
        payload = loads_bounded(args.payload)
    except BoundedInputError as error:  # "not JSON: …", "nested deeper than …"
        return refuse("publish", EXIT_USAGE, f"--payload is {error}")
    if not isinstance(payload, dict):
        return refuse("publish", EXIT_USAGE, "--payload must be a JSON object")
    code = _call("publish", {"op": "publish", "type": args.type, "payload": payload}, args)
    if code == 0:
        print(shown(f"published {args.type}"))
    return code


def _cancel(args: argparse.Namespace) -> int:
    try:  # as approve's --by
        by = note_field(vars(args), "by") or _user()
    except ValueError as error:
        return refuse("cancel", EXIT_USAGE, f"--{error}")
    code = _call("cancel", {"op": "cancel", "by": by}, args)
    if code == 0:
        print(shown(f"cancel requested (by {by})"))
    return code


def _status(args: argparse.Namespace) -> int:
    return _call("status", {"op": "status"}, args)
