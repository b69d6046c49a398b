"""The writer's summary of a run it saw start (the ``runs`` row, from its in-memory tally) is the
summary a rebuild of the run from its stored spans gives: stages declared or not, a stage whose
only span is a skip, a stage span without a stage name, failed and retried attempts, and a
replay's fed ones."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from pipeline_tracking_support import T0, make_provider
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.replay.timeline import timeline
from taskdaemon.pipeline.tracking import SqliteSpanProcessor
from taskdaemon.pipeline.tracking.reconstruct import reconstruct_run, summarize_run
from taskdaemon.pipeline.tracking.store import select_trace


def _started_run(db: Path, stages: list[str]) -> tuple[SqliteSpanProcessor, Tracer, Span]:
    """A processor over ``db``, its tracer, and a run span of pipeline ``p`` declaring
    ``stages``, whose start is written first (its tally is opened)."""
    processor = SqliteSpanProcessor(db)
    provider, _ = make_provider(processor)
    tracer = provider.get_tracer("test")
    root = tracer.start_span(
        t.run_span_name("p"),
        start_time=T0,
        attributes={
            t.CICD_PIPELINE_NAME: "p",
            t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
            t.PIPELINE_STAGES: stages,
        },
    )
    processor.force_flush()
    return processor, tracer, root


def _trace_id(root: Span) -> str:
    return format(root.get_span_context().trace_id, "032x")


def _row(db: Path, root: Span, *columns: str) -> tuple[object, ...]:
    """The ``columns`` of the ``runs`` row of ``root``'s run, as the writer stored them."""
    with closing(sqlite3.connect(db)) as conn:
        query = f"SELECT {', '.join(columns)} FROM runs WHERE trace_id = ?"
        return tuple(conn.execute(query, (_trace_id(root),)).fetchone())


