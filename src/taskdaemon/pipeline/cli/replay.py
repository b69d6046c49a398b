"""``taskdaemon replay RUN``: re-execute a recorded run from its stored spans, or step through it.

::

    taskdaemon replay RUN [FILE] [--source URL] [--from STAGE [--rerun-all]] [--verify] [--json]
                          [--dry-run] [--use-file] [--input K=V ...] [--stage-output S=F.json ...]
                          [--workspace DIR]
    taskdaemon replay RUN ... --break STAGE[:CEL] ... [--break-on-failure]
    taskdaemon replay RUN --step [--source URL]

* The replay is a new run (a new trace) of the recorded definition and request with today's
  handler code, linked to the original (``replay_of``), with a workspace of its own as a
  run has (``DIR/<run_id>``, ``--workspace DIR``, default ``$TASKDAEMON_HOME/workspaces``).
  ``--from STAGE`` feeds what comes before STAGE from the record (those stages show
  ``replayed``, in the progress lines as in the summary, unless the replay stopped before
  one started: ``skipped``, as ``runs show`` says), and starts the replay's workspace
  as a copy of the recorded run's (``DIR/<recorded run id>``, left untouched), so STAGE finds
  the files the fed stages left. A fan-out (``on_event``) stage run again there, that some
  instances of did not succeed in, runs only those again: the others are reused from the
  record, shown ``replayed`` (``replay/plan.py`` says when and why); ``--rerun-all`` runs
  them all. ``FILE`` is used when it is the recorded definition; when it
  differs the command says how and runs it only with ``--use-file`` (said once: a note when
  it runs, else the error). ``--dry-run`` prints what would run and what would be fed;
  it runs nothing, so it refuses what acts only while a replay runs (``--verify``, ``--json``,
  ``--workspace``, ``--break``, ``--break-on-failure``) in one line, exit 2.
* A value the replay needs that was redacted or cut stops it before anything runs, with one
  error naming every such value and how to supply it (``--input``, ``--stage-output``).
* ``--verify`` compares each re-executed stage with the record and prints the divergence
  report (``--json`` for JSON); a record with no end (the run still going, or interrupted) is
  refused (``ReplayPlan.check``); without ``--verify`` a note says the record is incomplete.
* A span store that cannot be opened (the record read from another source, ``--source``) ends
  the replay, as ``run``, with one line saying its run is not stored (``run.say_unstored``).
* ``-q`` means what ``run -q`` means (docs/architecture.md, "Command line"): the replay's run id
  alone on stdout, no progress lines, and on stderr its notes and a failed replay's reason;
  ``--verify``'s divergence is its exit code, 3. ``--json`` (a report on stdout), ``--step`` and
  ``--dry-run`` (no run, no run id) refuse it in one line, exit 2.
* ``--break STAGE[:CEL]`` / ``--break-on-failure`` (and ``TASKDAEMON_BREAKPOINTS``) run the
  replay under the debugger's prompt, as ``debug FILE`` runs a file (``cli/replay_debug.py``);
  fed stages and reused instances never pause. Checked before anything runs (exit 2).
* ``--step`` executes nothing: it walks the recorded run event by event, printing each event
  and the state of every stage after it, at the debugger's prompt (``cli/_step_prompt.py``:
  history, completion, ``help``; one command a line on stdin when it is not a terminal):
  ``next`` (or an empty line), ``prev``, ``goto T`` (``12.5s`` from the run's start),
  ``where``, ``inputs STAGE``, ``outputs STAGE``, ``logs STAGE`` (all at the current
  instant), ``quit``. SIGTERM and SIGHUP leave the prompt as Ctrl-C leaves ``debug FILE``'s
  (``cli/sigterm.py``): the terminal as it was before the prompt, the history saved, exit 143
  or 129 (their default action left the terminal without its echo).
* SIGINT, SIGTERM and SIGHUP cancel the replay as they cancel ``run``
  (``cli/stop_signals.py``): its run is recorded ``cancelled``, never left ``interrupted``; a
  second signal exits at once. SIGUSR1 writes a dump of its run, as for ``run``'s.
* Exit codes: 0 the replay succeeded (and, with ``--verify``, did not diverge), 1 it failed or
  the run was not found, 2 invalid arguments or a value the replay cannot get, 3 divergence,
  130 cancelled by Ctrl-C (SIGINT; SIGTERM gives 143, SIGHUP 129).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from taskdaemon.pipeline.cli.breakpoints import add_break_options, checked_breakpoints
from taskdaemon.pipeline.cli.log_options import add_log_level_option, settings_overrides
from taskdaemon.pipeline.cli.options import (
    add_input_options,
    add_source_option,
    add_workspace_option,
    source_exit_code,
    workspace_root,
)
from taskdaemon.pipeline.cli.refusal import located, printable, refuse
from taskdaemon.pipeline.cli.signal_keeper import SignalKeeper
from taskdaemon.pipeline.cli.stage_exit import exits_said
from taskdaemon.pipeline.errors import (
    ConfigError,
    PipelineError,
    RunNotFoundError,
    SettingsError,
    SpanSourceError,
)
from taskdaemon.pipeline.event_loop import run as run_loop
from taskdaemon.pipeline.home import home_directory
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.status_rules import INTERRUPTED
from taskdaemon.pipeline.terminal_text import json_shown, shown

__all__ = ["register"]

EXIT_DIVERGED = 3

DESCRIPTION = """\
Run a recorded run again from its stored spans, as a new run linked to the original, with
today's handler code: the recorded definition (or FILE: used when it is the recorded one, and
only with --use-file when it differs) and the recorded request.

