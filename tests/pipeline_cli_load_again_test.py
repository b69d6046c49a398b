"""Handlers that take from ``taskdaemon run``'s process what its telemetry's load needs (the
recursion limit, every file descriptor) while it loads: the run is stored all the same, and one
warning names the cause (``cli/load_again.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import TASKDAEMON, pythonpath_with, taskdaemon

#: An ``async def`` handler runs before the telemetry's load begins (the loop's turn after
#: the first stage started: ``cli/deferred.py``), so the load always meets the lowered limit.
HANDLERS = """\
import sys


async def lowers(ctx):
    sys.setrecursionlimit(60)
    return {}
"""

PIPELINE = """\
name: shallow
stages:
  - name: a
    handler: "lowering:lowers"
    triggers: [{manual: {approval_required: false}}]
  - name: b
    command: "true"
    triggers: [{on_completion: {stage: a}}]
"""


@pytest.mark.slow
def test_a_run_whose_handler_lowers_the_recursion_limit_is_stored(
    home: Path, tmp_path: Path
) -> None:
    """Before, the load failed with RecursionError and the run was not stored: ``taskdaemon
    run: run ID is not stored (telemetry failed to start)``, nothing naming the handler."""
    (tmp_path / "lowering.py").write_text(HANDLERS)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE)
    ran = taskdaemon(home, "run", str(pipeline), "-q", PYTHONPATH=pythonpath_with(tmp_path))
    assert 0 == ran.returncode, ran.stderr
    said = [line for line in ran.stderr.splitlines() if "WARNING" in line]
    assert [
        "taskdaemon.pipeline.cli.load_again: stage code lowered Python's recursion limit "
        "to 60 (sys.setrecursionlimit): taskdaemon put it back to 1000 to load its telemetry"
    ] == [line.split(" WARNING ", 1)[1] for line in said], ran.stderr
    shown = json.loads(taskdaemon(home, "runs", "show", ran.stdout.strip(), "--json").stdout)
    assert ("success", ["success", "success"]) == (
        shown["status"],
        [stage["status"] for stage in shown["stages"]],
    )


#: Takes every descriptor the process may open, and keeps them.
KEEPS = """\
import os

KEPT = []


async def keeps(ctx):
    try:
        while True:
            KEPT.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    return {"kept": len(KEPT)}
"""

#: The command under a limit of 256 descriptors: the handler takes them all at once.
FEW_DESCRIPTORS = ("sh", "-c", 'ulimit -n 256 && exec "$0" "$@"', TASKDAEMON)


@pytest.mark.slow
def test_a_run_whose_handler_keeps_every_descriptor_is_stored(home: Path, tmp_path: Path) -> None:
    """Before, the load failed (``Too many open files``) and the run was not stored; the
    command stage after it failed naming the watchdog's module. Now the reserve goes to the
    load: the command stage runs on what the load left (none, or a few: either way it ends
    saying what it met), and the run is stored."""
    (tmp_path / "keeping.py").write_text(KEEPS)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE.replace("lowering:lowers", "keeping:keeps"))
    ran = taskdaemon(
        home,
        "run",
        str(pipeline),
        "-q",
        launcher=FEW_DESCRIPTORS,
        PYTHONPATH=pythonpath_with(tmp_path),
    )
    said = "taskdaemon gave up the ones it kept in reserve to load its telemetry"
    assert said in ran.stderr
    assert "not stored" not in ran.stderr
    shown = json.loads(taskdaemon(home, "runs", "show", ran.stdout.strip(), "--json").stdout)
    b = shown["stages"][1]
    assert ("success", "b") == (shown["stages"][0]["status"], b["name"]), ran.stderr
    if b["status"] != "success":  # the load took the reserve's every descriptor
        assert b["attempts"][-1]["error"].startswith(
            "taskdaemon's process has all the file descriptors its limit allows open (256, "
            "ulimit -n): code it runs (a stage's handler) keeps them: [Errno 24]"
        ), b
