"""Shared helpers of the reliability suite: a small real file system that fills up, running the
``taskdaemon`` command in a subprocess, and reading the span store and the metrics back."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cli_support import environment
from cli_support import taskdaemon as cli_taskdaemon

ROOT = Path(__file__).resolve().parent.parent
TASKDAEMON = str(Path(sys.executable).with_name("taskdaemon"))

#: Two command stages that succeed: ``taskdaemon run`` exits 0 with it.
TWO_STAGES = """\
name: two
stages:
  - name: first
    command: "true"
    triggers: [{manual: {approval_required: false}}]
  - name: second
    command: "true"
    triggers: [{on_completion: {stage: first}}]
"""


#: Runs the CLI as the console script does, then writes its peak RSS (KiB) to ``$PEAK_FILE``:
#: the kernel's ``VmHWM`` of the process, which starts afresh at ``exec`` (``ru_maxrss`` would
#: carry over the test process's own peak from the ``fork``).
PEAK_LAUNCHER = (
    sys.executable,
    "-c",
    "import atexit, os, sys\n"
    "from taskdaemon.pipeline.cli import main\n"
    "def peak():\n"
    "    status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
    "    with open(os.environ['PEAK_FILE'], 'w') as out:\n"
    "        out.write(status.split()[0])\n"
    "atexit.register(peak)\n"
    "sys.argv[0] = 'taskdaemon'\n"
    "sys.exit(main())\n",
)


def with_peak(
    home: Path, *args: str, timeout: float = 120, **env: str
) -> tuple[subprocess.CompletedProcess[str], int]:
    """``taskdaemon ARGS`` run to its end in ``home``, and its peak RSS in MiB."""
    peak_file = home / "peak"
    peak_file.unlink(missing_ok=True)
    done = cli_taskdaemon(
        home,
        *args,
        cwd=home,
        launcher=PEAK_LAUNCHER,
        timeout=timeout,
        PEAK_FILE=str(peak_file),
        **env,
    )
    return done, int(peak_file.read_text()) // 1024


def write_pipeline(path: Path, text: str) -> Path:
    """Write a (dedented) pipeline file and return its path."""
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def taskdaemon(
    home: Path, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run one ``taskdaemon`` command to its end, from the repository root."""
    return subprocess.run(
        [TASKDAEMON, *args],
        cwd=ROOT,
        env=environment(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def short_dir() -> Iterator[Path]:
    """A fresh directory with a short path under /tmp (Unix socket paths, such as the control
    socket under ``TASKDAEMON_HOME``, are limited to ~107 bytes); removed on exit."""
    path = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def tmpfs(where: Path, size: str = "1m") -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted on ``where``, so a full disk is a full disk for SQLite
    too; unmounted on exit. Mounting needs root, as CI runs: a test run by another user is
    skipped with that reason, not failed by ``mount``'s refusal."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        check=True,
        capture_output=True,
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write a file in ``directory`` until its file system is full; returns the file."""
    path = directory / name
    chunk = b"\0" * 4096
    with path.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return path


def store_one_run(folder: Path, pipeline: str) -> tuple[Path, str]:
    """A real store, ``folder/spans.db``, holding one finished ``taskdaemon run`` of the
    ``pipeline`` text, and the run's id (the crafted-store and huge-span tests' start)."""
    db = folder / "spans.db"
    (folder / "p.yaml").write_text(pipeline)
    done = cli_taskdaemon(
        folder, "run", str(folder / "p.yaml"), cwd=folder, TASKDAEMON_SPAN_SOURCE=f"sqlite:///{db}"
    )
    assert 0 == done.returncode, done.stderr
    conn = sqlite3.connect(db)
    try:
        ((run_id,),) = conn.execute("SELECT trace_id FROM runs").fetchall()
    finally:
        conn.close()
    return db, run_id


def _renamed(value: Any, suffix: str) -> Any:
    """``value`` (decoded OTLP JSON) with every text naming :data:`TWO_STAGES`' pipeline or a
    stage of it ending in ``suffix``."""
    if isinstance(value, dict):
        return {key: _renamed(item, suffix) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, suffix) for item in value]
    return value + suffix if value in ("two", "first", "second") else value


def renamed_span_file(folder: Path, suffix: str) -> tuple[str, str]:
    """An ``otlp-json:///`` source, in ``folder``, of one finished run of :data:`TWO_STAGES`
    whose pipeline and stage names end in ``suffix``, and the run's id: a span file someone
    else wrote (a real run's spans, from its dump, the names rewritten)."""
    db, run_id = store_one_run(folder, TWO_STAGES)
    done = cli_taskdaemon(
        folder,
        "dump",
        run_id,
        "-o",
        str(folder / "run.tar.gz"),
        TASKDAEMON_SPAN_SOURCE=f"sqlite:///{db}",
    )
    assert 0 == done.returncode, done.stderr
    with tarfile.open(folder / "run.tar.gz") as dump:
        member = dump.extractfile("spans.otlp.json")
        assert member is not None
        spans = json.load(member)
    renamed = folder / "renamed.json"
    renamed.write_text(json.dumps(_renamed(spans, suffix)))
    return f"otlp-json:///{renamed}", run_id


def stored_span_counts(db: Path) -> tuple[int, int]:
    """(spans stored in full, early rows) in the ``spans`` table of the store at ``db``: an
    early row is what ``taskdaemon run`` writes of its run's and first stages' spans before its
    telemetry loads (``tracking/run_start.py``), with an empty resource. The span writer's row
    of the same span replaces it; when that write fails, the span is counted lost and its early
    row stays, so it is neither stored in full nor missing from the lost count."""
    conn = sqlite3.connect(db)
    try:
        full, early = conn.execute(
            "SELECT count(*) FILTER (WHERE r.attributes != '{}' AND s.end_ns IS NOT NULL), "
            "count(*) FILTER (WHERE r.attributes = '{}') "
            "FROM spans AS s JOIN resources AS r USING (resource_no)"
        ).fetchone()
    finally:
        conn.close()
    return int(full), int(early)


def sample(registry: CollectorRegistry, name: str) -> float | None:
    """The value of the (single) sample ``name`` in ``registry``, or None when absent."""
    for metric in registry.collect():
        for item in metric.samples:
            if item.name == name:
                return float(item.value)
    return None
