"""Declared secrets (the environment's, a run's request, a debugger's override of a secret
input) stay masked for the whole run, whatever the run learns on the way: through the real
``taskdaemon run``, ``debug`` and ``ui``, hundreds of values under secret keys no longer push
them out of the values masked (``secret_values``, "Declared and learnt")."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import httpx
import pytest

from cli_support import start_ui, taskdaemon, write
from redaction_support import shown_everywhere
from taskdaemon.pipeline.secret_values import MASK_MAX_DECLARED, MASK_MAX_VALUES

ENV_SECRET = "Env9Secret7Value"  # in taskdaemon's environment, as DEPLOY_TOKEN
REQUEST_SECRET = "Req8Secret4Value"  # the run's request, --input api_key=...
#: Texts a stage returns under ``tokens``: learnt on the way, more than are kept.
FLOOD = MASK_MAX_VALUES + 344

FLOODING = f"""\
name: flood
stages:
  - name: a
    command: >-
      python3 -c "import json; print(json.dumps({{'tokens':
      ['filler-%05d' % n for n in range({FLOOD})]}}))"
    triggers: [{{manual: {{approval_required: false}}}}]
  - name: b
    command: "echo env=$DEPLOY_TOKEN req=$TASKDAEMON_INPUT_K"
    triggers: [{{on_completion: {{stage: a}}}}]
    inputs: {{k: request.api_key}}
"""


def _files_holding(home: Path, secret: str) -> list[str]:
    """The files under ``home`` whose bytes hold ``secret``."""
    return [p.name for p in home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow
def test_a_flood_of_learnt_values_forgets_no_declared_secret(home: Path, tmp_path: Path) -> None:
    """Stage ``a`` returns 600 texts under ``tokens``, then ``b`` echoes the environment's and
    the request's secrets: both are ``[REDACTED]`` in the run log, and in clear in no file of
    the home, no view of the stored run, no answer of the page's API; the values learnt and
    forgotten are said, with their count, on stderr."""
    pipeline = write(tmp_path / "flood.yaml", FLOODING)
    ran = taskdaemon(
        home,
        "run",
        str(pipeline),
        "--input",
        f"api_key={REQUEST_SECRET}",
        DEPLOY_TOKEN=ENV_SECRET,
    )
    (run_id,) = (line.split()[1] for line in ran.stdout.splitlines() if line.startswith("run "))
    shown = shown_everywhere(home, run_id, tmp_path)
    ui, url, token = start_ui(home)
    try:
        for path in (f"/api/runs/{run_id}", f"/api/runs/{run_id}/logs?stage=b"):
            answer = httpx.get(
                f"{url}{path}", headers={"authorization": f"Bearer {token}"}, timeout=30
            )
            shown[f"ui {path}"] = f"{answer.status_code} {answer.text}"
    finally:
        ui.terminate()
        ui.communicate(timeout=30)
    shown["run"] = ran.stdout + ran.stderr
    leaked = [
        (secret, where)
        for secret in (ENV_SECRET, REQUEST_SECRET)
        for where in [name for name, text in shown.items() if secret in text]
        + _files_holding(home, secret)
    ]
    assert (0, [], True, True, True) == (
        ran.returncode,
        leaked,
        "env=[REDACTED] req=[REDACTED]" in shown["logs"],
        "env=[REDACTED] req=[REDACTED]" in shown[f"ui /api/runs/{run_id}/logs?stage=b"],
        f"{FLOOD - MASK_MAX_VALUES} values learnt as secrets on the way forgotten so far"
        in ran.stderr,
    ), ran.stderr


@pytest.mark.slow
def test_a_request_of_more_secrets_than_are_kept_is_refused_in_one_line(
    home: Path, tmp_path: Path
) -> None:
    """A request whose secret keys hold more texts than the runs may keep is refused before
    the run starts: one line, no traceback, no text of the request quoted."""
    pipeline = write(tmp_path / "flood.yaml", FLOODING)
    keys = [f"key-value-{n:06d}" for n in range(MASK_MAX_DECLARED)]
    asked = {"api_key": REQUEST_SECRET, "api_keys": keys}
    request = write(tmp_path / "request.json", json.dumps(asked))
    ran = taskdaemon(home, "run", str(pipeline), "--input-file", str(request))
    refusal = [line for line in ran.stderr.splitlines() if "declared secret" in line]
    assert (2, 1, False, False) == (
        ran.returncode,
        len(refusal),
        "Traceback" in ran.stderr,
        "key-value-" in ran.stdout + ran.stderr or REQUEST_SECRET in ran.stderr,
    ), ran.stderr
    assert (
        f"the run's request holds {MASK_MAX_DECLARED + 1} values declared secret, and the open "
        f"runs keep 0: at most {MASK_MAX_DECLARED} are kept masked for a whole run"
    ) in refusal[0]


#: An output under a secret key: learnt once stage a's outputs are mapped.
TOKEN = "Tq9zKp2xLm4vBn8wRs"

OVERRIDDEN = f"""\
    name: overridden
    stages:
      - name: a
        command: "echo '{{\\"api_token\\": \\"{TOKEN}\\"}}'"
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: b
        command: "echo got $TASKDAEMON_INPUT_T"
        triggers: [{{on_completion: {{stage: a}}}}]
        inputs: {{api_token: "'placeholder-1'", t: stages.a.outputs.api_token}}
"""


@pytest.mark.slow
def test_a_secret_named_input_set_to_hundreds_of_texts_forgets_no_secret(
    home: Path, tmp_path: Path
) -> None:
    """``set api_token [...]`` at a breakpoint (a secret name, no ``--secret``): past the
    values the runs may keep it is refused in one line; under them it is declared, and the
    token ``a`` returned, learnt, is still masked when ``b`` echoes it."""
    path = tmp_path / "overridden.yaml"  # not in the home, whose files must not hold the token
    path.write_text(textwrap.dedent(OVERRIDDEN))
    many = json.dumps([f"filler-{n:05d}" for n in range(MASK_MAX_DECLARED + 44)])
    under = json.dumps([f"filler-{n:05d}" for n in range(MASK_MAX_DECLARED - 6)])
    done = taskdaemon(
        home,
        "debug",
        str(path),
        "--break",
        "b",
        stdin=f"set api_token {many}\nset api_token {under}\ncontinue\n",
    )
    assert (0, False, []) == (
        done.returncode,
        TOKEN in done.stdout + done.stderr,
        _files_holding(home, TOKEN),
    ), done.stdout + done.stderr
    assert (
        f"not set: this value holds {MASK_MAX_DECLARED + 44} values declared secret"
    ) in done.stdout
    with sqlite3.connect(home / "spans.db") as db:
        logged = [row[0] for row in db.execute("SELECT body FROM logs")]
    assert "got [REDACTED]" in logged, logged
