"""Opening a span store file (``tracking/_schema.py``): a file that is not one is left as it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

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


def _connect_and_report(path: str, answers: Any) -> None:
    """One process opening (creating, or finding) the store: "ok", or its error's first line."""
    from taskdaemon.pipeline.tracking._schema import connect

    try:
        connect(Path(path)).close()
        answers.put("ok")
    except Exception as error:
        answers.put(f"{type(error).__name__}: {error}"[:160])


@pytest.mark.slow
def test_processes_creating_one_store_at_once_all_open_it(tmp_path: Path) -> None:
    """Three processes that open a new store file at the same moment all get it: none reads the
    tables another is committing apart from their schema version and refuses the file as
    another program's. (Reading the two apart, about one race in fifty failed; 300 races make
    that all but certain, and take about ten seconds.)"""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    refusals = []
    for race in range(300):
        path = tmp_path / str(race) / "spans.db"
        answers = context.Queue()
        openers = [
            context.Process(target=_connect_and_report, args=(str(path), answers)) for _ in range(3)
        ]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(timeout=60)
        found = [answers.get(timeout=60) for _ in openers]
        answers.close()
        answers.join_thread()
        refusals += [answer for answer in found if answer != "ok"]
    assert refusals == []
