"""``build_report``: the report computed from a ``ReportData`` provider's samples.

No I/O of its own: everything it reads comes through the provider, and everything it computes
(percentiles, rates, shares, critical paths, regressions) is in ``reporting._stats`` or here.

Charts: p90 per day is over UTC days (midnight to midnight), the first and last cut to the
window.

Regressions: a stage regressed when its p90 over [since, until) is more than ``threshold``
(20%) above its p90 over the previous window of the same length, [since - L, since). A stage
without executions in either window, or whose previous p90 is zero, is not compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from taskdaemon.pipeline.reporting._model import (
    PipelineReport,
    PipelineSample,
    Regression,
    Report,
    ReportData,
    StageReport,
    StageSample,
)
from taskdaemon.pipeline.reporting._replays import replay_note
from taskdaemon.pipeline.reporting._stats import percentile, run_critical_path
from taskdaemon.pipeline.reporting._unended import unended_note

__all__ = ["DAY", "REGRESSION_THRESHOLD", "build_report"]

REGRESSION_THRESHOLD = 0.2
DAY = 86400.0
_DISTRIBUTION = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _stage_report(stage: StageSample, total_seconds: float) -> StageReport:
    return StageReport(
        stage=stage.stage,
        executions=stage.executions,
        failure_rate=_rate(stage.failures, stage.executions),
        retries=stage.retries,
        p50=percentile(stage.durations, 0.5),
        p90=percentile(stage.durations, 0.9),
        p99=percentile(stage.durations, 0.99),
        queue_p50=percentile(stage.queue_waits, 0.5),
        queue_p90=percentile(stage.queue_waits, 0.9),
        cpu_seconds=None
        if stage.cpu_seconds is None or not stage.cpu_samples
        else stage.cpu_seconds / stage.cpu_samples,
        peak_memory_bytes=stage.peak_memory_bytes,
        critical_share=stage.critical_seconds / total_seconds if total_seconds > 0 else 0.0,
    )


def regressions(
    current: Sequence[StageSample],
    previous: Sequence[StageSample],
    threshold: float = REGRESSION_THRESHOLD,
) -> tuple[Regression, ...]:
    """Stages whose p90 rose more than ``threshold`` from ``previous`` to ``current``."""
    before = {stage.stage: percentile(stage.durations, 0.9) for stage in previous}
    found = []
    for stage in current:
        old = before.get(stage.stage)
        new = percentile(stage.durations, 0.9)
        if old is None or new is None or old <= 0:
            continue
        if new > old * (1.0 + threshold):
            found.append(Regression(stage.stage, old, new))
    return tuple(found)


#: The most days of a stretch sampled day by day: a longer one is first sampled whole.
_DAY_BY_DAY = 8


def _daily_p90(
    data: ReportData,
    pipeline: str,
    window: tuple[float, float],
    days: tuple[int, int],
    per_day: dict[str, list[tuple[float, float]]],
) -> None:
    """Each stage's p90 on each UTC day of ``days`` (day numbers, the last excluded) that it
    ran on, the first and last day cut to ``window`` (since, until), appended to ``per_day``
    in order.

    A stretch of more than ``_DAY_BY_DAY`` days is sampled whole first, and halved only when
    it holds an execution: ``--since 1900-01-01`` asked a sample of every day of three
    centuries, each reading every run rebuilt from a remote source, when runs fell on a few.
    A store reads whole days from its per-day rows, so only the two cut days touch attempts.
    """
    (since, until), (first, last) = window, days
    if last - first > _DAY_BY_DAY:
        stretch = (max(first * DAY, since), min(last * DAY, until))
        if data.sample(pipeline, *stretch, shown=False).stages:
            middle = (first + last) // 2
            _daily_p90(data, pipeline, window, (first, middle), per_day)
            _daily_p90(data, pipeline, window, (middle, last), per_day)
        return
    for day in range(first, last):
        low = max(day * DAY, since)
        for stage in data.sample(pipeline, low, min((day + 1) * DAY, until), shown=False).stages:
            p90 = percentile(stage.durations, 0.9)
            if p90 is not None:
                per_day.setdefault(stage.stage, []).append((low, p90))


def _pipeline_report(
    data: ReportData,
    sample: PipelineSample,
    previous: PipelineSample,
    since: float,
    until: float,
    *,
    charts: bool,
    threshold: float,
) -> PipelineReport:
    median = data.run(sample.median_run) if sample.median_run else None
    slowest = (
        median
        if sample.slowest_run == sample.median_run
        else data.run(sample.slowest_run)
        if sample.slowest_run
        else None
    )
    distributions: dict[str, tuple[float, ...]] = {}
    daily: dict[str, tuple[tuple[float, float], ...]] = {}
    if charts:
        for stage in sample.stages:
            values = [percentile(stage.durations, q) for q in _DISTRIBUTION]
            distributions[stage.stage] = tuple(v for v in values if v is not None)
        per_day: dict[str, list[tuple[float, float]]] = {}
        first, last = math.floor(since / DAY), math.ceil(until / DAY)
        _daily_p90(data, sample.pipeline, (since, until), (first, last), per_day)
        daily = {name: tuple(points) for name, points in per_day.items()}
    return PipelineReport(
        pipeline=sample.pipeline,
        runs=sample.runs,
        success_rate=_rate(sample.succeeded, sample.runs),
        failure_rate=_rate(sample.failed, sample.runs),
        cancelled_rate=_rate(sample.runs - sample.succeeded - sample.failed, sample.runs),
        p50=percentile(sample.durations, 0.5),
        p90=percentile(sample.durations, 0.9),
        p99=percentile(sample.durations, 0.99),
        stages=tuple(_stage_report(stage, sample.total_seconds) for stage in sample.stages),
        median_path=run_critical_path(median) if median is not None else None,
        slowest_path=run_critical_path(slowest) if slowest is not None else None,
        regressions=regressions(sample.stages, previous.stages, threshold),
        distributions=distributions,
        daily_p90=daily,
        median_run=median if charts else None,
        previous_runs=previous.runs,
    )


def build_report(
    data: ReportData,
    since: float,
    until: float,
    *,
    pipeline: str | None = None,
    source: str = "",
    charts: bool = False,
    notes: Sequence[str] = (),
    threshold: float = REGRESSION_THRESHOLD,
) -> Report:
    """The report over the runs that started in [since, until), of ``pipeline`` or of every
    pipeline with runs then (a pipeline whose runs then had all not ended gets a note and no
    figures). ``charts``: also gather what the HTML charts draw (per-stage
    duration quantiles, p90 per day, the median run)."""
    if until <= since:
        raise ValueError("the report window is empty: --until must be after --since")
    unended = data.unended(since, until)
    names = (
        [pipeline] if pipeline is not None else sorted({*data.pipelines(since, until), *unended})
    )
    previous_since = since - (until - since)
    reports = []
    notes = list(notes)
    for name in names:
        sample = data.sample(name, since, until)
        if sample.replays:
            notes.append(replay_note(name, sample.replays))
        if name in unended:
            notes.append(unended_note(name, unended[name]))
        if sample.runs == 0:
            continue
        previous = data.sample(name, previous_since, since, shown=False)
        reports.append(
            _pipeline_report(
                data, sample, previous, since, until, charts=charts, threshold=threshold
            )
        )
    return Report(
        since=since, until=until, source=source, pipelines=tuple(reports), notes=tuple(notes)
    )
