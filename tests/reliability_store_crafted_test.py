"""A span store handed over by ``TASKDAEMON_SPAN_SOURCE=sqlite:///PATH`` that someone crafted.

Every reading command (``runs list``, ``runs show``, ``report``, ``dag --run``, ``logs``,
``replay --dry-run``, and the web page's ``/api`` as ``taskdaemon ui`` serves it) runs in a
real subprocess against each file and either refuses it in one line or shows what it holds,
with no traceback, within the subprocess timeout and a bound on its peak RSS (read from the
kernel, see ``reliability_support.PEAK_LAUNCHER``). The stores are real: one ``taskdaemon
run`` writes a run, and copies of its file are changed afterwards as an attacker would (a
generated column, a CHECK constraint, a 100 MB attribute, a row with a million events, a WAL
of another writer), beside files that are no store at all (not SQLite, empty, a directory, a
symlink to ``/dev/zero`` or to a FIFO, a header from a future SQLite).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import start_ui, taskdaemon
from reliability_support import store_one_run, with_peak
from taskdaemon.pipeline.tracking.spans import MAX_SPAN_ITEMS

pytestmark = pytest.mark.slow

PIPELINE = """\
name: p
stages:
  - name: a
    command: "echo hi"
    triggers: [{manual: {approval_required: false}}]
  - name: b
    command: "true"
    triggers: [{on_completion: {stage: a}}]
"""

MIB = 2**20


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real store holding one finished run of two command stages, and the run's id."""
    return store_one_run(tmp_path_factory.mktemp("store"), PIPELINE)


def _commands(run_id: str) -> list[list[str]]:
    return [
        ["runs", "list"],
        ["runs", "show", run_id],
        ["report"],
        ["dag", "--run", run_id],
        ["logs", run_id],
        ["replay", run_id, "--dry-run"],
    ]


def _ended_span(conn: sqlite3.Connection) -> tuple[int, list[object]]:
    """The rowid and decoded body of a stage span's end row."""
    rowid, body = conn.execute(
        "SELECT rowid, body FROM spans WHERE end_ns IS NOT NULL ORDER BY rowid LIMIT 1"
    ).fetchone()
    return rowid, json.loads(body)


def _rewrite_span(conn: sqlite3.Connection, change: Callable[[list[object]], None]) -> None:
    rowid, body = _ended_span(conn)
    change(body)
    conn.execute(
        "UPDATE spans SET body = ? WHERE rowid = ?",
        (json.dumps(body, separators=(",", ":")), rowid),
    )


def _generated_column(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE spans ADD COLUMN doubled AS (length(body) * 2) VIRTUAL")


def _check_constraint(conn: sqlite3.Connection) -> None:
    """``runs`` redefined with a CHECK that its row breaks (the schema edited in place)."""
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = ? WHERE name = 'runs'",
        (sql.rstrip().removesuffix(")") + ", CHECK (length(pipeline) > 1000))",),
    )


def _huge_attribute(conn: sqlite3.Connection) -> None:
    def change(body: list[object]) -> None:
        body[5] = {**body[5], "big": "x" * (100 * MIB)}  # type: ignore[dict-item]

    _rewrite_span(conn, change)


def _million_events(conn: sqlite3.Connection) -> None:
    def change(body: list[object]) -> None:
        body[6] = [["e", 1, {}]] * 1_000_000

    _rewrite_span(conn, change)


def _million_element_list(conn: sqlite3.Connection) -> None:
    def change(body: list[object]) -> None:
        body[5] = {**body[5], "many": list(range(1_000_000))}  # type: ignore[dict-item]

    _rewrite_span(conn, change)


#: Changes to a copy of the real store, and the peak RSS (MiB) every command stays under.
CRAFTED: dict[str, tuple[Callable[[sqlite3.Connection], None], int]] = {
    "a generated column": (_generated_column, 64),
    "a CHECK constraint its rows break": (_check_constraint, 64),
    "a 100 MB attribute": (_huge_attribute, 512),
    "a row with a million events": (_million_events, 512),
    "a million-element JSON array": (_million_element_list, 200),
}


def _run(home: Path, db: Path, args: list[str]) -> tuple[int, str, str, int]:
    """Exit status, stdout, stderr and peak RSS (MiB) of ``taskdaemon ARGS`` reading ``db``."""
    done, peak = with_peak(home, *args, TASKDAEMON_SPAN_SOURCE=f"sqlite:///{db}")
    return done.returncode, done.stdout, done.stderr, peak


