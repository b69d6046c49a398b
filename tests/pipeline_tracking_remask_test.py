"""A value that becomes known as a secret during a run (a stage returns it under ``token``) is
masked in that run's log rows written before it was known: captured output, a handler's log
record and its ``extra`` fields; only that run's rows, only rows that hold it
(``tracking._remask``, docs/redaction.md, "Values known as secrets")."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon, write
from redaction_support import MADE_SECRET, MAKE_SECRET, shown_everywhere
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.stage_output import OutputBatch
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

SECRET = MADE_SECRET
HANDLER_SECRET = "handler-s3cr3t-88"

PIPELINE = f"""\
    name: fetching
    stages:
      - name: fetch
        command: >-
          {MAKE_SECRET}
          echo "got $V from the vault" >&2; echo "again: $V" >&2;
          python3 -c 'import fetcher; fetcher.wait_stored("again:")' &&
          printf '{{"token": "%s", "n": 1}}' "$V"
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: login
        handler: "fetcher:login"
        triggers: [{{on_completion: {{stage: fetch}}}}]
      - name: use
        command: "echo using the token"
        inputs: {{t: stages.fetch.outputs.token}}
        triggers: [{{on_completion: {{stage: login}}}}]
"""

# Each stage returns its secret only once the lines holding it are in the store: written
# before the value was known, whatever the writer's pace.
HANDLER = """\
import logging
import os
import sqlite3
import time

def wait_stored(text):
    path = os.path.join(os.environ["TASKDAEMON_HOME"], "spans.db")
    query = "SELECT count(*) FROM logs WHERE instr(body, ?) > 0"
    for _ in range(1200):  # a safety net of a minute: the row comes within the writer's linger
        # Read-only, and the store may not exist yet: a stage can run before telemetry loads.
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                if db.execute(query, (text,)).fetchone()[0]:
                    return
            finally:
                db.close()
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"never stored: {text}")

def login(ctx):
    secret = "-".join(("handler", "s3cr3t", "88"))
    logging.getLogger("fetcher").warning("logged in with %s", secret, extra={"used": secret})
    wait_stored("logged in with")
    return {"session_token": secret}
"""


@pytest.mark.slow
def test_a_secret_learnt_after_it_was_printed_is_masked_in_the_stored_run(
    home: Path, tmp_path: Path
) -> None:
    """The command's stdout and stderr lines and the handler's record (message and ``extra``)
    were written before their stage returned the value: none of ``logs`` (text and JSON),
    ``runs show`` (text and JSON), a dump or the store's rows holds it; the lines are there,
    masked."""
    shown = _run_and_show(home, tmp_path, PIPELINE)
    leaks = sorted(
        f"{name}: {secret}"
        for name, text in shown.items()
        for secret in (SECRET, HANDLER_SECRET)
        if secret in text
    )
    said = [
        f"got {REDACTED} from the vault",
        f"again: {REDACTED}",
        f"logged in with {REDACTED}",
        "using the token",
    ]
    assert ([], [True] * 4) == (leaks, [line in shown["logs"] for line in said])


RETRYING = f"""\
    name: retrying
    retry: {{max_attempts: 2, backoff: {{initial: 10ms}}}}
    error_strategy: retry
    stages:
      - name: fetch
        command: >-
          {MAKE_SECRET}
          if [ "$TASKDAEMON_ATTEMPT" = 1 ]; then echo "vault said $V, then broke" >&2; exit 4; fi;
          python3 -c 'import fetcher; fetcher.wait_stored("then broke")' &&
          printf '{{"token": "%s"}}' "$V"
        triggers: [{{manual: {{approval_required: false}}}}]
