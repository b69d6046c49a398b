"""``taskdaemon replay RUN --step`` over a run whose record has no end yet (the run still
going, here held at an approval, or its process killed): said as ``replay`` without
``--step`` says it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_faults_support import killed_run
from cli_support import in_background, line_with, taskdaemon, wait_until_stored, write
from pipeline_debug_cli_support import APPROVED
from taskdaemon.pipeline.status_rules import INTERRUPTED
from taskdaemon.pipeline.tracking.store import SpanStore


@pytest.mark.slow
def test_stepping_through_a_run_still_going_says_its_record_is_incomplete(home: Path) -> None:
    """The walk of a run in progress ends at its last recorded event, not at the run's end:
    one ``note:`` line on stderr says so, as ``replay RUN`` says it (before: nothing, and the
    walk's last event read as if the run had stopped there)."""
    running = in_background(home, "run", str(write(home / "gated.yaml", APPROVED)))
    try:
        started = line_with(running.stderr, " started ")
        run_id = started.split()[1]
        wait_until_stored(home, run_id, "a", "success")
        stepped = taskdaemon(home, "replay", run_id, "--step", stdin="where\n")
        replayed = taskdaemon(home, "replay", run_id, "--dry-run")
    finally:
        running.kill()
        running.communicate(timeout=30)
    note = f"note: run {run_id} is still running (or was interrupted): its record is incomplete"
    assert (0, f"{note}; the walk ends at its last recorded event\n") == (
        stepped.returncode,
        stepped.stderr,
    )
    assert note in replayed.stderr


@pytest.mark.slow
def test_a_run_whose_process_died_is_said_interrupted(home: Path, tmp_path: Path) -> None:
    """A run killed (``kill -9``) mid-stage, which the store judges ``interrupted`` as ``runs
    list`` says it: ``replay --dry-run`` and ``--step`` say it was interrupted, where they
    said ``still running (or was interrupted)`` of a run the store knew no process drives;
    ``--verify``'s refusal says it in the same words."""
    run_id = killed_run(home, tmp_path)
    # At once, no wait: the run's ``runs`` row came with its first span row, in one transaction.
    with SpanStore(home / "spans.db") as store:
        assert INTERRUPTED == store.get_run(run_id).status
    stepped = taskdaemon(home, "replay", run_id, "--step", stdin="")
    replayed = taskdaemon(home, "replay", run_id, "--dry-run")
    # With its file: a run killed this early may not have recorded its definition yet.
    slow = str(tmp_path / "slow.yaml")
    verified = taskdaemon(home, "replay", run_id, slow, "--use-file", "--verify", "-q")
    note = f"note: run {run_id} was interrupted (its process died): its record is incomplete"
    assert (0, f"{note}; the walk ends at its last recorded event\n") == (
        stepped.returncode,
        stepped.stderr,
    )
    assert note in replayed.stderr.splitlines(), replayed.stdout + replayed.stderr
    assert (
        2,
        f"taskdaemon replay: cannot verify against run {run_id}: it was interrupted (its "
        "process died), so its record has no end; replay it without --verify\n",
    ) == (verified.returncode, verified.stderr)
