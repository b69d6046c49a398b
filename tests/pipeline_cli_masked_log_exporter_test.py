"""Log records still waiting in the batch processor when a value became known as a secret
leave masked (``cli/masked_log_exporter``): a real run whose stage prints a secret it fetched,
then returns it under ``token``, exports its lines over the console log exporter at exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import write
from redaction_support import (
    MADE_SECRET,
    MAKE_SECRET,
    console_json_objects,
    run_exported_at_exit,
)
from taskdaemon.pipeline.redaction import REDACTED

SECRET = MADE_SECRET

PIPELINE = f"""\
    name: exporting
    stages:
      - name: vault
        triggers: [{{manual: {{approval_required: false}}}}]
        command: >-
          {MAKE_SECRET} echo "got $V from the vault" >&2; printf '{{"token": "%s"}}' "$V"
"""


@pytest.mark.slow
def test_a_batch_not_yet_exported_loses_a_value_learnt_after_its_records(
    home: Path, tmp_path: Path
) -> None:
    """The batch processor waits a minute (longer than the run), so every record is exported at
    exit, after the stage returned the value: the exported line is masked. The console's own
    log lines printed it before (not revisited)."""
    stdout = run_exported_at_exit(home, write(tmp_path / "exporting.yaml", PIPELINE), "logs")
    bodies = [
        record["body"]
        for record in console_json_objects(stdout)
        if "from the vault" in str(record.get("body"))
    ]
    assert ([f"got {REDACTED} from the vault"], False) == (bodies, SECRET in stdout)


ESCAPING = """\
import json
import sys

secret = "vault\\"" + "s3cr3t-" + "escaped-41"
print(json.dumps({"seen": secret}), file=sys.stderr)
print(json.dumps({"token": secret}))
"""


@pytest.mark.slow
def test_a_value_learnt_after_its_records_is_masked_as_json_escaped_it(
    home: Path, tmp_path: Path
) -> None:
    """The stage prints a secret holding a quote as JSON (escaped), then returns it: the
    exported lines, exported at exit, hold ``[REDACTED]`` where the escaped value was, and
    nothing of the value."""
    script = write(tmp_path / "escaping.py", ESCAPING)
    pipeline = write(
        tmp_path / "escaping.yaml",
        f"""\
        name: escaping
        stages:
          - name: vault
            triggers: [{{manual: {{approval_required: false}}}}]
            command: python3 {script}
        """,
    )
    stdout = run_exported_at_exit(home, pipeline, "logs")
    bodies = sorted(
        str(record["body"])
        for record in console_json_objects(stdout)
        if str(record.get("body")).startswith("{")
    )
    expected = [f'{{"seen": "{REDACTED}"}}', f'{{"token": "{REDACTED}"}}']
    assert (expected, False) == (bodies, "escaped-41" in stdout)