def _crafted_copy(home: Path, source: Path, crafted: str) -> tuple[Path, int]:
    """A copy of the store ``source`` in ``home`` changed as ``CRAFTED[crafted]`` says, and
    the peak RSS (MiB) its readers stay under."""
    db = home / "crafted.db"
    shutil.copy(source, db)
    change, max_mib = CRAFTED[crafted]
    with sqlite3.connect(db) as conn:
        change(conn)
    conn.close()
    return db, max_mib


@pytest.mark.parametrize("crafted", sorted(CRAFTED))
def test_a_crafted_store_is_read_honestly_and_within_bounds(
    home: Path, stored: tuple[Path, str], crafted: str
) -> None:
    """Each command exits 0 and names the stored run, with nothing on stderr but ``dag``'s
    line on the events it did not read and ``replay``'s note that its record is incomplete,
    under the case's memory bound."""
    run_id = stored[1]
    db, max_mib = _crafted_copy(home, stored[0], crafted)
    actual = {}
    for args in _commands(run_id):
        code, out, err, peak = _run(home, db, args)
        named = run_id in out or "p" in out.split()
        actual[" ".join(args[:2])] = (code, err, named, peak < max_mib)
    expected = dict.fromkeys(actual, (0, "", True, True))
    if crafted == "a row with a million events":
        left = f"{1_000_000 - MAX_SPAN_ITEMS} span events, past the first {MAX_SPAN_ITEMS} a span"
        expected["dag --run"] = (0, f"taskdaemon dag: not read: {left}\n", True, True)
        note = (
            f"note: the record of run {run_id} is incomplete (span events and links: "
            f"{1_000_000 - MAX_SPAN_ITEMS} not read): the replay may differ where they mattered\n"
        )
        expected["replay " + run_id] = (0, note, True, True)
    assert expected == actual


def _wal_of_another_writer(db: Path) -> None:
    """A WAL holding a committed change (the run's pipeline renamed ``q``) that its writer
    never checkpointed, left beside the file when that writer died."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE runs SET pipeline = 'q'")
    writer.commit()
    kept = db.read_bytes(), Path(f"{db}-wal").read_bytes()
    writer.close()  # checkpoints and deletes the WAL: put it back as a dead writer left it
    db.write_bytes(kept[0])
    Path(f"{db}-wal").write_bytes(kept[1])


def test_a_wal_left_by_another_writer_is_read_as_committed(
    home: Path, stored: tuple[Path, str]
) -> None:
    """What the dead writer committed in its WAL is what every command shows."""
    source, run_id = stored
    db = home / "wal.db"
    shutil.copy(source, db)
    _wal_of_another_writer(db)
    code, out, err, _ = _run(home, db, ["runs", "list"])
    rows = [line.split() for line in out.splitlines()[1:]]
    assert (0, "", [run_id, "q"]) == (code, err, rows[0][:2])


def test_a_wal_that_is_not_this_databases_is_ignored(home: Path, stored: tuple[Path, str]) -> None:
    """A ``-wal`` file of random pages beside the store (its header and checksums are not the
    database's) is passed over: every command reads the store as it is."""
    source, run_id = stored
    db = home / "strange.db"
    shutil.copy(source, db)
    Path(f"{db}-wal").write_bytes(b"\x37\x7f\x06\x82" + os.urandom(4 * 4096))
    actual = {}
    for args in _commands(run_id):
        code, _, err, _ = _run(home, db, args)
        actual[" ".join(args[:2])] = (code, err)
    assert dict.fromkeys(actual, (0, "")) == actual


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"hello, this is not a database\n" * 100)


def _directory(path: Path) -> None:
    path.mkdir()


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _fifo(path: Path) -> None:
    fifo = path.with_name("fifo")
    os.mkfifo(fifo)
    path.symlink_to(fifo)