def _row_and_rebuilt(
    db: Path, root: Span, *columns: str
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """The stored row's ``columns`` (see ``_row``), and the same fields of the summary of the
    run rebuilt from its stored spans."""
    with closing(sqlite3.connect(db)) as conn:
        rebuilt = summarize_run(reconstruct_run(select_trace(conn, _trace_id(root))))
    return _row(db, root, *columns), tuple(getattr(rebuilt, column) for column in columns)


def test_the_tallied_run_row_is_the_rebuilt_runs_summary(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    processor, tracer, root = _started_run(db, ["declared"])
    context = trace.set_span_in_context(root)

    def stage(name: str | None, start: int, end: int, **attributes: object) -> None:
        if name is not None:
            attributes[t.CICD_TASK_NAME] = name
        span = tracer.start_span(
            name or "nameless", context=context, start_time=start, attributes=attributes
        )
        if attributes.get(t.STAGE_STATUS) == "failure":
            span.set_status(Status(StatusCode.ERROR))
        span.end(end)

    stage("declared", T0 + 10, T0 + 20, **{t.STAGE_ATTEMPT: 1})
    # Undeclared stages: one that never ran (only its skip span), one that failed twice.
    stage("skipped", T0 + 30, T0 + 30, **{t.CICD_TASK_RUN_RESULT: t.RESULT_SKIP})
    for attempt in (1, 2):
        stage("flaky", T0 + 40 * attempt, T0 + 50 * attempt, **{t.STAGE_STATUS: "failure"})
    stage(None, T0 + 60, T0 + 70)  # a child span that is no stage attempt
    root.set_attribute(t.CICD_PIPELINE_RESULT, t.RESULT_FAILURE)
    root.end(T0 + 200)
    processor.shutdown()

    written, rebuilt = _row_and_rebuilt(db, root, "status", "stage_count", "failed_stages")
    assert written == rebuilt
    assert written[1:] == (3, 1)  # declared, skipped and flaky; flaky failed


def test_a_stage_stopped_before_its_retry_is_no_failed_stage_in_the_row(tmp_path: Path) -> None:
    """A stage whose last attempt failed to be retried, in a run cancelled during the backoff,
    was cancelled, not failed: the tallied row and the rebuilt summary both count no failed
    stage."""
    db = tmp_path / "spans.db"
    processor, tracer, root = _started_run(db, ["a"])
    attempt = tracer.start_span(
        "a",
        context=trace.set_span_in_context(root),
        start_time=T0 + 10,
        attributes={
            t.CICD_TASK_NAME: "a",
            t.STAGE_STATUS: "failure",
            t.STAGE_WILL_RETRY: True,
        },
    )
    attempt.set_status(Status(StatusCode.ERROR))
    attempt.end(T0 + 20)
    root.set_attribute(t.CICD_PIPELINE_RESULT, t.RESULT_CANCELLATION)
    root.end(T0 + 200)
    processor.shutdown()

    written, rebuilt = _row_and_rebuilt(db, root, "status", "failed_stages")
    assert [("cancelled", 0), ("cancelled", 0)] == [written, rebuilt]


def test_a_fed_stage_counts_as_the_status_it_was_fed(tmp_path: Path) -> None:
    """A replay's fed attempts (``replayed``) count by the status the record gave them: a fed
    failure and a fed timeout are failed stages, a fed success is not, in the tallied row and
    in the rebuilt summary alike (they counted none)."""
    db = tmp_path / "spans.db"
    processor, tracer, root = _started_run(db, ["failed", "timed", "done"])
    for name, fed in (("failed", "failure"), ("timed", "timeout"), ("done", "success")):
        tracer.start_span(
            name,
            context=trace.set_span_in_context(root),
            start_time=T0 + 10,
            attributes={
                t.CICD_TASK_NAME: name,
                t.STAGE_STATUS: t.STATUS_REPLAYED,
                t.STAGE_REPLAYED_STATUS: fed,
            },
        ).end(T0 + 20)
    root.set_attribute(t.CICD_PIPELINE_RESULT, t.RESULT_FAILURE)
    root.end(T0 + 200)
    processor.shutdown()

    written, rebuilt = _row_and_rebuilt(db, root, "status", "failed_stages")
    assert [("failure", 2), ("failure", 2)] == [written, rebuilt]


def test_a_run_another_writer_started_is_summarized_from_its_stored_spans(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer that sees a run span end without having seen it start (another writer wrote the
    start and the stages) has no tally: it rebuilds the run from the stored spans for the
    ``runs`` row, skipping a damaged row with one warning that names the store file. The
    first writer's tally of the run is gone once the run's row is written."""
    db = tmp_path / "spans.db"
    first, tracer, root = _started_run(db, ["a", "b"])
    context = trace.set_span_in_context(root)
    for name, status in (("a", "success"), ("b", "failure")):
        span = tracer.start_span(
            name,
            context=context,
            start_time=T0 + 10,
            attributes={t.CICD_TASK_NAME: name, t.STAGE_STATUS: status},
        )
        if status == "failure":
            span.set_status(Status(StatusCode.ERROR))
        span.end(T0 + 20)
    damaged = tracer.start_span("damaged", context=context, start_time=T0 + 30)
    damaged.end(T0 + 40)
    first.shutdown()  # the first writer sees no more of the run
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE spans SET body = 'not json' WHERE span_id = ?",
            (format(damaged.get_span_context().span_id, "016x"),),
        )
    root.set_attribute(t.CICD_PIPELINE_RESULT, t.RESULT_FAILURE)
    root.end(T0 + 200)
    second = SqliteSpanProcessor(db)
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.tracking"):
        second.on_end(root)  # the ended run span reaches a writer that never saw it start
        second.shutdown()
    trace_id = _trace_id(root)
    written = _row(db, root, "pipeline", "status", "stage_count", "failed_stages", "end_ns")
    # The report aggregates take the writer's rebuild: one warning, not one each.
    warned = [r.getMessage().split(" (first:")[0] for r in caplog.records]
    expected = (
        ("p", "failure", 2, 1, T0 + 200),
        [f"{db}: skipped 1 corrupt span row of run {trace_id}"],
    )
    assert expected == (written, warned)


def test_a_finished_run_leaves_no_tally_behind(tmp_path: Path) -> None:
    """The tally of a run is the writer's only while the run is open: a long-lived writer
    (``taskdaemon serve``) would otherwise keep every run it ever saw."""
    processor, _, root = _started_run(tmp_path / "spans.db", [])
    opened = len(processor._tally.runs)
    root.end(T0 + 200)
    processor.force_flush()
    left = len(processor._tally.runs)
    processor.shutdown()
    assert (1, 0) == (opened, left)


def test_the_tallied_row_counts_stages_by_instance_and_declaration(tmp_path: Path) -> None:
    """The tally keeps each instance's attempts apart (a stage whose instance 1 failed is
    failed, though instance 0 succeeded after it), counts every failed stage, counts a declared
    stage that never ran, and takes a run's status from its span status when the run span
    names no result; a run span naming no pipeline gets an empty name, from its start on. The
    rebuilt summary agrees on the status and the counts."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider, _ = make_provider(processor)
    tracer = provider.get_tracer("test")
    root = tracer.start_span(
        "run",
        start_time=T0,
        attributes={
            t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
            t.PIPELINE_STAGES: ["a", "b", "c", "never"],
        },
    )
    processor.force_flush()
    running = _row(db, root, "pipeline", "status", "stage_count")
    context = trace.set_span_in_context(root)
    for name, instance, start, failed in (
        ("a", 1, T0 + 10, True),
        ("a", 0, T0 + 20, False),
        ("b", 0, T0 + 30, True),
        ("c", 0, T0 + 40, True),
    ):
        span = tracer.start_span(
            name,
            context=context,
            start_time=start,
            attributes={t.CICD_TASK_NAME: name, t.STAGE_INSTANCE: instance},
        )
        if failed:
            span.set_status(Status(StatusCode.ERROR))
        span.end(start + 5)
    root.set_status(Status(StatusCode.ERROR))
    root.end(T0 + 200)
    processor.shutdown()
    written, rebuilt = _row_and_rebuilt(db, root, "status", "stage_count", "failed_stages")
    pipeline = _row(db, root, "pipeline")
    expected = (("", "running", 4), ("failure", 4, 3), ("failure", 4, 3), ("",))
    assert expected == (running, written, rebuilt, pipeline)


def test_a_run_span_that_names_no_pipeline_names_none_in_the_row_and_the_rebuild(
    tmp_path: Path,
) -> None:
    """A run span without ``cicd.pipeline.name`` (a foreign producer's, named ``run``) names
    no pipeline in the stored row nor in the run rebuilt from its spans (``runs list`` and
    ``runs show``), though its span name and its stage's attribute would have given one; its
    timeline says the run started without a name."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    tracer = make_provider(processor)[0].get_tracer("test")
    root = tracer.start_span(
        "run", start_time=T0, attributes={t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION}
    )
    processor.force_flush()  # the row is written of the run span's start
    stage = tracer.start_span(
        "a",
        context=trace.set_span_in_context(root),
        start_time=T0 + 10,
        attributes={t.CICD_TASK_NAME: "a", t.CICD_PIPELINE_NAME: "from-stage"},
    )
    stage.end(T0 + 20)
    root.end(T0 + 30)
    processor.shutdown()
    written, rebuilt = _row_and_rebuilt(db, root, "pipeline")
    with closing(sqlite3.connect(db)) as conn:
        started = timeline(select_trace(conn, _trace_id(root)))[0].what
    assert [("",), ("",), "run started"] == [written, rebuilt, started]
