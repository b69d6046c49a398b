"""Retention of the span store: the newest runs kept per pipeline, old runs and foreign traces
dropped by age, runs still being written spared, and its settings read from the environment."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from pipeline_tracking_support import T0, S, make_provider, orphans_and_integrity, write_example_run
from taskdaemon.pipeline.errors import RunNotFoundError, SettingsError
from taskdaemon.pipeline.tracking import (
    RetentionPolicy,
    SpanRecord,
    SpanStore,
    SqliteSpanProcessor,
    retention_from_env,
)


def _fill(path: Path, per_pipeline: int, pipelines: tuple[str, ...] = ("a", "b")) -> None:
    processor = SqliteSpanProcessor(path, retention=RetentionPolicy())
    provider, _ = make_provider(processor)
    for name in pipelines:
        for n in range(per_pipeline):
            write_example_run(provider, pipeline=name, t0=T0 + n * 3600 * S)
    provider.shutdown()


def test_retention_keeps_the_newest_runs_per_pipeline(tmp_path: Path) -> None:
    """--keep 2 leaves each pipeline's two newest runs, no orphan spans, an intact file."""
    db = tmp_path / "spans.db"
    _fill(db, 5)
    with SpanStore(db, retention=RetentionPolicy()) as store:
        result = store.apply_retention(RetentionPolicy(keep=2))
        left = sorted((s.pipeline, s.start) for s in store.search(limit=100))
    expected = sorted((name, (T0 + n * 3600 * S) / 1e9) for name in ("a", "b") for n in (3, 4))
    assert ((6, 6 * 7), expected, (0, "ok")) == (
        (result.deleted_runs, result.deleted_spans),
        left,
        orphans_and_integrity(db),
    )


def test_retention_with_nothing_to_delete_reports_none_deleted(tmp_path: Path) -> None:
    """A pass whose policy dooms no run says it deleted no run and no span, and leaves all."""
    db = tmp_path / "spans.db"
    _fill(db, 2)
    with SpanStore(db, retention=RetentionPolicy()) as store:
        result = store.apply_retention(RetentionPolicy(keep=2))
        left = len(store.search(limit=100))
    assert ((0, 0), 4) == ((result.deleted_runs, result.deleted_spans), left)


def test_retention_by_age(tmp_path: Path) -> None:
    """--max-age removes runs that started before now minus the age."""
    db = tmp_path / "spans.db"
    _fill(db, 4, ("a",))
    now = (T0 + 3 * 3600 * S) / 1e9 + 60  # the newest run started a minute ago
    with SpanStore(db, retention=RetentionPolicy()) as store:
        store.apply_retention(RetentionPolicy(max_age=2 * 3600 + 120), now=now)
        left = [s.start for s in store.search()]
    assert ([(T0 + n * 3600 * S) / 1e9 for n in (3, 2, 1)], (0, "ok")) == (
        left,
        orphans_and_integrity(db),
    )


