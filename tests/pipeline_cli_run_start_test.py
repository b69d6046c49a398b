"""``taskdaemon run``'s start on record before its telemetry loads (``cli/run_start.py``): a
run killed as soon as its first stage started reads ``interrupted``, not absent; a run whose
telemetry loads has one run span and one writer, the start row replaced; a run whose telemetry
never loads is not stored, as it says; a run whose telemetry loads slowly reads ``running``
meanwhile, its ``writers`` row kept alive until the writer takes it over."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_support import (
    ONE_STAGE_PIPELINE,
    TASKDAEMON,
    exit_and_stderr,
    in_background,
    load_held_until,
    pythonpath_with,
    taskdaemon,
    write,
)

#: One command stage that makes the file STARTED, then waits far longer than any test.
SLOW = """\
    name: slow
    stages:
      - name: a
        command: "touch STARTED; exec sleep 60"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        triggers: [{on_completion: {stage: a}}]
"""

#: Stands in for the standard library's ``uuid`` (the telemetry load imports it, through
#: orjson): its import fails on the loading thread, and is the real module elsewhere.
_FAILING_UUID = """\
import sysconfig
import threading
from pathlib import Path

if threading.current_thread().name == "taskdaemon-telemetry-load":
    raise ImportError("no uuid on the loading thread")
_real = Path(sysconfig.get_paths()["stdlib"], "uuid.py")
exec(compile(_real.read_text(), str(_real), "exec"))
"""


#: One command stage that makes the file STARTED, then waits for the file GO.
WAITING = """\
    name: waiting
    stages:
      - name: a
        command: "touch STARTED; while [ ! -e GO ]; do sleep 0.05; done"
        triggers: [{manual: {approval_required: false}}]
"""

#: The dead-writer limit (``store.STALE_AFTER``, 30 s) of the readers below, shortened.
SHORT_LIMIT = 4.0
#: ``taskdaemon ARGS`` in a process whose store judges a writer dead past ``SHORT_LIMIT``.
SHORT_LIMIT_READER = (
    sys.executable,
    "-c",
    "import sys; from taskdaemon.pipeline.tracking import store;"
    f" store.STALE_AFTER = {SHORT_LIMIT}; sys.argv[0] = 'taskdaemon';"
    " from taskdaemon.__main__ import main; sys.exit(main())",
)


def _made(path: Path, timeout: float = 60) -> None:
    """Return once the file ``path`` exists (a stage made it), within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was never made"
        time.sleep(0.005)


@pytest.mark.slow
def test_a_run_killed_as_its_first_stage_starts_reads_interrupted(
    tmp_path: Path, home: Path
) -> None:
    """SIGKILL as soon as the first stage has made its file: ``runs list`` and ``runs show``
    in a fresh process show the run, ``interrupted``, with its stages. Before, its start
    reached the store only once telemetry had loaded, half a second to seconds later, and
    the run was in no list (``runs show`` said no run)."""
    started = tmp_path / "started"
    pipeline = write(tmp_path / "slow.yaml", SLOW.replace("STARTED", str(started)))
    process = in_background(home, "run", "-q", str(pipeline))
    try:
        _made(started)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate(timeout=60)
    assert -signal.SIGKILL == process.returncode
    listed = taskdaemon(home, "runs", "list", "--json")
    assert 0 == listed.returncode, listed.stderr
    runs = json.loads(listed.stdout)
    assert [("slow", "interrupted", 2)] == [
        (run["pipeline"], run["status"], run["stage_count"]) for run in runs
    ]
    shown = taskdaemon(home, "runs", "show", runs[0]["run_id"], "--json")
    assert 0 == shown.returncode, shown.stderr
    run = json.loads(shown.stdout)
    assert ("interrupted", ["a", "b"]) == (run["status"], [s["name"] for s in run["stages"]])


@pytest.mark.slow
def test_a_run_whose_telemetry_loads_has_one_run_span_and_one_writer(
    tmp_path: Path, home: Path
) -> None:
    """The start row written before telemetry is the run span's row, replaced by the monitor's
    (its resource and attributes) when telemetry loads, and the process's one ``writers`` row
    is the span writer's, closed at the end: no second root span, no writer left open."""
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(home, "run", "-q", str(pipeline))
    assert (0, "") == (done.returncode, done.stderr)
    run_id = done.stdout.strip()
    with sqlite3.connect(home / "spans.db") as conn:
        roots = conn.execute(
            "SELECT s.end_ns IS NOT NULL, r.attributes, s.body FROM spans s "
            "JOIN traces t USING (trace_no) JOIN resources r USING (resource_no) "
            "WHERE t.trace_id = ? AND json_extract(s.body, '$[0]') IS NULL",
            (run_id,),
        ).fetchall()
        writers = conn.execute("SELECT closed_ns IS NOT NULL FROM writers").fetchall()
        writer = conn.execute("SELECT writer_id FROM runs WHERE trace_id = ?", (run_id,))
        (writer_id,) = writer.fetchone()
    assert 1 == len(roots)
    ended, resource, body = roots[0]
    assert ended
    assert "taskdaemon" == json.loads(resource)["service.name"]
    assert "taskdaemon.pipeline.started_by" in json.loads(body)[5]
    assert ([(1,)], 1) == (writers, writer_id)