The replay works in DIR/<run_id> as a run does (--workspace DIR). --from STAGE feeds the
stages before STAGE from the record (they show as replayed) and runs STAGE and what follows,
in a workspace that starts as a copy of the recorded run's (the files the fed stages left).
Of a fan-out stage run again, only the instances that did not succeed run: those that did
are reused from the record (replayed); --rerun-all runs them all.
--verify compares every re-executed stage's outputs and published events with the record
(the replay's own run id read as the recorded one). --dry-run says what would run and what
would be fed. A value the replay needs that was redacted or cut stops it first, naming each
one and how to supply it (--input KEY=VALUE, --stage-output STAGE=FILE.json).

--break STAGE[:CEL] and --break-on-failure run the replay under the debugger's prompt, as
'debug FILE' runs a file (the same breakpoints, prompt and commands); fed stages and reused
instances never pause.

--step runs nothing: it walks the recorded run event by event and prints the state of every
stage after each, at the debugger's prompt (history, Tab completion, help). Commands (at the
prompt, or one per line on stdin): next (or an empty line), prev, goto T (12.5s from the
run's start), where, inputs STAGE, outputs STAGE, logs STAGE (as they stood at that
instant), quit.
"""


def register(subparsers: Any) -> None:
    """Add the ``replay`` sub-command."""
    parser = subparsers.add_parser(
        "replay",
        help="replay a recorded run from its spans, resume it from a stage, or step through it",
        description=DESCRIPTION,
        epilog="Exit codes: 0 success, 1 the replay failed or the run was not found, "
        "2 invalid arguments or a value the replay cannot get, 3 divergence (--verify), "
        "130 cancelled by Ctrl-C (143 by SIGTERM, 129 by SIGHUP: the terminal closed).",
    )
    parser.add_argument(
        "run_id",
        metavar="RUN",
        help="the recorded run's id (in the embedded store, a unique prefix is enough)",
    )
    parser.add_argument("file", metavar="FILE", nargs="?", help="a definition file to run")
    add_source_option(parser)
    parser.add_argument("--from", dest="from_stage", metavar="STAGE", help="run from this stage")
    parser.add_argument(
        "--rerun-all",
        action="store_true",
        help="with --from: run every instance of a fan-out again, not only those that failed",
    )
    parser.add_argument(
        "--verify", action="store_true", help="compare with the record (exit 3 when they differ)"
    )
    parser.add_argument("--json", action="store_true", help="the divergence report as JSON")
    parser.add_argument("--dry-run", action="store_true", help="say what would run; run nothing")
    parser.add_argument("--use-file", action="store_true", help="run FILE even if it differs")
    add_input_options(parser)
    parser.add_argument(
        "--stage-output", action="append", default=[], metavar="STAGE=FILE.json",
        help="supply a fed stage's outputs; repeatable",
    )  # fmt: skip
    parser.add_argument("--step", action="store_true", help="walk the recorded run, run nothing")
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only the replay's run id (no summary, no --verify report: exit 3 says a "
        "divergence) and no progress lines; notes and a failed replay's reason still go to "
        "stderr",
    )
    for option in ("--auto-approve", "--approve"):  # unlisted: each is refused (_APPROVALS)
        parser.add_argument(option, nargs="?", const=True, help=argparse.SUPPRESS)
    add_break_options(parser)
    add_workspace_option(parser)
    add_log_level_option(parser)
    parser.set_defaults(func=replay_command)


#: What ``replay --auto-approve`` / ``--approve STAGE`` (``run``'s options, given by habit) are
#: told. Decision: refused, not taken: a replay decides each approval as the recorded run's was
#: decided (``replay/run.py``), so that it runs what ran, and one never decided is rejected, so
#: that a replay never approves what nobody approved; an option granting approvals would make
#: a replay of a rejected release approve it. argparse said only "unrecognized arguments".
_APPROVALS = (
    "{} is run's: a replay decides each approval as the recorded run's was decided, and "
    "rejects one that never was (no replay approves what nobody approved)"
)


#: The options that only a replay that runs reads, by their ``args`` name: with ``--step``,
#: which runs nothing, each is refused, not ignored (``--step --from c`` walked the whole run
#: from its start, and ``--step --verify`` compared nothing, with no word said).
_FOR_A_RUN = {
    "file": "FILE",
    "from_stage": "--from",
    "rerun_all": "--rerun-all",
    "verify": "--verify",
    "json": "--json",
    "dry_run": "--dry-run",
    "use_file": "--use-file",
    "input": "--input",
    "input_file": "--input-file",
    "stage_output": "--stage-output",
    "workspace": "--workspace",
    "breaks": "--break",
    "break_on_failure": "--break-on-failure",
    "quiet": "-q",
}


#: Of :data:`_FOR_A_RUN`, the ones that act only while the replay runs, by their ``args`` name:
#: with ``--dry-run``, which runs nothing, each is refused, not ignored (``--dry-run --verify
#: --json`` printed the plan as text and compared nothing, with no word said). Decision: refused,
#: not a dry run in JSON: ``--json`` is ``--verify``'s report, and a dry run has none to give.
#: The options that shape the plan (FILE, ``--from``, ``--input``...) are the dry run's to show.
_WHILE_IT_RUNS = ("verify", "json", "workspace", "breaks", "break_on_failure", "quiet")


def _for_a_run(args: argparse.Namespace, names: Iterable[str] = _FOR_A_RUN) -> str | None:
    """The options of :data:`_FOR_A_RUN` named in ``names`` that ``args`` gives, said as
    ``--step`` and ``--dry-run`` refuse them, or None when it gives none."""
    given = [_FOR_A_RUN[name] for name in names if getattr(args, name, None)]
    if not given:
        return None
    return f"{', '.join(given)} {'acts' if len(given) == 1 else 'act'} on a replay that runs"


#: The options that act only beside another, by their ``args`` name: (the option, the one it
#: needs, that one's ``args`` name, what it does). Given alone, each is refused, not ignored
#: (``replay RUN --json`` ran the whole replay and printed its table, no JSON, with no word).
_NEEDS = (
    ("json", "--json", "--verify", "verify", "it prints --verify's report as JSON"),
    ("rerun_all", "--rerun-all", "--from", "from_stage", "without it every stage runs again"),
    ("use_file", "--use-file", "FILE", "file", "the definition file to run instead"),
)


def _alone(args: argparse.Namespace) -> str | None:
    """The first option of :data:`_NEEDS` given without the one it needs, said in one line."""
    for name, option, needed, needed_name, why in _NEEDS:
        if getattr(args, name) and not getattr(args, needed_name):
            return f"{option} needs {needed} ({why})"
    return None


def replay_command(args: argparse.Namespace) -> int:
    """Run the ``replay`` command named by ``args``; returns the exit code."""
    from taskdaemon.pipeline.cli.inputs import parse_inputs  # noqa: PLC0415
    from taskdaemon.pipeline.replay import (  # noqa: PLC0415
        ReplayError,
        build_plan,
        load_recorded_run,
    )
    from taskdaemon.pipeline.replay.plan_values import load_stage_output  # noqa: PLC0415
    from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

    if args.auto_approve or args.approve:
        option = "--auto-approve" if args.auto_approve else "--approve"
        return refuse("replay", 2, _APPROVALS.format(option))
    if args.step:
        if given := _for_a_run(args):
            return refuse("replay", 2, f"--step runs nothing: {given}")
        return _step(args)
    if args.dry_run and (given := _for_a_run(args, _WHILE_IT_RUNS)):
        return refuse("replay", 2, f"--dry-run runs nothing: {given}")
    if alone := _alone(args):
        return refuse("replay", 2, alone)
    if args.quiet and args.json:
        return refuse("replay", 2, "-q prints only the run id, --json the report: give one")
    try:
        inputs = parse_inputs(args.input, args.input_file)
        stage_outputs = dict(load_stage_output(spec) for spec in args.stage_output)
    except ValueError as error:
        return refuse("replay", 2, str(error))
    pipeline = None
    try:
        if args.file is not None:
            from taskdaemon.pipeline.cli.validate import load_warned  # noqa: PLC0415

            pipeline = load_warned(args.file)
        recorded = load_recorded_run(args.run_id, args.source or _default_source())
        plan = build_plan(
            recorded,
            pipeline_file=pipeline,
            use_file=args.use_file,
            from_stage=args.from_stage,
            inputs=inputs,
            stage_outputs=stage_outputs,
            rerun_all=args.rerun_all,
        )
    except ConfigError as error:
        said = printable(str(error)) if args.file is None else located(str(error), args.file)
        print(said, file=sys.stderr, flush=True)
        return 2
    except RunNotFoundError as error:
        return refuse("replay", 1, str(error))
    except SpanSourceError as error:
        return refuse("replay", source_exit_code(error), str(error))
    except ReplayError as error:
        return refuse("replay", 2, str(error))
    for note in plan.notes:  # a note quotes the record (who resumed a breakpoint, say)
        print(f"note: {shown(note)}", file=sys.stderr)
    # A file not used is said once, as the missing definition (``plan.missing``).
    if plan.pipeline is not None and plan.changes is not None and plan.changes.any:
        print(f"note: the file differs from the recorded definition: {plan.changes.describe()}",
              file=sys.stderr)  # fmt: skip
    no_end = ""
    if plan.recorded.status == "running":
        no_end = _no_end(recorded.run_id, args.source or _default_source())
        if not args.verify:  # --verify refuses it in these words (check)
            print(f"note: run {recorded.run_id} {no_end}: its record is incomplete",
                  file=sys.stderr)  # fmt: skip
    if args.dry_run:  # names as recorded: a span source's (an OTLP JSON file's) own text
        header = f"replay of run {recorded.run_id} ({recorded.pipeline}), nothing executed:"
        print(printable("\n".join([header, *plan.describe()])))
        for missing in plan.missing:
            print(printable(f"missing: {missing.describe()}"))
        return 2 if plan.missing else 0
    try:
        plan.check(verify=args.verify, no_end=no_end)
    except ReplayError as error:
        return refuse("replay", 2, str(error))
    env = load_settings().breakpoints
    try:  # checked before anything runs, as ``run`` and ``debug FILE`` check them
        breakpoints = checked_breakpoints(plan.check(), args, env)
    except ValueError as error:
        return refuse("replay", 2, str(error))
    if breakpoints:
        from taskdaemon.pipeline.cli.replay_debug import replay_at_prompt  # noqa: PLC0415

        return replay_at_prompt(args, plan, env, execute_replay)
    return run_loop(execute_replay(args, plan))  # as ``run``'s (event_loop.py)


def _as_recorded(result: Any, fed: Any) -> Any:
    """``result`` with its fed stages as the record tells them, for the summary: ``replayed``
    (a status the engine has not), each execution numbered as the attempts the record made of
    its instance, so that ATTEMPTS counts them, as ``runs show`` does
    (``records.AttemptRecord.attempts_made``). A fed stage the replay stopped before it started
    (queued for a slot when a fed failure ended the run) stays ``skipped``: it was fed nothing,
    and has no span to say ``replayed`` in ``runs show``, the DAG or the web page."""
    from taskdaemon.pipeline.state import StageStatus  # noqa: PLC0415

    executions = dict(result.executions)
    for stage, instances in fed.items():
        executions[stage] = tuple(
            replace(ex, attempt=instances[ex.instance].original.attempts_made)
            if ex.instance in instances
            else ex
            for ex in executions.get(stage, ())
        )
    started = [stage for stage in fed if result.stage_status.get(stage) != StageStatus.SKIPPED]
    statuses = {**result.stage_status, **dict.fromkeys(started, "replayed")}
    return replace(result, stage_status=statuses, executions=executions)


def _store_workspaces(args: argparse.Namespace, root: str) -> list[str]:
    """Where else the recorded run's workspace may be: the ``workspaces`` folder beside the
    embedded store ``--source`` names, when it is another home's (its ``run`` kept its
    workspaces there, as ``TASKDAEMON_HOME`` lays them out) and no ``--workspace`` was given.
    Decision: looked for there rather than only said missing, since a record copied or read
    from another home is most often read with that home still in place; a source that is not
    a store file (Tempo, Jaeger, an OTLP file) says nothing of where its runs worked."""
    from taskdaemon.pipeline.tracking.source_urls import sqlite_path  # noqa: PLC0415

    if args.workspace or not (args.source or "").startswith("sqlite:"):
        return []
    try:
        beside = str(sqlite_path(args.source, warn=False).absolute().parent / "workspaces")
    except SpanSourceError:  # read already: a bad URL failed then
        return []
    return [] if beside == root else [beside]


def _default_source() -> str:
    from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

    return load_settings().span_source


async def execute_replay(args: argparse.Namespace, plan: Any, debugged: Any = None) -> int:
    """Run the checked ``plan`` as ``args`` ask; the exit code. ``debugged``: the thread that
    runs it under the debugger's prompt (``cli/replay_debug.py``), which gives the hooks."""
    from taskdaemon.pipeline.cli.monitoring import start_monitoring  # noqa: PLC0415
    from taskdaemon.pipeline.cli.run import say_quietly, say_unstored  # noqa: PLC0415
    from taskdaemon.pipeline.cli.run_progress import ProgressView  # noqa: PLC0415
    from taskdaemon.pipeline.cli.run_summary import render_summary  # noqa: PLC0415
    from taskdaemon.pipeline.cli.stop_signals import StopSignals  # noqa: PLC0415
    from taskdaemon.pipeline.cli.terminal_width import summary_width  # noqa: PLC0415
    from taskdaemon.pipeline.cli.validate import (  # noqa: PLC0415
        add_working_directory_to_path,
        resolve_issues,
    )
    from taskdaemon.pipeline.loops import LoopRegistry  # noqa: PLC0415
    from taskdaemon.pipeline.replay.plan import FED_TRUST  # noqa: PLC0415
    from taskdaemon.pipeline.replay.reuse import InstanceReuse  # noqa: PLC0415
    from taskdaemon.pipeline.replay.run import (  # noqa: PLC0415
        execute_plan,
        recorded_workspace,
    )
    from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

    add_working_directory_to_path()
    registry = LoopRegistry.default()
    pipeline = plan.pipeline
    # Only stages that run again need their handler here: fed stages never call theirs.
    rerun = replace(pipeline, stages=tuple(s for s in pipeline.stages if s.name in set(plan.rerun)))
    issues = resolve_issues(rerun, registry)
    if issues:
        print("\n".join(issues), file=sys.stderr, flush=True)
        return 2
    reuse = InstanceReuse(plan)  # which candidates are reused, decided as each starts
    # At the prompt, a pause names no ``debug attach``: its user is at one (``debug FILE``'s).
    observers = (
        []
        if args.quiet
        else [ProgressView(sys.stderr, replayed=plan.fed, reused=reuse, attach_hint=not debugged)]
    )
    # As ``run`` makes a run's: without one a handler that keeps files in its workspace (the
    # example's) would write them into the current directory, and a stage reading them back
    # would fail.
    root = str(workspace_root(args))
    others = _store_workspaces(args, root)
    seed = recorded_workspace(root, plan, *others)
    if (plan.fed or plan.reused) and seed is None:
        print(
            f"note: the recorded run's workspace {Path(root) / plan.recorded.run_id} is not "
            f"there{''.join(f' nor in {other}' for other in others)}: the stages run again "
            "start in an empty workspace (a run made with --workspace DIR is found with the "
            "same --workspace DIR)",
            file=sys.stderr,
            flush=True,
        )
    elif seed is not None and os.path.dirname(seed) != root:
        print(f"note: the recorded run's workspace is taken from {seed}, beside the store "
              "it was read from", file=sys.stderr, flush=True)  # fmt: skip
    if plan.fed:  # what feeding trusts, said before it is trusted, as the dry run says it
        print(f"note: {FED_TRUST}", file=sys.stderr, flush=True)
    signals = StopSignals()  # Ctrl-C, SIGTERM, SIGHUP cancel the replay, as they cancel ``run``'s
    async with contextlib.AsyncExitStack() as stack:
        try:
            settings = load_settings(**settings_overrides(args))
            monitoring = start_monitoring(settings, serve=None, stack=stack)
        except OSError as error:
            raise SettingsError([("monitoring", str(error))]) from None
        stack.enter_context(exits_said(monitoring.observers))  # stage code's os._exit, said
        if debugged is None:
            signals.install()
            stack.callback(signals.remove)
            stack.callback(SignalKeeper().keep().close)  # the stop signals stay taskdaemon's
            hooks: dict[str, Any] = {
                "started": functools.partial(
                    _started, signals, monitoring, stack, definition=plan.pipeline
                )
            }
        else:  # the prompt's thread has the signals (``debug.prompt_over``)
            hooks = debugged.hooks(monitoring)
        try:
            outcome = await execute_plan(
                plan,
                resolver=registry,
                monitor=monitoring.monitor,
                observers=observers,
                verify=args.verify,
                workspace=root,
                seed_workspace=seed,
                reuse=reuse,
                **hooks,
            )
        except PipelineError as error:
            return refuse("replay", 2, str(error))
    result = outcome.result
    for line in reuse.notes():  # a candidate that ran, as the dry run said it might
        print(f"note: {line}", file=sys.stderr, flush=True)
    if args.quiet:
        say_quietly("replay", result)
    elif args.json and outcome.report is not None:
        print(json_shown(json.dumps(outcome.report.to_json(), indent=2, ensure_ascii=False)))
    else:
        print(render_summary(_as_recorded(result, plan.fed), pipeline, summary_width()))
        print(f"replay of run {plan.recorded.run_id}")
        if outcome.report is not None:
            print(outcome.report.render_table())
    say_unstored("replay", result.run_id, monitoring.unstored())
    if outcome.report is not None and outcome.report.diverged:
        return EXIT_DIVERGED
    if result.succeeded:
        return 0
    stopped = signals.exit_code()
    if debugged is not None and debugged.interrupted:
        stopped = 128 + debugged.interrupted  # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
    return stopped if stopped is not None and str(result.status) == "cancelled" else 1


