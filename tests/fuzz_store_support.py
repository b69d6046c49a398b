"""The fuzzer's span store target: a real store file changed as a hand or a failing disk would
change it, read back by every command that reads the store and by the web page's routes
(docs/input-limits.md, "Fuzzing"). :data:`TARGETS` holds every target, this one and
``fuzz_targets_support``'s; :func:`failures` runs a target's cases against the oracle.

The commands run in-process as ``fuzz_targets_support.run_command`` runs them, the store being
the temporary home's own; the web page is the real app (``taskdaemon ui``'s, read-only) over
the file, asked through httpx's ASGI transport. Its oracle: no answer of 500 or more but 502,
the page's one-line answer when its span source fails, and nothing escapes the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

import fuzz_support
import fuzz_targets_support
from fuzz_support import ServerError, Target
from fuzz_targets_support import mutated_json, run_command, scratch
from taskdaemon.pipeline.server import create_app
from taskdaemon.pipeline.web import WebOptions

STORED_RUN = "5" * 32  # the run of the store's seed, given a fixed id
_STORE: list[bytes] = []


def _store_seed() -> bytes:
    """The bytes of a real store holding one ``taskdaemon run`` (a stage with output, then
    another), made once; the run's id set to ``STORED_RUN`` so cases name it."""
    if not _STORE:
        from cli_support import taskdaemon

        with tempfile.TemporaryDirectory() as folder:
            home = Path(folder)
            (home / "p.yaml").write_text(STORED_PIPELINE)
            done = taskdaemon(home, "run", str(home / "p.yaml"), cwd=home)
            assert 0 == done.returncode, done.stderr
            with contextlib.closing(sqlite3.connect(home / "spans.db")) as conn, conn:
                conn.execute("PRAGMA journal_mode = DELETE")  # one file holds it all
                for table in ("traces", "runs", "logs"):
                    conn.execute(f"UPDATE {table} SET trace_id = ?", (STORED_RUN,))
            _STORE.append((home / "spans.db").read_bytes())
    return _STORE[0]


STORED_PIPELINE = """\
name: p
stages:
  - {name: a, command: "echo out; echo err >&2", triggers: [{manual: {approval_required: false}}]}
  - {name: b, command: "true", triggers: [{on_completion: {stage: a}}]}
"""
#: What a column is set to: each of SQLite's types, and the values readers trip on.
STORED_VALUES: tuple[Any, ...] = (
    None, 0, -1, 2**63 - 1, -(2**63), 0.5, 1e308, float("inf"), "", "x", "9" * 30, "1e400",
    "\x00", b"", b"\xff\xfe", "[]", "{}", "[1,2]", '"a"', "x" * 100_000, STORED_RUN, "running",
)  # fmt: skip


def _store_change(rng: random.Random, conn: sqlite3.Connection) -> None:
    """One change to a store as someone editing it would make: a table or column dropped, a
    table emptied, or a column set, in the rows holding one of its values, to an odd value or
    its JSON text reshaped. What SQLite refuses (NULL in a NOT NULL column, dropping an indexed
    column) is not made."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    table = rng.choice(sorted(tables))
    columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
    column, roll = rng.choice(columns), rng.random()
    with contextlib.suppress(sqlite3.Error):
        if roll < 0.05:
            conn.execute(f'DROP TABLE "{table}"')
        elif roll < 0.12:
            conn.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        elif roll < 0.17:
            conn.execute(f'DELETE FROM "{table}"')
        else:
            keys = conn.execute(f'SELECT "{column}" FROM "{table}" ORDER BY 1').fetchall()
            if not keys:
                return
            (key,) = rng.choice(keys)
            new = rng.choice(STORED_VALUES)
            if isinstance(key, str) and key[:1] in "[{" and rng.random() < 0.6:
                new = mutated_json(rng, key)
            conn.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" IS ?', (new, key))


def _store_make(rng: random.Random) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder, "spans.db")
        db.write_bytes(_store_seed())
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            for _ in range(rng.randint(1, 3)):
                _store_change(rng, conn)
            if rng.random() < 0.1:
                conn.execute(f"PRAGMA user_version = {rng.choice((-1, 0, 1, 5, 10, 12))}")
        data = bytearray(db.read_bytes())
    if rng.random() < 0.1:  # damaged pages: cut short, or bytes past the header changed
        if rng.random() < 0.5:
            return bytes(data[: rng.randrange(len(data))])
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(100, len(data))] = rng.randrange(256)
    return bytes(data)


#: What reads the store (the home's own, ``$TASKDAEMON_HOME/spans.db``).
STORE_COMMANDS = (
    ("runs", "list"),
    ("runs", "list", "--json"),
    ("runs", "show", STORED_RUN),
    ("runs", "show", "--json", STORED_RUN[:6]),
    ("dag", "--run", STORED_RUN, "--format", "json"),
    ("logs", STORED_RUN),
    ("replay", STORED_RUN, "--dry-run"),
    ("dump", STORED_RUN, "-o", "out.tar.gz"),
    ("report",),
)


def _store_run(data: bytes) -> None:
    with scratch() as root:
        (root / "home" / "spans.db").write_bytes(data)
        for command in STORE_COMMANDS:
            run_command(list(command))


#: What the web page is asked of the store's run.
STORE_PAGES = (
    "/",
    f"/runs/{STORED_RUN}",
    "/api/runs/recent",
    "/api/pipelines",
    f"/api/runs/{STORED_RUN}",
    f"/api/runs/{STORED_RUN}/dag",
    f"/api/runs/{STORED_RUN}/logs?stage=a",
)


async def page_statuses(db: Path) -> list[int]:
    """The status of each of ``STORE_PAGES`` from ``taskdaemon ui``'s app over the store."""
    app = create_app(web=WebOptions(source_url=f"sqlite:///{db}", read_only=True))
    headers = {"authorization": f"Bearer {app.state.auth.token}"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return [(await client.get(path, headers=headers)).status_code for path in STORE_PAGES]
    finally:
        app.state.web.close()


def _store_run(data: bytes) -> None:
    with scratch() as root:
        db = root / "home" / "spans.db"
        db.write_bytes(data)
        for command in STORE_COMMANDS:
            run_command(list(command))
        failed = [status for status in asyncio.run(page_statuses(db)) if status in range(500, 600)]
        if set(failed) - {502}:
            raise ServerError(failed)


TARGETS: dict[str, Callable[[], Target]] = {
    **fuzz_targets_support.TARGETS,
    "store": lambda: Target(_store_make, _store_run, ()),
}


def failures(name: str, seeds: Iterable[int]) -> Iterator[tuple[int, Any, BaseException]]:
    """``(seed, case, error)`` for each case of ``seeds`` on which the target breaks the oracle."""
    target = TARGETS[name]()
    for seed in seeds:
        made = fuzz_support.case(target, seed)
        try:
            target.run(made)
        except target.allowed:
            continue
        except Exception as error:  # the oracle: anything else is a finding
            yield seed, made, error
