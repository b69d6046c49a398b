"""A thread stage code left running at its run's end is recorded on the run span
(``taskdaemon.pipeline.threads_left``, written before the store closes: ``cli/process_end.py``)
and ``runs show`` says it after the fact. Before, only the process's last line on stderr said
it; the stored run did not."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import run_quiet, taskdaemon

#: ``a`` leaves a thread ``uploader`` that runs until the process's end has begun (``held``:
#: never ends; ``joined``: ``a`` joins it first, so nothing is left).
HANDLERS = """\
import os
import threading


def held():
    threading.main_thread().join()  # returns once the process's end has begun
    threading.Event().wait()


def quick():
    pass


async def a(ctx):
    thread = threading.Thread(target=globals()[os.environ["TARGET"]], name="uploader")
    thread.start()
    if os.environ["TARGET"] == "quick":
        thread.join()
    return {}
"""

PIPELINE = """\
name: leaves
stages:
  - name: a
    handler: "leaving:a"
    triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "left"),
    [
        (
            "held",
            [
                "left      thread 'uploader' (started by stage 'a', running leaving.held) "
                "still running at the run's end"
            ],
        ),
        ("quick", []),
    ],
)
def test_a_thread_left_running_is_in_the_stored_run(
    home: Path, tmp_path: Path, target: str, left: list[str]
) -> None:
    ran = run_quiet(home, tmp_path, ("leaving", HANDLERS), PIPELINE, TARGET=target)
    cut_off = "taskdaemon: exiting without waiting for thread 'uploader'" in ran.stderr
    shown = taskdaemon(home, "runs", "show", ran.stdout.strip())
    lines = [line for line in shown.stdout.splitlines() if line.startswith("left ")]
    assert (0, bool(left), left) == (ran.returncode, cut_off, lines), (ran.stderr, shown)