def _started(
    signals: Any,
    monitoring: Any,
    stack: contextlib.AsyncExitStack,
    engine: Any,
    handle: Any,
    *,
    definition: Any,
) -> None:
    """The replay's run started: the stop signals cancel it, and SIGUSR1 writes a dump of it,
    as for ``run``'s (a replay is a run of its own: that signal's default action ended it,
    left ``interrupted``), with the ``definition`` replayed."""
    from taskdaemon.pipeline.cli._dump_hook import dump_writer, install_dump_signal  # noqa: PLC0415

    signals.bind(handle.run_id, handle.cancel)
    writer = dump_writer(engine, monitoring.observers, definition=definition)
    stack.callback(install_dump_signal(engine, writer))


# --- --step -----------------------------------------------------------------------------------


def _no_end(run_id: str, url: str) -> str:
    """What a note says of run ``run_id``, whose record has no end: ``was interrupted (its
    process died)`` when the source judges that no writer will end it (the embedded store's
    rule, as ``runs list`` says ``interrupted``), else ``is still running (or was
    interrupted)``: a source that does not judge (Tempo, a file) cannot tell them apart. One
    more read of the source, for a record with no end only."""
    from taskdaemon.pipeline.tracking.sources import open_source  # noqa: PLC0415

    try:
        source = open_source(url)
        try:
            status = source.get_run(run_id).status
        finally:
            source.close()
    except (RunNotFoundError, SpanSourceError):
        status = None
    if status == INTERRUPTED:
        return "was interrupted (its process died)"
    return "is still running (or was interrupted)"


