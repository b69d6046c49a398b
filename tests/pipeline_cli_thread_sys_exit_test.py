"""``sys.exit()`` in a thread a stage started, under the real ``taskdaemon run``: it ends that
thread alone (Python's ``threading.excepthook`` ignores ``SystemExit``), and is said in one
warning, the stage's record (``cli/stage_leftovers.py``). Before, nothing was said: the stage
succeeded and the process went on as if the call had not been made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import run_quiet, taskdaemon
from taskdaemon.pipeline.tracking.store import SpanStore

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


QUITTER = """\
import os
import sys


def a(ctx):
    code = os.environ["CODE"]
    sys.exit(None if code == "none" else int(code) if code.isdigit() else code)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("code", "asked"), [("3", "3"), ("none", ""), ("bad config", "'bad config'")]
)
def test_sys_exit_in_a_handler_is_said_as_the_call_everywhere(
    home: Path, tmp_path: Path, code: str, asked: str
) -> None:
    """``sys.exit(3)`` in a handler fails its stage with the error ``the handler called
    sys.exit(3)``, the same in ``runs show``, the stage span's status description and the
    run's log: before, each said the bare ``3`` (and ``sys.exit()`` nothing at all)."""
    ran = run_quiet(home, tmp_path, ("quitting", QUITTER), PIPELINE, CODE=code)
    run_id = ran.stdout.strip()
    said = f"the handler called sys.exit({asked})"
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    stage = next(s for s in shown["stages"] if s["name"] == "a")
    with SpanStore(home / "spans.db") as store:
        span = next(s for s in store.get_trace(run_id) if s.name == "a")
    logged = taskdaemon(home, "logs", run_id, "--stage", "a").stdout
    assert (1, "failure", ("SystemExit", said), said, True) == (
        ran.returncode,
        shown["status"],
        (stage["attempts"][-1]["error_type"], stage["attempts"][-1]["error"]),
        span.status_message,
        f"stage a.0.1 finished: failure: {said}\n" in logged,
    ), (ran.stderr, stage, logged)
