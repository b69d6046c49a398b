"""A handler that ends taskdaemon's process (``os._exit(3)``), run by the real ``taskdaemon
run``: nothing of the process can say or store more, so the readers of the run are what must
be honest about it (docs/span-store.md, "A process killed outright")."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon

#: ``s`` waits until the store holds its run (the first stage's span written), logs a line and
#: ends the process: the run is stored, its end never.
HANDLERS = """\
import logging
import os
import sqlite3
import time


def first(ctx):
    return {"a": 1}


def exits(ctx):
    store = os.path.join(os.environ["TASKDAEMON_HOME"], "spans.db")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
                query = "SELECT 1 FROM runs WHERE trace_id = ?"
                if conn.execute(query, (ctx.run_id,)).fetchone():
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    logging.getLogger("exits").info("about to end the process")
    os._exit(3)
"""

PIPELINE = """\
name: exits
stages:
  - name: first
    handler: "exiting:first"
    triggers: [{manual: {approval_required: false}}]
  - name: s
    handler: "exiting:exits"
    triggers: [{on_completion: {stage: first}}]
"""


@pytest.mark.slow
def test_the_logs_of_a_run_whose_handler_ended_the_process_say_it(
    home: Path, tmp_path: Path
) -> None:
    """``logs`` printed what was stored and nothing more, as of a run that had logged all it
    had to: the line the handler logged last is missing, and nothing said why."""
    (tmp_path / "exiting.py").write_text(HANDLERS)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE)
    ran = taskdaemon(
        home, "run", str(pipeline), "-q", timeout=60, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 3 == ran.returncode, ran.stderr
    run_id = (
        ran.stdout.strip()
        or json.loads(taskdaemon(home, "runs", "list", "--json").stdout)[0]["run_id"]
    )
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    assert ["success", "interrupted"] == [stage["status"] for stage in shown["stages"]]
    logged = taskdaemon(home, "logs", run_id)
    assert 0 == logged.returncode, logged.stderr
    assert "stage first.0.1 finished: success" in logged.stdout
    assert logged.stderr == (
        f"taskdaemon logs: run {run_id} was interrupted: its process ended before it could "
        "store its end, so what it logged last may be missing\n"
    )


AT_ONCE = """\
import logging
import os


def first(ctx):
    return {"a": 1}


def exits(ctx):
    logging.getLogger("exits").warning("about to end the process")
    os._exit(int(os.environ["EXIT_CODE"]))
"""


def _run_exiting(home: Path, tmp_path: Path, asked: int) -> subprocess.CompletedProcess[str]:
    """``run -q`` of the pipeline whose handler calls ``os._exit(asked)`` (``AT_ONCE``)."""
    (tmp_path / "exiting.py").write_text(AT_ONCE)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE)
    return taskdaemon(
        home,
        "run",
        str(pipeline),
        "-q",
        timeout=60,
        PYTHONPATH=pythonpath_with(tmp_path),
        EXIT_CODE=str(asked),
    )


@pytest.mark.slow
@pytest.mark.parametrize(("asked", "code"), [(3, 3), (0, 1), (256, 1), (-256, 1)])
def test_a_handler_that_ends_the_process_is_said_and_its_run_stored(
    home: Path, tmp_path: Path, asked: int, code: int
) -> None:
    """Before, ``run`` ended silent with the code asked (0 too: a success to a caller), and
    nothing of the run reached the store: ``runs list`` had no run. 256 and -256 are 0 to the
    shell: they exited 0 after the line was said."""
    ran = _run_exiting(home, tmp_path, asked)
    assert code == ran.returncode, ran.stderr
    last = ran.stderr.splitlines()[-1]
    said = f"stage 's' ended taskdaemon's process (os._exit({asked})): run "
    assert said in last, ran.stderr
    run_id = last.split(said)[1].split()[0]
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    assert "interrupted" == shown["status"]
    assert ["success", "interrupted"] == [stage["status"] for stage in shown["stages"]]
    logged = taskdaemon(home, "logs", run_id, "--stage", "s")
    assert "about to end the process" in logged.stdout, logged
    assert said in logged.stdout.splitlines()[-1]


@pytest.mark.slow
def test_a_code_past_a_c_int_ends_nothing_and_says_nothing(home: Path, tmp_path: Path) -> None:
    """``os._exit(2**31)`` raises ``OverflowError`` and ends nothing: the stage fails with it
    and the run is stored. Before, the line said the process ended and the run was left
    interrupted, though the run went on to store its failure."""
    ran = _run_exiting(home, tmp_path, 2**31)
    assert 1 == ran.returncode, ran.stderr
    assert "ended taskdaemon's process" not in ran.stderr
    assert "failure: Python int too large to convert to C int" in ran.stderr


#: ``s`` starts a thread, which starts another that ends the process while ``s`` awaits.
IN_A_THREAD = """\
import asyncio
import os
import threading


def first(ctx):
    return {"a": 1}


def spawn():
    threading.Thread(target=os._exit, args=(5,), name="exiter").start()


async def exits(ctx):
    threading.Thread(target=spawn, name="spawner").start()
    await asyncio.sleep(60)
"""


@pytest.mark.slow
def test_os_exit_in_a_thread_the_handler_started_is_said_and_its_run_stored(
    home: Path, tmp_path: Path
) -> None:
    """Before, such a thread's ``os._exit(5)`` ended ``run`` silent, and the run was lost when
    its telemetry had not loaded yet (as here: nothing waits for it)."""
    (tmp_path / "exiting.py").write_text(IN_A_THREAD)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE)
    path = pythonpath_with(tmp_path)
    ran = taskdaemon(home, "run", str(pipeline), "-q", PYTHONPATH=path)
    assert 5 == ran.returncode, ran.stderr
    said = "stage 's' ended taskdaemon's process (os._exit(5)) from its thread 'exiter': run "
    last = ran.stderr.splitlines()[-1]
    assert said in last, ran.stderr
    run_id = last.split(said)[1].split()[0]
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    assert ["success", "interrupted"] == [stage["status"] for stage in shown["stages"]]
    logged = taskdaemon(home, "logs", run_id, "--stage", "s")
    assert said in logged.stdout.splitlines()[-1], logged
