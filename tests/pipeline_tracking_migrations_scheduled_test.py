"""A hostile store of schema 12 migrated to 13 (``_migrations._add_scheduled_ns``): run spans
whose ``taskdaemon.pipeline.scheduled_at_ns`` is an integer past 64 bits, text, a bool, a
negative number or a float. Every run stays listed by the real ``runs list``; only a due time a
run's ``runs`` row can hold is kept."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon

_PIPELINE = (
    "name: mig\nstages:\n"
    "  - {name: a, command: 'true', triggers: [{manual: {approval_required: false}}]}\n"
)
#: Each run's attribute, and the due time (seconds) ``runs list`` gives it after the migration.
_DUE: list[tuple[Any, float | None]] = [
    (2**63, None),
    (10**30, None),
    ("1796616811000000000", None),
    (True, None),
    (-5, None),
    (1.5e18, None),
    (2**63 - 1, (2**63 - 1) / 1e9),
]


def _as_hostile_version_12(db: Path, run_ids: list[str]) -> None:
    """Each run span given its value of :data:`_DUE`, and the file put back to schema 12."""
    conn = sqlite3.connect(db)
    try:
        for run_id, (value, _) in zip(run_ids, _DUE, strict=True):
            rowid, body = conn.execute(
                "SELECT s.rowid, s.body FROM spans s JOIN traces t USING (trace_no)"
                " WHERE t.trace_id = ? AND json_extract(s.body, '$[0]') IS NULL",
                (run_id,),
            ).fetchone()
            span = json.loads(body)
            span[5]["taskdaemon.pipeline.scheduled_at_ns"] = value
            conn.execute("UPDATE spans SET body = ? WHERE rowid = ?", (json.dumps(span), rowid))
        conn.execute("ALTER TABLE runs DROP COLUMN scheduled_ns")
        conn.execute("PRAGMA user_version = 12")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.slow
def test_a_due_time_no_runs_row_can_hold_is_none_and_its_run_stays_listed(
    home: Path, tmp_path: Path
) -> None:
    """Before, ``json_extract`` read 2**63 and 10**30 as REALs and the migration stored them:
    ``runs list`` skipped those runs as corrupt rows (``scheduled_ns is float, not int``)."""
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(_PIPELINE)
    run_ids = []
    for _ in _DUE:
        ran = taskdaemon(home, "run", str(pipeline), "-q")
        assert 0 == ran.returncode, ran.stderr
        run_ids.append(ran.stdout.strip())
    _as_hostile_version_12(home / "spans.db", run_ids)
    listed = taskdaemon(home, "runs", "list", "--json")
    assert 0 == listed.returncode, listed.stderr
    assert "" == listed.stderr
    due = {run["run_id"]: run["scheduled_at"] for run in json.loads(listed.stdout)}
    assert {run_id: seconds for run_id, (_, seconds) in zip(run_ids, _DUE, strict=True)} == due
