"""What held under load and faults, kept held: exact span accounting with many concurrent runs
and many processes on one store (retries, cancellations, VACUUM running meanwhile), recovery
after SIGKILL, the control socket closed to other users, and flat memory in a long-lived
process.

Exact accounting: every worker also exports its spans to memory; the store must hold exactly
those spans, each ended once, and one run row per run with the engine's final status.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from reliability_load_support import Load, run_load, stored
from reliability_support import (
    ROOT,
    TASKDAEMON,
    TWO_STAGES,
    environment,
    taskdaemon,
    write_pipeline,
)
from taskdaemon.pipeline.control import served_runs
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.tracking._schema import connect

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("reliability_load_support.py")
NOBODY = 65534


def _accounting(db: Path, load: Load) -> tuple[object, ...]:
    ended, rows, ended_rows, runs, integrity = stored(db)
    return (
        len(ended - load.spans),  # stored but never ended: duplicated or foreign
        len(load.spans - ended),  # ended but not stored: lost
        rows - ended_rows,  # rows left open
        runs == load.statuses,
        integrity,
    )


async def test_2000_concurrent_runs_are_stored_exactly(tmp_path: Path) -> None:
    """2,000 runs started at once in one engine, about one in ten cancelled and every one
    retrying a stage, leave exactly their spans in the store: none lost, none duplicated."""
    db = tmp_path / "spans.db"
    load = await run_load(db, 2000)
    statuses = set(load.statuses.values())
    assert ((0, 0, 0, True, "ok"), {"success", "cancelled"}, 2000) == (
        _accounting(db, load),
        statuses,
        len(load.statuses),
    )


@pytest.mark.parametrize(("processes", "runs"), [(16, 5), (8, 100)])
def test_processes_share_one_store_while_it_is_vacuumed(
    tmp_path: Path, processes: int, runs: int
) -> None:
    """Many processes writing one store at once, while another process's connection runs
    VACUUM in a loop, lose no span, duplicate none, and never see "database is locked"."""
    db = tmp_path / "spans.db"
    connect(db).close()  # as a writer does: readers never create a store
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "load", str(db), str(runs)],
            cwd=WORKER.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    stop = threading.Event()
    vacuums: list[int] = []
    errors: list[str] = []

    def vacuum() -> None:
        with SpanStore(db) as store:
            while not stop.is_set():
                try:
                    store.vacuum()
                except Exception as exc:  # reported below
                    errors.append(f"{type(exc).__name__}: {exc}")
                vacuums.append(1)

    thread = threading.Thread(target=vacuum)
    thread.start()
    try:
        outputs = [worker.communicate(timeout=600) for worker in workers]
    finally:
        stop.set()
        thread.join()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    load = Load()
    for out, _ in outputs:
        data = json.loads(out)
        load.merge(Load({tuple(s) for s in data["spans"]}, data["statuses"]))
    stderr = "".join(err for _, err in outputs)
    expected = ([0] * processes, processes * runs, (0, 0, 0, True, "ok"), False, [], True)
    actual = (
        [worker.returncode for worker in workers],
        len(load.statuses),
        _accounting(db, load),
        "database is locked" in stderr,
        errors,
        len(vacuums) > 0,
    )
    assert expected == actual, stderr[-2000:]


def test_memory_stays_flat_in_a_long_lived_process(tmp_path: Path) -> None:
    """One engine, monitor and store writer running 1,200 runs in rounds of 100: once warm
    (after 400 runs), the process grows by less than 8 MiB over the next 800 runs (a leak of
    even 10 KiB per run would show)."""
    done = subprocess.run(
        [sys.executable, str(WORKER), "memory", str(tmp_path / "spans.db"), "12"],
        cwd=WORKER.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    sizes = json.loads(done.stdout)
    growth = sizes[-1] - sizes[3]
    assert (0, True) == (done.returncode, growth < 8 * 2**20), (sizes, done.stderr)


# --- SIGKILL --------------------------------------------------------------------------------------


def _wait_for(condition: object, what: str, timeout: float = 60.0) -> None:
    """Poll ``condition()`` until true (the state of another process has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _open_stage_row(db: Path, name: str) -> bool:
    if not db.exists():
        return False
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT count(*) FROM spans_readable WHERE name = ? AND end_ns IS NULL", (name,)
        ).fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return bool(row[0])


def test_a_sigkilled_run_reads_as_interrupted_and_the_store_goes_on(
    home: Path, tmp_path: Path
) -> None:
    """``taskdaemon run`` killed with SIGKILL mid-stage leaves a readable store: the run reads
    as interrupted with its finished stage, and the next run in the same home is stored."""
    slow = write_pipeline(
        tmp_path / "slow.yaml",
        """\
        name: slow
        stages:
          - name: quick
            command: "true"
            triggers: [{manual: {approval_required: false}}]
          - name: sleeper
            command: "sleep 300"
            triggers: [{on_completion: {stage: quick}}]
        """,
    )
    db = home / "spans.db"
    process = subprocess.Popen(
        [TASKDAEMON, "run", "-q", str(slow)],
        cwd=ROOT,
        env=environment(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _open_stage_row(db, "sleeper"), "the sleeper stage to start")
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for child in children:  # the orphaned `sleep`, so nothing outlives the test
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    show = json.loads(taskdaemon(home, "runs", "show", listed[0]["run_id"], "--json").stdout)
    quick = write_pipeline(tmp_path / "quick.yaml", TWO_STAGES)
    again = taskdaemon(home, "run", "-q", str(quick))
    after = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    stages = {stage["name"]: stage["status"] for stage in show["stages"]}
    expected = (
        -signal.SIGKILL,
        "interrupted",
        {"quick": "success", "sleeper": "interrupted"},
        0,
        ["success", "interrupted"],
    )
    actual = (
        process.returncode,
        show["status"],
        stages,
        again.returncode,
        [run["status"] for run in after],
    )
    assert expected == actual, again.stderr


# --- the control socket ---------------------------------------------------------------------------


_CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(13)
"""


def _connect_as_nobody(path: Path) -> int:
    """Exit code of connecting to ``path`` as user ``nobody``: 13 when permission is denied."""
    return subprocess.run(
        ["/usr/bin/python3", "-c", _CONNECT, str(path)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        timeout=30,
        check=False,
    ).returncode


def test_another_user_cannot_reach_the_control_socket(home: Path, tmp_path: Path) -> None:
    """The control socket is 0600 in a 0700 directory: user ``nobody`` cannot connect, even
    when the directory is opened to others (the socket's own mode still refuses)."""
    gated = write_pipeline(
        tmp_path / "gated.yaml",
        """\
        name: gated
        stages:
          - name: deploy
            command: "true"
            triggers: [{manual: {approval_required: true}}]
        """,
    )
    os.chmod(home, 0o755)  # only the control directory and the socket may keep others out
    process = subprocess.Popen(
        [TASKDAEMON, "run", "-q", str(gated)],
        cwd=ROOT,
        env=environment(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: bool(served_runs(home)), "the control socket")
        (run_id,) = served_runs(home)
        control = home / "control"
        sock = control / f"{run_id}.sock"
        modes = (stat.S_IMODE(control.stat().st_mode), stat.S_IMODE(sock.stat().st_mode))
        through_private_dir = _connect_as_nobody(sock)
        os.chmod(control, 0o755)
        through_open_dir = _connect_as_nobody(sock)
        cancel = taskdaemon(home, "cancel", run_id)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    expected = ((0o700, 0o600), 13, 13, 0)
    assert expected == (modes, through_private_dir, through_open_dir, cancel.returncode)
