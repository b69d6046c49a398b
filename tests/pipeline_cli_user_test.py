"""The command line as a demanding user reads it: every sub-command given bad values answers
in one line with the exit code its kind of mistake has everywhere (docs/architecture.md,
"Command line"), and options declared by several commands read and check the same."""

from __future__ import annotations

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
