"""A handler that closes ``sys.stderr`` under the real ``taskdaemon run`` (its progress lines
on): the run ends, stored, its summary on stdout. Before, the progress view's write raised
``ValueError``, ``logging``'s report of the failed log line raised it again out of the engine's
observer dispatch, and the stage's end was lost: the run hung for ever, SIGTERM too
(``logs._ConsoleHandler.handleError``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon

HANDLERS = """\
import sys


def closes(ctx):
    sys.stderr.close()
    return {}


async def closes_async(ctx):
    return closes(ctx)
"""

PIPELINE = """\
name: closes
stages:
  - name: a
    handler: "closing:{handler}"
    triggers: [{{manual: {{approval_required: false}}}}]
  - name: b
    command: "echo b >&2"
    triggers: [{{on_completion: {{stage: a}}}}]
"""


@pytest.mark.slow
@pytest.mark.parametrize("handler", ["closes", "closes_async"])
def test_a_handler_that_closes_stderr_does_not_hang_the_run(
    home: Path, tmp_path: Path, handler: str
) -> None:
    (tmp_path / "closing.py").write_text(HANDLERS)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE.format(handler=handler))
    ran = taskdaemon(home, "run", str(pipeline), timeout=60, PYTHONPATH=pythonpath_with(tmp_path))
    summary = ran.stdout.splitlines()[-1] if ran.stdout else ""
    run_id = summary.split()[1] if summary.startswith("run ") else "none"
    shown = taskdaemon(home, "runs", "show", run_id, "--json")
    status = json.loads(shown.stdout)["status"] if shown.returncode == 0 else shown.stderr
    assert (0, True, "success") == (ran.returncode, " success in " in summary, status), (
        ran.stdout,
        ran.stderr,
    )
