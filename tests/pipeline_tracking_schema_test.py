"""Opening a span store file (``tracking/_schema.py``): a file that is not one is left as it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cli_support import taskdaemon


@pytest.mark.slow
def test_a_foreign_sqlite_file_is_refused_and_left_unchanged(home: Path, tmp_path: Path) -> None:
    """``runs list --source`` naming another program's SQLite database (tables of its own, no
    schema version) exits 1 with one line (a source that cannot answer, as a damaged store:
    docs/architecture.md, "Exit codes"), and adds no table to it nor changes its journal."""
    foreign = tmp_path / "app.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    done = taskdaemon(home, "runs", "list", "--source", f"sqlite:///{foreign}")
    with sqlite3.connect(foreign) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    lines = done.stderr.splitlines()
    said = "not a taskdaemon span store" in done.stderr
    expected = (1, 1, True, ["users"], "delete")
    assert expected == (done.returncode, len(lines), said, tables, journal), done.stderr
