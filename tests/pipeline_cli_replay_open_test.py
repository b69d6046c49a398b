"""``taskdaemon replay RUN --step`` over a run whose record has no end yet (the run still
going, here held at an approval): said as ``replay`` without ``--step`` says it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import in_background, line_with, taskdaemon, wait_until_stored, write
from pipeline_debug_cli_support import APPROVED


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
