"""The debugger's answers (``debug_ops.py``) hold run data as the spans do: secrets redacted,
whatever the transport (the prompt of ``taskdaemon debug``, the control socket, HTTP)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cli_support import taskdaemon

SECRET = "S3KR1Tdbg42value"

PIPELINE = """\
    name: leaky
    stages:
      - name: a
        command: 'echo "{\\"client_secret\\": \\"$TASKDAEMON_INPUT_API_KEY\\"}"'
        triggers: [{manual: {approval_required: false}}]
        inputs: {api_key: request.api_key}
      - name: b
        command: "true"
        triggers: [{on_completion: {stage: a}}]
        inputs: {api_key: request.api_key}
"""


@pytest.mark.slow
def test_the_prompts_inputs_outputs_and_set_show_no_secret(home: Path) -> None:
    """At a breakpoint, ``inputs`` (twice), ``outputs`` and the answer to ``set`` show a secret
    input, a secret output and a secret override as ``[REDACTED]``, as the spans hold them."""
    path = home / "leaky.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    commands = f'inputs b\noutputs b\nset b api_key "{SECRET}-set"\ninputs b\ncontinue\n'
    done = taskdaemon(
        home, "debug", str(path), "--break", "b", "-q", "-i", f"api_key={SECRET}", stdin=commands
    )
    assert "run ended success" in done.stdout, done.stdout + done.stderr
    answers = "\n".join(  # on a pipe the prompt echoes each command typed: not an answer
        line for line in done.stdout.splitlines() if not line.startswith("(taskdaemon)")
    )
    assert (0, 4) == (answers.count(SECRET), answers.count("[REDACTED]")), done.stdout