def _step(args: argparse.Namespace) -> int:
    """``--step``: the debugger's prompt (``cli/_step_prompt.py``) over the recorded run."""
    from taskdaemon.pipeline.cli._step_prompt import StepPrompt, log_reader_for  # noqa: PLC0415
    from taskdaemon.pipeline.cli.sigterm import exit_code, sigterm_raises  # noqa: PLC0415
    from taskdaemon.pipeline.replay.walk import RecordedWalk  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.sources import (  # noqa: PLC0415
        default_source_url,
        open_source,
    )

    url = args.source or _default_source()
    try:
        source = open_source(url)
        try:
            spans = source.get_trace(args.run_id)
        finally:
            source.close()
    except RunNotFoundError as error:
        return refuse("replay", 1, str(error))
    except SpanSourceError as error:
        return refuse("replay", source_exit_code(error), str(error))
    try:
        walk = RecordedWalk(spans)
    except ValueError as error:
        return refuse("replay", 1, f"run {args.run_id}: {error}")
    if walk.open:  # said as replay without --step says it: the walk ends before the run did
        print(
            f"note: run {args.run_id} {_no_end(args.run_id, url)}: its record is "
            "incomplete; the walk ends at its last recorded event",
            file=sys.stderr,
            flush=True,
        )
    logs = log_reader_for(url, default_source_url())
    prompt = StepPrompt(walk, logs=logs, history=home_directory() / "step_history")
    with sigterm_raises():
        try:
            prompt.run()
        except KeyboardInterrupt as stop:
            return exit_code(stop)
    return 0
