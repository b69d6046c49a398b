"""``set --secret`` of a value holding hundreds of texts, through the real ``taskdaemon debug``:
each text would be one of the values masked at most (``secret_values.MASK_MAX_VALUES``), so it
pushed out the secrets known before it, and a token a stage printed after that was stored in
clear. It is refused in one line, and the token stays masked."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.secret_values import MASK_MAX_DECLARED, MASK_MAX_VALUES

#: The texts and numbers one secret value may hold (``secret_values.MASK_MAX_PARTS``).
MASK_MAX_PARTS = 16

#: An output under a secret key: known as a secret once stage a's outputs are mapped.
TOKEN = "Tq9zKp2xLm4vBn8wRs"

PIPELINE = f"""\
    name: parts
    stages:
      - name: a
        command: "echo '{{\\"api_token\\": \\"{TOKEN}\\"}}'"
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: b
        command: "echo got $TASKDAEMON_INPUT_T"
        triggers: [{{on_completion: {{stage: a}}}}]
        inputs: {{x: "'plain-value'", t: stages.a.outputs.api_token}}
"""


@pytest.mark.slow
def test_a_secret_of_hundreds_of_texts_is_refused_and_forgets_no_secret(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "parts.yaml"  # not in the home, whose files must not hold the token
    path.write_text(textwrap.dedent(PIPELINE))
    many = json.dumps([f"filler-{n:05d}" for n in range(MASK_MAX_VALUES + 44)])
    few = json.dumps([f"filler-{n:05d}" for n in range(MASK_MAX_PARTS)])
    done = taskdaemon(
        home,
        "debug",
        str(path),
        "--break",
        "b",
        stdin=f"set --secret x {many}\nset --secret x {few}\ncontinue\n",
    )
    stored = [p.name for p in home.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert (0, False, []) == (done.returncode, TOKEN in done.stdout + done.stderr, stored)
    assert (
        f"this value holds more than {MASK_MAX_PARTS} texts and numbers (each is kept masked "
        f"until the run ends, and the open runs keep {MASK_MAX_DECLARED} at most)\n"
    ) in done.stdout
