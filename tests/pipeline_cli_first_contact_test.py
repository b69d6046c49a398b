"""The command line's rough edges a new user's first contact found: an unknown option with no
command (or no ``runs`` action) named, and ``serve --pipeline`` refusing a bad file as ``run``
does (``runs list`` and ``report`` of an unknown pipeline: ``pipeline_tracking_cli_test.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "missing", "typo", "meant"),
    [([], "COMMAND", "--verison", "--version"), (["runs"], "ACTION", "--hepl", "--help")],
)
def test_an_unknown_option_without_a_sub_command_is_named_first(
    home: Path, command: list[str], missing: str, typo: str, meant: str
) -> None:
    """``taskdaemon --bogus`` said only ``the following arguments are required: COMMAND``, and
    ``taskdaemon runs --bogus`` only that ACTION was: argparse checked the missing
    sub-command before the unknown options, and the option the user typed went unnamed. It
    is named first now, with the option it was close to; no argument at all still says that
    the sub-command is missing."""
    prog = " ".join(["taskdaemon", *command])
    said = [taskdaemon(home, *command, *argv) for argv in (["--bogus"], [typo, "-x"], [])]
    lack = f"the following arguments are required: {missing} (see {prog} --help)\n"
    assert [
        (2, "", f"{prog}: error: unrecognized arguments: --bogus; {lack}"),
        (
            2,
            "",
            f"{prog}: error: unrecognized arguments: {typo} -x (did you mean '{meant}'?); {lack}",
        ),
        (2, "", f"{prog}: error: {lack}"),
    ] == [(done.returncode, done.stdout, done.stderr) for done in said]


@pytest.mark.slow
def test_serve_says_a_file_it_cannot_read_as_run_does(tmp_path: Path) -> None:
    """``serve --pipeline missing.yaml`` (or a YAML syntax error) said the problem as a
    timestamped ``ERROR taskdaemon.serve:`` log record, which a person at a terminal reads as a
    crash: it is now the one line ``run`` gives, with its exit code, before anything starts."""
    bad = write(tmp_path / "bad.yaml", "name: x\nstages: [\n")
    home = tmp_path / "home"
    said = []
    for file in ("missing.yaml", str(bad)):
        for command in (["run"], ["serve", "--port", "0", "--pipeline"]):
            done = taskdaemon(home, *command, file, cwd=tmp_path)
            said.append((done.returncode, done.stdout, done.stderr))
    missing = "missing.yaml: cannot read the file: no such file or directory\n"
    syntax = f"{bad}:3: invalid yaml: expected the node content, but found '<stream end>' at "
    assert [
        (2, "", missing),
        (2, "", missing),
        (2, "", f"{syntax}column 1\n"),
        (2, "", f"{syntax}column 1\n"),
    ] == said