@pytest.mark.slow
def test_a_run_whose_telemetry_never_loads_is_not_stored(tmp_path: Path, home: Path) -> None:
    """The telemetry load fails (its import of ``uuid`` does): the run succeeds and says it is
    not stored, and no list shows it, neither ``running`` nor ``interrupted``: its start row
    was taken back, since nothing would ever end it."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "uuid.py").write_text(_FAILING_UUID)
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(home, "run", "-q", str(pipeline), PYTHONPATH=pythonpath_with(shadow))
    assert 0 == done.returncode, done.stderr
    run_id = done.stdout.strip()
    assert (
        f"taskdaemon run: run {run_id} is not stored (telemetry failed to start): runs show "
        "will not find it"
    ) == done.stderr.splitlines()[-1]
    listed = taskdaemon(home, "runs", "list", "--json")
    assert (0, []) == (listed.returncode, json.loads(listed.stdout)), listed.stderr


def _slowly_loading(tmp_path: Path, home: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    """``taskdaemon run`` of :data:`WAITING` in the background, its telemetry load held until
    the file it answers second is made (the stage ends once the third is), once its stage
    has started."""
    started, release, go = tmp_path / "started", tmp_path / "release", tmp_path / "go"
    shadow = load_held_until(tmp_path, release)
    text = WAITING.replace("STARTED", str(started)).replace("GO", str(go))
    pipeline = write(tmp_path / "waiting.yaml", text)
    process = in_background(home, "run", "-q", str(pipeline), PYTHONPATH=pythonpath_with(shadow))
    _made(started)
    return process, release, go


def _writers(home: Path) -> list[tuple[int, int, bool]]:
    """The store's ``writers`` rows: started, heartbeat (ns), closed."""
    with contextlib.closing(sqlite3.connect(home / "spans.db")) as conn:
        rows = conn.execute("SELECT started_ns, heartbeat_ns, closed_ns IS NOT NULL FROM writers")
        return [(started, beat, bool(closed)) for started, beat, closed in rows.fetchall()]


def _listed(home: Path, *, launcher: tuple[str, ...] = (TASKDAEMON,)) -> list[tuple[str, str]]:
    """``runs list --json``, in a fresh process: (pipeline, status) of each run."""
    listed = taskdaemon(home, "runs", "list", "--json", launcher=launcher)
    assert 0 == listed.returncode, listed.stderr
    return [(run["pipeline"], run["status"]) for run in json.loads(listed.stdout)]


@pytest.mark.slow
def test_a_run_whose_telemetry_loads_slowly_reads_running_meanwhile(
    tmp_path: Path, home: Path
) -> None:
    """The load lasts past the readers' dead-writer limit (shortened to ``SHORT_LIMIT``): a
    reader in another process still reads the run ``running``, its process's ``writers`` row
    renewed meanwhile. Before, that row kept the heartbeat of the run's start until the
    writer took it over, and the live run read ``interrupted``. Once loaded, the writer takes
    the row over: the run ends ``success`` with one ``writers`` row, closed."""
    process, release, go = _slowly_loading(tmp_path, home)
    try:
        [(started_ns, _, _)] = _writers(home)
        # The limit must pass for the test to say anything: time passing is its subject.
        time.sleep(max(0.0, started_ns / 1e9 + SHORT_LIMIT + 1 - time.time()))
        assert [("waiting", "running")] == _listed(home, launcher=SHORT_LIMIT_READER)
        [(_, beat_ns, closed)] = _writers(home)
        assert (beat_ns - started_ns > SHORT_LIMIT * 1e9, closed) == (True, False)
    finally:
        release.touch()
        go.touch()
        code, stderr = exit_and_stderr(process)
    assert 0 == code, stderr
    assert [("waiting", "success")] == _listed(home)
    assert [True] == [closed for _, _, closed in _writers(home)]


@pytest.mark.slow
def test_a_run_killed_before_the_writer_took_over_reads_interrupted(
    tmp_path: Path, home: Path
) -> None:
    """Its ``writers`` row's heartbeat renewed, the process is killed before its telemetry
    loaded: the row is fresh, but its pid is gone, and the run reads ``interrupted``."""
    process, release, go = _slowly_loading(tmp_path, home)
    try:
        deadline = time.monotonic() + 60
        while not any(beat > started for started, beat, _ in _writers(home)):
            assert time.monotonic() < deadline, "the writers row was never renewed"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        release.touch()
        go.touch()
        code, _ = exit_and_stderr(process)
    assert -signal.SIGKILL == code
    assert [("waiting", "interrupted")] == _listed(home)
