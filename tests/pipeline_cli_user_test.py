"""The command line as a demanding user reads it: every sub-command given bad values answers
in one line with the exit code its kind of mistake has everywhere (docs/architecture.md,
"Command line"), and options declared by several commands read and check the same."""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from cli_support import ROOT, TASKDAEMON, environment, free_port, taskdaemon, write
from taskdaemon.pipeline.cli import build_parser, main
from taskdaemon.pipeline.cli.options import span_source
from taskdaemon.pipeline.span_source_forms import SPAN_SOURCE_USAGE


def test_retention_keep_past_sqlite_integers_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``retention --keep`` past SQLite's integers was an OverflowError traceback."""
    source = f"sqlite:///{tmp_path / 'spans.db'}"
    assert main(["retention", "--keep", str(2**64), "--source", source]) == 2
    assert capsys.readouterr().err == "taskdaemon retention: --keep must be 0 to 1000000000\n"


@pytest.mark.parametrize("command", ["logs", "watch"])
@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "61", "x"])
def test_interval_is_one_option_with_one_check(
    command: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``logs --follow --interval nan`` (or inf) was taken, a poll loop that never slept or
    never woke; ``watch`` refused it. Both now check alike, before reading anything."""
    source = f"sqlite:///{tmp_path / 'spans.db'}"
    follow = ["--follow"] if command == "logs" else []
    with pytest.raises(SystemExit) as exited:
        main([command, "abcd", *follow, f"--interval={value}", "--source", source])
    assert exited.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"taskdaemon {command}: error: argument --interval: ")


def test_interval_reads_the_same_in_logs_and_watch(capsys: pytest.CaptureFixture[str]) -> None:
    """One definition: the same metavar, default and range in both helps."""
    helps = []
    for command in ("logs", "watch"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        helps.append(re.findall(r"--interval SECONDS seconds between polls [^(]*(\(.*?\))", text))
    assert helps == [["(default 0.5; 0.05 to 60)"]] * 2


def _declared(command: str, option: str) -> tuple[object, ...]:
    """What ``taskdaemon COMMAND`` declares of ``option``: names, help, default, metavar,
    type, choices."""
    parser = build_parser()
    for word in command.split():
        parser = next(
            action.choices[word]
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
        )
    action = next(action for action in parser._actions if option in action.option_strings)
    return (
        tuple(action.option_strings),
        action.help,
        repr(action.default),
        action.metavar,
        action.type,
        action.choices,
    )


#: Options several commands declare, and the commands: each must read the same in all.
_TWINS = {
    "--input": ("run", "debug", "serve", "replay"),
    "--input-file": ("run", "debug", "serve", "replay"),
    "--workspace": ("run", "debug", "replay"),
    "--approve": ("run", "debug"),
    "--auto-approve": ("run", "debug", "serve"),
    "--break": ("run", "debug"),
    "--break-on-failure": ("run", "debug"),
    "--log-level": ("run", "serve", "replay", "debug"),
    "--interval": ("logs", "watch"),
    "--host": ("serve", "ui"),
    "--pipeline": ("runs list", "report"),
}


@pytest.mark.parametrize("option", sorted(_TWINS))
def test_options_declared_twice_read_the_same_in_every_command(option: str) -> None:
    """One definition each (``cli/options.py`` and its siblings): ``debug``'s ``--input`` said
    only "a request field", its ``--workspace`` "as for taskdaemon run"; ``serve`` and
    ``replay`` had no ``--input-file``."""
    declared = {command: _declared(command, option) for command in _TWINS[option]}
    assert len(set(declared.values())) == 1, declared


@pytest.mark.parametrize("command", ["run", "debug", "replay"])
def test_input_file_that_is_a_directory_or_empty_is_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--input-file ""`` read the current directory ("--input-file : Is a directory")."""
    first = "abcd" if command == "replay" else str(tmp_path / "p.yaml")
    codes, errors = [], []
    for path in ("", str(tmp_path)):
        codes.append(main([command, first, "--input-file", path]))
        errors.append(capsys.readouterr().err)
    assert codes == [2, 2]
    assert errors == [
        f"taskdaemon {command}: --input-file: an empty path\n",
        f"taskdaemon {command}: --input-file {tmp_path}: Is a directory\n",
    ]


#: Every (sub-)command that reads a span source.
_SOURCE_COMMANDS = {
    "dag": ["--run", "abcd"],
    "dump": ["abcd"],
    "logs": ["abcd"],
    "replay": ["abcd"],
    "report": [],
    "retention": ["--keep", "1"],
    "runs list": [],
    "runs show": ["abcd"],
    "ui": [],
    "watch": ["abcd"],
}


@pytest.mark.parametrize("command", sorted(_SOURCE_COMMANDS))
def test_unknown_source_scheme_is_a_usage_error_in_every_command(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--source ftp://...`` exited 1 from ``dag``, ``dump``, ``watch`` and ``report``, 2
    from ``runs``, ``logs`` and ``ui`` (after starting its logging); now 2 everywhere, in one
    wording that names the scheme but not the URL (which may hold credentials)."""
    argv = [*command.split(), *_SOURCE_COMMANDS[command], "--source", "ftp://me:pw@host/x"]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.splitlines()[-1] == (
        f"taskdaemon {command}: error: argument --source: unknown span source scheme 'ftp': "
        "use sqlite:///PATH, tempo+http://HOST:PORT, jaeger+http://HOST:PORT, "
        f"otlp-json:///PATH or dump:///PATH.tar.gz (see taskdaemon {command} --help)"
    )
    assert "pw" not in err


@pytest.mark.parametrize(
    ("argv", "command", "extras"),
    [
        (["dag", "p.yaml", "--auto-approve"], "dag", "--auto-approve"),
        (["runs", "list", "--bogus", "x"], "runs list", "--bogus x"),
        (["run", "pipeline.yaml", "extra"], "run", "extra"),
    ],
)
def test_an_option_a_command_does_not_have_names_that_command(
    home: Path, argv: list[str], command: str, extras: str
) -> None:
    """An argument no parser took is reported by the sub-command it was given to, pointing at
    that command's ``--help``: it was ``taskdaemon: error: ... (see taskdaemon --help)``, whose
    help lists the commands, not the options the user was after."""
    done = taskdaemon(home, *argv)
    expected = (
        2,
        f"taskdaemon {command}: error: unrecognized arguments: {extras} "
        f"(see taskdaemon {command} --help)\n",
    )
    assert expected == (done.returncode, done.stderr)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["rnu", "pipeline.yaml"],
            "taskdaemon: error: argument COMMAND: invalid choice: 'rnu', did you mean 'run'? "
            "(choose from 'run', 'debug', 'dump', 'validate', 'approve', 'publish', 'cancel', "
            "'status', 'dag', 'runs', 'retention', 'logs', 'replay', 'watch', 'report', "
            "'serve', 'ui') (see taskdaemon --help)",
        ),
        (
            ["runs", "list", "--status", "runing"],
            "taskdaemon runs list: error: argument --status: invalid choice: 'runing', did you "
            "mean 'running'? (choose from 'running', 'success', 'failure', 'cancelled', "
            "'interrupted', 'paused') (see taskdaemon runs list --help)",
        ),
        (
            ["report", "--sinse=7d", "--untl", "1h"],
            "taskdaemon report: error: unrecognized arguments: --sinse=7d --untl 1h "
            "(did you mean '--since' and '--until'?) (see taskdaemon report --help)",
        ),
        (
            ["report", "--format", "pdf", "--zzzz"],
            "taskdaemon report: error: argument --format/-f: invalid choice: 'pdf' (choose "
            "from 'table', 'markdown', 'json', 'html') (see taskdaemon report --help)",
        ),
        (
            ["report", "--zzzz"],
            "taskdaemon report: error: unrecognized arguments: --zzzz "
            "(see taskdaemon report --help)",
        ),
        (
            ["serve", "127.0.0.1:9391"],
            "taskdaemon serve: error: unrecognized arguments: 127.0.0.1:9391 "
            "(did you mean --host 127.0.0.1 --port 9391?) (see taskdaemon serve --help)",
        ),
        (
            ["ui", "9391"],
            "taskdaemon ui: error: unrecognized arguments: 9391 "
            "(did you mean --port 9391?) (see taskdaemon ui --help)",
        ),
        (
            ["serve", "[::1]:9391"],
            "taskdaemon serve: error: unrecognized arguments: [::1]:9391 "
            "(see taskdaemon serve --help)",
        ),
    ],
)
def test_a_misspelt_command_choice_or_option_says_what_was_meant(
    capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    """A wrong sub-command, choice or option close to a right one names it, as a definition's
    wrong name does: ``taskdaemon rnu`` listed the seventeen commands and left the reader to
    find ``run`` among them; a wrong word close to none is said as before. ``serve`` and
    ``ui`` given their address as an argument, as ``run --serve`` takes it, name the options
    that take it."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert (exited.value.code, capsys.readouterr().err) == (2, line + "\n")


def test_a_usage_error_escapes_the_controls_it_quotes(home: Path) -> None:
    """argparse quotes an argument no parser took as it was given: ESC, BEL and U+202E in it
    reached the terminal (a title set, the screen cleared, the line reversed). They are
    escaped, as in every refusal."""
    done = taskdaemon(home, "runs", "list", "x\x1b]0;title\x07\x1b[2J\u202ey")
    expected = (
        2,
        "taskdaemon runs list: error: unrecognized arguments: "
        "x\\x1b]0;title\\x07\\x1b[2J\\u202ey (see taskdaemon runs list --help)\n",
    )
    assert expected == (done.returncode, done.stderr)


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["approve", "abcd", "gate", "--note", "token=CommentTok-11223344"], "token=[REDACTED]"),
        (["run", "pipeline.yaml", "--bogus", "DbPw-zyxwvu9876"], "--bogus [REDACTED]"),
        (["report", "--format", "DbPw-zyxwvu9876"], "invalid choice: '[REDACTED]'"),
    ],
    ids=["shape", "unrecognized", "invalid-choice"],
)
def test_a_usage_error_does_not_print_the_secret_it_refused(
    home: Path, argv: list[str], shown: str
) -> None:
    """argparse quotes what it refused: a mistyped option followed by a token, or the value of
    ``DB_PASSWORD`` where it does not belong, was printed whole. The line is redacted, by
    shape and by the environment's secret values, and still names what was wrong."""
    done = taskdaemon(home, *argv, DB_PASSWORD="DbPw-zyxwvu9876")
    assert (2, True, False, False) == (
        done.returncode,
        shown in done.stderr,
        "CommentTok" in done.stderr,
        "DbPw" in done.stderr,
    ), done.stderr


