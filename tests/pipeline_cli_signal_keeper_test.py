"""An ``async def`` handler that changes SIGINT's handling, run by the real ``taskdaemon run``:
within ``CHECK_SECONDS`` of the change, Ctrl-C cancels the run again (``cli/signal_keeper.py``)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from cli_support import ended_at_exit, in_background, line_with, pythonpath_with, taskdaemon

HANDLERS = """\
import os
import signal


async def changes(ctx):
    signal.signal(signal.SIGINT, getattr(signal, os.environ["HANDLING"]))
    return {}
"""

PIPELINE = """\
name: sig
stages:
  - name: a
    handler: "changing:changes"
    triggers: [{manual: {approval_required: false}}]
  - name: b
    command: "sleep 60"
    triggers: [{on_completion: {stage: a}}]
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("handling", "said"), [("SIG_IGN", "set to be ignored"), ("SIG_DFL", "set to its default")]
)
def test_ctrl_c_cancels_the_run_after_a_handler_changed_its_handling(
    home: Path, tmp_path: Path, handling: str, said: str
) -> None:
    """Before, with SIGINT ignored the run went on to ``sleep 60``'s end (exit 0, a success);
    with its default action the process died of it (exit -2, the run left interrupted)."""
    (tmp_path / "changing.py").write_text(HANDLERS)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE)
    env = {"PYTHONPATH": pythonpath_with(tmp_path), "HANDLING": handling}
    with ended_at_exit(in_background(home, "run", str(pipeline), **env)) as ran:
        seen: list[str] = []
        line_with(ran.stderr, re.compile(r"\bb\s+running"), seen=seen)
        if not any("taskdaemon's is put back" in line for line in seen):  # at the next look
            line_with(ran.stderr, "taskdaemon's is put back", seen=seen)
        ran.send_signal(signal.SIGINT)
        _out, rest = ran.communicate(timeout=60)
    stderr = "".join(seen) + rest
    assert 130 == ran.returncode, stderr
    assert f"SIGINT's handling was changed by stage code ({said}" in stderr
    run_id = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)[0]["run_id"]
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    assert ("cancelled", ["success", "cancelled"]) == (
        shown["status"],
        [stage["status"] for stage in shown["stages"]],
    )


UNHOOKING = """\
import signal


async def unhooks(ctx):
    signal.set_wakeup_fd(-1)
    return {}
"""


@pytest.mark.slow
def test_sigterm_cancels_the_run_after_a_handler_unset_the_wakeup_descriptor(
    home: Path, tmp_path: Path
) -> None:
    """``signal.set_wakeup_fd(-1)`` left every handling as it was, but asyncio never heard of
    a signal again: before, SIGTERM was lost and ``sleep 60`` ran to its end (exit 0)."""
    (tmp_path / "changing.py").write_text(UNHOOKING)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE.replace("changing:changes", "changing:unhooks"))
    env = {"PYTHONPATH": pythonpath_with(tmp_path)}
    with ended_at_exit(in_background(home, "run", str(pipeline), **env)) as ran:
        seen: list[str] = []
        line_with(ran.stderr, re.compile(r"\bb\s+running"), seen=seen)
        if not any("wake-up descriptor was changed" in line for line in seen):
            line_with(ran.stderr, "wake-up descriptor was changed", seen=seen)
        ran.send_signal(signal.SIGTERM)
        _out, rest = ran.communicate(timeout=90)
    stderr = "".join(seen) + rest
    assert 143 == ran.returncode, stderr
    assert "wake-up descriptor was changed by stage code (to -1)" in stderr


CLOSING = """\
import os
import signal

KEPT = []


async def closes(ctx):
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    os.close(fd)
    if os.environ.get("TAKE"):  # a file of the handler's takes the number
        KEPT.append(open(os.environ["TAKE"], "wb"))
    return {}
"""


@pytest.mark.slow
@pytest.mark.parametrize("take", [False, True])
def test_sigterm_cancels_the_run_after_a_handler_closed_the_wakeup_descriptor(
    home: Path, tmp_path: Path, take: bool
) -> None:
    """Before, asyncio's signal bytes went to a closed descriptor (or into the handler's file
    that took its number): SIGTERM was lost and ``sleep 60`` ran to its end (exit 0)."""
    (tmp_path / "changing.py").write_text(CLOSING)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE.replace("changing:changes", "changing:closes"))
    taken = tmp_path / "taken"
    env = {"PYTHONPATH": pythonpath_with(tmp_path), "TAKE": str(taken) if take else ""}
    with ended_at_exit(in_background(home, "run", str(pipeline), **env)) as ran:
        seen: list[str] = []
        line_with(ran.stderr, re.compile(r"\bb\s+running"), seen=seen)
        if not any("was closed by stage code" in line for line in seen):
            line_with(ran.stderr, "was closed by stage code", seen=seen)
        ran.send_signal(signal.SIGTERM)
        _out, rest = ran.communicate(timeout=90)
    stderr = "".join(seen) + rest
    assert 143 == ran.returncode, stderr
    assert "Traceback" not in stderr
    assert not take or 0 == taken.stat().st_size  # no signal byte written into its file
