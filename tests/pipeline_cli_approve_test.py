"""``taskdaemon approve --comment / --reject --reason``: the decision's audit record, end to end.

A real ``taskdaemon run`` waits for an approval in one subprocess, ``taskdaemon approve`` decides
in another, and the audit record is read where the run stores its log records (``taskdaemon
logs RUN --json``, the embedded store), as the HTTP API's record of the same decision is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon, write

GATED = """\
    name: gated
    stages:
      - name: deploy
        command: "echo deployed"
        triggers: [{manual: {approval_required: true}}]
"""

#: A GitHub token's shape: masked wherever a log record is written.
TOKEN = "ghp_" + "A1b2" * 9


def _audit_rows(home: Path, run_id: str) -> list[dict[str, Any]]:
    shown = taskdaemon(home, "logs", run_id, "--json")
    assert 0 == shown.returncode, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    return [row for row in rows if row["logger"] == "taskdaemon.audit"]


@pytest.mark.slow
def test_an_approval_s_comment_is_in_the_run_s_audit_record_masked(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    """The comment reaches the run's stored audit record, message and field, a token in it
    masked (and the run's output shows no token either)."""
    served = serve(str(write(tmp_path / "gated.yaml", GATED)))
    served.wait_for_line("waiting for approval")
    comment = f"looks good, was {TOKEN}"
    approved = taskdaemon(
        home, "approve", served.run_id, "deploy", "--by", "ann", "--comment", comment
    )
    assert (0, "approved deploy (by ann)\n") == (approved.returncode, approved.stdout)
    code, stdout, stderr = served.finish()
    assert 0 == code, stderr
    [row] = _audit_rows(home, served.run_id)
    fields = {name: row.get(name) for name in ("msg", "level", "run_id", "stage", "by", "comment")}
    assert {
        "msg": "approval of deploy granted by ann (looks good, was [REDACTED])",
        "level": "INFO",
        "run_id": served.run_id,
        "stage": "deploy",
        "by": "ann",
        "comment": "looks good, was [REDACTED]",
    } == fields
    assert TOKEN not in stdout + stderr


@pytest.mark.slow
def test_a_rejection_s_reason_is_in_the_run_s_audit_record(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    """``--reject --reason`` is the record's reason, in its message and as a field."""
    served = serve(str(write(tmp_path / "gated.yaml", GATED)))
    served.wait_for_line("waiting for approval")
    argv = ["--reject", "--by", "bob", "--reason", "tests are red", "--comment", "see CI"]
    rejected = taskdaemon(home, "approve", served.run_id, "deploy", *argv)
    assert 0 == rejected.returncode, rejected.stderr
    assert 0 == served.finish()[0]
    [row] = _audit_rows(home, served.run_id)
    fields = {name: row.get(name) for name in ("msg", "by", "reason", "comment")}
    assert {
        "msg": "approval of deploy rejected by bob: tests are red",
        "by": "bob",
        "reason": "tests are red",
        "comment": "see CI",
    } == fields


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--reason", "why"], "--reason goes with --reject only"),
        (["--comment", "x" * 4097], "--comment is longer than 4096 characters"),
        (["--reject", "--reason", "x" * 4097], "--reason is longer than 4096 characters"),
        (["--by", "x" * 4097], "--by is longer than 4096 characters"),
    ],
)
def test_a_bad_comment_reason_or_name_is_one_line_before_any_run_is_reached(
    home: Path, argv: list[str], error: str
) -> None:
    """Refused in one line with exit 2, before the run is looked for (none is served here)."""
    done = taskdaemon(home, "approve", "0" * 32, "deploy", *argv)
    assert (2, f"taskdaemon approve: {error}\n", "") == (done.returncode, done.stderr, done.stdout)


def test_a_canceller_s_name_is_bounded_as_an_approver_s(home: Path) -> None:
    """``cancel --by`` of 4,097 characters is refused in one line with exit 2 before any run is
    looked for, as ``approve --by`` is, not sent for the run to refuse (exit 1)."""
    done = taskdaemon(home, "cancel", "0" * 32, "--by", "x" * 4097)
    expected = (2, "taskdaemon cancel: --by is longer than 4096 characters\n", "")
    assert expected == (done.returncode, done.stderr, done.stdout)
