"""A span store this user may read but not write (``_schema.connect_to_read``): a folder nobody
may write is read, a folder its owner may still write is read only while a writer holds the
store's ``-shm`` file, and a command that must write says why it cannot, in one line.

Real files and permissions: the reader runs in a forked child as user ``nobody`` when the suite
runs as root (root may write any folder), as the suite's own user otherwise; the read-only bind
mount cases need root to mount and are skipped for any other user.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline_tracking_support import store_with
from reliability_support import short_dir, taskdaemon
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.tracking.store import RetentionPolicy

ROOT = os.geteuid() == 0
NOBODY = 65534

pytestmark = pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder ``nobody`` may enter, holding a store of two runs in ``home`` (0755)."""
    with short_dir() as path:
        path.chmod(0o755)
        home = path / "home"
        home.mkdir(mode=0o755)
        store_with(home / "spans.db", [5, 5])
        (home / "spans.db").chmod(0o644)
        try:
            yield home
        finally:
            home.chmod(0o755)


def as_reader(call: Callable[[], str]) -> str:
    """``call()``'s answer, or ``error: <its one line>``, in a forked child that runs as
    ``nobody`` when this process is root: a user who may read the store but not write it."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, leave without any cleanup
        try:
            os.close(read_end)
            if ROOT:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                answer = call()
            except (SpanSourceError, sqlite3.Error) as error:
                answer = f"error: {error}"
            except BaseException as error:  # anything else is the bug: said, not hidden
                answer = f"raised {type(error).__name__}: {error}"
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def _listed(db: Path) -> Callable[[], str]:
    def call() -> str:
        with SpanStore(db, retention=RetentionPolicy()) as store:
            return f"{len(store.search(limit=10))} runs"

    return call


def _retention(db: Path) -> Callable[[], str]:
    def call() -> str:
        with SpanStore(db, retention=RetentionPolicy()) as store:
            store.apply_retention(RetentionPolicy(keep=1))
        return "retention applied"

    return call


def test_a_store_in_a_folder_nobody_may_write_is_read_and_not_written(folder: Path) -> None:
    """A store in a folder without any write bit (``chmod a-w``, a copy on a CD) is read: no
    writer can make the ``-shm`` file either, so it cannot change under the reader. Retention
    says in one line why it cannot delete runs, not SQLite's "attempt to write a readonly
    database"."""
    db = folder / "spans.db"
    folder.chmod(0o555)
    listed = as_reader(_listed(db))
    retention = as_reader(_retention(db))
    assert (
        "2 runs",
        f"error: {db}: cannot delete runs from this span store: its folder {folder} is not "
        "writable by this user",
    ) == (listed, retention)


@pytest.mark.skipif(not ROOT, reason="a folder its owner may write but the reader may not: root")
def test_a_store_its_owner_may_write_is_read_while_its_writer_has_it_open(folder: Path) -> None:
    """Another user's store in a folder only they may write: with no ``-shm`` file SQLite
    cannot read it safely (the owner may start writing under an ``immutable`` reader), which
    one line says with what to do; while the owner's process has it open it is read along with
    that process."""
    db = folder / "spans.db"
    refused = as_reader(_listed(db))
    writer = sqlite3.connect(db)
    try:
        writer.execute("SELECT count(*) FROM runs").fetchall()  # makes the -shm file
        listed = as_reader(_listed(db))
    finally:
        writer.close()
    assert (
        f"error: {db}: cannot read this span store safely: its folder {folder} is not writable "
        "by this user, so SQLite cannot make its spans.db-shm file to read it while its owner "
        "may write it; copy it into a folder of yours and read the copy",
        "2 runs",
    ) == (refused, listed)


@contextmanager
def read_only_bind(source: Path, target: Path) -> Iterator[Path]:
    """``source`` bound read-only on ``target`` (``mount --bind``, then ``remount,ro,bind``):
    its file system stays writable through ``source``. Unmounted on exit."""
    if not ROOT:
        pytest.skip("a bind mount needs root")
    target.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True)
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


@pytest.mark.slow
def test_a_read_only_bind_mount_of_a_written_folder_is_read_only_with_its_writer(
    folder: Path,
) -> None:
    """A store seen through a read-only bind mount of a folder written elsewhere: ``runs list``
    refuses it in one line while no process has it open (``immutable`` would read it under a
    writer starting through the other mount) and lists its runs while one has; ``retention``
    says why it cannot delete runs there. No traceback, no "attempt to write"."""
    with read_only_bind(folder, folder.parent / "ro") as mount:
        url = f"sqlite:///{mount / 'spans.db'}"
        refused = taskdaemon(folder, "runs", "list", "--source", url)
        writer = sqlite3.connect(folder / "spans.db")
        try:
            writer.execute("SELECT count(*) FROM runs").fetchall()
            listed = taskdaemon(folder, "runs", "list", "--source", url)
            retention = taskdaemon(folder, "retention", "--keep", "1", "--source", url)
        finally:
            writer.close()
    said = f"{mount / 'spans.db'}: "
    assert (
        (1, [f"taskdaemon runs list: {said}cannot read this span store safely"]),
        (0, 3),
        (
            1,
            f"taskdaemon retention: {said}cannot delete runs from this span store: on a "
            "read-only mount (its file system may be written through another)\n",
        ),
    ) == (
        (
            refused.returncode,
            [line.partition(" safely")[0] + " safely" for line in refused.stderr.splitlines()],
        ),
        (listed.returncode, len(listed.stdout.splitlines())),
        (retention.returncode, retention.stderr),
    ), refused.stderr + listed.stderr
