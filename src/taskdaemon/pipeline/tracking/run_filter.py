"""Runs found among loose spans (OTLP files, a dump, an HTTP backend's answer), summarised and
filtered the same way by every span source that has no index of its own, and the run id such a
source is asked for: a whole one, since it has no index to resolve a prefix with."""

from __future__ import annotations

from collections.abc import Container, Iterable

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.records import RunSummary
from taskdaemon.pipeline.run_id_form import run_id_problem
from taskdaemon.pipeline.tracking.reconstruct import find_root, reconstruct_run, summarize_run
from taskdaemon.pipeline.tracking.spans import SpanRecord

__all__ = ["filter_summaries", "group_by_trace", "whole_run_id"]


def group_by_trace(spans: Iterable[SpanRecord]) -> dict[str, list[SpanRecord]]:
    """The spans keyed by trace id, each list in the order given."""
    traces: dict[str, list[SpanRecord]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    return traces


def filter_summaries(
    traces: dict[str, list[SpanRecord]],
    *,
    pipeline: str | None,
    status: str | None,
    since: float | None,
    until: float | None,
    limit: int,
    interrupted: Container[str] = (),
) -> list[RunSummary]:
    """Summaries of the traces that hold a taskdaemon run and match the filters, newest first,
    at most ``limit`` (none for a negative limit). A trace id in ``interrupted`` is a run the
    caller knows no process writes any more (``reconstruct_run``)."""
    out = []
    for trace_id, spans in traces.items():
        if find_root(spans) is None and not any(t.CICD_TASK_NAME in s.attributes for s in spans):
            continue  # not a taskdaemon run
        summary = summarize_run(reconstruct_run(spans, interrupted=trace_id in interrupted))
        if pipeline is not None and summary.pipeline != pipeline:
            continue
        if status is not None and summary.status != status:
            continue
        if since is not None and summary.start < since:
            continue
        if until is not None and summary.start > until:
            continue
        out.append(summary)
    out.sort(key=lambda s: (-s.start, s.run_id))
    return out[: max(0, limit)]


def whole_run_id(run_id: str) -> str:
    """``run_id`` as the 32 lower-case hex digits such a source is asked for (blanks around it
    forgiven); RunNotFoundError with ``run_id_form``'s rule and message otherwise, the
    server's and the store's words. Only the whole id: these sources resolve no prefix.

    Not ``otlp_json.normalize_id``'s forms, which read what a backend sends: a 16-digit id
    left-padded (Jaeger's 64-bit trace ids) and base64 (OTLP JSON). Typed by a user, 16
    digits are a prefix of a run id (the store resolves it), never a 64-bit id: padded, they
    named another run; and base64 is no spelling of a run id anywhere it is shown."""
    wanted = run_id.strip()
    if (problem := run_id_problem(wanted, full=True)) is not None:
        raise RunNotFoundError(problem)
    return wanted.lower()