"""


@pytest.mark.slow
def test_a_failed_attempt_s_stored_span_loses_a_value_learnt_after_it(
    home: Path, tmp_path: Path
) -> None:
    """A first attempt that prints the secret on stderr and fails (its error, with the stderr
    tail, is on its span), then a second that returns it under ``token``: the failed attempt's
    span row, ``runs show`` and the dump hold the error, masked."""
    shown = _run_and_show(home, tmp_path, RETRYING)
    leaks = sorted(name for name, text in shown.items() if SECRET in text)
    said = f"vault said {REDACTED}, then broke"
    assert ([], True, True) == (leaks, said in shown["logs"], said in shown["runs show --json"])


# A secret holding a quote, a backslash and a non-ASCII letter: JSON (and ``repr``) write it
# escaped. Its middle, ``ESCAPED_CORE``, is written as it is in every encoding: any text that
# holds the secret in any encoding holds the core.
ESCAPED_CORE = "s3cr3t-escaped-41"
ESCAPING = """\
    name: escaping
    stages:
      - name: fetch
        command: python3 -c 'import fetcher; fetcher.print_escaped()'
        triggers: [{manual: {approval_required: false}}]
"""
PRINT_ESCAPED = """
import json
import sys

def print_escaped():
    secret = "vault\\"" + "s3cr3t-" + "escaped-41\\\\caf\\u00e9"
    print(repr(secret), file=sys.stderr)
    print(json.dumps({"seen": secret}), file=sys.stderr)
    print(json.dumps({"again": secret}, ensure_ascii=False), file=sys.stderr, flush=True)
    wait_stored("again")
    print(json.dumps({"token": secret}))
"""


@pytest.mark.slow
def test_a_secret_printed_json_escaped_before_it_was_learnt_is_masked(
    home: Path, tmp_path: Path
) -> None:
    """A stage prints a secret holding ``"``, ``\\`` and ``é`` as JSON (both ways) and as
    ``repr`` writes it, then returns it under ``token`` (its stdout, JSON too): every line was
    stored before the value was known, escaped; no place shows the secret in any encoding, and
    the lines are there, masked."""
    shown = _run_and_show(home, tmp_path, ESCAPING, HANDLER + PRINT_ESCAPED)
    leaks = sorted(name for name, text in shown.items() if ESCAPED_CORE in text)
    said = [f"'{REDACTED}'", f'{{"seen": "{REDACTED}"}}', f'{{"again": "{REDACTED}"}}']
    said.append(f'{{"token": "{REDACTED}"}}')
    assert ([], [True] * 4) == (leaks, [line in shown["logs"] for line in said])


def _run_and_show(
    home: Path, tmp_path: Path, pipeline: str, handler: str = HANDLER
) -> dict[str, str]:
    """Run ``pipeline`` (with ``handler`` beside it, as ``fetcher.py``) to success; where its
    records show."""
    write(tmp_path / "fetcher.py", handler)
    path = write(tmp_path / "pipeline.yaml", pipeline)
    done = taskdaemon(
        home, "run", "-q", str(path), cwd=tmp_path, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 0 == done.returncode, done.stderr
    return shown_everywhere(home, done.stdout.strip(), tmp_path)


def test_only_the_run_s_rows_holding_the_value_are_masked(tmp_path: Path) -> None:
    """The writer's listener masks the value in its run's rows written before, line by line in
    a batch of lines; another run's row holding the same text, and rows without it, stay as
    they were."""
    path = tmp_path / "spans.db"

    writer = SqliteLogWriter(path)
    try:
        for run_id in ("a" * 32, "b" * 32):
            writer.write_output(_batch(run_id, ("plain line", f"got {SECRET}", "last line")))
        assert writer.flush()
        remember_secrets({"token": SECRET}, "a" * 32)
        assert writer.flush()
    finally:
        writer.close()
    with sqlite3.connect(path) as db:
        bodies = dict(db.execute("SELECT trace_id, body FROM logs").fetchall())
    assert {
        "a" * 32: f"plain line\ngot {REDACTED}\nlast line",
        "b" * 32: f"plain line\ngot {SECRET}\nlast line",
    } == bodies
    assert 1 == writer.remasked


def _batch(run_id: str, lines: tuple[str, ...]) -> OutputBatch:
    """One read of a stage's stdout: run, pipeline, stage, instance, attempt, trace, span,
    stream, lines, time."""
    return OutputBatch(run_id, "p", "s", 0, 1, run_id, "1" * 16, "stdout", lines, 1)