def test_retention_by_age_drops_old_foreign_traces_and_unused_resources(tmp_path: Path) -> None:
    """Spans of other services (no run row) go by the age of their trace's first span, and a
    resource goes when no remaining span uses it; a run's own resource stays."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider, _ = make_provider(processor)
    late = T0 + 10 * 3600 * S
    run_id = write_example_run(provider, t0=late)
    foreign = {}
    for service, start in (("old-web", T0), ("new-web", late)):
        other = TracerProvider(resource=Resource.create({"service.name": service}))
        other.add_span_processor(processor)
        span = other.get_tracer("web").start_span("GET /", start_time=start)
        span.end(start + S)
        foreign[service] = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    with SpanStore(db, retention=RetentionPolicy()) as store:
        result = store.apply_retention(RetentionPolicy(max_age=5 * 3600), now=late / 1e9 + 60)
        kept = {name: bool(_trace_or_none(store, trace)) for name, trace in foreign.items()}
        runs = [s.run_id for s in store.search()]
    with sqlite3.connect(db) as conn:
        services = sorted(
            row[0]
            for row in conn.execute(
                "SELECT json_extract(attributes, '$.\"service.name\"') FROM resources"
            )
        )
    assert (
        (result.deleted_runs, result.deleted_spans),
        kept,
        runs,
        services,
        orphans_and_integrity(db),
    ) == (
        (0, 1),
        {"old-web": False, "new-web": True},
        [run_id],
        ["new-web", "taskdaemon"],
        (0, "ok"),
    )


def test_a_count_alone_keeps_every_foreign_trace(tmp_path: Path) -> None:
    """``keep`` counts runs: a pass by count alone deletes the runs past it and leaves every
    trace of another service, however many and old; the age limit beside it deletes the old
    ones (the contract: docs/architecture.md, "Settings")."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider, _ = make_provider(processor)
    late = T0 + 10 * 3600 * S
    runs = [write_example_run(provider, t0=T0 + n * 3600 * S) for n in (0, 10)]
    other = TracerProvider(resource=Resource.create({"service.name": "web"}))
    other.add_span_processor(processor)
    foreign = []
    for start in (T0, T0 + S, late):
        span = other.get_tracer("web").start_span("GET /", start_time=start)
        span.end(start + S)
        foreign.append(format(span.get_span_context().trace_id, "032x"))
    provider.shutdown()
    passes = []
    with SpanStore(db, retention=RetentionPolicy()) as store:
        for policy in (RetentionPolicy(keep=1), RetentionPolicy(keep=1, max_age=5 * 3600)):
            result = store.apply_retention(policy, now=late / 1e9 + 60)
            passes.append(
                (
                    result.deleted_runs,
                    [s.run_id for s in store.search()],
                    [bool(_trace_or_none(store, trace)) for trace in foreign],
                )
            )
    assert passes == [(1, [runs[1]], [True, True, True]), (0, [runs[1]], [False, False, True])]
    assert orphans_and_integrity(db) == (0, "ok")


def _trace_or_none(store: SpanStore, trace_id: str) -> list[SpanRecord] | None:
    try:
        return store.get_trace(trace_id)
    except RunNotFoundError:
        return None


def test_vacuum_after_retention_keeps_every_reference(tmp_path: Path) -> None:
    """VACUUM rewrites the file after retention freed half of it: it shrinks, and every kept
    run reads back exactly as before (trace and resource numbers survive the rewrite)."""
    db = tmp_path / "spans.db"
    _fill(db, 40)
    with SpanStore(db, retention=RetentionPolicy()) as store:
        store.apply_retention(RetentionPolicy(keep=20))
        kept = [s.run_id for s in store.search(limit=100)]
        before = [store.get_run(run_id) for run_id in kept]
        size_before, size_after = store.vacuum()
        after = [store.get_run(run_id) for run_id in kept]
    assert (len(kept), after == before, size_after < size_before, orphans_and_integrity(db)) == (
        40,
        True,
        True,
        (0, "ok"),
    )


def test_retention_spares_runs_still_being_written(tmp_path: Path) -> None:
    """A run whose writer is alive is never deleted, however old."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider, _ = make_provider(processor)
    run_id = write_example_run(provider, end_run=False)
    processor.force_flush()
    with SpanStore(db, retention=RetentionPolicy()) as store:
        result = store.apply_retention(RetentionPolicy(keep=0))
        remaining = [s.run_id for s in store.search()]
    provider.shutdown()
    assert (0, [run_id]) == (result.deleted_runs, remaining)


def test_retention_from_environment_applies_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TASKDAEMON_RETENTION_KEEP trims the store when it is opened."""
    db = tmp_path / "spans.db"
    _fill(db, 3, ("a",))
    monkeypatch.setenv("TASKDAEMON_RETENTION_KEEP", "1")
    with SpanStore(db) as store:
        assert len(store.search()) == 1


def test_invalid_retention_variables_are_each_named() -> None:
    """Bad ``TASKDAEMON_RETENTION_*`` values raise a SettingsError naming every variable."""
    environ = {"TASKDAEMON_RETENTION_MAX_AGE": "soon", "TASKDAEMON_RETENTION_KEEP": "-1"}
    with pytest.raises(SettingsError) as raised:
        retention_from_env(environ)
    expected = ("TASKDAEMON_RETENTION_MAX_AGE", "TASKDAEMON_RETENTION_KEEP")
    assert expected == tuple(name for name, _ in raised.value.problems)