def _future_user_version(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("PRAGMA user_version = 999")
    conn.close()


def _future_file_format(path: Path) -> None:
    """A store whose header's read and write format versions (bytes 18 and 19) are from a
    SQLite not written yet."""
    _future_user_version(path)
    header = bytearray(path.read_bytes())
    header[18:20] = b"\x03\x03"
    path.write_bytes(bytes(header))


def _foreign_tables(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE spans (a CHECK (a > 0), b AS (a * 2))")
    conn.close()


#: Files that are no span store, and what each command's one line says of them.
REFUSED: dict[str, tuple[Callable[[Path], None], str]] = {
    "not SQLite": (_not_sqlite, "cannot open span store: file is not a database"),
    "a directory": (_directory, "cannot open span store: unable to open database file"),
    "a symlink to /dev/zero": (_dev_zero, "no span store here (the file holds none)"),
    "a symlink to a FIFO": (_fifo, "cannot open span store: disk I/O error"),
    "a user_version from the future": (
        _future_user_version,
        "span store schema version 999 is newer than this taskdaemon understands",
    ),
    "a file format from the future": (
        _future_file_format,
        "cannot open span store: file is not a database",
    ),
    "tables of its own": (_foreign_tables, "not a taskdaemon span store"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_file_that_is_no_span_store_is_refused_in_one_line(home: Path, case: str) -> None:
    """Each command exits 1 with one line naming the file and why, and nothing on stdout."""
    db = home / "given.db"
    make, reason = REFUSED[case]
    make(db)
    actual = {}
    for args in _commands("0" * 32):
        code, out, err, _ = _run(home, db, args)
        expected_start = f"taskdaemon {' '.join(args[:2]) if args[0] == 'runs' else args[0]}: {db}"
        actual[" ".join(args[:2])] = (
            code,
            out,
            len(err.splitlines()),
            err.startswith(expected_start),
            reason in err,
        )
    assert dict.fromkeys(actual, (1, "", 1, True, True)) == actual, err


def test_a_zero_byte_file_is_no_store_and_is_left_empty(home: Path) -> None:
    """An empty file named as the source holds no store: refused in one line, as a missing
    file is, and left as it was (a reader never writes a store into it). As the home's own
    store it reads as a store with no runs yet, as a missing one does."""
    db = home / "empty.db"
    db.touch()
    code, out, err, _ = _run(home, db, ["runs", "list"])
    own = home / "spans.db"
    own.touch()
    fresh = taskdaemon(home, "runs", "list", cwd=home)
    assert (
        (1, "", [f"taskdaemon runs list: {db}: no span store here (the file holds none)"], 0),
        (0, "no runs\n", 0),
    ) == (
        (code, out, err.splitlines(), db.stat().st_size),
        (fresh.returncode, fresh.stdout, own.stat().st_size),
    )


def _api_answers(home: Path, db: Path, run_id: str) -> tuple[dict[str, int], int]:
    """The status of each ``/api`` route of ``taskdaemon ui`` over ``db`` for the run, and
    the server's peak RSS (MiB) once it answered them all."""
    ui, url, token = start_ui(home, cwd=home, TASKDAEMON_SPAN_SOURCE=f"sqlite:///{db}")
    try:
        routes = {
            "runs/recent": "/api/runs/recent",
            "pipelines": "/api/pipelines",
            "RUN": f"/api/runs/{run_id}",
            "RUN/dag": f"/api/runs/{run_id}/dag",
            "RUN/logs": f"/api/runs/{run_id}/logs?stage=a",
        }
        statuses = {}
        for name, path in routes.items():
            request = urllib.request.Request(
                url + path, headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
                statuses[name] = response.status
        status = Path(f"/proc/{ui.pid}/status").read_text()
        peak = int(status.split("VmHWM:")[1].split()[0]) // 1024
    finally:
        ui.terminate()
        ui.communicate(timeout=30)
    return statuses, peak


@pytest.mark.parametrize(
    "crafted", ["a generated column", "a 100 MB attribute", "a row with a million events"]
)
def test_the_web_api_reads_a_crafted_store_within_bounds(
    home: Path, stored: tuple[Path, str], crafted: str
) -> None:
    """``taskdaemon ui`` over a crafted store answers every ``/api`` route of the run with 200,
    under the case's memory bound."""
    run_id = stored[1]
    db, max_mib = _crafted_copy(home, stored[0], crafted)
    statuses, peak = _api_answers(home, db, run_id)
    routes = ["runs/recent", "pipelines", "RUN", "RUN/dag", "RUN/logs"]
    assert (dict.fromkeys(routes, 200), True) == (statuses, peak < max_mib), peak


def test_the_web_page_refuses_a_file_that_is_no_store_in_one_line(home: Path) -> None:
    """``taskdaemon ui`` over a file that is not SQLite exits 1 with one line naming it."""
    db = home / "given.db"
    _not_sqlite(db)
    done = taskdaemon(home, "ui", "--port", "0", cwd=home, TASKDAEMON_SPAN_SOURCE=f"sqlite:///{db}")
    lines = done.stderr.splitlines()
    expected = (1, 1, True)
    actual = (done.returncode, len(lines), f"{db}: cannot open span store" in done.stderr)
    assert expected == actual, done.stderr


#: Stores whose layout was changed after the fact, and what each reader's one line says.
RELAYOUT: dict[str, tuple[str, str]] = {
    "a dropped column": (
        "ALTER TABLE runs DROP COLUMN writer_id",
        "not a taskdaemon span store (no column runs.writer_id); name another file",
    ),
    "a dropped table": (
        "DROP TABLE critical_steps",
        "not a taskdaemon span store (no column critical_steps.key_no, and 4 more)",
    ),
    "a negative schema version": (
        "PRAGMA user_version = -1",
        "not a taskdaemon span store (schema version -1); name another file",
    ),
}


@pytest.mark.parametrize("case", sorted(RELAYOUT))
def test_a_store_missing_a_column_or_table_is_refused_in_one_line(
    home: Path, stored: tuple[Path, str], case: str
) -> None:
    """Each reader failed in its own query with a traceback (``report`` on a dropped column,
    every reader on a negative version); each now exits 1 with one line naming the file."""
    db = home / "relayout.db"
    shutil.copy(stored[0], db)
    change, reason = RELAYOUT[case]
    with sqlite3.connect(db) as conn:
        conn.execute(change)
    conn.close()
    actual = {}
    for args in _commands(stored[1]):
        code, out, err, _ = _run(home, db, args)
        actual[" ".join(args[:2])] = (code, out, len(err.splitlines()), f"{db}: {reason}" in err)
    assert dict.fromkeys(actual, (1, "", 1, True)) == actual, err


def test_rows_of_the_wrong_type_are_skipped_or_refused_in_one_line(
    home: Path, stored: tuple[Path, str]
) -> None:
    """A ``runs`` row whose start is text and a log record whose time is text were tracebacks
    of ``runs list`` and ``logs``: each is now skipped with one warning. A report aggregate
    of the wrong type (a peak memory of text) fails ``report`` in one line."""
    db = home / "typed.db"
    shutil.copy(stored[0], db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET start_ns = 'soon'")
        conn.execute("UPDATE logs SET time_ns = 'later' WHERE id = 1")
        conn.execute("UPDATE stage_attempts SET peak_memory = 'lots'")
    conn.close()
    run_id = stored[1]
    listed = _run(home, db, ["runs", "list"])
    logs = _run(home, db, ["logs", run_id])
    report = _run(home, db, ["report"])
    damaged = "the report's aggregates are damaged (ValueError: could not convert string to float"
    assert (
        (0, "no runs\n", f"{db}: skipped 1 corrupt runs row (first: {run_id!r}: start_ns is str"),
        (
            0,
            True,
            f"skipped 1 corrupt log row of run {run_id} (first: 1: time_ns is str, not int)",
        ),
        (1, "", f"taskdaemon report: {db}: {damaged}: 'lots')"),
    ) == (
        (listed[0], listed[1], listed[2].strip().removesuffix(", not int)")),
        (logs[0], "finished" in logs[1], logs[2].strip()),
        (report[0], report[1], report[2].strip()),
    )


def test_the_web_page_leaves_out_a_log_record_of_the_wrong_type(
    home: Path, stored: tuple[Path, str]
) -> None:
    """A stage's log record whose time is text was a 500 of ``/api/runs/RUN/logs?stage=a``
    (the page's tail of the stage's log); every route now answers 200."""
    db = home / "typed.db"
    shutil.copy(stored[0], db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE logs SET time_ns = 'later' WHERE stage = 'a'")
    conn.close()
    statuses, _ = _api_answers(home, db, stored[1])
    assert (
        dict.fromkeys(["runs/recent", "pipelines", "RUN", "RUN/dag", "RUN/logs"], 200) == statuses
    )


def test_watch_ends_on_a_run_whose_run_span_row_is_damaged(
    home: Path, stored: tuple[Path, str]
) -> None:
    """The run span's row skipped (its end is text), the run read as running for ever though
    its ``runs`` row says it ended, and ``watch`` never returned; it now shows the run
    interrupted (no writer will end it) and exits 1."""
    db = home / "unended.db"
    shutil.copy(stored[0], db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE spans SET end_ns = 'later' WHERE body LIKE '[null,%'")
    conn.close()
    code, out, err, _ = _run(home, db, ["watch", stored[1], "--interval", "0.05"])
    last = out.splitlines()[-1]
    expected = (1, True, f"run {stored[1]} of p: interrupted", True)
    skipped = f"skipped 1 corrupt span row of run {stored[1]}" in err
    assert expected == (code, "b: success" in out, last.split(",")[0], skipped)
