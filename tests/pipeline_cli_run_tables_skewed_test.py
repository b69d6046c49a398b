"""An interrupted run whose writer's last heartbeat is in the future (a clock ahead, another
host's, or a store edited): ``at least`` is a floor, so ``runs list`` and ``runs show`` do not
take a sign of life later than their own clock; they fall back to the run's records."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from cli_faults_support import killed_run
from cli_support import taskdaemon


def _lasted(home: Path, run_id: str) -> tuple[float, float]:
    """``lasted_at_least`` as ``runs list --json`` and ``runs show --json`` give it."""
    (row,) = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    return row["lasted_at_least"], shown["lasted_at_least"]


@pytest.mark.slow
def test_a_heartbeat_in_the_future_is_no_sign_of_life(home: Path, tmp_path: Path) -> None:
    """Before, a heartbeat of 2**63-1 ns made a run killed after seconds last ``at least
    2062987h24m`` in both views."""
    run_id = killed_run(home, tmp_path)
    seen_listed, seen_shown = _lasted(home, run_id)
    assert 0 < seen_listed == seen_shown
    conn = sqlite3.connect(home / "spans.db")
    try:
        conn.execute("UPDATE writers SET heartbeat_ns = ?", (2**63 - 1,))
        conn.commit()
    finally:
        conn.close()
    skewed_listed, skewed_shown = _lasted(home, run_id)
    assert 0 <= skewed_listed == skewed_shown <= seen_listed
    listed = taskdaemon(home, "runs", "list").stdout
    assert "h" not in listed.splitlines()[1].split("at least")[1], listed


def _writer_elsewhere(home: Path, ahead: float) -> None:
    """The store's writers moved to another host, their heartbeat ``ahead`` seconds past now
    (at most 2**63-1 ns, the largest SQLite holds)."""
    conn = sqlite3.connect(home / "spans.db")
    try:
        beat = min(2**63 - 1, time.time_ns() + int(ahead * 1e9))
        conn.execute("UPDATE writers SET host = 'elsewhere.invalid', heartbeat_ns = ?", (beat,))
        conn.commit()
    finally:
        conn.close()


@pytest.mark.slow
def test_a_writer_on_a_host_far_ahead_is_not_alive_for_good(home: Path, tmp_path: Path) -> None:
    """A heartbeat within the skew bound of the reader's clock, ahead, is a live writer's; one an
    hour ahead is not. Before, any heartbeat ahead of the reader's clock was a sign of life
    until that clock caught up: the killed run read ``running`` for the hour (2**63-1: for
    ever)."""
    run_id = killed_run(home, tmp_path)
    for ahead, status in [(10.0, "running"), (3600.0, "interrupted"), (1e12, "interrupted")]:
        _writer_elsewhere(home, ahead)
        (row,) = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
        shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
        assert (ahead, row["status"], shown["status"]) == (ahead, status, status)
