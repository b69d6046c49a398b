"""The notes a replay prints of what a debugger did in the original run (``replay/plan.py``):
in the order it was done, stage by stage and attempt by attempt."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cli_support import taskdaemon

PIPELINE = """\
    name: again
    stages:
      - name: a
        command: "echo '{\\"x\\": 1}'"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "test $TASKDAEMON_INPUT_X = 5 || exit 3"
        triggers: [{on_completion: {stage: a}}]
        inputs: {x: stages.a.outputs.x}
"""


@pytest.mark.slow
def test_a_retry_is_noted_before_the_override_of_the_attempt_it_started(home: Path) -> None:
    """``b`` failed, was retried at its failure (``b.0.1``) and its second attempt ran with
    ``x`` overridden (``b.0.2``): ``replay --dry-run`` notes the retry first. Before: every
    override was noted before every skip and retry, ``b.0.2`` before ``b.0.1``."""
    (home / "again.yaml").write_text(textwrap.dedent(PIPELINE))
    done = taskdaemon(
        home,
        "debug",
        str(home / "again.yaml"),
        "--break-on-failure",
        "-q",
        stdin="break b\nretry\nset x 5\ncontinue\n",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.split()[2]
    replay = taskdaemon(home, "replay", run_id, "--dry-run")
    at = "at a breakpoint in the original (by cli debug): the replay runs b as its definition"
    assert [
        f"note: b.0.1 was retried {at} says, so it may differ there",
        f"note: b.0.2 had its input x overridden {at} says, so it may differ there",
    ] == replay.stderr.splitlines()
