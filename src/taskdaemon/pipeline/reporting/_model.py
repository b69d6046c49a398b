"""What a report holds, and what it is computed from.

Inputs (``ReportData``): a provider answers, for one pipeline and one window of run start times,
a ``PipelineSample``: counts, and duration samples as sorted sequences (lists, or lazy sequences
the span store answers item by item). Outputs (``Report``): percentiles, rates, critical paths
and regressions, all computed by ``reporting._build`` from those samples alone.

Units: seconds (floats) for durations and CPU, bytes for memory, epoch seconds for times, and
fractions (0..1) for rates and shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.reporting._stats import CriticalPath
from taskdaemon.pipeline.reporting._unended import Unended

__all__ = [
    "PipelineReport",
    "PipelineSample",
    "Regression",
    "Report",
    "ReportData",
    "StageReport",
    "StageSample",
]


@dataclass(frozen=True, slots=True)
class StageSample:
    """A stage's executions (attempts) in the runs of one window."""

    stage: str
    executions: int
    failures: int  # attempts that ended failed or timed out
    retries: int  # attempts beyond an instance's first
    cpu_seconds: float | None  # total CPU time of the attempts that recorded it
    cpu_samples: int  # how many attempts recorded CPU time
    peak_memory_bytes: int | None  # the highest peak any attempt recorded
    durations: Sequence[float]  # sorted ascending
    queue_waits: Sequence[float]  # sorted ascending, attempts that recorded one
    critical_seconds: float  # seconds this stage ran on the critical paths of the window's runs


@dataclass(frozen=True, slots=True)
class PipelineSample:
    """The ended runs of one pipeline that started in one window."""

    pipeline: str
    runs: int
    succeeded: int
    failed: int
    durations: Sequence[float]  # sorted ascending
    total_seconds: float  # sum of the runs' durations (the critical shares' denominator)
    stages: tuple[StageSample, ...]  # by stage name
    median_run: str | None  # the run at the lower median duration
    slowest_run: str | None
    replays: int = 0  # replays that fed stages, left out of the run figures above


class ReportData(Protocol):
    """Where a report's samples come from (the span store, or runs rebuilt from a backend)."""

    def pipelines(self, since: float, until: float) -> list[str]:
        """Pipelines with ended runs started in [since, until), sorted."""
        ...

    def sample(
        self, pipeline: str, since: float, until: float, *, shown: bool = True
    ) -> PipelineSample:
        """The sample of ``pipeline``'s ended runs started in [since, until). ``shown=False``:
        a sample the report only compares with (the previous window) or charts (a day's p90),
        whose runs it never names: its ``median_run`` and ``slowest_run`` may be None, and of
        its stages only the executions and durations need be whole (the report reads nothing
        else of it), so a provider need not read the rest."""
        ...

    def run(self, run_id: str) -> RunRecord:
        """One run, rebuilt (for critical paths and timelines)."""
        ...

    def unended(self, since: float, until: float) -> Mapping[str, Unended]:
        """Per pipeline, its runs started in [since, until) that had not ended (left out of
        every figure; ``reporting._unended``). Pipelines without any are not listed."""
        ...


@dataclass(frozen=True, slots=True)
class StageReport:
    """One row of the per-stage table."""

    stage: str
    executions: int
    failure_rate: float
    retries: int
    p50: float | None
    p90: float | None
    p99: float | None
    queue_p50: float | None
    queue_p90: float | None
    cpu_seconds: float | None  # mean per execution that recorded it
    peak_memory_bytes: int | None
    critical_share: float  # fraction of the window's run time this stage was on the path


@dataclass(frozen=True, slots=True)
class Regression:
    """A stage whose p90 rose more than the threshold against the previous window."""

    stage: str
    previous_p90: float
    current_p90: float

    @property
    def change(self) -> float:
        """Relative rise: 0.25 means 25% slower."""
        return self.current_p90 / self.previous_p90 - 1.0


@dataclass(frozen=True, slots=True)
class PipelineReport:
    """The report of one pipeline."""

    pipeline: str
    runs: int
    success_rate: float
    failure_rate: float
    p50: float | None
    p90: float | None
    p99: float | None
    stages: tuple[StageReport, ...]
    median_path: CriticalPath | None
    slowest_path: CriticalPath | None
    regressions: tuple[Regression, ...]
    # HTML charts only (empty otherwise): stage -> quantiles q0, q25, q50, q75, q90, q99, q100;
    # stage -> [(day start, p90)]; the median run rebuilt, for its timeline.
    distributions: dict[str, tuple[float, ...]] = field(default_factory=dict)
    daily_p90: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    median_run: RunRecord | None = None
    #: Ended runs in the previous window, the regressions' baseline: with none, nothing was
    #: compared, which the report says rather than "no regressions". None: not counted.
    previous_runs: int | None = None
    #: The runs cancelled, which count in neither rate above: said beside them, or
    #: "90.9% succeeded, 0.0% failed" left a reader to guess the rest.
    cancelled_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Report:
    """A report over the runs started in [since, until)."""

    since: float
    until: float
    source: str
    pipelines: tuple[PipelineReport, ...]
    notes: tuple[str, ...] = ()  # what the reader should know (runs left out by a limit...)
