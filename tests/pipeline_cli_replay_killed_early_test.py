"""``replay`` of a run killed in its first second gives the same plan whether the span writer
had taken over the store before the kill or not (``tracking/run_start.py``: the early run row
holds the definition and the request, as the monitor's row that replaces it does).

Each ``taskdaemon run`` here has its telemetry load held by a shadow ``uuid`` on the loading
thread until the test lets it go, so the kill falls at a moment the test chose: before the
take-over (the early rows alone), or once the writer's row of the run span replaced the early
one."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
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
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.config import load_pipeline
from taskdaemon.pipeline.replay import load_recorded_run
from watchdog_support import until


def _run_span_attributes(store: Path) -> dict[str, Any]:
    """The attributes of the store's run span row (the only span with no parent)."""
    with contextlib.closing(sqlite3.connect(store)) as conn:
        [(body,)] = conn.execute(
            "SELECT body FROM spans WHERE json_extract(body, '$[0]') IS NULL"
        ).fetchall()
    attributes: dict[str, Any] = json.loads(body)[5]
    return attributes


@pytest.mark.slow
@pytest.mark.parametrize("taken_over", [False, True], ids=["before-take-over", "after-take-over"])
def test_a_run_killed_in_its_first_second_replays_alike_at_both_moments(
    tmp_path: Path, home: Path, taken_over: bool
) -> None:
    """SIGKILL while ``b`` runs, before the span writer took the store over (its row of the run
    span has the edges, the early row has not) or after: ``runs list`` and ``runs show`` say
    ``interrupted`` at their first read, and ``replay --dry-run`` plans ``a``, ``b``
    and ``c`` and exits 0 both times, and the record holds the file's definition and the request.
    Before, the kill before the take-over left the definition out: exit 2, ``missing: the
    definition: not stored``."""
    started, release, go = tmp_path / "started", tmp_path / "release", tmp_path / "go"
    shadow = load_held_until(tmp_path, release)
    text = HELD_CHAIN.replace("STARTED", str(started)).replace("GO", str(go))
    path = write(tmp_path / "chain.yaml", text)
    process = in_background(
        home, "run", "-q", str(path), "--input", "n=1", PYTHONPATH=pythonpath_with(shadow)
    )
    store = home / "spans.db"
    try:
        until(started.exists, f"{started} made")
        if taken_over:
            release.touch()
            until(
                lambda: t.PIPELINE_EDGE_SPECS in _run_span_attributes(store),
                "the writer's row of the run span replacing the early one",
            )
        else:
            assert t.PIPELINE_EDGE_SPECS not in _run_span_attributes(store)
        process.send_signal(signal.SIGKILL)
    finally:
        release.touch()
        go.touch()
        code, _ = exit_and_stderr(process)
    assert -signal.SIGKILL == code
    assert taken_over == (t.PIPELINE_EDGE_SPECS in _run_span_attributes(store))
    run_id = _run_span_attributes(store)[t.CICD_PIPELINE_RUN_ID]
    # Read at once, no wait: the run's ``runs`` row came with its first span row, in one
    # transaction (the early rows' or the writer's), so the store judges it by its dead pid.
    listed = taskdaemon(home, "runs", "list", "--json")
    shown = taskdaemon(home, "runs", "show", run_id, "--json")
    assert ([(run_id, "interrupted")], "interrupted") == (
        [(run["run_id"], run["status"]) for run in json.loads(listed.stdout)],
        json.loads(shown.stdout)["status"],
    ), listed.stderr + shown.stderr
    planned = taskdaemon(home, "replay", run_id, "--dry-run")
    assert (0, ["run   a", "run   b", "run   c"]) == (
        planned.returncode,
        planned.stdout.splitlines()[1:],
    ), planned.stderr
    recorded = load_recorded_run(run_id, f"sqlite:///{store}")
    assert recorded.definition is not None
    assert (load_pipeline(path).definition_hash, {"n": 1}) == (
        recorded.definition_hash,
        json.loads(recorded.request.text),
    )
