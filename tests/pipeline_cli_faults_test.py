"""Faults as an operator meets them, with real ``taskdaemon`` processes: a command stopped by
SIGINT or SIGTERM records its run ``cancelled`` (never ``interrupted``, never a traceback) and
leaves no process behind; a run whose process was killed (``kill -9``) can still be dumped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_faults_support import (
    in_background,
    no_sleeper_left,
    on_a_terminal,
    run_id_of_summary,
    slow_pipeline,
    stored_status,
    wait_for_pids,
)
from cli_support import (
    taskdaemon,
    wait_until_stored,
    write,
)
from taskdaemon.pipeline.control import socket_path

pytestmark = pytest.mark.slow


def _quick_pipeline(tmp_path: Path) -> Path:
    """A pipeline of one quick command stage."""
    return write(
        tmp_path / "quick.yaml",
        """\
        name: quick
        stages:
          - name: only
            command: "echo '{}'"
            triggers: [{manual: {approval_required: false}}]
        """,
    )


@pytest.fixture
def start(home: Path) -> Iterator[Any]:
    """Start ``taskdaemon ARGS`` in the background (``cli_faults_support.in_background``)."""
    with in_background(home) as launch:
        yield launch


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_cancels_a_replay(
    home: Path, tmp_path: Path, start: Any, signum: signal.Signals
) -> None:
    """SIGINT or SIGTERM to ``replay`` cancels the replayed run as it cancels ``run``'s: the
    run is recorded cancelled, the exit code is 128 + the signal, no traceback, and its
    command's processes are gone. Before, SIGINT was a KeyboardInterrupt traceback and SIGTERM
    ended the process at once, leaving the replay ``interrupted`` in the store."""
    path, pids = slow_pipeline(tmp_path)
    original = start("run", str(path))
    original.wait_for_line("wait                     running")
    wait_for_pids(pids, 1)
    original.process.send_signal(signal.SIGINT)
    assert 130 == original.finish()[0]
    replay = start("replay", original.run_id)
    replay.wait_for_line("wait                     running")
    wait_for_pids(pids, 2)
    replay.process.send_signal(signum)
    code, stdout, stderr = replay.finish()
    assert 128 + signum == code, stderr
    assert "Traceback" not in stderr
    assert f"{signum.name}: cancelling run " in stderr
    assert "cancelled" == stored_status(home, run_id_of_summary(stdout))
    no_sleeper_left(pids)


def test_sigterm_cancels_a_debugged_run_paused_at_a_breakpoint(
    home: Path, tmp_path: Path, start: Any
) -> None:
    """SIGTERM to ``debug FILE`` while its run is paused at a breakpoint (the prompt waiting
    for a command) cancels the run, as Ctrl-C does: exit 143, the run recorded cancelled with
    its summary printed, its error naming SIGTERM. Before, the process ended at once, its run
    left ``interrupted``."""
    path, _pids = slow_pipeline(tmp_path)
    debugged = start("debug", str(path), "--break", "wait", stdin=subprocess.PIPE)
    debugged.wait_for_line("wait                     paused")
    debugged.process.send_signal(signal.SIGTERM)
    code, stdout, stderr = debugged.finish()
    assert 143 == code, stderr
    assert "Traceback" not in stderr
    assert "SIGTERM: cancelling run " in stderr
    run_id = run_id_of_summary(stdout)
    assert f"run {run_id} cancelled" in stdout
    assert "error: run cancelled by SIGTERM" in stdout.splitlines()
    assert "cancelled" == stored_status(home, run_id)


def test_sigterm_cancels_a_debugged_running_stage(home: Path, tmp_path: Path, start: Any) -> None:
    """SIGTERM to ``debug FILE`` while a command stage runs: cancelled, exit 143, the stage's
    processes killed."""
    path, pids = slow_pipeline(tmp_path)
    debugged = start("debug", str(path), stdin=subprocess.PIPE)
    debugged.wait_for_line("wait                     running")
    wait_for_pids(pids, 1)
    debugged.process.send_signal(signal.SIGTERM)
    code, stdout, stderr = debugged.finish()
    assert 143 == code, stderr
    assert "cancelled" == stored_status(home, run_id_of_summary(stdout))
    no_sleeper_left(pids)


def test_a_killed_run_is_dumped_from_the_store(home: Path, tmp_path: Path, start: Any) -> None:
    """``dump RUN`` of a run whose process was killed (``kill -9``: its control socket is left
    behind, stale) writes the dump from the stored spans, the run ``interrupted`` in it.
    Before, the stale socket made it refuse ("is not served any more"), and a dump from the
    store recorded such a run ``running``."""
    path, _pids = slow_pipeline(tmp_path)
    killed = start("run", str(path))
    killed.wait_for_line("wait                     running")
    wait_until_stored(home, killed.run_id, "wait")
    killed.process.kill()  # taskdaemon alone: its group watchdog ends the stage's processes
    killed.finish()
    assert (home / "control" / f"{killed.run_id}.sock").exists()  # what the crash left
    archive = tmp_path / "dump.tar.gz"
    dumped = taskdaemon(home, "dump", killed.run_id[:8], "-o", str(archive))
    assert (0, f"{archive}\n") == (dumped.returncode, dumped.stdout), dumped.stderr
    with tarfile.open(archive) as tar:
        member = tar.extractfile("run.json")
        assert member is not None
        record = json.loads(member.read())
    assert (killed.run_id, "interrupted") == (record["run_id"], record["status"])
    # Read back as a span source, the dump says so too (its spans alone would say running).
    for args in (("runs", "show", killed.run_id, "--json"), ("runs", "list", "--json")):
        shown = taskdaemon(home, *args, "--source", f"dump:///{archive}")
        assert 0 == shown.returncode, shown.stderr
        assert '"status": "interrupted"' in shown.stdout


def test_a_run_on_a_store_another_process_holds_locked_says_what_it_lost(
    home: Path, tmp_path: Path
) -> None:
    """A store another process holds locked for longer than the run (``BEGIN EXCLUSIVE``, as a
    ``sqlite3`` shell would): the run still succeeds (exit 0), its exit waits a bounded time,
    and what it could not write is said, counted and explained: its spans and its log records,
    with the lock named. Before, only "telemetry shutdown did not finish" was said (after
    waiting three times the bound): the run vanished from the history with no count and no
    cause, and the log records lost were not mentioned at all."""
    path = _quick_pipeline(tmp_path)
    assert 0 == taskdaemon(home, "run", str(path)).returncode  # the store exists
    holder = sqlite3.connect(home / "spans.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        done = taskdaemon(home, "run", str(path), TASKDAEMON_EXPORT_TIMEOUT="1")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert 0 == done.returncode, done.stderr
    assert "Traceback" not in done.stderr
    lock = "another process holds the store's write lock (database is locked)"
    spans = [line for line in done.stderr.splitlines() if " spans were not stored " in line]
    assert 1 == len(spans), done.stderr
    assert spans[0].endswith(
        f"2 spans were not stored ({home / 'spans.db'}: not written before exit: {lock})"
    )
    logs = [line for line in done.stderr.splitlines() if "run log records were not stored" in line]
    assert 1 == len(logs), done.stderr
    assert logs[0].endswith(f"(not written within 1 s: {lock})")
    listed = taskdaemon(home, "runs", "list", "--json")
    assert 1 == len(json.loads(listed.stdout)), "the lost run is not in the history"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (root only), unmounted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk: Path) -> None:
    """Write a file on ``disk`` until it is full."""
    with (disk / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


def test_a_full_disk_still_runs_pipelines_and_shows_the_history(
    tmp_path: Path, small_disk: Path
) -> None:
    """A home whose disk filled up after its store was closed: a pipeline still runs (exit 0,
    one line says its spans are not stored), and the readers still show the history. Before,
    every reader failed with "disk I/O error": SQLite could not make the store's ``-shm`` file
    to read it."""
    home = small_disk / "home"
    path = _quick_pipeline(tmp_path)
    first = taskdaemon(home, "run", str(path), "--quiet")
    assert 0 == first.returncode, first.stderr
    run_id = first.stdout.strip()
    _fill(small_disk)
    again = taskdaemon(home, "run", str(path), "--quiet")
    assert 0 == again.returncode, again.stderr
    assert "span store unavailable, spans are not stored" in again.stderr
    listed = taskdaemon(home, "runs", "list", "--json")
    assert 0 == listed.returncode, listed.stderr
    assert [run_id] == [run["run_id"] for run in json.loads(listed.stdout)]
    assert "success" == stored_status(home, run_id)
    report = taskdaemon(home, "report")
    assert 0 == report.returncode, report.stderr
    assert "pipeline quick: 1 run, 100.0% succeeded" in report.stdout
    assert "on a full file system, reporting from a temporary copy" in report.stderr
    assert "Traceback" not in listed.stderr + report.stderr


def test_a_file_where_the_home_should_be_is_one_line_everywhere(tmp_path: Path) -> None:
    """``TASKDAEMON_HOME`` naming a file: every reader says so in one line and exits 1,
    and the commands that run pipelines exit 2 with one line each. Before, the readers said
    "no runs" (exit 0), hiding the mistake, ``debug`` prefixed its line with
    ``PipelineError:`` and exited 1, and the store's warning gave mkdir's "File exists"."""
    home = tmp_path / "home"
    home.write_text("not a folder\n")
    path = _quick_pipeline(tmp_path)
    blocked = f"{home}: not a directory, so no span store can be in it"
    for args in (("runs", "list"), ("report",), ("logs", "abc"), ("watch", "abc")):
        done = taskdaemon(home, *args)
        assert 1 == done.returncode, args
        assert [blocked] == [line.split(": ", 1)[1] for line in done.stderr.splitlines()], args
    for command in ("run", "debug"):
        done = taskdaemon(home, command, str(path), stdin="")
        assert 2 == done.returncode, done.stderr
        lines = done.stderr.splitlines()
        assert (
            f"span store unavailable, spans are not stored: {home / 'spans.db'}: cannot open "
            f"span store: {home} is not a directory" in done.stderr
        )
        ours = [line for line in lines if line.startswith(f"taskdaemon {command}: ")]
        assert 1 == len(ours), done.stderr
        assert ours[0].startswith(f"taskdaemon {command}: cannot create the workspace {home}/")


def test_sigterm_to_watch_on_a_terminal_gives_the_cursor_back(
    home: Path, tmp_path: Path, start: Any
) -> None:
    """``watch`` on a terminal hides the cursor for its live table; SIGTERM now stops it as
    Ctrl-C does: the cursor is shown again, exit 143, no traceback. Before, SIGTERM's default
    action ended the process with the terminal's cursor left hidden."""
    path, _pids = slow_pipeline(tmp_path)
    watched = start("run", str(path))
    watched.wait_for_line("wait                     running")
    wait_until_stored(home, watched.run_id, "wait")
    with on_a_terminal(home, "watch", watched.run_id) as watcher:
        watcher.wait_for("\x1b[?25l")  # the cursor hidden for the live table
        watcher.wait_for("running")  # and the table drawn
        watcher.process.send_signal(signal.SIGTERM)
        watcher.wait_for("\x1b[?25h")
        assert 143 == watcher.process.wait(60)
    seen = bytes(watcher.seen)
    assert b"\x1b[?25h" in seen[seen.index(b"\x1b[?25l") :]
    assert b"Traceback" not in seen


