"""A value that becomes known as a secret during a run (a stage returns it under ``token``) is
masked in that run's log rows written before it was known: captured output, a handler's log
record and its ``extra`` fields; only that run's rows, only rows that hold it
(``tracking._remask``, docs/redaction.md, "Values known as secrets")."""

from __future__ import annotations

import gzip
import sqlite3
import tarfile
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon, write
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.stage_output import OutputBatch
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

# Built by the command from two halves, so that no recorded command line holds it whole.
SECRET = "s3cr3t-fetched-77"
HANDLER_SECRET = "handler-s3cr3t-88"

PIPELINE = """\
    name: fetching
    stages:
      - name: fetch
        command: >-
          V=$(printf '%s-%s' s3cr3t fetched-77);
          echo "got $V from the vault" >&2; echo "again: $V" >&2;
          python3 -c 'import fetcher; fetcher.wait_stored("again:")' &&
          printf '{"token": "%s", "n": 1}' "$V"
        triggers: [{manual: {approval_required: false}}]
      - name: login
        handler: "fetcher:login"
        triggers: [{on_completion: {stage: fetch}}]
      - name: use
        command: "echo using the token"
        inputs: {t: stages.fetch.outputs.token}
        triggers: [{on_completion: {stage: login}}]
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
    for _ in range(1200):  # a safety net of a minute: the row comes within the writer's linger
        with sqlite3.connect(path, timeout=30) as db:
            query = "SELECT count(*) FROM logs WHERE instr(body, ?) > 0"
            if db.execute(query, (text,)).fetchone()[0]:
                return
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
    write(tmp_path / "fetcher.py", HANDLER)
    pipeline = write(tmp_path / "fetching.yaml", PIPELINE)
    done = taskdaemon(
        home, "run", "-q", str(pipeline), cwd=tmp_path, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 0 == done.returncode, done.stderr
    run_id = done.stdout.strip()
    archive = tmp_path / "run.tar.gz"
    assert 0 == taskdaemon(home, "dump", run_id, "-o", str(archive)).returncode
    shown = {
        "logs": taskdaemon(home, "logs", run_id).stdout,
        "logs --json": taskdaemon(home, "logs", run_id, "--json").stdout,
        "runs show": taskdaemon(home, "runs", "show", run_id).stdout,
        "runs show --json": taskdaemon(home, "runs", "show", run_id, "--json").stdout,
        "dump": _archive_text(archive),
    }
    with sqlite3.connect(home / "spans.db") as db:
        for table in ("logs", "spans_readable", "runs"):
            shown[f"table {table}"] = repr(db.execute(f"SELECT * FROM {table}").fetchall())
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


RETRYING = """\
    name: retrying
    retry: {max_attempts: 2, backoff: {initial: 10ms}}
    error_strategy: retry
    stages:
      - name: fetch
        command: >-
          V=$(printf '%s-%s' s3cr3t fetched-77);
          if [ "$TASKDAEMON_ATTEMPT" = 1 ]; then echo "vault said $V, then broke" >&2; exit 4; fi;
          python3 -c 'import fetcher; fetcher.wait_stored("then broke")' &&
          printf '{"token": "%s"}' "$V"
        triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
def test_a_failed_attempt_s_stored_span_loses_a_value_learnt_after_it(
    home: Path, tmp_path: Path
) -> None:
    """A first attempt that prints the secret on stderr and fails (its error, with the stderr
    tail, is on its span), then a second that returns it under ``token``: the failed attempt's
    span row, ``runs show`` and the dump hold the error, masked."""
    write(tmp_path / "fetcher.py", HANDLER)
    pipeline = write(tmp_path / "retrying.yaml", RETRYING)
    done = taskdaemon(
        home, "run", "-q", str(pipeline), cwd=tmp_path, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 0 == done.returncode, done.stderr
    run_id = done.stdout.strip()
    archive = tmp_path / "run.tar.gz"
    assert 0 == taskdaemon(home, "dump", run_id, "-o", str(archive)).returncode
    shown = {
        "logs": taskdaemon(home, "logs", run_id).stdout,
        "runs show --json": taskdaemon(home, "runs", "show", run_id, "--json").stdout,
        "dump": _archive_text(archive),
    }
    with sqlite3.connect(home / "spans.db") as db:
        for table in ("logs", "spans_readable"):
            shown[f"table {table}"] = repr(db.execute(f"SELECT * FROM {table}").fetchall())
    leaks = sorted(name for name, text in shown.items() if SECRET in text)
    said = f"vault said {REDACTED}, then broke"
    assert ([], True, True) == (leaks, said in shown["logs"], said in shown["runs show --json"])


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
    return OutputBatch(
        run_id=run_id,
        pipeline="p",
        stage="s",
        instance=0,
        attempt=1,
        trace_id=run_id,
        span_id="1" * 16,
        stream="stdout",
        time_ns=1,
        texts=lines,
    )


def _archive_text(archive: Path) -> str:
    """Every member of a dump, decompressed, as one text."""
    texts = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            stream = tar.extractfile(member)
            if stream is None:
                continue
            data = stream.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            texts.append(data.decode("latin-1"))
    assert texts
    return "\n".join(texts)
