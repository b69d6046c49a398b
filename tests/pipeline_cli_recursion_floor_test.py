"""A handler that lowers Python's recursion limit while ``taskdaemon run``'s telemetry loads:
the run is stored all the same, and one warning names the cause (``cli/recursion_floor.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon

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
        "taskdaemon.pipeline.cli.recursion_floor: stage code lowered Python's recursion limit "
        "to 60 (sys.setrecursionlimit): taskdaemon put it back to 1000 to load its telemetry"
    ] == [line.split(" WARNING ", 1)[1] for line in said], ran.stderr
    shown = json.loads(taskdaemon(home, "runs", "show", ran.stdout.strip(), "--json").stdout)
    assert ("success", ["success", "success"]) == (
        shown["status"],
        [stage["status"] for stage in shown["stages"]],
    )
