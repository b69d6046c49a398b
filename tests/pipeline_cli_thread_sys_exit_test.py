"""``sys.exit()`` in a thread a stage started, under the real ``taskdaemon run``: it ends that
thread alone (Python's ``threading.excepthook`` ignores ``SystemExit``), and is said in one
warning, the stage's record (``cli/stage_leftovers.py``). Before, nothing was said: the stage
succeeded and the process went on as if the call had not been made."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import run_quiet, taskdaemon

HANDLERS = """\
import os
import sys
import threading


def a(ctx):
    code = os.environ["CODE"]
    args = () if code == "none" else (int(code) if code.isdigit() else code,)
    thread = threading.Thread(target=sys.exit, args=args, name="quitter")
    thread.start()
    thread.join()
    return {}
"""

PIPELINE = """\
name: quits
stages:
  - name: a
    handler: "quitting:a"
    triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("code", "asked"), [("3", "3"), ("none", ""), ("bye\x1b[2J", '"bye\\u001b[2J"')]
)
def test_sys_exit_in_a_stage_thread_is_said_and_the_run_goes_on(
    home: Path, tmp_path: Path, code: str, asked: str
) -> None:
    ran = run_quiet(home, tmp_path, ("quitting", HANDLERS), PIPELINE, CODE=code)
    said = (
        f"stage 'a': its thread 'quitter' called sys.exit({asked}), which ends that thread "
        "alone: the stage and taskdaemon go on"
    )
    run_id = ran.stdout.strip()
    logged = taskdaemon(home, "logs", run_id, "--stage", "a").stdout
    lines = [line for line in ran.stderr.splitlines() if "sys.exit" in line]
    assert (0, 1, True, True) == (
        ran.returncode,
        len(lines),
        bool(lines) and said in lines[0],
        said in logged,
    ), (ran.stderr, logged)
