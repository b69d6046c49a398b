"""Stage code that replaces or closes ``sys.stdout``, or forks, run by the real ``taskdaemon run``:
the run id still reaches the caller, and the exit code is the run's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon
from taskdaemon.pipeline._sync_pool import IDLE_SECONDS

HANDLERS = """\
import io
import sys


def replaces(ctx):
    sys.stdout = io.StringIO()
    return {"kept": 1}


def closes(ctx):
    sys.stdout.close()
    return {"kept": 2}
"""


@pytest.mark.slow
@pytest.mark.parametrize("handler", ["replaces", "closes"])
def test_a_handler_that_replaces_or_closes_stdout_keeps_the_run_id(
    home: Path, tmp_path: Path, handler: str
) -> None:
    """Before, the run id went into the handler's StringIO (stdout empty, exit 0), or its
    write to the closed stream was a traceback, exit 1, for a run that succeeded."""
    (tmp_path / "streams.py").write_text(HANDLERS)
    entry = "[{manual: {approval_required: false}}]"
    pipeline = tmp_path / "p.yaml"
    stage = f'{{name: s, handler: "streams:{handler}", triggers: {entry}}}'
    pipeline.write_text(f"name: streams\nstages:\n  - {stage}\n")
    ran = taskdaemon(home, "run", str(pipeline), "-q", PYTHONPATH=pythonpath_with(tmp_path))
    assert 0 == ran.returncode, ran.stderr
    assert "Traceback" not in ran.stderr
    run_id = ran.stdout.strip()
    shown = taskdaemon(home, "runs", "show", run_id, "--json")
    assert 0 == shown.returncode, (ran.stdout, shown.stderr)


FORKS = """\
import os
import time


def forks(ctx):
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        return {"child": True}
    os.waitpid(pid, 0)
    return {"waited": time.monotonic() - start}
"""


@pytest.mark.slow
def test_the_child_of_a_sync_handler_that_forks_ends_when_it_returns(
    home: Path, tmp_path: Path
) -> None:
    """Before, the child's pool thread went idle with nobody to ring it and the child lived
    ``IDLE_SECONDS`` (10 s): the handler waiting for it waited that long."""
    (tmp_path / "forking.py").write_text(FORKS)
    entry = "[{manual: {approval_required: false}}]"
    pipeline = tmp_path / "p.yaml"
    stage = f'{{name: s, handler: "forking:forks", triggers: {entry}}}'
    pipeline.write_text(f"name: forking\nstages:\n  - {stage}\n")
    ran = taskdaemon(home, "run", str(pipeline), "-q", PYTHONPATH=pythonpath_with(tmp_path))
    assert 0 == ran.returncode, ran.stderr
    shown = json.loads(taskdaemon(home, "runs", "show", ran.stdout.strip(), "--json").stdout)
    outputs = json.loads(shown["stages"][0]["attempts"][0]["outputs"])
    assert outputs["waited"] < IDLE_SECONDS - 1, outputs
