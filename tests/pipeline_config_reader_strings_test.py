"""A number written as a string in a pipeline file (``timeout: "300"``, ``max_attempts: "3"``):
``taskdaemon validate`` refuses it in every numeric field alike, saying what to write."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write


@pytest.mark.slow
def test_every_numeric_field_refuses_a_quoted_number_and_says_to_unquote_it(
    home: Path, tmp_path: Path
) -> None:
    """Types are strict (docs/architecture.md): ``"300"`` was taken as seconds in a duration
    while ``"3"`` was refused as an integer, and neither said what to write."""
    path = write(
        tmp_path / "quoted.yaml",
        """\
        name: quoted
        timeout: "300"
        concurrency: "4"
        retry: {max_attempts: "3", backoff: {initial: "1", factor: "2.5", max: 30s}}
        stages:
          - name: fetch
            command: "true"
            timeout: "5m"
            parallel_instances: "2.5"
            triggers:
              - manual: {approval_required: true, timeout: "60"}
        """,
    )
    done = taskdaemon(home, "validate", str(path))
    unquote = "(seconds are a number: write {0} without quotes, or {0}s)"
    expected = [
        f"{path}:2: timeout: invalid duration '300' {unquote.format(300)}",
        f"{path}:3: concurrency: expected an integer, got string '4' (write 4 without quotes)",
        f"{path}:4: retry.max_attempts: expected an integer, got string '3' (write 3 without "
        "quotes)",
        f"{path}:4: retry.backoff.initial: invalid duration '1' {unquote.format(1)}",
        f"{path}:4: retry.backoff.factor: expected a number, got string '2.5' (write 2.5 "
        "without quotes)",
        f"{path}:9: stages[0].parallel_instances: expected an integer, got string",
        f"{path}:11: stages[0].triggers[0].manual.timeout: invalid duration '60' "
        f"{unquote.format(60)}",
    ]
    assert (2, expected) == (done.returncode, done.stdout.splitlines()), done.stderr
