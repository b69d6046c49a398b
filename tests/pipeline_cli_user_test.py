"""The command line as a demanding user reads it: every sub-command given bad values answers
in one line with the exit code its kind of mistake has everywhere (docs/architecture.md,
"Command line"), and options declared by several commands read and check the same."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from taskdaemon.pipeline.cli import main


def test_retention_keep_past_sqlite_integers_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``retention --keep`` past SQLite's integers was an OverflowError traceback."""
    source = f"sqlite:///{tmp_path / 'spans.db'}"
    assert main(["retention", "--keep", str(2**64), "--source", source]) == 2
    assert capsys.readouterr().err == "taskdaemon: --keep must be 0 to 1000000000\n"


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
