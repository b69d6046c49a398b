"""The ``taskdaemon`` command: the composition root.

Each sub-command lives in its own module of this package exposing
``register(subparsers) -> None``, which adds its parser and sets ``func`` (``args -> int``, the
exit code). Only this package and ``settings.py`` build OpenTelemetry SDK providers.

Start-up time: :func:`main` imports only the module of the sub-command the command line names
(:data:`COMMANDS` maps each sub-command to its module), so ``taskdaemon runs list`` never loads
what ``run`` or ``serve`` need, and ``--version`` loads none. ``--help``, no sub-command, or an
unknown one register every module, so the usage and the error list all of them. A module's
top-level imports are what every use of its commands pays: heavy ones belong inside the
functions that need them (``tests/pipeline_cli_startup_test.py`` audits each command).

Modules:

* ``__main__``: ``python -m taskdaemon.pipeline.cli``, its process's end bounded as the
  console script's.
* ``run``: ``taskdaemon run FILE``: validate, run, show progress, summarise.
* ``debug``: ``taskdaemon debug``: a pipeline run under the debugger prompt, or a run
  elsewhere debugged.
* ``dump``: ``taskdaemon dump RUN``: a run's debug dump (``.tar.gz``).
* ``validate``: ``taskdaemon validate FILE...``: pipeline files checked without running them.
* ``approve``: ``taskdaemon approve | publish | cancel | status``, on a run in another
  process.
* ``dag``: ``taskdaemon dag``: a pipeline's DAG as DOT, JSON, Mermaid or SVG.
* ``runs``: ``taskdaemon runs list|show``: run history from stored spans.
* ``retention``: ``taskdaemon retention``: old runs deleted from the span store.
* ``logs``: ``taskdaemon logs RUN``: a run's log records from the store or a dump.
* ``replay``: ``taskdaemon replay RUN``: a recorded run re-executed, or stepped through.
* ``replay_debug``: ``replay RUN --break ...``: the replay under the debugger's prompt.
* ``watch``: ``taskdaemon watch RUN``: a run followed live, from any process.
* ``report``: ``taskdaemon report``: performance over stored runs.
* ``serve``: ``taskdaemon serve``: metrics, health and the run API, and a scheduled
  pipeline.
* ``ui``: ``taskdaemon ui``: the web page, read-only, over any span source.
* ``options``: options several commands declare, each defined once.
* ``inputs``: a run's request from ``--input KEY=VALUE`` and ``--input-file``.
* ``log_options``: ``--log-level`` and the parser of every option naming a level.
* ``approval_policy``: approvals granted on the command line (``--approve``,
  ``--auto-approve``).
* ``breakpoints``: ``--break``, ``--break-on-failure`` and ``TASKDAEMON_BREAKPOINTS``.
* ``output_file``: where ``dag`` and ``report`` write: stdout, or the file ``-o`` names.
* ``refusal``: a command's refusal, one line on stderr.
* ``terminal_width``: the width of the terminal written to, or None for a pipe or a file.
* ``run_progress``: ``run``'s progress lines on stderr, one per stage transition.
* ``run_summary``: ``run``'s summary table on stdout once the run has ended.
* ``run_tables``: the tables of ``runs list`` and ``runs show``, pure.
* ``terminal_state``: the terminal while a live table is drawn, its echo and cursor put back.
* ``sign_in``: a server's API credentials and where to sign in to its page and API, the
  token shown only to a terminal.
* ``telemetry``: the SDK providers built from the settings (the OTel composition root).
* ``otel_exporters``: the SDK exporter each ``OTEL_*_EXPORTER`` name stands for.
* ``unbuilt_exporters``: an exporter that cannot be built turned off alone.
* ``bounded_session``: the OTLP/HTTP exporters' HTTP session, a collector's answer read
  within bounds.
* ``masked_span_exporter``: span batches masked for values that became secrets after their
  spans ended.
* ``masked_log_exporter``: log batches masked likewise.
* ``observed_log_exporter``: a log exporter that counts what it failed to export.
* ``observed_metric_exporter``: a metric exporter that counts its failed exports.
* ``exporter_logs``: the exporters' own log lines: none per failed export unless asked, one
  per problem.
* ``export_streaks``: a failing collector said once as it starts failing and once as it
  recovers.
* ``export_health``: one signal's export outcomes, as ``/readyz`` reports them.
* ``span_losses``: what the span store and the exporters lost, said and counted.
* ``monitoring``: the monitoring wiring ``run``, ``serve`` and ``replay`` share.
* ``run_logging``: run logs wired to the monitor, the embedded store's log writer and a log
  exporter.
* ``run_ids``: trace and span ids chosen before the tracer exists.
* ``run_start``: ``run``'s start put on record before its telemetry loads.
* ``deferred``: ``run``'s stand-in observer while telemetry loads on a thread.
* ``deferred_start``: the start of that load, without holding up the first stage.
* ``pending_logs``: where a run's log records and output wait while telemetry loads.
* ``load_again``: the telemetry's load tried again after stage code took what it needs (the
  recursion limit, file descriptors).
* ``debug_socket``: the control socket's ``debug`` op for the runs this process serves.
* ``ended_runs``: the answer of the control commands for a run that ended, and the serving
  side's record of that end.
* ``_dump_hook``: debug dumps of this process's runs: the prompt, the API, ``dump RUN`` and
  ``SIGUSR1``.
* ``_prompt``: the machinery the interactive prompts share.
* ``_prompt_signals``: a signal arriving as a prompt starts to wait still reaches it.
* ``_debug_prompt``: the debugger prompt of ``taskdaemon debug``.
* ``_step_prompt``: the prompt of ``replay RUN --step`` over a recorded run.
* ``hidden_value``: a value typed unseen at the prompt (``set --secret``).
* ``stop_signals``: SIGINT, SIGTERM and SIGHUP for ``run`` and ``replay``: the first cancels
  the run, a second exits.
* ``sigterm``: SIGTERM and SIGHUP handled as Ctrl-C for the commands whose Ctrl-C is a
  ``KeyboardInterrupt``.
* ``hangup``: SIGHUP, the terminal gone: ``nohup`` honoured, the standard streams detached.
* ``signal_keeper``: the stop signals' handlers put back when stage code changed them.
* ``stage_exit``: ``os._exit`` called by stage code, said and stored first.
* ``stage_leftovers``: the threads and ``atexit`` hooks stage code leaves, each with its
  stage.
* ``process_end``: the process's end after its command returned: bounded, and said when
  something holds it.
* ``late_exit``: ``os._exit`` as a handler module binds it at import: the one of the moment
  it is called.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any, TextIO

from taskdaemon import __version__

if TYPE_CHECKING:  # typing's names only: --version imports nothing more
    from pathlib import Path
    from typing import NoReturn

__all__ = ["build_parser", "main"]

#: Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "run",
    "debug",
    "dump",
    "validate",
    "approve",
    "dag",
    "runs",
    "retention",
    "logs",
    "replay",
    "watch",
    "report",
    "serve",
    "ui",
)

#: The module registering each sub-command (a test checks it against what they register).
COMMANDS: dict[str, str] = {
    "run": "run",
    "debug": "debug",
    "dump": "dump",
    "validate": "validate",
    "approve": "approve",
    "publish": "approve",
    "cancel": "approve",
    "status": "approve",
    "dag": "dag",
    "runs": "runs",
    "retention": "retention",
    "logs": "logs",
    "replay": "replay",
    "watch": "watch",
    "report": "report",
    "serve": "serve",
    "ui": "ui",
}

_HELP = frozenset({"-h", "--help"})


def _modules_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The sub-command modules parsing ``argv`` needs (see the module docstring)."""
    # The top level has no option taking a value, so its first positional is the sub-command.
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command in COMMANDS:
        return (COMMANDS[command],)
    if command is None and "--version" in argv and not _HELP.intersection(argv):
        return ()
    return COMMAND_MODULES


