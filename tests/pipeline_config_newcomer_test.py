"""A first pipeline written from the docs, with a newcomer's slips, through the real
``taskdaemon validate``: each issue says what to write instead. Before, these lines said only
what was wrong (``unknown stage 'deploy'``, ``expected a boolean, got string``), or added an
issue that was not one (``loop: missing required field`` beside a command of a wrong type)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write

_FILE = """\
name: first
stages:
  - name: fetch
    command: [curl, -sS, "https://example.test/a b"]
    triggers: [{manual: {approval_required: "no"}}]
  - name: build
    command: make
    triggers: on_completion
  - name: test
    command: make test
    triggers: [{on_completion: {stage: deploy}}]
  - name: report
    command: "true"
    triggers:
      - on_condition: {expression: "stages.test.status == 'success' && request.x > '3"}
"""


@pytest.mark.slow
def test_each_issue_of_a_first_pipeline_says_what_to_write(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "first.yaml", _FILE)
    done = taskdaemon(home, "validate", "--no-resolve", str(path))
    assert (2, "") == (done.returncode, done.stderr)
    assert [
        f"{path}:4: stages[0].command: expected a string, got list (write it as one string, "
        "as a shell reads it: \"curl -sS 'https://example.test/a b'\")",
        f"{path}:5: stages[0].triggers[0].manual.approval_required: expected a boolean, got "
        "string 'no' (write false without quotes)",
        f"{path}:8: stages[1].triggers: expected a list, got string (a list of one-key "
        "mappings: triggers: [{on_completion: {stage: NAME}}])",
        f"{path}:11: stages[2].triggers[0].on_completion.stage: unknown stage 'deploy' (the "
        "stages: 'fetch', 'build', 'test', 'report')",
        f"{path}:15:84: stages[3].triggers[0].on_condition.expression: syntax error at column "
        "48: the string opened with ' is never closed",
    ] == done.stdout.splitlines()
