"""A replay ``--from c`` of a run that failed at ``b``, upstream of ``c``: ``b`` is fed as the
original ended it, and the dry run and the replay say what that does, where the dry run said
``run   c`` of a stage the replay then skipped. Real ``taskdaemon run`` and ``replay``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write

#: ``b`` fails; ``c`` follows it whatever its end, so only the error strategy keeps it from
#: running in a replay that feeds ``b``'s failure.
_FAILED_MIDWAY = """\
    name: midway
    error_strategy: %s
    stages:
      - {name: a, command: "true", triggers: [{manual: {approval_required: false}}]}
      - {name: b, command: "exit 3", triggers: [{on_completion: {stage: a}}]}
      - name: c
        command: "true"
        triggers: [{on_completion: {stage: b, success_only: %s}}]
"""


def _failed_midway(home: Path, strategy: str, success_only: str) -> str:
    path = write(home / "midway.yaml", _FAILED_MIDWAY % (strategy, success_only))
    run = taskdaemon(home, "run", str(path), "-q")
    assert 1 == run.returncode, run.stderr
    return run.stdout.strip()


@pytest.mark.slow
def test_a_fed_failure_under_fail_says_the_replay_stops_there(home: Path) -> None:
    """Under ``error_strategy: fail`` the dry run lists ``run   c``, and says, as the replay
    does, that ``b``'s fed failure stops the replay before it; the replay skips ``c``."""
    original = _failed_midway(home, "fail", "false")
    note = (
        "note: b is fed as the original ended it, failure: error_strategy fail stops the "
        "replay there, as it stopped the original, and skips every stage run again that has "
        "not started by then (--from b runs it again)"
    )
    dry = taskdaemon(home, "replay", original, "--from", "c", "--dry-run")
    replay = taskdaemon(home, "replay", original, "--from", "c")
    assert (0, [note]) == (dry.returncode, dry.stderr.splitlines()), dry.stdout + dry.stderr
    assert "run   c" in dry.stdout.splitlines(), dry.stdout
    assert 1 == replay.returncode, replay.stdout + replay.stderr
    assert note in replay.stderr.splitlines(), replay.stderr
    (c,) = [line.split() for line in replay.stdout.splitlines() if line.startswith("c ")]
    assert "skipped" == c[1], replay.stdout


@pytest.mark.slow
@pytest.mark.parametrize("success_only", ["true", "false"])
def test_a_fed_failure_under_continue_says_what_waits_for_its_success(
    home: Path, success_only: str
) -> None:
    """Under ``error_strategy: continue`` the note says a stage waiting for ``b``'s success is
    skipped: ``c`` is, when it waits for that, and runs when it follows any end of ``b``."""
    original = _failed_midway(home, "continue", success_only)
    replay = taskdaemon(home, "replay", original, "--from", "c")
    note = (
        "note: b is fed as the original ended it, failure: a stage that waits for its "
        "success is skipped (--from b runs it again)"
    )
    assert note in replay.stderr.splitlines(), replay.stdout + replay.stderr
    (c,) = [line.split() for line in replay.stdout.splitlines() if line.startswith("c ")]
    assert ("skipped" if success_only == "true" else "success") == c[1], replay.stdout
