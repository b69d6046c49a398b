"""Retention while a writer runs (``tracking/writer.py``): the policy is applied again every
``retention_every`` seconds, not only when the writer starts, so a `serve` that runs for weeks
keeps the runs it was told to keep and no more."""

from __future__ import annotations

from pathlib import Path

from pipeline_tracking_support import T0, S, make_provider, orphans_and_integrity, write_example_run
from taskdaemon.pipeline.tracking import RetentionPolicy, SpanStore, SqliteSpanProcessor


def test_a_writer_applies_its_retention_again_while_it_runs(tmp_path: Path) -> None:
    """Five runs written after the writer's start pass (an empty store then), its policy
    keeping two: the next pass leaves the two newest. Only the start pass ran before, and
    all five stayed for as long as the process wrote (a week of `serve`)."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy(keep=2), retention_every=0.0)
    provider, _ = make_provider(processor)
    try:
        for n in range(5):
            write_example_run(provider, t0=T0 + n * 3600 * S)
        processor.force_flush()  # the runs written; a pass comes before the writer's next batch
        processor.force_flush()
        with SpanStore(db, retention=RetentionPolicy()) as store:
            left = sorted(summary.start for summary in store.search(limit=100))
    finally:
        provider.shutdown()
    assert ([(T0 + n * 3600 * S) / 1e9 for n in (3, 4)], (0, "ok")) == (
        left,
        orphans_and_integrity(db),
    )
