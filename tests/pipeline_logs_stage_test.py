"""Stage logs: a real ``taskdaemon run`` tags every record its handlers log (async, sync in a
worker thread, a task an async handler starts) with the run, the stage execution and its span."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.tracking import SpanStore

TASKDAEMON = str(Path(sys.executable).with_name("taskdaemon"))

HANDLERS = """
import asyncio
import logging

log = logging.getLogger("stagelogs")


async def fetch(ctx):
    log.info("async handler")

    async def child():
        log.info("child task")

    await asyncio.create_task(child())
    return {"rows": 1}


def load(ctx):
    log.warning("sync handler")
    return {}
"""

PIPELINE = """
name: logs
loops:
  fetch: {handler: "stagelogs:fetch"}
  load: {handler: "stagelogs:load"}
stages:
  - name: fetch
    loop: fetch
    triggers: [{manual: {approval_required: false}}]
  - name: load
    loop: load
    triggers: [{on_completion: {stage: fetch}}]
"""

#: What each handler logs, and the stage it logs for.
MESSAGES = {"async handler": "fetch", "child task": "fetch", "sync handler": "load"}


def _run(tmp_path: Path, log_format: str) -> tuple[str, dict[str, str]]:
    """Run the pipeline with ``TASKDAEMON_LOG_FORMAT=log_format``; its stderr, and the span id
    of each stage's span as stored."""
    (tmp_path / "stagelogs.py").write_text(textwrap.dedent(HANDLERS))
    (tmp_path / "logs.yaml").write_text(PIPELINE)
    env = {
        **os.environ,
        "TASKDAEMON_HOME": str(tmp_path / "home"),
        "TASKDAEMON_LOG_FORMAT": log_format,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    done = subprocess.run(
        [TASKDAEMON, "run", "logs.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    with SpanStore(tmp_path / "home" / "spans.db") as store:
        (summary,) = store.search()
        spans = store.get_trace(summary.run_id)
    stage_spans = {
        str(span.attributes[t.CICD_TASK_NAME]): span.span_id
        for span in spans
        if t.CICD_TASK_NAME in span.attributes
    }
    return done.stderr, {"run_id": summary.run_id, **stage_spans}


def _expected(ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        message: {
            "run_id": ids["run_id"],
            "pipeline": "logs",
            "stage": stage,
            "instance": 0,
            "attempt": 1,
            "trace_id": ids["run_id"],  # the run id is its trace id
            "span_id": ids[stage],
        }
        for message, stage in MESSAGES.items()
    }


@pytest.mark.slow
def test_json_records_of_handlers_carry_the_run_and_the_stage_span(tmp_path: Path) -> None:
    """In JSON format each handler record has run_id, pipeline, stage, instance, attempt, and
    the trace and span ids of its stage's span."""
    stderr, ids = _run(tmp_path, "json")
    records = [orjson.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    fields = ("run_id", "pipeline", "stage", "instance", "attempt", "trace_id", "span_id")
    actual = {
        record["msg"]: {name: record.get(name) for name in fields}
        for record in records
        if record["logger"] == "stagelogs"
    }
    assert _expected(ids) == actual


@pytest.mark.slow
def test_text_records_of_handlers_carry_the_run_and_the_stage_span(tmp_path: Path) -> None:
    """In text format each handler line ends with the same ids in brackets."""
    stderr, ids = _run(tmp_path, "text")
    line = re.compile(r"^\S+ \w+ stagelogs: (?P<msg>.+?) \[(?P<ids>[^\]]*)\]$")
    actual = {}
    for match in filter(None, map(line.match, stderr.splitlines())):
        pairs = dict(pair.split("=", 1) for pair in match["ids"].split())
        actual[match["msg"]] = pairs
    expected = {
        message: {name: str(value) for name, value in fields.items()}
        for message, fields in _expected(ids).items()
    }
    assert expected == actual
