"""The span writer's ``runs`` rows: a run's row when its run span starts, and its summary when
the run span ends.

The summary of a run the writer saw start comes from a tally kept in memory of its ended stage
attempts (``RunTally``), with no read-back; a run it did not see start is rebuilt from its
stored spans. Both give the summary ``reconstruct.summarize_run`` gives of the stored run
(``tests/pipeline_tracking_writer_tally_test.py`` holds them to it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.landing import scheduled_ns
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.status_rules import FAILED_STAGE_STATUSES, stage_status_of
from taskdaemon.pipeline.tracking.reconstruct import (
    counted_status,
    ended_run_status,
    find_root,
    reconstruct_run,
    replay_of,
    summarize_run,
)
from taskdaemon.pipeline.tracking.store import select_trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from taskdaemon.pipeline.records import RunRecord

__all__ = ["UPSERT_RUN", "RunTally", "is_run_span"]

#: A run's row when its run span ends: ``RunTally.finished_row``.
UPSERT_RUN: Final = (
    "INSERT INTO runs (trace_id, pipeline, status, start_ns, end_ns, stage_count, "
    "failed_stages, writer_id, replay_of, scheduled_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (trace_id) DO UPDATE SET pipeline = excluded.pipeline, "
    "status = excluded.status, end_ns = excluded.end_ns, "
    "stage_count = excluded.stage_count, failed_stages = excluded.failed_stages, "
    "replay_of = excluded.replay_of, scheduled_ns = excluded.scheduled_ns"
)


def is_run_span(parent: object, attributes: Mapping[str, Any]) -> bool:
    """Whether a span with this parent and these attributes is a run span."""
    return (
        parent is None
        and bool(attributes)
        and (attributes.get(t.CICD_PIPELINE_ACTION_NAME) == t.RUN_ACTION)
    )


class RunTally:
    """Per open run the writer saw start (by hex trace id): stage name -> ``(start_ns,
    instance, status)`` of its ended attempts, so a run's summary needs no read-back when its
    run span ends. Used by the writer thread alone."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, list[tuple[int, int, str]]]] = {}

    def open(self, trace_id: str) -> None:
        """Start tallying a run whose run span started (once: a second call keeps the tally)."""
        self.runs.setdefault(trace_id, {})

    def forget(self, trace_id: str) -> None:
        """Drop a run's tally (its run span was lost: the run never ends in the store)."""
        self.runs.pop(trace_id, None)

    def count(
        self,
        trace_id: str,
        name: str,
        start: int,
        status: str | None,
        attrs: Mapping[str, Any],
    ) -> None:
        """Tally an ended attempt of stage ``name`` (a non-empty string) of a run whose start
        was seen; ``status`` is its ``ended_attempt_status``, None for a skip span (its stage
        is still one of the run's), kept as it counts (``counted_status``: a fed attempt by
        the status it was fed)."""
        tally = self.runs.get(trace_id)
        if tally is None:
            return
        entries = tally.setdefault(name, [])
        if status is None:
            return
        status = counted_status(status, attrs.get(t.STAGE_REPLAYED_STATUS))
        instance = attrs.get(t.STAGE_INSTANCE, 0)
        if attrs.get(t.STAGE_WILL_RETRY) is True:
            # Last of its instance when the run ends, the retry never came: the stage was
            # stopped in its backoff (``reconstruct._retry_status`` of an ended run).
            status = StageStatus.CANCELLED.value
        entries.append((start, instance if isinstance(instance, int) else 0, status))

    def finished_row(
        self,
        conn: sqlite3.Connection,
        trace_id: str,
        root: ReadableSpan,
        rebuilt: dict[int, RunRecord | None],
        *,
        writer_id: int | None,
        where: Path,
    ) -> tuple[Any, ...] | None:
        """The ended run's ``UPSERT_RUN`` row (None if its run span is not stored): from the
        tally of its stage spans when its start was seen, else by rebuilding the run from its
        stored spans (in ``where``).

        A rebuild goes into ``rebuilt`` (trace id -> the record, None when no run span is
        stored), which the writer hands to the report aggregates (``RunAggregator.observe``):
        a run this process did not see start is rebuilt once a batch, and a damaged row of it
        warned about once. The record flows this way, not back from the aggregates, because
        the writer needs it whenever it has no tally, and writes its row first; the aggregates
        only need one when they kept no attempts of the run, the same runs plus those they
        dropped for memory (``max_open_runs``). So the aggregates stay a hook that takes what
        the writer worked out, as they take its reading of each stage span, with nothing
        handed back to the writer and nothing of its tally known to them."""
        tally = self.runs.pop(trace_id, None)
        attrs = root.attributes or {}
        if tally is None:
            spans = select_trace(conn, trace_id, where=where)
            run = reconstruct_run(spans) if find_root(spans) is not None else None
            rebuilt[root.context.trace_id] = run
            if run is None:
                return None
            summary = summarize_run(run)
            status, stage_count, failed = (
                summary.status,
                summary.stage_count,
                summary.failed_stages,
            )
        else:
            declared = attrs.get(t.PIPELINE_STAGES)
            names = [str(n) for n in declared] if isinstance(declared, tuple | list) else []
            declared_names = set(names)  # a set: a list's `in` made this quadratic in stages
            names += [name for name in tally if name not in declared_names]
            stage_count = len(names)
            failed = 0
            for name in names:
                entries = sorted(tally.get(name, []))
                if stage_status_of((i, s) for _, i, s in entries) in FAILED_STAGE_STATUSES:
                    failed += 1
            status = ended_run_status(attrs, root.status.status_code.name)
        return (
            trace_id,
            str(attrs.get(t.CICD_PIPELINE_NAME, "")),
            status,
            root.start_time or 0,
            root.end_time,
            stage_count,
            failed,
            writer_id,
            replay_of(attrs),
            scheduled_ns(attrs),
        )