def _damage(store: Path, kind: str) -> None:
    """Damage the (checkpointed, closed) store at ``store`` as ``kind`` says."""
    if kind == "not-sqlite":
        store.write_text("these are not the spans you are looking for\n")
    elif kind == "truncated":
        with store.open("r+b") as file:
            file.truncate(store.stat().st_size // 3)
    else:  # every page but the first overwritten: the header is intact, the tables are not
        size = store.stat().st_size
        with store.open("r+b") as file:
            file.seek(4096)
            file.write(b"\xa5" * (size - 4096))


@pytest.mark.parametrize("kind", ["not-sqlite", "truncated", "overwritten"])
def test_a_damaged_store_is_one_line_for_every_reader_and_a_run_still_runs(
    home: Path, tmp_path: Path, kind: str
) -> None:
    """A damaged ``spans.db``: every reader exits non-zero with one line and no traceback, the
    file is left as it was (someone may want to salvage it), and a pipeline still runs, with
    one warning that its spans are not stored (docs/span-store.md, "A store that cannot be
    opened")."""
    quick = _quick_pipeline(tmp_path)
    done = taskdaemon(home, "run", str(quick), "--quiet")
    assert 0 == done.returncode, done.stderr
    run_id = done.stdout.strip()
    store = home / "spans.db"
    with sqlite3.connect(store) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        store.with_name(store.name + suffix).unlink(missing_ok=True)
    _damage(store, kind)
    damaged = store.read_bytes()
    readers = [
        ("runs", "list"),
        ("runs", "show", run_id),
        ("report",),
        ("logs", run_id),
        ("dag", "--run", run_id),
        ("dump", run_id, "-o", str(tmp_path)),
        ("replay", run_id, "--dry-run"),
        ("retention", "--keep", "1"),
        ("watch", run_id),
    ]
    for args in readers:
        read = taskdaemon(home, *args)
        assert 1 == read.returncode, (args, read.stdout)
        assert 1 == len(read.stderr.splitlines()), (args, read.stderr)
        assert str(store) in read.stderr, (args, read.stderr)
    again = taskdaemon(home, "run", str(quick))
    assert 0 == again.returncode, again.stderr
    assert "span store unavailable, spans are not stored: " in again.stderr
    assert "Traceback" not in again.stderr
    assert damaged == store.read_bytes()


def test_sigterm_cancels_a_run_whose_stderr_is_gone(home: Path, tmp_path: Path, start: Any) -> None:
    """A run whose stderr reader went away (a closed pipe, a closed terminal) is still
    cancelled by SIGTERM: the line saying so cannot be written, and must not stop the cancel.
    It exits 143 with its stage cancelled, and no stage process outlives it. Its stderr is
    buffered, as a user's is: with the line kept in the buffer, the interpreter's last flush
    failed and the exit code was 120 (``PYTHONUNBUFFERED``, set in CI, hid it)."""
    pipeline, pids = slow_pipeline(tmp_path)
    served = start("run", str(pipeline), without=["PYTHONUNBUFFERED"])
    served.wait_for_line("wait                     running")
    wait_for_pids(pids, 1)
    assert served.process.stderr is not None
    served.process.stderr.close()
    served.process.send_signal(signal.SIGTERM)
    stdout = served.process.stdout.read() if served.process.stdout is not None else ""
    code = served.process.wait(timeout=60)
    run_id = run_id_of_summary(stdout)
    assert (143, "cancelled") == (code, stored_status(home, run_id))
    no_sleeper_left(pids)


def test_a_run_stopped_while_a_debugger_waits_on_its_socket_ends_quietly(
    home: Path, tmp_path: Path, start: Any
) -> None:
    """SIGINT to a run while a request is in progress on its control socket (a debugger's
    ``wait`` for a pause that never comes) exits 130 with nothing from asyncio on stderr.
    Before, the connection's task was left for the loop's end to cancel, and Python 3.11 logged
    it as an "Exception in callback" with a CancelledError traceback."""
    path, pids = slow_pipeline(tmp_path)
    served = start("run", str(path))
    served.wait_for_line("wait                     running")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(socket_path(served.run_id, home)))
        client.sendall(b'{"op": "status"}\n{"op": "debug", "action": "wait", "timeout": 30}\n')
        with client.makefile("rb") as answers:
            answers.readline()  # status answered: the wait, read next, is in progress
            served.process.send_signal(signal.SIGINT)
            code, _, stderr = served.finish()
    assert 130 == code, stderr
    assert [] == [
        smell for smell in ("Traceback", "Exception in", "CancelledError") if smell in stderr
    ]
    no_sleeper_left(pids)


def test_a_report_with_days_to_rebuild_on_a_locked_store_says_so_in_one_line(
    home: Path, tmp_path: Path
) -> None:
    """A report whose store has days to rebuild (retention deleted runs of them) writes before
    it reads; another process holding the write lock past the store's busy timeout (30 s) was
    a traceback ending in "database is locked". It is one line naming the lock and why a
    report writes, exit 1; released, the same report is written."""
    path = _quick_pipeline(tmp_path)
    for _ in range(2):
        assert 0 == taskdaemon(home, "run", str(path)).returncode
    assert 0 == taskdaemon(home, "retention", "--keep", "1").returncode  # a stale day
    holder = sqlite3.connect(home / "spans.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        locked = taskdaemon(home, "report")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    lock = "another process holds the store's write lock (database is locked)"
    assert (1, 1, True) == (
        locked.returncode,
        len(locked.stderr.splitlines()),
        locked.stderr.startswith(f"taskdaemon report: {home / 'spans.db'}: {lock}, and "),
    ), locked.stderr
    released = taskdaemon(home, "report")
    assert (0, True) == (released.returncode, "pipeline quick: 1 run," in released.stdout)
