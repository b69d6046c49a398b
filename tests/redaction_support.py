"""Where a real run's secrets could be shown, gathered for the redaction tests: what ``logs``
and ``runs show`` print (text and JSON), a dump's files, the store's rows, and what the console
exporters print."""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
import tarfile
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from cli_support import pythonpath_with, taskdaemon, write

#: What ``run -q`` prints on stdout: the run id, alone.
RUN_ID_LINE = re.compile(r"[0-9a-f]{32}\n")

#: A command line that makes a secret from two halves (so that no recorded command line holds
#: it whole) into ``$V``, and the secret it makes.
MAKE_SECRET = "V=$(printf '%s-%s' s3cr3t fetched-77);"
MADE_SECRET = "s3cr3t-fetched-77"


def run_key_handler(home: Path, folder: Path, source: str, key: str) -> CompletedProcess[str]:
    """``run -q`` of a pipeline of one Python stage whose handler, ``show`` of ``source`` (a
    module written into ``folder``), gets the run request's ``api_key``, ``key``; it succeeded.
    """
    (folder / "key_handler.py").write_text(source)
    (folder / "key.yaml").write_text(
        "name: show-key\n"
        "stages:\n"
        "  - name: show\n"
        '    handler: "key_handler:show"\n'
        "    inputs: {api_key: request.api_key}\n"
        "    triggers: [{manual: {approval_required: false}}]\n"
    )
    done = taskdaemon(
        home,
        "run",
        "-q",
        str(folder / "key.yaml"),
        "--input",
        f"api_key={key}",
        PYTHONPATH=pythonpath_with(folder),
    )
    assert 0 == done.returncode, done.stderr
    return done


def run_with_key(home: Path, folder: Path, pipeline: str, key: str) -> list[str]:
    """``run -q`` of ``pipeline`` (its text, written into ``folder``), given the request's
    ``api_key`` ``key``; it succeeded. What it printed (stdout, stderr), then
    :func:`shown_and_stored` of its run."""
    done = taskdaemon(
        home, "run", "-q", str(write(folder / "p.yaml", pipeline)), "--input", f"api_key={key}"
    )
    assert 0 == done.returncode, done.stderr
    return [done.stdout, done.stderr, *shown_and_stored(home, done.stdout.split()[-1])]


def shown_and_stored(home: Path, run_id: str) -> list[str]:
    """What ``logs`` and ``runs show --json`` print of ``run_id``, then the store's rows of
    spans and logs, one text each."""
    shown = [
        taskdaemon(home, "logs", run_id).stdout,
        taskdaemon(home, "runs", "show", run_id, "--json").stdout,
    ]
    with sqlite3.connect(home / "spans.db") as db:
        for table in ("spans", "logs"):
            shown += [repr(row) for row in db.execute(f"SELECT * FROM {table}")]
    return shown


def shown_everywhere(home: Path, run_id: str, folder: Path) -> dict[str, str]:
    """Each place a run's records are shown or kept, by name: ``logs`` and ``runs show`` (text
    and ``--json``), the files of a dump written into ``folder``, and each table's rows."""
    archive = folder / "run.tar.gz"
    assert 0 == taskdaemon(home, "dump", run_id, "-o", str(archive)).returncode
    shown = {
        "logs": taskdaemon(home, "logs", run_id).stdout,
        "logs --json": taskdaemon(home, "logs", run_id, "--json").stdout,
        "runs show": taskdaemon(home, "runs", "show", run_id).stdout,
        "runs show --json": taskdaemon(home, "runs", "show", run_id, "--json").stdout,
        "dump": archive_text(archive),
    }
    with sqlite3.connect(home / "spans.db") as db:
        for table in ("logs", "spans_readable", "runs"):
            shown[f"table {table}"] = repr(db.execute(f"SELECT * FROM {table}").fetchall())
    return shown


def run_exported_at_exit(home: Path, pipeline: Path, signal: str) -> str:
    """Run ``pipeline`` to success with the console exporter of ``signal`` (``traces`` or
    ``logs``) and its batch processor waiting a minute, longer than the run: every record is
    exported at exit, after the run's values were learnt. What the exporter printed (on
    stderr: stdout is the run id alone)."""
    delay = {"traces": "OTEL_BSP_SCHEDULE_DELAY", "logs": "OTEL_BLRP_SCHEDULE_DELAY"}[signal]
    done = taskdaemon(
        home,
        "run",
        "-q",
        str(pipeline),
        cwd=pipeline.parent,
        **{f"OTEL_{signal.upper()}_EXPORTER": "console", delay: "60000"},
    )
    assert (0, True) == (done.returncode, bool(RUN_ID_LINE.fullmatch(done.stdout))), done.stderr
    return done.stderr


def archive_text(archive: Path) -> str:
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


def console_json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects the console exporter printed in ``text`` (each over several lines)."""
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
