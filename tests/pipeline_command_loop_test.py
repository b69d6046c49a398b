"""``command_loop``: what a command stage that could not start says, through ``taskdaemon run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline.command_loop import SHOWN_COMMAND


@pytest.mark.slow
@pytest.mark.parametrize("relative", [True, False])
def test_a_command_that_does_not_start_names_the_directory_it_ran_in(
    home: Path, tmp_path: Path, relative: bool
) -> None:
    """A newcomer's ``command: ./scripts/hello.sh`` is read from the run's workspace, not from
    where ``taskdaemon run`` was started: the failure says where the command ran, which the
    shell's own "not found" line did not; a script found but not executable says so too."""
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "hello.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755 if relative else 0o644)
    command = "./scripts/hello.sh" if relative else str(script)
    write(
        tmp_path / "first.yaml",
        f"""\
        name: first
        stages:
          - name: hello
            command: {command}
            triggers: [{{manual: {{approval_required: false}}}}]
        """,
    )
    workspace = tmp_path / "ws"
    done = taskdaemon(home, "run", "-q", "first.yaml", "--workspace", str(workspace), cwd=tmp_path)
    run_id = done.stdout.strip()
    code, reason, shell = (
        (127, "not found", "not found")
        if relative
        else (126, "found but not executable", "Permission denied")
    )
    expected = (
        f"taskdaemon run: run {run_id} failure: stage 'hello' failure: command {command!r} "
        f"exited with code {code} ({reason}; it ran in the run's workspace, "
        f"{workspace / run_id}); stderr (last lines): /bin/sh: 1: {command}: "
    )
    lines = done.stderr.splitlines()
    assert (1, 1) == (done.returncode, len(lines)), done.stderr
    assert lines[0].startswith(expected), lines[0]
    assert lines[0].endswith(shell)


@pytest.mark.slow
def test_a_long_failed_command_is_quoted_cut_in_its_error(home: Path, tmp_path: Path) -> None:
    """A generated 100 KB command line that fails is quoted cut to ``SHOWN_COMMAND``
    characters, as every error quotes a value: it was quoted whole in the error, and so in the
    terminal's line, the stored span and ``runs show``."""
    command = "exit 3 #" + "x" * 100_000
    write(
        tmp_path / "long.yaml",
        f"""\
        name: long
        stages:
          - name: gen
            command: '{command}'
            triggers: [{{manual: {{approval_required: false}}}}]
        """,
    )
    done = taskdaemon(home, "run", "-q", "long.yaml", cwd=tmp_path)
    run_id = done.stdout.strip()
    shown = f"command '{command[: SHOWN_COMMAND - 1]}…' exited with code 3"
    assert 1 == done.returncode
    assert [
        f"taskdaemon run: run {run_id} failure: stage 'gen' failure: {shown}"
    ] == done.stderr.splitlines()
    showed = taskdaemon(home, "runs", "show", run_id, cwd=tmp_path)
    assert shown in showed.stdout, showed.stderr
    assert "x" * SHOWN_COMMAND not in showed.stdout
