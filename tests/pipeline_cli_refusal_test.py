"""``cli/refusal.py``: every command's refusal is ``taskdaemon COMMAND: MESSAGE`` on stderr, its
exit code the command's, the message redacted and each of its lines escaped for the terminal
(a line break kept: a refusal may list what it refuses, one a line). The commands that refuse
are tested in subprocesses (``pipeline_cli_*_test.py``); here the line itself, in-process."""

from __future__ import annotations

import io
import sys

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


class _OneLog:
    """A stdout held in a buffer until flushed and a stderr written at once, into one log:
    ``> log 2>&1``, as Python buffers the two streams for a file."""

    def __init__(self, fails: BaseException | None = None) -> None:
        self.log: list[str] = []
        self.stdout = _Held(self.log, fails)
        self.stderr = _Held(self.log, None)


class _Held(io.StringIO):
    """A stream whose text reaches ``log`` when flushed; ``fails``: what its flush raises."""

    def __init__(self, log: list[str], fails: BaseException | None) -> None:
        super().__init__()
        self._log, self._fails = log, fails

    def flush(self) -> None:
        if self._fails is not None:
            raise self._fails
        self._log.append(self.getvalue())
        self.seek(0)
        self.truncate()


def test_the_line_follows_what_stdout_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the command printed before the refusal is written out first: the log of both
    streams reads them in order (it read the refusal first, stdout held in its buffer)."""
    streams = _OneLog()
    monkeypatch.setattr(sys, "stdout", streams.stdout)
    monkeypatch.setattr(sys, "stderr", streams.stderr)
    print("deleted 3 runs")
    say("retention", "disk I/O error")
    assert ["deleted 3 runs\n", "taskdaemon retention: disk I/O error\n"] == streams.log


@pytest.mark.parametrize(
    "fails", [BrokenPipeError(32, "Broken pipe"), ValueError("I/O operation on closed file")]
)
def test_a_stdout_that_cannot_be_flushed_costs_the_line_nothing(
    monkeypatch: pytest.MonkeyPatch, fails: BaseException
) -> None:
    """A stdout whose reader went away, or closed in-process: the refusal is still said, and
    nothing is raised (the command's end reports the closed stdout with its exit code)."""
    streams = _OneLog(fails)
    monkeypatch.setattr(sys, "stdout", streams.stdout)
    monkeypatch.setattr(sys, "stderr", streams.stderr)
    assert 1 == refuse("dump", 1, "no run r-1")
    assert ["taskdaemon dump: no run r-1\n"] == streams.log


def test_without_a_stdout_the_line_is_said(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No stdout at all (``sys.stdout`` None: its descriptor was closed when Python started)."""
    monkeypatch.setattr(sys, "stdout", None)
    say("runs list", "no runs")
    assert "taskdaemon runs list: no runs\n" == capsys.readouterr().err
