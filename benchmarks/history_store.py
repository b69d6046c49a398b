"""Build a span store holding a long history: ``--runs`` copies of one real run, one a minute.

Run: ``.venv/bin/python benchmarks/history_store.py --runs 50000 --db /tmp/history-50000.db``
(about a minute for 50,000 runs; an existing file is replaced).

One real run of ``examples/feature_delivery.yaml`` (``taskdaemon run --auto-approve``) is made
in a temporary home first; its spans and log records are the template. Each copy gets a fresh
run id, fresh span ids (links and parent ids follow), its own ``service.instance.id`` (a
``taskdaemon run`` started by cron each minute is a new process), and its times moved so that the
copies start one a minute, the newest ``--newest-age`` seconds ago. Every tenth copy belongs to
the pipeline ``nightly-build`` instead of ``feature-delivery``, and every twenty-fifth one has
its ``release`` stage failed, so the pipeline and status filters have something to find. A
failed copy's log records say so as a real failure's do (``failed_rows``): ``release`` writes
its refusal on stderr instead of its release on stdout, its end and the run's are ERROR
records of a failure, and no more records than a success's are written.

The spans go through the project's own writer, ``SqliteSpanProcessor`` (so the runs table and
the report aggregates are the writer's); the log records are copied into the ``logs`` table with
the run id, span ids and times rewritten. Each run then gets a closed writer row of its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.log_levels import severity_number
from taskdaemon.pipeline.tracking import RetentionPolicy, SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.tracking.spans import SpanRecord

ROOT = Path(__file__).resolve().parent.parent
MINUTE = 60 * 1_000_000_000
FAILED_STAGE = "release"
REFUSAL = "release refused"
ERROR = (severity_number(logging.ERROR), "ERROR")  # a log row's severity and level
OTHER_PIPELINE = "nightly-build"
SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def template(home: Path) -> tuple[list[SpanRecord], list[tuple[Any, ...]]]:
    """One real run's spans (by start) and log rows (without their id), made in ``home``."""
    taskdaemon = Path(sys.executable).parent / "taskdaemon"
    command = [str(taskdaemon), "run", "examples/feature_delivery.yaml", "--auto-approve", "-q"]
    env = {"TASKDAEMON_HOME": str(home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [*command, "-i", "goal=ship it"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"the template run failed:\n{done.stderr}")
    run_id = done.stdout.split()[-1]
    with SpanStore(home / "spans.db", retention=RetentionPolicy()) as store:
        spans = store.get_trace(run_id)
    conn = sqlite3.connect(home / "spans.db")
    logs = conn.execute(
        "SELECT trace_id, time_ns, severity, level, pipeline, stage, instance, attempt, span_id, "
        "scope, body, attributes FROM logs WHERE trace_id = ? ORDER BY id",
        (run_id,),
    ).fetchall()
    conn.close()
    return spans, logs


def is_failed(number: int) -> bool:
    """Whether copy ``number`` is one whose ``FAILED_STAGE`` failed (every twenty-fifth)."""
    return number % 25 == 24


def _moved(attributes: Mapping[str, Any], ids: dict[str, str], shift: int) -> dict[str, Any]:
    """The attributes with the run id replaced and the ``*_at_ns`` instants moved."""
    out = dict(attributes)
    for key, value in attributes.items():
        if key.endswith("_at_ns") and isinstance(value, int):
            out[key] = value + shift
        elif isinstance(value, str) and value in ids:
            out[key] = ids[value]
    return out


class Copier:
    """Copies of the template run as SDK spans, with fresh ids (a seeded generator)."""

    def __init__(self, spans: list[SpanRecord], newest_start_ns: int, runs: int) -> None:
        self.spans = spans
        self.rng = random.Random(24)
        self.first_start = newest_start_ns - (runs - 1) * MINUTE
        self.origin = spans[0].start_ns

    def ids(self, number: int) -> dict[str, str]:
        """Template id -> the copy's id (trace id and every span id)."""
        ids = {self.spans[0].trace_id: "%032x" % self.rng.getrandbits(128)}  # noqa: UP031
        for span in self.spans:
            ids[span.span_id] = "%016x" % self.rng.getrandbits(64)  # noqa: UP031
        return ids

    def shift(self, number: int) -> int:
        """How far the copy's times are moved from the template's."""
        return self.first_start + number * MINUTE - self.origin

    def copy(self, number: int, ids: dict[str, str]) -> list[ReadableSpan]:
        """Copy ``number`` of the run: root first, then the stages by start."""
        shift = self.shift(number)
        trace_no = int(ids[self.spans[0].trace_id], 16)
        pipeline = OTHER_PIPELINE if number % 10 == 9 else None
        failed = is_failed(number)
        resource = Resource(
            {**self.spans[0].resource, "service.instance.id": "%032x" % self.rng.getrandbits(128)}  # noqa: UP031
        )
        out = []
        for span in self.spans:
            attributes = _moved(span.attributes, ids, shift)
            name = span.name
            if pipeline is not None:
                attributes[t.CICD_PIPELINE_NAME] = pipeline
                if span.parent_span_id is None:
                    name = t.run_span_name(pipeline)
            status = Status(StatusCode[span.status_code], span.status_message or None)
            if failed and (span.parent_span_id is None or span.name == FAILED_STAGE):
                if span.parent_span_id is None:
                    attributes[t.CICD_PIPELINE_RESULT] = t.RESULT_FAILURE
                else:
                    attributes[t.CICD_TASK_RUN_RESULT] = t.RESULT_FAILURE
                    attributes["taskdaemon.stage.status"] = "failure"
                    status = Status(StatusCode.ERROR, REFUSAL)
            parent = None
            if span.parent_span_id is not None:
                parent = SpanContext(trace_no, int(ids[span.parent_span_id], 16), False, SAMPLED)
            links = [
                Link(
                    SpanContext(trace_no, int(ids[link.span_id], 16), False, SAMPLED),
                    dict(link.attributes),
                )
                for link in span.links
                if link.span_id in ids
            ]
            events = [
                Event(e.name, _moved(e.attributes, ids, shift), e.time_ns + shift)
                for e in span.events
            ]
            out.append(
                ReadableSpan(
                    name=name,
                    context=SpanContext(trace_no, int(ids[span.span_id], 16), False, SAMPLED),
                    parent=parent,
                    resource=resource,
                    attributes=attributes,
                    events=events,
                    links=links,
                    kind=SpanKind[span.kind],
                    status=status,
                    start_time=span.start_ns + shift,
                    end_time=None if span.end_ns is None else span.end_ns + shift,
                )
            )
        return out


def failed_rows(logs: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The template's log rows as a run whose ``FAILED_STAGE`` failed writes them: the stage's
    output is its refusal on stderr, and its end and the run's are ERROR records of a failure
    (a success run's rows said ``finished: success`` of a failed run and its failed stage)."""
    out = []
    for row in logs:
        severity, stage, scope, body, text = row[2:4], row[5], row[9], row[10], row[11]
        attributes = json.loads(text or "null")
        event = attributes.get("event") if isinstance(attributes, dict) else None
        if stage == FAILED_STAGE and scope == "taskdaemon.run.output":
            body, text = REFUSAL, json.dumps({"log.iostream": "stderr"})
        elif stage == FAILED_STAGE and event == "stage.finished":
            body = body.replace("finished: success", f"finished: failure: {REFUSAL}")
            fields = {"status": "failure", "error_type": "StageFailedError"}
            severity, text = ERROR, json.dumps({**attributes, **fields})
        elif event == "run.finished":
            body = body.replace("finished: success", "finished: failure")
            severity, text = ERROR, json.dumps({**attributes, "status": "failure"})
        out.append((*row[:2], *severity, *row[4:10], body, text))
    return out


def _log_rows(
    logs: list[tuple[Any, ...]], ids: dict[str, str], shift: int, pipeline: str | None
) -> Iterator[tuple[Any, ...]]:
    old_run = logs[0][0]
    new_run = ids[old_run]
    for row in logs:
        _, time_ns, severity, level, name, stage, instance, attempt, span_id = row[:9]
        scope, body, attributes = row[9:]
        yield (
            new_run,
            time_ns + shift,
            severity,
            level,
            pipeline or name,
            stage,
            instance,
            attempt,
            ids.get(span_id, span_id),
            scope,
            body.replace(old_run, new_run).replace(
                "feature-delivery", name if pipeline is None else pipeline
            ),
            attributes,
        )


def _time_of(row: tuple[Any, ...]) -> int:
    time_ns: int = row[1]
    return time_ns


def build(db: Path, runs: int, newest_age: float = 60.0) -> None:
    """Replace ``db`` with a store of ``runs`` copies of a real run (see the module docstring)."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="history-template-") as home:
        spans, logs = template(Path(home))
    newest = time.time_ns() - int(newest_age * 1e9)
    copier = Copier(spans, newest, runs)
    failed_logs = failed_rows(logs)
    processor = SqliteSpanProcessor(db, max_batch=8192, retention=RetentionPolicy())
    log_rows: list[tuple[Any, ...]] = []
    started = time.perf_counter()
    for number in range(runs):
        ids = copier.ids(number)
        copy = copier.copy(number, ids)
        for span in copy:
            processor.on_start(span)  # type: ignore[arg-type]
        for span in sorted(copy[1:], key=lambda s: s.end_time or 0):
            processor.on_end(span)
        processor.on_end(copy[0])
        pipeline = OTHER_PIPELINE if number % 10 == 9 else None
        template_logs = failed_logs if is_failed(number) else logs
        log_rows.extend(_log_rows(template_logs, ids, copier.shift(number), pipeline))
        if number % 5000 == 4999:
            processor.force_flush()
            rate = (number + 1) / (time.perf_counter() - started)
            print(f"  {number + 1} runs written ({rate:.0f} runs/s)", file=sys.stderr, flush=True)
    processor.shutdown()
    conn = sqlite3.connect(db)
    ordered: list[Any] = sorted(log_rows, key=_time_of)
    with conn:
        conn.executemany(
            "INSERT INTO logs (trace_id, time_ns, severity, level, pipeline, stage, instance, "
            "attempt, span_id, scope, body, attributes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            ordered,
        )
    with conn:
        one_writer_a_run(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def one_writer_a_run(conn: sqlite3.Connection) -> None:
    """Give each run a closed writer row of its own, as a ``taskdaemon run`` a minute leaves
    (this script's one processor wrote them all)."""
    conn.execute("DELETE FROM writers")
    conn.execute(
        "INSERT INTO writers (id, pid, host, started_ns, heartbeat_ns, closed_ns) "
        "SELECT rowid, 1000 + rowid % 30000, 'history-host', start_ns, "
        "coalesce(end_ns, start_ns), coalesce(end_ns, start_ns) FROM runs"
    )
    conn.execute("UPDATE runs SET writer_id = rowid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument(
        "--newest-age", type=float, default=60.0, help="seconds since the newest run started"
    )
    args = parser.parse_args()
    build(args.db, args.runs, args.newest_age)
    with sqlite3.connect(args.db) as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("runs", "spans", "logs")
        }
    size = args.db.stat().st_size / 2**20
    print(json.dumps({"db": str(args.db), **counts, "mib": round(size, 1)}))


if __name__ == "__main__":
    main()
