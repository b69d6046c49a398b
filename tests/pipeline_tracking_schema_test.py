"""Opening a span store file (``tracking/_schema.py``): a file that is not one is left as it is."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking._schema import connect


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
    try:
        connect(Path(path)).close()
        answers.put("ok")
    except Exception as error:
        answers.put(f"{type(error).__name__}: {error}"[:160])


@pytest.mark.slow
@pytest.mark.timeout(900)  # 900 forks: about 10 s here, over 120 s on CI's two busy cores
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
            assert opener.exitcode == 0, f"race {race}: an opener hung or failed"
        found = [answers.get(timeout=60) for _ in openers]
        answers.close()
        answers.join_thread()
        refusals += [answer for answer in found if answer != "ok"]
    assert refusals == []


def _crafted_store(path: Path, *statements: str) -> Path:
    """A store made by taskdaemon, then changed by ``statements`` as someone handing it over
    might have changed it."""
    connect(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    return path


#: A view in the place of the runs table that counts for ever: reading it never ends.
ENDLESS_RUNS = (
    "CREATE VIEW runs AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) "
    "SELECT printf('%032x', n) AS trace_id, 'p' AS pipeline, 'success' AS status, "
    "n AS start_ns, n AS end_ns, 0 AS stage_count, 0 AS failed_stages, NULL AS writer_id, "
    "NULL AS replay_of FROM c"
)


def test_a_store_whose_runs_table_is_an_endless_view_is_refused(home: Path, tmp_path: Path) -> None:
    """``runs list --source`` naming a store file whose ``runs`` is a view of its own (which
    hung the command: SQL in a view runs when it is read) exits 1 with one line naming it."""
    store = _crafted_store(tmp_path / "spans.db", "DROP TABLE runs", ENDLESS_RUNS)
    done = taskdaemon(home, "runs", "list", "--source", f"sqlite:///{store}", timeout=30)
    expected = (1, [f"taskdaemon runs list: {store}: not a taskdaemon span store (a view 'runs'"])
    assert expected == (
        done.returncode,
        [line[: len(expected[1][0])] for line in done.stderr.splitlines()],
    )


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TRIGGER spy AFTER INSERT ON traces BEGIN DELETE FROM writers; END",
        "CREATE VIEW spans_all AS SELECT * FROM spans",
        "DROP VIEW spans_readable",  # then the store's own name with other SQL
    ],
)
def test_a_store_with_a_trigger_or_view_of_its_own_is_refused(
    tmp_path: Path, statement: str
) -> None:
    """A trigger (its SQL runs when a writer or a migration changes its table) or a view that
    taskdaemon does not make, or one of its names with other SQL, is refused when the file is
    opened, to write or to read; the store's own ones pass."""
    extra = ("CREATE VIEW spans_readable AS SELECT 1",) if statement.startswith("DROP VIEW") else ()
    store = _crafted_store(tmp_path / "spans.db", statement, *extra)
    refusals = []
    for create in (True, False):
        with pytest.raises(SpanSourceError) as caught:
            connect(store, create=create)
        refusals.append("taskdaemon does not make" in str(caught.value))
    connect(_crafted_store(tmp_path / "plain.db")).close()
    assert refusals == [True, True]
