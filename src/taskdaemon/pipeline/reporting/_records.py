"""``RecordData``: a ``ReportData`` over runs already rebuilt (``RunRecord``s), pure.

Used for span sources that keep no aggregates (Tempo, Jaeger, OTLP-JSON files): the CLI rebuilds
the runs of the window, up to a limit, and hands them here. It counts exactly what the span
store's aggregates count, so the same runs give the same report from either: ended runs only,
ended attempts only (a skipped stage has none), failures are attempts that ended ``failure`` or
``timeout``, retries are attempts beyond an instance's first. A replay's fed executions are not
counted, and a replay that fed stages is left out of the run figures (``reporting._replays``).
Runs that had not ended (still running, or ``interrupted``) are only counted for the report's
notes (``reporting._unended``).

Every duration is taken in whole nanoseconds, as the store's aggregate columns keep them
(``_whole_ns``): a difference of two epoch floats carries a fraction of a nanosecond that the
store rounds away, and a report rounding to the microsecond would otherwise print, now and
then, a figure one microsecond apart from the store's for the same run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.reporting._model import PipelineSample, StageSample
from taskdaemon.pipeline.reporting._replays import FED, fed_stages
from taskdaemon.pipeline.reporting._stats import run_critical_path
from taskdaemon.pipeline.reporting._unended import Unended
from taskdaemon.pipeline.status_rules import FAILED_STAGE_STATUSES, INTERRUPTED

__all__ = ["RecordData"]


def _whole_ns(seconds: float) -> float:
    """``seconds`` rounded to the nanosecond, the value the store's columns give back."""
    return round(seconds * 1e9) / 1e9


class RecordData:
    """Report samples computed from ``runs`` (runs still open are only counted by
    ``unended``)."""

    def __init__(self, runs: Iterable[RunRecord]) -> None:
        given = list(runs)
        self._open = [run for run in given if run.end is None]
        self._runs = {run.run_id: run for run in given if run.end is not None}
        self._fed = {run_id for run_id, run in self._runs.items() if fed_stages(run)}
        self._paths = {
            run_id: run_critical_path(run)
            for run_id, run in self._runs.items()
            if run_id not in self._fed
        }

    def pipelines(self, since: float, until: float) -> list[str]:
        """Pipelines with ended runs started in [since, until), sorted."""
        return sorted({r.pipeline for r in self._runs.values() if since <= r.start < until})

    def run(self, run_id: str) -> RunRecord:
        """One of the runs given; KeyError otherwise."""
        return self._runs[run_id]

    def unended(self, since: float, until: float) -> Mapping[str, Unended]:
        """Per pipeline, its runs started in [since, until) that had not ended."""
        counts: dict[str, list[int]] = {}
        for run in self._open:
            if since <= run.start < until:
                c = counts.setdefault(run.pipeline, [0, 0])
                c[run.status == INTERRUPTED] += 1
        return {name: Unended(c[0], c[1]) for name, c in sorted(counts.items())}

    def sample(
        self, pipeline: str, since: float, until: float, *, shown: bool = True
    ) -> PipelineSample:
        """The sample of ``pipeline``'s ended runs started in [since, until) (``shown``:
        ``reporting.ReportData.sample``)."""
        window = [
            r for r in self._runs.values() if r.pipeline == pipeline and since <= r.start < until
        ]
        runs = sorted(
            (r for r in window if r.run_id not in self._fed),
            key=lambda r: (_whole_ns(r.duration or 0.0), r.start, r.run_id),
        )
        replays = [r for r in window if r.run_id in self._fed]
        durations: dict[str, list[float]] = {}
        queues: dict[str, list[float]] = {}
        counts: dict[str, list[int]] = {}  # stage -> [executions, failures, retries, cpu n]
        cpu: dict[str, float] = {}
        memory: dict[str, int] = {}
        critical: dict[str, float] = {}
        for run in [*runs, *replays]:  # a replay's re-run stages count, its fed ones not
            for stage in run.stages:
                for attempt in stage.attempts:
                    if attempt.end is None or attempt.status == FED:
                        continue
                    c = counts.setdefault(stage.name, [0, 0, 0, 0])
                    c[0] += 1
                    c[1] += attempt.status in FAILED_STAGE_STATUSES
                    c[2] += attempt.attempt > 1
                    took = _whole_ns(attempt.end - attempt.start)
                    durations.setdefault(stage.name, []).append(took)
                    if attempt.queue_time is not None:
                        queues.setdefault(stage.name, []).append(_whole_ns(attempt.queue_time))
                    if attempt.cpu_seconds is not None:
                        c[3] += 1
                        cpu[stage.name] = cpu.get(stage.name, 0.0) + attempt.cpu_seconds
                    if attempt.peak_memory_bytes is not None:
                        memory[stage.name] = max(
                            memory.get(stage.name, 0), attempt.peak_memory_bytes
                        )
            path = self._paths.get(run.run_id) if shown else None
            for step in path.steps if path is not None else ():
                critical[step.stage] = critical.get(step.stage, 0.0) + _whole_ns(step.duration)
        stages = tuple(
            StageSample(
                stage=name,
                executions=c[0],
                failures=c[1],
                retries=c[2],
                cpu_seconds=cpu.get(name),
                cpu_samples=c[3],
                peak_memory_bytes=memory.get(name),
                durations=sorted(durations.get(name, [])),
                queue_waits=sorted(queues.get(name, [])),
                critical_seconds=critical.get(name, 0.0),
            )
            for name, c in sorted(counts.items())
        )
        return PipelineSample(
            pipeline=pipeline,
            runs=len(runs),
            succeeded=sum(1 for r in runs if r.status == "success"),
            failed=sum(1 for r in runs if r.status == "failure"),
            durations=[_whole_ns(r.duration or 0.0) for r in runs],
            total_seconds=sum(_whole_ns(r.duration or 0.0) for r in runs),
            stages=stages,
            median_run=runs[(len(runs) - 1) // 2].run_id if runs and shown else None,
            slowest_run=runs[-1].run_id if runs and shown else None,
            replays=len(replays),
        )
