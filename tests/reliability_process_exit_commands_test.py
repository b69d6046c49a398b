"""A handler that ends taskdaemon's process (``os._exit``) in the commands other than ``run``
that run stages: ``serve`` (its scheduled run), ``debug FILE`` and ``replay``. Each says it in
one line naming the stage and the run, and stores the run, which reads ``interrupted``
(``cli/stage_exit.py``); ``reliability_process_exit_test.py`` has ``run``'s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon
from schedule_support import scheduled_serve

#: ``s`` ends the process when EXIT_CODE is set, else returns (the run ``replay`` replays).
HANDLERS = """\
import logging
import os


def first(ctx):
    return {"a": 1}


def exits(ctx):
    logging.getLogger("exits").warning("about to end the process")
    if os.environ.get("EXIT_CODE"):
        os._exit(int(os.environ["EXIT_CODE"]))
    return {"b": 2}
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

SAID = "stage 's' ended taskdaemon's process (os._exit(3)): run "


def _said_and_stored(home: Path, code: int, stderr: str) -> str:
    """The id of the run the last line of ``stderr`` says was ended, once its exit ``code``
    is 3 and the store reads it interrupted, ``first`` done and ``s`` cut short."""
    assert 3 == code, stderr
    last = stderr.splitlines()[-1]
    assert SAID in last, stderr
    run_id = last.split(SAID)[1].split()[0]
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    assert ("interrupted", ["interrupted"]) == (
        shown["status"],
        [stage["status"] for stage in shown["stages"] if stage["name"] == "s"],
    )
    return run_id


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    (tmp_path / "exiting.py").write_text(HANDLERS)
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    return path


@pytest.mark.slow
def test_serve_says_the_stage_that_ended_it_and_keeps_its_runs(home: Path, pipeline: Path) -> None:
    """Before, ``serve`` ended silent (exit 3, its last line the handler's) and its run was
    not stored."""
    env = {"PYTHONPATH": pythonpath_with(pipeline.parent), "EXIT_CODE": "3"}
    with scheduled_serve(home, pipeline, **env) as serve:
        said = serve.line(SAID)
        _rest, stderr = serve.process.communicate(timeout=60)
    _said_and_stored(home, serve.process.returncode, (said + stderr).strip())


@pytest.mark.slow
def test_debug_says_the_stage_that_ended_it_and_stores_the_run(home: Path, pipeline: Path) -> None:
    """Before, ``debug FILE`` ended silent with exit 3 and its run was not stored."""
    ran = taskdaemon(
        home,
        "debug",
        str(pipeline),
        stdin="",
        PYTHONPATH=pythonpath_with(pipeline.parent),
        EXIT_CODE="3",
    )
    _said_and_stored(home, ran.returncode, ran.stderr)


@pytest.mark.slow
def test_replay_says_the_stage_that_ended_it_and_stores_its_run(home: Path, pipeline: Path) -> None:
    """Before, ``replay`` ended silent with exit 3 and its run was not stored; the recorded
    run stays as it was."""
    path = pythonpath_with(pipeline.parent)
    recorded = taskdaemon(home, "run", str(pipeline), "-q", PYTHONPATH=path)
    assert 0 == recorded.returncode, recorded.stderr
    original = recorded.stdout.strip()
    ran = taskdaemon(home, "replay", original, "--from", "s", PYTHONPATH=path, EXIT_CODE="3")
    assert original != _said_and_stored(home, ran.returncode, ran.stderr)
    shown = json.loads(taskdaemon(home, "runs", "show", original, "--json").stdout)
    assert "success" == shown["status"]
