"""What the ``taskdaemon debug`` process tests share: the test pipeline and the helpers that
run ``taskdaemon debug`` on a pipe or attach it to a run in the background."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from cli_support import ROOT, TASKDAEMON, environment, in_background, line_with

PIPELINE = """\
    name: dbg
    stages:
      - name: a
        command: "echo '{\\"x\\": 1}'"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "echo {\\\\\\"got\\\\\\": $TASKDAEMON_INPUT_X}"
        triggers: [{on_completion: {stage: a}}]
        inputs: {x: stages.a.outputs.x}
      - name: c
        command: "exit 3"
        triggers: [{on_completion: {stage: b}}]
"""


def write_pipeline(home: Path) -> Path:
    """The test pipeline in ``home``: a -> b (reads a's x) -> c (fails)."""
    path = home / "dbg.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    return path


def debug(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``taskdaemon debug ARGS`` with ``stdin`` on a pipe, to its end."""
    return subprocess.run(
        [TASKDAEMON, "debug", *args],
        cwd=ROOT,
        env=environment(home),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def attached(home: Path, run_id: str) -> subprocess.Popen[str]:
    """``taskdaemon debug attach RUN`` in the background, its stdin, stdout and stderr pipes,
    SIGHUP's default action restored (its tests send it SIGHUP)."""
    return in_background(home, "debug", "attach", run_id, hangup=True)


def typed(prompt: subprocess.Popen[str], command: str, until: str) -> str:
    """Type ``command`` at the ``attached`` ``prompt``; its first output line holding
    ``until`` (the sync point)."""
    assert prompt.stdin is not None
    prompt.stdin.write(command + "\n")
    prompt.stdin.flush()
    return line_with(prompt.stdout, until)


APPROVED = """\
    name: gated
    stages:
      - name: a
        command: "true"
        triggers: [{manual: {approval_required: false}}]
      - name: release
        command: "true"
        triggers: [{on_completion: {stage: a}}, {manual: {approval_required: true}}]
        trigger_mode: all
"""
