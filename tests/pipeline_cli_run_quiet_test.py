"""``taskdaemon run -q`` of a pipeline with a manual approval: the wait is said on stderr with
the command that grants it, the one line ``--quiet`` keeps besides a failure's reason.

Before, ``-q`` said nothing while the run waited, and the run id that ``approve`` needs was
printed only once the run had ended: the command hung, silent, until it was interrupted.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from cli_support import GATED_PIPELINE as GATED
from cli_support import ONE_STAGE_PIPELINE, printing_run, taskdaemon, write
from taskdaemon.pipeline.cli.approval_policy import ApprovalPolicy
from taskdaemon.pipeline.cli.run import awaits_approval
from taskdaemon.pipeline.config import parse_pipeline
from terminal_support import on_a_terminal_of


def test_quiet_says_the_wait_for_an_approval_and_how_to_grant_it(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    served = serve(str(write(tmp_path / "gated.yaml", GATED)), "-q")
    line = served.wait_for_line("waits for approval")
    command = line.split("(", 1)[1].removesuffix(")\n").split()
    assert ["taskdaemon", "approve"] == command[:2]
    assert "deploy" == command[3]
    approved = taskdaemon(home, *command[1:])
    assert 0 == approved.returncode, approved.stderr
    code, stdout, stderr = served.finish()
    assert (0, f"{command[2]}\n") == (code, stdout)
    assert "waits for approval" not in stderr  # said once
    assert line == f"deploy waits for approval (taskdaemon approve {command[2]} deploy)\n"


def test_on_a_narrow_terminal_the_command_goes_whole_on_a_line_of_its_own(
    home: Path, tmp_path: Path
) -> None:
    """With a long stage name the line is wider than 80 columns: the terminal wrapped the
    command to copy mid-word. The command goes on its own line, whole, the stage's name above
    it cut to fit (the approval times out: the run ends by itself)."""
    stage = "deploy_the_release_to_the_production_cluster_in_the_eu_west_region"
    gated = GATED.replace("deploy", stage).replace("true}", "true, timeout: 0.1s}")
    path = str(write(tmp_path / "gated.yaml", gated))
    code, lines = on_a_terminal_of(80, home, "run", path, "-q")
    run_id = lines[-1]
    assert (0, 3, True) == (code, len(lines), len(lines[0]) <= 80), lines
    assert [f"{stage[:60]}… waits for approval", f"    (taskdaemon approve {run_id} {stage})"] == (
        lines[:2]
    )


def test_quiet_says_nothing_of_an_approval_the_command_line_grants(
    home: Path, tmp_path: Path
) -> None:
    path = str(write(tmp_path / "gated.yaml", GATED))
    for grant in (["--auto-approve"], ["--approve", "deploy"]):
        done = taskdaemon(home, "run", path, "-q", *grant)
        assert (0, "") == (done.returncode, done.stderr)
        assert 32 == len(done.stdout.strip())


def test_the_hint_is_an_observer_only_for_a_wait_the_command_line_does_not_grant() -> None:
    """The hint is one observer more than the monitor, which costs every stage the engine's
    fan-out (a no-op stage's instructions went up by a percent): a pipeline with no approval
    to wait for, or whose approvals the command line grants, runs without it."""
    gated = parse_pipeline(textwrap.dedent(GATED))
    plain = parse_pipeline(textwrap.dedent(ONE_STAGE_PIPELINE))
    assert [True, False, False, False] == [
        awaits_approval(gated, ApprovalPolicy([])),
        awaits_approval(gated, ApprovalPolicy(["deploy"])),
        awaits_approval(gated, ApprovalPolicy([], approve_all=True)),
        awaits_approval(plain, ApprovalPolicy([])),
    ]


@pytest.mark.slow
def test_what_a_handler_prints_comes_before_what_it_logs_next_in_one_log(
    home: Path, tmp_path: Path
) -> None:
    """``run -q FILE > log 2>&1`` of Python stages that print, the first logging a warning
    after its line: the log reads them in the order they were written, the run id last. The
    lines printed, held in stdout's block buffer until the run id, came after the warning."""
    done = printing_run(home, tmp_path, "-q")
    *said, run_id = done.stdout.splitlines()
    warned = [i for i, line in enumerate(said) if " WARNING printing: logged by first [" in line]
    assert (0, [1]) == (done.returncode, warned), done.stdout
    assert ["printed by first", "printed by second"] == said[:1] + said[2:], done.stdout
    assert 32 == len(run_id), done.stdout
