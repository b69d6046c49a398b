"""The report's arithmetic, pure: percentiles over sorted samples and a run's critical path.

Percentiles. ``percentile(values, q)`` interpolates linearly between the two closest ranks, as
numpy's default (``method="linear"``, Hyndman & Fan type 7): over ``n`` values sorted ascending,
the rank is ``h = (n - 1) * q`` and the result ``v[floor(h)] + (h - floor(h)) * (v[floor(h) + 1]
- v[floor(h)])``. ``q = 0`` is the minimum, ``q = 1`` the maximum, one value is every percentile.
It reads only ``len(values)`` and two items, so ``values`` may be a lazy sequence (the span
store answers each item with one indexed query).

Critical path. The chain of stages that set a run's length, found backwards from the stage that
ended last: each stage's *blocker* is the upstream stage (by the DAG's edges) that ended last
before it started, until a stage with no such upstream (an entry stage, or one started by an
event or a condition before its upstream ended). A stage spans from its first attempt's start to
its last attempt's end (retries and fan-out instances included). Each step says how long the
stage ran and how long it waited before starting: from its blocker's end (or the run's start, for
the first step) to its own start, which covers queueing, trigger evaluation and approvals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from taskdaemon.pipeline.records import RunRecord

__all__ = [
    "CriticalPath",
    "CriticalStep",
    "critical_chain",
    "critical_path",
    "percentile",
    "run_critical_path",
    "run_upstream",
    "stage_intervals",
]

# A blocker may end this much after its dependant started (clock steps between the processes
# or threads that stamped the two spans) and still count as having released it.
_TOLERANCE = 1e-3


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0 ≤ q ≤ 1) of ``values`` sorted ascending, by linear interpolation
    between closest ranks (see the module docstring); None for no values."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], not {q}")
    n = len(values)
    if n == 0:
        return None
    h = (n - 1) * q
    low = math.floor(h)
    if low >= n - 1:
        return float(values[n - 1])
    below = float(values[low])
    return below + (h - low) * (float(values[low + 1]) - below)


@dataclass(frozen=True, slots=True)
class CriticalStep:
    """One stage on a critical path: when it ran, and how long it waited before starting."""

    stage: str
    start: float
    end: float
    wait: float

    @property
    def duration(self) -> float:
        """Seconds the stage ran (first start to last end)."""
        return max(0.0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """The chain of stages that set a run's length, in the order they ran."""

    run_id: str
    run_duration: float
    steps: tuple[CriticalStep, ...]

    @property
    def length(self) -> float:
        """Seconds covered by the chain: every step's wait and run time."""
        return sum(step.wait + step.duration for step in self.steps)


def critical_path(
    run_start: float,
    intervals: Mapping[str, tuple[float, float]],
    upstream: Mapping[str, Iterable[str]],
) -> tuple[CriticalStep, ...]:
    """The critical path of one run (see the module docstring), first stage first.

    ``intervals``: stage -> (start, end) of the stages that ran and ended; ``upstream``: stage ->
    the stages it depends on. Ties (equal ends) go to the stage that started later, then to
    the name that sorts first, so the answer never depends on mapping order.
    """
    steps = critical_chain(run_start, intervals, lambda stage: upstream.get(stage, ()))
    return tuple(CriticalStep(*step) for step in steps)


def critical_chain(
    run_start: float,
    intervals: Mapping[str, tuple[float, float]],
    upstream_of: Callable[[str], Iterable[str]],
) -> list[tuple[str, float, float, float]]:
    """``critical_path`` as ``(stage, start, end, wait)`` tuples, the upstream stages of a stage
    given by ``upstream_of``: for the span store's writer, which finds every ended run's path
    and only writes its rows (no ``CriticalStep`` objects, whose frozen ``__init__`` was most of
    a chain's cost)."""
    if not intervals:
        return []

    def latest(names: Iterable[str]) -> str:
        return min(names, key=lambda n: (-intervals[n][1], -intervals[n][0], n))

    # The last stage by its end alone unless ends tie, and a lone candidate taken as it is (a
    # chain's every step): no sort key a stage for the common shapes.
    last_end = max(end for _, end in intervals.values())
    ending = [name for name, (_, end) in intervals.items() if end == last_end]
    current = ending[0] if len(ending) == 1 else latest(ending or intervals)
    chain: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    while True:
        seen.add(current)
        start = intervals[current][0]
        candidates = [
            name
            for name in upstream_of(current)
            if name in intervals and name not in seen and intervals[name][1] <= start + _TOLERANCE
        ]
        if len(candidates) > 1:
            blocker: str | None = latest(candidates)
        else:
            blocker = candidates[0] if candidates else None
        chain.append((current, blocker))
        if blocker is None:
            break
        current = blocker
    steps = []
    for stage, blocker in reversed(chain):
        start, end = intervals[stage]
        released = intervals[blocker][1] if blocker is not None else run_start
        steps.append((stage, start, end, max(0.0, start - released)))
    return steps


def stage_intervals(run: RunRecord) -> dict[str, tuple[float, float]]:
    """Stage -> (first attempt start, last attempt end) for the stages whose attempts all ended."""
    out: dict[str, tuple[float, float]] = {}
    for stage in run.stages:
        ends = [a.end for a in stage.attempts]
        if not ends or any(end is None for end in ends):
            continue
        out[stage.name] = (
            min(a.start for a in stage.attempts),
            max(end for end in ends if end is not None),
        )
    return out


def run_upstream(run: RunRecord) -> dict[str, set[str]]:
    """Stage -> the stages it depends on, from the run's edges and its stages' upstream lists."""
    upstream: dict[str, set[str]] = {}
    for edge in run.edges:
        upstream.setdefault(edge.target, set()).add(edge.source)
    for stage in run.stages:
        upstream.setdefault(stage.name, set()).update(stage.upstream)
    return upstream


def run_critical_path(run: RunRecord) -> CriticalPath:
    """The critical path of a rebuilt run."""
    steps = critical_path(run.start, stage_intervals(run), run_upstream(run))
    return CriticalPath(run.run_id, run.duration or 0.0, steps)