def _help_width() -> int:
    """The width argparse formats help to: ``shutil.get_terminal_size().columns - 2``
    (``COLUMNS``, else the terminal of stdout, else 80), read without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns - 2


class _ParagraphFormatter(argparse.HelpFormatter):
    """argparse's formatter, keeping the paragraphs (blank-line separated) of a description or
    an epilog, each filled to the width: the default runs them into one paragraph, and the raw
    formatter kept their lines as written, 95 columns on a terminal of 60."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        return "\n\n".join(fill(part, width, indent) for part in text.split("\n\n"))


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose formatters get their width from :func:`_help_width` and keep
    a description's paragraphs (:class:`_ParagraphFormatter`), and whose usage errors are one
    line.

    argparse builds a formatter for every argument added (to check its metavar), and a
    formatter without a width imports ``shutil`` (with zlib, bz2 and lzma) to ask for the
    terminal's: every command paid that import. Sub-command parsers are of this class too
    (``add_subparsers`` uses the parent's class).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _ParagraphFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """A usage error in one line, exit 2: argparse's own prints the whole usage first
        (seven lines for ``runs list`` in 80 columns), and bad input gets one line here.

        A value that starts with ``-`` (``--since -5d``) reads as an option to argparse, which
        then says only that the option lacks its value: the line says how to give one.

        argparse quotes what it refused (``unrecognized arguments: --comment token=...``, a
        secret in a mistyped option's value): the line is redacted first, by shape and by the
        values of this process's environment that sit under secret names, and its control
        characters are escaped, as every refusal's (an argument holding ESC or OSC 52 would
        drive the reader's terminal)."""
        from taskdaemon.pipeline.redaction import redact_text  # noqa: PLC0415 - errors only
        from taskdaemon.pipeline.secret_values import (  # noqa: PLC0415
            remember_environment_secrets,
        )
        from taskdaemon.pipeline.terminal_text import shown  # noqa: PLC0415

        remember_environment_secrets()
        message = shown(redact_text(message))
        if message.endswith(("expected one argument", "expected at most one argument")):
            message += " (a value starting with '-' goes after '=': --option=-value)"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A value that is none of the choices gets the "did you mean" a definition's wrong
        name gets (``taskdaemon rnu``: the line listed all the commands and left the reader
        to find ``run`` among them)."""
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            meant = _meant(value, action.choices) if isinstance(value, str) else None
            if meant is None:
                raise
            hint = f", did you mean {meant}? (choose from"
            message = exc.message.replace(" (choose from", hint, 1)
            raise argparse.ArgumentError(action, message) from None

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        """An option's value of ``--`` (``--home=--``) is the text ``--``: Python 3.11's
        argparse dropped it as the end of the options, and handed the command an empty list
        for the value (a TypeError traceback at its first use)."""
        if action.option_strings and arg_strings == ["--"] and action.nargs in (None, "?"):
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)

    def _get_formatter(self) -> argparse.HelpFormatter:
        formatter: argparse.HelpFormatter = self.formatter_class(
            prog=self.prog,
            width=_help_width(),  # type: ignore[call-arg]
        )
        return formatter


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser: with ``argv``, only the sub-commands parsing it needs registered;
    without, every sub-command."""
    parser = _Parser(
        prog="taskdaemon",
        description="Run pipelines and observe them the OpenTelemetry way.",
    )
    parser.add_argument("--version", action="version", version=f"taskdaemon {__version__}")
    # Not required here: ``_dispatch`` says a missing one after the unknown options.
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES if argv is None else _modules_for(argv):
        import_module(f"{__name__}.{name}").register(subparsers)
    return parser


#: Exit code when the reader of stdout went away (``runs list | head -1``): 128 + SIGPIPE, what a
#: shell reports for a command a closed pipe killed.
EXIT_BROKEN_PIPE = 141

#: Exit code after Ctrl-C (SIGINT): 128 + SIGINT, what a shell reports, and what ``run`` returns.
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code.

    A closed stdout (the reader of a pipe exited early) ends the command quietly with
    ``EXIT_BROKEN_PIPE``: no traceback, no "Exception ignored" at interpreter exit. Output that
    cannot be written (a full disk, a closed descriptor) is one line on stderr and exit 1.
    Ctrl-C where a command does not handle it itself (``runs list`` waiting on a slow backend)
    ends it with ``EXIT_INTERRUPTED``, no traceback, as ``run`` and ``watch`` end. A stderr
    whose reader went away keeps the exit code (:func:`_stderr_settled`). A stdout or stderr
    closed before the command started (``>&-``, ``2>&-``), or a closed stdin (``<&-``), is
    :func:`_closed_at_start`'s.
    """
    stdout_closed = _closed_at_start()
    _encodable_output()
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        if stdout_closed:
            print("taskdaemon: cannot write the output: stdout is closed", file=sys.stderr)
            return code or 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _to_devnull(sys.stdout)
        return EXIT_BROKEN_PIPE
    except OSError as error:
        import errno  # noqa: PLC0415 - only a failed write needs it (start-up time)

        # A full or failing device: stdout on a full disk (``> /dev/full``) raises one; so
        # does a descriptor closed under the command (a stage's handler that ran ``os.close(1)``
        # in this process): the run has ended and is stored, only its summary is lost.
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF):
            raise
        _to_devnull(sys.stdout)
        print(f"taskdaemon: cannot write the output: {error.strerror}", file=sys.stderr)
        return 1
    finally:
        _stderr_settled()
    return code


def _closed_at_start() -> bool:
    """Give a stdout or stderr closed before the command started (``>&-``, ``2>&-``: Python
    then makes ``sys.stdout`` None) ``/dev/null`` in its place, on its own descriptor; whether
    stdout was closed.

    Decision: the command still does its work (a run runs and is stored), as it does when its
    stdout fails during the run (``main``), and says then, in one line, that the output went
    nowhere, exit 1 unless the command failed already: ``ls >&-`` fails so too. A closed stderr
    cannot be told anything. Before, the first write to None was an AttributeError traceback
    (``runs list >&-``), or a run that succeeded exited 1 (``run FILE 2>&-``). The descriptor is
    filled, not left closed, so that the next file this process opens does not take its number
    and become a command stage's stdout or stderr.

    A closed stdin (``<&-``) reads as ``/dev/null``, at its end at once: the prompts (``debug
    attach``, ``replay --step``) end as they do on ``</dev/null``. Their first look at it was an
    AttributeError traceback (``None.isatty``)."""
    closed = {0: sys.stdin is None, 1: sys.stdout is None, 2: sys.stderr is None}
    for fd, was_closed in closed.items():
        if not was_closed:
            continue
        _devnull_on(fd)
        # For the process: never closed.
        stream = open(fd, "r" if fd == 0 else "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        if fd == 0:
            sys.stdin = stream
        elif fd == 1:
            sys.stdout = stream
        else:
            sys.stderr = stream
    return closed[1]


def _encodable_output() -> None:
    """Let stdout and stderr write what their encoding cannot, as ``\\xf1``: under
    ``PYTHONIOENCODING=ascii`` or a Latin-1 locale, a non-ASCII file name in an error line, or
    the ``…`` of a cut cell, was a ``UnicodeEncodeError`` traceback instead of the output. A
    UTF-8 stream (the usual case, and ``LANG=C``, which Python coerces to UTF-8) can write
    everything and is left as it is."""
    import codecs  # noqa: PLC0415 - loaded at start-up by Python already
    import io  # noqa: PLC0415

    for stream in (sys.stdout, sys.stderr):
        if (
            isinstance(stream, io.TextIOWrapper)
            and stream.errors == "strict"
            and codecs.lookup(stream.encoding).name != "utf-8"
        ):
            stream.reconfigure(errors="backslashreplace")


def _to_devnull(stream: TextIO) -> None:
    # The Python docs' recipe (library/signal, "Note on SIGPIPE"): point the stream at devnull
    # so the interpreter's final flush has nowhere to fail.
    _devnull_on(stream.fileno())


def _devnull_on(fd: int) -> None:
    """``/dev/null`` on descriptor ``fd``, open or closed (a closed one is the number the
    open takes, then kept as it is), for reading when it is stdin's."""
    devnull = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
    if devnull != fd:
        os.dup2(devnull, fd)
        os.close(devnull)


def _stderr_settled() -> None:
    """Flush stderr; one that cannot take it (its reader went away: a closed pipe or terminal)
    is pointed at devnull.

    A line that failed to reach such a stderr (a run's ``SIGTERM: cancelling run``) stays in
    its buffer, and the interpreter's final flush failed on it again: the process exited 120,
    not 143, and its caller read a crash. Only when stderr is buffered, as it is for a user;
    ``PYTHONUNBUFFERED``, set in CI, kept nothing to flush."""
    try:
        sys.stderr.flush()
    except ValueError:  # closed in-process: nothing left to flush at exit
        pass
    except OSError:
        _to_devnull(sys.stderr)


def _command_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Any:
    """The parser of the (sub-)sub-command ``argv`` names (``runs list``), else ``parser``.

    argparse reports arguments no parser took from the top parser, so the line said ``see
    taskdaemon --help``, which lists the commands, not the options the user was after."""
    current: Any = parser
    for word in argv:
        choices = next(
            (
                action.choices
                for action in current._actions
                if isinstance(action, argparse._SubParsersAction)
            ),
            None,
        )
        if choices is None:
            break
        if word in choices:
            current = choices[word]
    return current


def _meant(word: str, names: Any) -> str | None:
    """The one of ``names`` a wrong ``word`` was most likely meant to be, quoted (``'run'`` for
    ``rnu``), else None: one rule (:func:`~taskdaemon.pipeline.wording.close_match`) with a
    definition's wrong names."""
    if not names:
        return None
    from taskdaemon.pipeline.wording import close_match, quote_meant  # noqa: PLC0415

    match = close_match(word, [str(name) for name in names])
    return quote_meant(match[0]) if match else None


def _unrecognized(command: argparse.ArgumentParser, extras: list[str]) -> str:
    """The line naming the arguments ``command`` did not take, with the option each misspelt
    ``--option`` was close to."""
    options = [option for action in command._actions for option in action.option_strings]
    meant = [
        name
        for extra in extras
        if extra.startswith("--") and (name := _meant(extra.partition("=")[0], options))
    ]
    hint = f" (did you mean {' and '.join(meant)}?)" if meant else _address_hint(options, extras)
    return f"unrecognized arguments: {' '.join(extras)}{hint}"


def _address_hint(options: list[str], extras: list[str]) -> str:
    """The options that give the address a command with ``--port`` was given as an argument
    (``serve 127.0.0.1:9391``, the form ``run --serve`` takes), else "": the line said only that
    the argument was not recognized, and the reader had to find ``--host`` and ``--port`` in
    ``--help``. Decision: a hint, not a second way to give the address, which would then need
    a rule for an argument and an option that disagree."""
    import re  # noqa: PLC0415 - a usage error only

    if "--port" not in options:
        return ""
    for extra in extras:
        if found := re.fullmatch(r"(?:([A-Za-z0-9][A-Za-z0-9.-]*):)?([0-9]{1,5})", extra):
            host, port = found.groups()
            return f" (did you mean {f'--host {host} ' if host else ''}--port {port}?)"
    return ""


def _missing_command(command: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The line saying that ``command``'s sub-command (``taskdaemon``'s COMMAND, ``runs``'
    ACTION) is missing, else None. No sub-parsers action is ``required``: argparse would then
    refuse the command before anything said the unknown options given with it
    (``runs --bogus``)."""
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest) is None:
            return f"the following arguments are required: {action.metavar}"
    return None


def _dispatch(argv: Sequence[str] | None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args, extras = parser.parse_known_args(argv)
    command = _command_parser(parser, argv)
    missing = _missing_command(command, args)
    if missing is not None:  # what was given is said before what is missing
        command.error(f"{_unrecognized(command, extras)}; {missing}" if extras else missing)
    if extras:  # named by the sub-command they were given to, whose --help lists its options
        command.error(_unrecognized(command, extras))
    # Imported once a command runs: ``--version`` then needs no dataclasses (nor inspect).
    from taskdaemon.pipeline.errors import SettingsError  # noqa: PLC0415

    try:
        if getattr(args, "reads_settings", True):
            _check_settings()
        if getattr(args, "writes_home", True) and (problem := _foreign_home(args)):
            print(problem, file=sys.stderr, flush=True)
            return 2
        if getattr(args, "workspace", None) and (problem := _foreign_workspace(args.workspace)):
            print(problem, file=sys.stderr, flush=True)
            return 2
        code: int = args.func(args)
    except SettingsError as error:  # invalid TASKDAEMON_*/OTEL_* variables: name them, exit 2
        from taskdaemon.pipeline.terminal_text import shown  # noqa: PLC0415

        # One line a variable, each whole on its own (a log reader or grep sees the program),
        # escaped: a why may quote the user's text (``serve --host``'s, refused without a token).
        lines = (
            shown(f"taskdaemon: invalid setting {name}: {why}") for name, why in error.problems
        )
        print("\n".join(lines), file=sys.stderr, flush=True)
        return 2
    return code


def _check_settings() -> None:
    """Refuse every invalid setting before the command does anything (``SettingsError``): the
    rule is in ``settings.py``'s docstring. A command that reads no setting (``validate``,
    ``dag`` of a file) sets ``reads_settings=False``, and pays no import for them."""
    from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

    load_settings()


def _foreign_home(args: argparse.Namespace) -> str | None:
    """The line refusing the home (``--home``, else ``TASKDAEMON_HOME``) when another user
    controls it (``home.foreign_home``), else None. A command makes or writes into the home,
    or trusts its control sockets (``approve``, ``status``), unless it sets
    ``writes_home=False``: those only read a store, and may read one in anyone's home."""
    from pathlib import Path  # noqa: PLC0415 - start-up time (--version)

    from taskdaemon.pipeline.home import HOME_VARIABLE, foreign_home, home_directory  # noqa: PLC0415

    given = getattr(args, "home", None)
    home = Path(given) if given else home_directory()
    if (why := foreign_home(home)) is None:
        return None
    name = "--home" if given else HOME_VARIABLE
    return (
        f"taskdaemon: {name} {_home_named(home)} {_shown_whole(why)}: whoever controls it "
        "could swap our workspaces and control sockets for theirs; use a home of your own"
    )


def _foreign_workspace(given: str) -> str | None:
    """The line refusing ``--workspace DIR`` when another user controls DIR or a folder above
    it (``home.foreign_workspace``), else None: its owner, or anyone who may write it, could
    rename a run's folder away and put theirs in its place before a stage works in it."""
    from pathlib import Path  # noqa: PLC0415 - start-up time (--version)

    from taskdaemon.pipeline.home import foreign_workspace  # noqa: PLC0415

    if (why := foreign_workspace(Path(given))) is None:
        return None
    return (
        f"taskdaemon: --workspace {_home_named(Path(given))} {_shown_whole(why)}: whoever "
        "controls it could swap a run's folder for theirs; use a folder of your own"
    )


#: Characters of a refused home's path its line shows: Linux's ``PATH_MAX``, so any path
#: the system can open shows whole.
_HOME_SHOWN = 4096


def _home_named(home: Path) -> str:
    """The refused ``home`` as its line names it: absolute (the default ``.taskdaemon`` is
    one in the current folder, which the line should say), whole, quoted. Decision: a home is
    a path the user gave or the default, not hostile text as a pipeline's value is, so
    ``quote``'s 40 characters do not apply: they cut ``/home/user/projects/...`` before the
    folder refused, the one part the reader needs. Its control characters are escaped
    (``terminal_text.shown``) and its secrets redacted, as any text printed is; past
    ``_HOME_SHOWN`` its end is kept (``ellipsis.cut_start``), which names the folder."""
    return f"'{_shown_whole(str(home.absolute()))}'"


def _shown_whole(text: str) -> str:
    """``text`` naming a path (a refused home, or why: the folder above it to blame) as
    ``_home_named`` shows it: redacted, escaped, its end kept past ``_HOME_SHOWN``."""
    from taskdaemon.pipeline.ellipsis import cut_start  # noqa: PLC0415
    from taskdaemon.pipeline.redaction import redact_text  # noqa: PLC0415
    from taskdaemon.pipeline.terminal_text import shown  # noqa: PLC0415

    return cut_start(shown(redact_text(text)), _HOME_SHOWN)


if __name__ == "__main__":
    sys.exit(main())