@pytest.mark.parametrize("command", sorted(_SOURCE_COMMANDS))
def test_source_reads_the_same_in_every_command(command: str) -> None:
    """One ``--source``: its metavar, type and help (``logs`` and ``retention`` name the forms
    they read)."""
    names, text, _, metavar, kind, _ = _declared(command, "--source")
    assert (names, metavar, kind) == (("--source",), "URL", span_source)
    forms = {
        "logs": "sqlite:///PATH or dump:///PATH.tar.gz",
        "retention": "sqlite:///PATH",
    }.get(command, SPAN_SOURCE_USAGE)
    assert text == (
        f"span source: {forms} (default TASKDAEMON_SPAN_SOURCE, else the embedded store, "
        "$TASKDAEMON_HOME/spans.db)"
    )


_ONE_STAGE = """\
name: one
loops:
  noop: {command: "true"}
stages:
  - name: a
    loop: noop
    triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
def test_a_workspace_that_cannot_be_made_reads_the_same_in_run_and_debug(
    tmp_path: Path,
) -> None:
    """``debug FILE --workspace /dev/null`` said ``PipelineError: cannot create ...`` and
    exited 1 where ``run`` says ``cannot create ...`` and exits 2 (both: a bad argument)."""
    pipeline = write(tmp_path / "one.yaml", _ONE_STAGE)
    answers = [
        taskdaemon(tmp_path / "home", command, str(pipeline), "--workspace", "/dev/null", "-q")
        for command in ("run", "debug")
    ]
    assert [(done.returncode, re.sub(r"[0-9a-f]{32}", "RUN", done.stderr)) for done in answers] == [
        (2, f"taskdaemon {command}: cannot create the workspace /dev/null/RUN: File exists\n")
        for command in ("run", "debug")
    ]


#: Sources that cannot answer (1) and URLs that name no source (2), for every reader.
_SOURCE_FAULTS = {
    "tempo+http://127.0.0.1:{port}": 1,
    "sqlite:///{tmp}/absent/spans.db": 1,
    "sqlite:///{tmp}/damaged.db": 1,
    "tempo+http://127.0.0.1:99999": 2,
    "sqlite://relative": 2,
}


@pytest.mark.parametrize("command", sorted(set(_SOURCE_COMMANDS) - {"ui"}))
def test_a_source_that_cannot_answer_is_exit_1_and_a_bad_url_exit_2_everywhere(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreachable Tempo exited 2 from ``runs`` and 1 from ``report``; a damaged store 2
    from ``runs``, ``logs`` and ``retention`` and 1 from ``dag``, ``dump``, ``watch``; a port
    out of range 1 from ``dag`` and 2 from ``runs``. Now: a source that cannot answer
    (unreachable, missing, damaged) is 1, a URL that names no source 2, each in one line."""
    (tmp_path / "damaged.db").write_bytes(b"not a database" * 512)
    port = free_port()
    run_id = "abcd" + "0" * 28  # a whole id: remote sources take no prefix
    args = [run_id if word == "abcd" else word for word in _SOURCE_COMMANDS[command]]
    codes = {}
    for pattern in _SOURCE_FAULTS:
        url = pattern.format(port=port, tmp=tmp_path)
        if command in ("logs", "retention") and not url.startswith("sqlite"):
            continue  # the embedded store's commands refuse any other source first
        codes[pattern] = main([*command.split(), *args, "--source", url])
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1, err
        assert "Traceback" not in err
    assert codes == {
        pattern: code
        for pattern, code in _SOURCE_FAULTS.items()
        if command not in ("logs", "retention") or pattern.startswith("sqlite")
    }


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        ([], "taskdaemon"),
        (["bogus"], "taskdaemon"),
        (["runs"], "taskdaemon runs"),
        (["runs", "list", "--status", "bogus"], "taskdaemon runs list"),
        (["runs", "list", "--limit", "1.5"], "taskdaemon runs list"),
        (["logs", "--level", "loud", "abcd"], "taskdaemon logs"),
        (["report", "--format", "pdf"], "taskdaemon report"),
        (["dag", "--at"], "taskdaemon dag"),
        (["run"], "taskdaemon run"),
        (["retention", "--keep", "many"], "taskdaemon retention"),
        (["ui", "--source", "ftp://x"], "taskdaemon ui"),
    ],
)
def test_a_usage_error_is_one_line(
    argv: list[str], prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse printed the whole usage before its error: up to seven lines in 80 columns for
    one mistake. Now the error alone, pointing at ``--help``, exit 2."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert (exited.value.code, len(err.splitlines())) == (2, 1), err
    assert (err.startswith(f"{prog}: error: "), err.endswith(f" (see {prog} --help)\n")) == (
        True,
        True,
    ), err


@pytest.mark.parametrize("value", ["-1", "65536", str(2**64), "http", ""])
def test_port_is_checked_alike_by_serve_and_ui(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serve --port -1`` was a bare line (no command named), ``ui --port -1`` a timestamped
    log record after logging had started: the same mistake in two wordings. Now one type checks
    both while the arguments are parsed (their defaults differ: serve's is the settings')."""
    errors = []
    for command in ("serve", "ui"):
        with pytest.raises(SystemExit) as exited:
            main([command, f"--port={value}"])
        assert exited.value.code == 2
        errors.append(capsys.readouterr().err.replace(command, "COMMAND"))
    assert errors[0] == errors[1]
    assert errors[0].startswith("taskdaemon COMMAND: error: argument --port: ")
    assert _declared("serve", "--port")[3:] == _declared("ui", "--port")[3:]


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "show", "zzzz"],
        ["runs", "list", "--since", "yesterday"],
        ["retention", "--max-age", "soon"],
        ["logs", "zzzz"],
        ["dag", "--run", "zzzz"],
        ["watch", "zzzz"],
        ["dump", "zzzz"],
        ["replay", "zzzz"],
    ],
)
def test_every_error_line_names_its_command(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``runs`` and ``retention`` said ``taskdaemon: ...`` where every other command says
    ``taskdaemon COMMAND: ...``: in a script's log, which command failed was lost."""
    command = " ".join(argv[:2]) if argv[0] == "runs" else argv[0]
    main([*argv, "--source", f"sqlite:///{tmp_path / 'spans.db'}"])
    err = capsys.readouterr().err
    assert err.startswith(f"taskdaemon {command}: "), err
    assert len(err.splitlines()) == 1, err


def _leaf_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command (``runs list``, not ``runs``) and its parser."""
    found: dict[str, argparse.ArgumentParser] = {}
    pending = [("", build_parser())]
    while pending:
        name, parser = pending.pop()
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not nested:
            found[name.strip()] = parser
        for action in nested:
            pending.extend((f"{name} {word}", each) for word, each in action.choices.items())
    return found


@pytest.mark.parametrize("command", sorted(_leaf_parsers()))
def test_every_argument_says_what_it_does_and_its_default(command: str) -> None:
    """``report --format`` had no help at all, nor ``approve``'s STAGE or ``debug``'s words;
    ``report --since`` and ``publish --payload`` kept their defaults (7d, {}) to themselves."""
    missing = []
    for action in _leaf_parsers()[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        if not action.help:
            missing.append(f"{name}: no help")
        elif action.default not in (None, False, []) and "default" not in action.help:
            missing.append(f"{name}: default {action.default!r} not said")
    assert missing == []


@pytest.mark.parametrize(
    ("argv", "then"),
    [
        (["runs", "list", "--since", "-5d"], "taskdaemon runs list: not a time: '-5d'"),
        (["retention", "--max-age", "-5d"], "taskdaemon retention: --max-age: not a duration"),
    ],
)
def test_a_negative_value_is_told_how_to_be_given(
    argv: list[str], then: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--since -5d`` said only "expected one argument", as if the value were missing; the
    line now says that such a value goes after ``=``, where it gets its own check."""
    source = ["--source", f"sqlite:///{tmp_path / 'spans.db'}"]
    with pytest.raises(SystemExit):
        main([*argv, *source])
    err = capsys.readouterr().err
    assert "(a value starting with '-' goes after '=': --option=-value)" in err
    main([*argv[:-2], f"{argv[-2]}={argv[-1]}", *source])
    assert capsys.readouterr().err.startswith(then)


_BROKEN = """\
name: broken
loops:
  noop: {command: "true"}
stages:
  - name: a
    loop: nope
    triggers: [{manual: {approval_required: false}}]
  - name: b
    loop: noop
    triggers: [{on_completion: {stage: aa}}]
"""


@pytest.mark.slow
def test_an_invalid_pipeline_file_reads_the_same_in_every_command(tmp_path: Path) -> None:
    """``run``, ``debug``, ``replay`` and ``validate`` write a file's issues one a line;
    ``dag`` put ``taskdaemon dag:`` before the first only, and ``serve`` logged them all in
    one record, its line breaks written ``\\n``, then one timestamped ``ERROR`` record a line.
    Now each command writes the same bare lines, exit 2."""
    broken = write(tmp_path / "broken.yaml", _BROKEN)
    home = tmp_path / "home"
    expected = taskdaemon(home, "validate", str(broken))
    issues = expected.stdout.splitlines()
    assert (expected.returncode, len(issues)) == (2, 2), expected.stdout
    for command in (["run"], ["debug"], ["dag"]):
        done = taskdaemon(home, *command, str(broken))
        assert (done.returncode, done.stderr.splitlines()) == (2, issues), command
    served = taskdaemon(home, "serve", "--port", "0", "--pipeline", str(broken))
    assert (served.returncode, served.stdout, served.stderr.splitlines()) == (2, "", issues)


def _on_terminal(home: Path, *args: str, columns: int = 60, **env: str) -> tuple[int, str]:
    """Run ``taskdaemon ARGS`` on a pseudo-terminal ``columns`` wide, to its end: the exit
    code and all it wrote (escape sequences kept)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen(
        [TASKDAEMON, *args],
        cwd=ROOT,
        env=environment(home) | {"COLUMNS": str(columns), **env},
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    raw = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the command exited and closed the terminal
                break
            if not chunk:
                break
            raw += chunk
    finally:
        code = process.wait(timeout=60)
        os.close(master)
    return code, raw.decode(errors="replace")


@pytest.mark.slow
def test_watch_on_a_dumb_terminal_writes_the_lines_a_pipe_gets(tmp_path: Path) -> None:
    """On ``TERM=dumb`` (no cursor movement) ``watch`` drew nothing until the run ended, then
    one table 80 columns wide in a terminal of 60. It now writes the plain lines it writes
    through a pipe, no escape sequence among them; on a real terminal it still redraws."""
    home = tmp_path / "home"
    pipeline = write(tmp_path / "one.yaml", _ONE_STAGE)
    ran = taskdaemon(home, "run", "-q", str(pipeline))
    run_id = ran.stdout.strip()
    piped = taskdaemon(home, "watch", run_id)
    code, dumb = _on_terminal(home, "watch", run_id, TERM="dumb")
    assert (ran.returncode, piped.returncode, code) == (0, 0, 0)
    assert (dumb.replace("\r\n", "\n"), "\x1b" in dumb) == (piped.stdout, False)
    code, live = _on_terminal(home, "watch", run_id, TERM="xterm")
    assert (code, "\x1b[" in live) == (0, True)


@pytest.mark.parametrize(
    "given",
    [["--every", "5"], ["--max-runs", "3"], ["--auto-approve"], ["-i", "goal=x"]],
)
def test_serve_without_a_pipeline_refuses_what_only_a_pipeline_uses(
    given: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serve --every 5`` (no ``--pipeline``) served with no schedule and said nothing: the
    options that only shape scheduled runs were dropped. Now one line, exit 2, as ``dag --at``
    without ``--run``."""
    option = "--input" if given[0] == "-i" else given[0]
    assert main(["serve", "--port", "0", *given]) == 2
    assert capsys.readouterr().err == f"taskdaemon serve: {option} needs --pipeline\n"


#: Runs ARGV with SIGINT at its default, as a process of a terminal has it: a suite started in
#: the background by a shell without job control inherits SIGINT ignored, and a Python started
#: so installs no KeyboardInterrupt handler (an ignored signal stays ignored across exec).
_SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.mark.slow
@pytest.mark.parametrize("command", [["runs", "list"], ["report"], ["runs", "show", "a" * 32]])
def test_ctrl_c_while_a_backend_is_silent_is_exit_130_without_a_traceback(
    command: list[str], tmp_path: Path
) -> None:
    """Ctrl-C while ``runs list``, ``report`` or ``runs show`` waited on a Tempo that accepts
    and never answers printed a KeyboardInterrupt traceback. Now exit 130 and no traceback, as
    ``run`` ends on Ctrl-C."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"tempo+http://127.0.0.1:{silent.getsockname()[1]}"
        process = subprocess.Popen(
            [sys.executable, "-c", _SIGINT_DEFAULT, TASKDAEMON, *command, "--source", url],
            cwd=ROOT,
            env=environment(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        accepted, _ = silent.accept()  # the command is waiting for its answer now
        with accepted:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=60)
    assert (process.returncode, "Traceback" in err) == (130, False), err


@pytest.mark.parametrize("command", [["runs", "list"], ["report"]])
def test_a_pipeline_name_that_is_not_utf8_is_one_line(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--pipeline`` given a byte that is not UTF-8 (it reaches Python as a lone surrogate)
    was a UnicodeEncodeError traceback from the store's query."""
    name = b"caf\xe9".decode("utf-8", "surrogateescape")  # Latin-1 typed, read as UTF-8
    with pytest.raises(SystemExit) as exited:
        main([*command, "--pipeline", name, "--source", f"sqlite:///{tmp_path / 's.db'}"])
    err = capsys.readouterr().err
    assert (exited.value.code, len(err.splitlines())) == (2, 1)
    assert 'argument --pipeline/-p: not UTF-8 text: "caf\\udce9"' in err


@pytest.mark.parametrize("command", [["runs", "list"], ["report"]])
def test_an_empty_pipeline_name_is_a_usage_error(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--pipeline ''`` (``-p "$P"`` with ``P`` unset) was read as a pipeline the source
    knows no run of, exit 0: it is refused in one line, exit 2, as no pipeline has that name."""
    with pytest.raises(SystemExit) as exited:
        main([*command, "--pipeline", "", "--source", f"sqlite:///{tmp_path / 's.db'}"])
    err = capsys.readouterr().err
    assert (exited.value.code, len(err.splitlines())) == (2, 1)
    assert "argument --pipeline/-p: empty: name a pipeline, or leave --pipeline out" in err


@pytest.mark.slow
def test_dump_where_a_file_stands_for_a_folder_names_the_target(tmp_path: Path) -> None:
    """``dump RUN -o FILE/x.tar.gz`` (a file where a folder should be) said ``[Errno 17] File
    exists: 'FILE'``, errno and all; ``dag -o`` and ``report -o`` say ``cannot write TARGET:
    REASON``, and so does ``dump`` now."""
    home = tmp_path / "home"
    ran = taskdaemon(home, "run", "-q", str(write(tmp_path / "one.yaml", _ONE_STAGE)))
    (tmp_path / "file").write_text("not a folder")
    target = tmp_path / "file" / "x.tar.gz"
    done = taskdaemon(home, "dump", ran.stdout.strip(), "-o", str(target))
    expected = f"taskdaemon dump: cannot write {target}: File exists\n"
    assert (ran.returncode, done.returncode, done.stderr) == (0, 1, expected)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["report", "-f", "JSON"], '"since": '),
        (["runs", "list", "--status", "FAILURE"], "no runs"),
        (["dag", "examples/feature_delivery.yaml", "-f", "Mermaid"], "flowchart LR"),
    ],
    ids=["report-format", "runs-status", "dag-format"],
)
def test_a_choice_is_taken_in_any_case(
    argv: list[str],
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``report -f JSON``, ``runs list --status FAILURE`` and ``dag -f Mermaid`` were invalid
    choices, where ``logs --level ERROR`` and ``-o REPORT.HTML``'s suffix are read in any
    case; each is now taken as its lower-case name."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(tmp_path))
    code = main(argv)
    out, err = capsys.readouterr()
    assert (0, "", True) == (code, err, says in out), out
