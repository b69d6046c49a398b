"""Log records still waiting in the batch processor when a value became known as a secret
leave masked (``cli/masked_log_exporter``): a real run whose stage prints a secret it fetched,
then returns it under ``token``, exports its lines over the console log exporter at exit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon, write
from redaction_support import MADE_SECRET, MAKE_SECRET
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
    pipeline = write(tmp_path / "exporting.yaml", PIPELINE)
    done = taskdaemon(
        home,
        "run",
        "-q",
        str(pipeline),
        cwd=tmp_path,
        OTEL_LOGS_EXPORTER="console",
        OTEL_BLRP_SCHEDULE_DELAY="60000",
    )
    assert 0 == done.returncode, done.stderr
    bodies = [
        record["body"]
        for record in _json_objects(done.stdout)
        if "from the vault" in str(record.get("body"))
    ]
    assert ([f"got {REDACTED} from the vault"], False) == (bodies, SECRET in done.stdout)


def _json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects the console exporter printed (each over several lines)."""
    decoder = json.JSONDecoder()
    objects, at = [], text.find("{")
    while at >= 0:
        try:
            found, at = decoder.raw_decode(text, at)
        except ValueError:
            at += 1
        else:
            objects.append(found)
        at = text.find("{", at)
    return objects
