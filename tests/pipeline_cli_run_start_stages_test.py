"""A run killed before its telemetry loaded shows what its stages were doing
(``cli/run_start.py``, ``tracking/run_start.write_stage_start``): the stage running then reads
``interrupted`` with its start, one that ended before keeps its result, and once telemetry
loads the span writer's rows replace the early ones.

Each ``taskdaemon run`` here has its telemetry load held by a shadow ``uuid`` on the loading
thread (as a load on a busy host lasts), so its stages start before the span writer exists."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from cli_support import (
    HELD_CHAIN,
    exit_and_stderr,
    in_background,
    load_held_until,
    pythonpath_with,
    taskdaemon,
    write,
)


def _held_run(tmp_path: Path, home: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    """``taskdaemon run`` of ``HELD_CHAIN`` in the background, its telemetry load held until
    the file it answers second exists (stage ``b`` ends once the third does), once ``b`` has
    made its file."""
    started, release, go = tmp_path / "started", tmp_path / "release", tmp_path / "go"
    shadow = load_held_until(tmp_path, release)
    text = HELD_CHAIN.replace("STARTED", str(started)).replace("GO", str(go))
    pipeline = write(tmp_path / "chain.yaml", text)
    process = in_background(home, "run", "-q", str(pipeline), PYTHONPATH=pythonpath_with(shadow))
    _until(started.exists, f"{started} was never made")
    return process, release, go


def _until(check: Any, failure: str, timeout: float = 60) -> Any:
    """``check()``'s first true answer, asked every 10 ms for ``timeout`` seconds at most."""
    deadline = time.monotonic() + timeout
    while not (answer := check()):
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)
    return answer


def _stage_rows(home: Path) -> dict[str, list[tuple[bool, dict[str, Any]]]]:
    """The store's stage span rows by stage name: (ended, attributes) of each."""
    with contextlib.closing(sqlite3.connect(home / "spans.db")) as conn:
        rows = conn.execute(
            "SELECT end_ns IS NOT NULL, body FROM spans WHERE json_extract(body, '$[0]') NOT NULL"
        ).fetchall()
    found: dict[str, list[tuple[bool, dict[str, Any]]]] = {}
    for ended, body in rows:
        attributes = json.loads(body)[5]
        stage = attributes["cicd.pipeline.task.name"]
        found.setdefault(stage, []).append((bool(ended), attributes))
    return found


@pytest.mark.slow
def test_a_run_killed_before_its_telemetry_loaded_shows_its_running_stage(
    tmp_path: Path, home: Path
) -> None:
    """SIGKILL once stage ``b`` made its file, the telemetry still loading: a fresh process's
    ``runs show --json`` reads ``a`` ``success``, ``b`` ``interrupted`` with its start (one
    attempt, started after ``a`` ended), ``c`` not reached. Before, no stage span was written
    before the span writer loaded: ``a`` and ``b`` read ``skipped`` (``run interrupted``)."""
    before = time.time()
    process, release, _ = _held_run(tmp_path, home)
    try:
        process.send_signal(signal.SIGKILL)
    finally:
        release.touch()
        code, _ = exit_and_stderr(process)
    assert -signal.SIGKILL == code
    listed = taskdaemon(home, "runs", "list", "--json")
    assert 0 == listed.returncode, listed.stderr
    [listed_run] = json.loads(listed.stdout)
    shown = taskdaemon(home, "runs", "show", listed_run["run_id"], "--json")
    assert 0 == shown.returncode, shown.stderr
    run = json.loads(shown.stdout)
    stages = {stage["name"]: stage for stage in run["stages"]}
    assert ("interrupted", ["success", "interrupted", "skipped"]) == (
        run["status"],
        [stages[name]["status"] for name in "abc"],
    )
    [a], [b] = stages["a"]["attempts"], stages["b"]["attempts"]
    assert ("success", "interrupted", None) == (a["status"], b["status"], b["end"])
    assert before < a["start"] <= a["end"] <= b["start"] < time.time()
    assert ([], "run interrupted") == (stages["c"]["attempts"], stages["c"]["skip_reason"])


@pytest.mark.slow
def test_the_span_writers_rows_replace_the_early_ones(tmp_path: Path, home: Path) -> None:
    """While the telemetry loads, the store has a row for ``a``, ended, and one for ``b``, open
    (before, none); once loaded, the writer's start row replaces ``b``'s early one while it
    still runs (its attributes gain the queue time), and the run ends with one row a stage,
    the writer's. Without the writer's start replacing an open row, ``b``'s stayed the early
    one until its end."""
    process, release, go = _held_run(tmp_path, home)
    try:
        rows = _stage_rows(home)
        assert [[True], [False]] == [[ended for ended, _ in rows.get(n, [])] for n in "ab"]
        assert "taskdaemon.stage.queue_time_s" not in rows["b"][0][1]
        release.touch()
        _until(
            lambda: "taskdaemon.stage.queue_time_s" in _stage_rows(home)["b"][0][1],
            "the early row of b was never replaced",
        )
        assert [(False,)] == [(ended,) for ended, _ in _stage_rows(home)["b"]]
    finally:
        release.touch()
        go.touch()
        code, stderr = exit_and_stderr(process)
    assert 0 == code, stderr
    rows = _stage_rows(home)
    assert {name: [True] for name in "abc"} == {
        name: [ended for ended, _ in found] for name, found in rows.items()
    }
    assert all("taskdaemon.stage.queue_time_s" in found[0][1] for found in rows.values())
