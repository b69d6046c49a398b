"""The report's arithmetic, pure: percentiles over sorted samples and a run's critical path.

Percentiles. ``percentile(values, q)`` interpolates linearly between the two closest ranks, as
numpy's default (``method="linear"``, Hyndman & Fan type 7): over ``n`` values sorted ascending,
the rank is ``h = (n - 1) * q`` and the result ``v[floor(h)] + (h - floor(h)) * (v[floor(h) + 1]
- v[floor(h)])``. ``q = 0`` is the minimum, ``q = 1`` the maximum, one value is every percentile.
It reads only ``len(values)`` and two items, so ``values`` may be a lazy sequence (the span
store answers each item with one indexed query).

Critical path. The chain of stages that set a run's length, found backwards from the stage that
ended last: each stage's *blocker* is the stage that released it last before it started, until
a stage with nothing that released it (an entry stage, or one started by a condition before its
upstream ended). An upstream stage (by the DAG's edges) releases it when it ends; an execution
that published the event which fired it (its ``triggered_by`` link names the execution, whose
span carries the ``pipeline.event.published`` events) releases it at the publish, even while it
still runs: the last event that execution published before the stage started. A stage that is
both is taken at its end if it ended before the stage started, else at the publish. A stage
spans from its first attempt's start to its last attempt's end (retries and fan-out instances
included), except as the blocker of a stage its event fired: then its step ends at the publish
and names the event (``event``). Each step says how long the stage ran and how long it waited
before starting: from its blocker's release (or the run's start, for the first step) to its own
start, which covers queueing, trigger evaluation and approvals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from taskdaemon.pipeline.records import RunRecord

__all__ = [
    "ChainStep",
    "CriticalPath",
    "CriticalStep",
    "Fired",
    "critical_chain",
    "critical_path",
    "percentile",
    "run_critical_path",
    "run_fired",
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
    """One stage on a critical path: when it ran, and how long it waited before starting.
    ``event``: the event whose publish ended the step (``end`` is then the publish, and the
    stage ran on beside the next step); None for a step that ends with the stage."""

    stage: str
    start: float
    end: float
    wait: float
    event: str | None = None

    @property
    def duration(self) -> float:
        """Seconds the stage ran on the path (first start to last end, or to the publish)."""
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


#: (publishing stage, publish time, event type): one event published by an execution that a
#: stage's ``triggered_by`` link names (``run_fired``).
Fired = tuple[str, float, str]
#: ``critical_chain``'s step: (stage, start, end, wait, event or None); see ``CriticalStep``.
ChainStep = tuple[str, float, float, float, str | None]


def critical_path(
    run_start: float,
    intervals: Mapping[str, tuple[float, float]],
    upstream: Mapping[str, Iterable[str]],
    fired: Mapping[str, Iterable[Fired]] | None = None,
) -> tuple[CriticalStep, ...]:
    """The critical path of one run (see the module docstring), first stage first.

    ``intervals``: stage -> (start, end) of the stages that ran and ended; ``upstream``: stage ->
    the stages it depends on; ``fired``: stage -> the events published by the executions its
    ``triggered_by`` links name (None or empty: no stage was fired by an event). Ties (equal
    releases) go to the stage that started later, then to the name that sorts first, so the
    answer never depends on mapping order.
    """
    fired_by = None if not fired else (lambda stage: fired.get(stage, ()))
    steps = critical_chain(run_start, intervals, lambda stage: upstream.get(stage, ()), fired_by)
    return tuple(CriticalStep(*step) for step in steps)


def critical_chain(
    run_start: float,
    intervals: Mapping[str, tuple[float, float]],
    upstream_of: Callable[[str], Iterable[str]],
    fired_by: Callable[[str], Iterable[Fired]] | None = None,
) -> list[ChainStep]:
    """``critical_path`` as ``(stage, start, end, wait, event)`` tuples, the upstream stages of
    a stage given by ``upstream_of`` and the events that fired it by ``fired_by`` (None: no
    stage of the run was fired by an event): for the span store's writer, which finds every
    ended run's path and only writes its rows (no ``CriticalStep`` objects, whose frozen
    ``__init__`` was most of a chain's cost)."""
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
    cuts: dict[str, tuple[float, str]] = {}  # blocker -> the publish that released its stage
    seen: set[str] = set()
    while True:
        seen.add(current)
        start = intervals[current][0]
        candidates = [
            name
            for name in upstream_of(current)
            if name in intervals and name not in seen and intervals[name][1] <= start + _TOLERANCE
        ]
        if fired_by is not None:
            blocker, cut = _released(start, candidates, fired_by(current), intervals, seen)
            if blocker is not None and cut is not None:
                cuts[blocker] = cut
        elif len(candidates) > 1:
            blocker = latest(candidates)
        else:
            blocker = candidates[0] if candidates else None
        chain.append((current, blocker))
        if blocker is None:
            break
        current = blocker
    steps: list[ChainStep] = []
    for stage, blocker in reversed(chain):
        start, end = intervals[stage]
        event: str | None = None
        if stage in cuts:  # it released the next step by a publish: its step ends there
            end, event = cuts[stage]
        if blocker is None:
            released = run_start
        else:  # the blocker's publish, else its end
            released = cuts[blocker][0] if blocker in cuts else intervals[blocker][1]
        steps.append((stage, start, end, max(0.0, start - released), event))
    return steps


def _released(
    start: float,
    candidates: list[str],
    fired: Iterable[Fired],
    intervals: Mapping[str, tuple[float, float]],
    seen: set[str],
) -> tuple[str | None, tuple[float, str] | None]:
    """``critical_chain``'s blocker of a stage started at ``start``, in a run with events: the
    stage that released it last, by its end (the upstream ``candidates``) or by a publish
    (``fired``; see the module docstring), and that publish's (time, event) when a publish
    released it; None and None when nothing did."""
    # name -> (release, event or None): its end, or its last publish in time.
    released: dict[str, tuple[float, str | None]] = {
        name: (intervals[name][1], None) for name in candidates
    }
    limit = start + _TOLERANCE
    for name, at, event in fired:
        if at <= limit and name in intervals and name not in seen:
            known = released.get(name)
            # Its end counts only if it came before the start: one within the tolerance
            # after it was not what released the stage, the publish was.
            ended_after = known is not None and known[1] is None and known[0] > start
            if known is None or ended_after or at > known[0]:
                released[name] = (at, event)
    if not released:
        return None, None
    blocker = min(released, key=lambda n: (-released[n][0], -intervals[n][0], n))
    at, named = released[blocker]
    return blocker, None if named is None else (at, named)


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


def run_fired(run: RunRecord) -> dict[str, list[Fired]]:
    """Stage -> the events published by the executions its attempts' ``triggered_by`` links
    name (``critical_path``'s ``fired``): empty for a run that published none."""
    publishers = {
        attempt.span_id: (stage.name, attempt.published)
        for stage in run.stages
        for attempt in stage.attempts
        if attempt.published
    }
    fired: dict[str, list[Fired]] = {}
    if not publishers:
        return fired
    for stage in run.stages:
        for attempt in stage.attempts:
            for span_id in attempt.triggered_by:
                found = publishers.get(span_id)
                if found is not None:
                    events = fired.setdefault(stage.name, [])
                    events += [(found[0], at, event) for at, event in found[1]]
    return fired


def run_critical_path(run: RunRecord) -> CriticalPath:
    """The critical path of a rebuilt run."""
    steps = critical_path(run.start, stage_intervals(run), run_upstream(run), run_fired(run))
    return CriticalPath(run.run_id, run.duration or 0.0, steps)
