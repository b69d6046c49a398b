"""``cli/refusal.py``: every command's refusal is ``taskdaemon COMMAND: MESSAGE`` on stderr, its
exit code the command's, the message redacted and each of its lines escaped for the terminal
(a line break kept: a refusal may list what it refuses, one a line). The commands that refuse
are tested in subprocesses (``pipeline_cli_*_test.py``); here the line itself, in-process."""

from __future__ import annotations

import pytest

from taskdaemon.pipeline.cli.refusal import refuse, say


def test_a_refusal_is_one_line_on_stderr_with_the_commands_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert refuse("runs", 2, "no such run: r-1") == 2
    assert capsys.readouterr() == ("", "taskdaemon runs: no such run: r-1\n")


def test_a_refusal_masks_secrets_and_escapes_controls_line_by_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A credential in a URL and a secret-shaped setting are masked; ESC and CR (which would
    drive the terminal) are shown escaped; the line break between two lines is kept."""
    say(
        "serve",
        "cannot reach https://ops:hunter2@example.com/\x1b[2J\nsee token=abc123secretvalue\r",
    )
    assert capsys.readouterr().err == (
        "taskdaemon serve: cannot reach https://ops:[REDACTED]@example.com/\\x1b[2J\n"
        "see token=[REDACTED]\\x0d\n"
    )
