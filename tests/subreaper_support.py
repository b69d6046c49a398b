"""Helpers of the reaper's tests (``pipeline_adopted_reaper_test.py``,
``pipeline_waited_children_test.py``): the tests' process made a child subreaper for a block,
so that an orphan below it becomes its child, as one below ``taskdaemon`` becomes taskdaemon's;
and a ``taskdaemon run`` whose handler runs once taskdaemon is a subreaper, and its outputs."""

from __future__ import annotations

import contextlib
import ctypes
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cli_support import taskdaemon

#: prctl(2)'s option number (linux/prctl.h).
_PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def subreaper() -> Iterator[None]:
    """The tests' process a child subreaper (prctl(2)) for the block only."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert 0 == libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def subreaper_pipeline(handler: str) -> str:
    """A pipeline whose command stage ``c`` makes taskdaemon a subreaper (its reaper's thread
    looks from then on), then whose Python stage ``h`` runs ``handler``."""
    return f"""\
name: reaped
timeout: 60s
stages:
  - name: c
    command: "true"
    triggers: [{{manual: {{approval_required: false}}}}]
  - name: h
    handler: "{handler}"
    triggers: [{{on_completion: {{stage: c}}}}]
"""


def stage_outputs(home: Path, ran: subprocess.CompletedProcess[str], stage: str = "h") -> Any:
    """The outputs of ``stage``'s last attempt in the run ``ran`` made (it succeeded)."""
    assert 0 == ran.returncode, ran.stderr
    shown = taskdaemon(home, "runs", "show", ran.stdout.strip(), "--json")
    stages = {each["name"]: each for each in json.loads(shown.stdout)["stages"]}
    return json.loads(stages[stage]["attempts"][-1]["outputs"])
