"""The label guard: caps the distinct values of each metric label, and the distinct series of
each instrument with more than one free label (cardinality).

Every label value a metric records passes through ``LabelGuard.fold``, which keeps at most
``limits[label]`` distinct values (``DEFAULT_LABEL_LIMITS``, else 100) and folds later ones into
``#other#``, so a pipeline or stage name made per run cannot grow the series without bound.

The caps alone do not keep an instrument under the OTel SDK's cardinality limit: the SDK keeps
at most ``SDK_CARDINALITY_LIMIT`` attribute sets per instrument and reader and folds every
later one, silently, into one ``otel.metric.overflow=true`` point, while the caps admit
101 x 501 x 21 (pipeline, stage, status) combinations (a stage name is admitted for every
pipeline), and 101 x 101 a run's (``cicd.pipeline.name``, ``error.type``). So the label
combinations of each instrument with more than one free label (the per-stage ones, a run's
``pipeline_executions_total`` and duration, ``cicd.pipeline.run.duration`` and
``cicd.pipeline.run.errors``) also pass a ``SeriesBudget`` of the SDK's limit, one series of
which is kept back: a new combination past the others is recorded under every label
``#other#``, and the SDK never folds anything. Those with one free label (the active runs)
stay under the limit on the guard's cap alone.

Chosen over raising the SDK's limit, because ``PipelineMetrics`` records into whatever
``MeterProvider`` it is given (``opentelemetry-instrument``'s, a library user's), whose limit
taskdaemon does not set; and over caps whose product stays under the limit, because with
stage names shared across pipelines that would admit a few dozen stages in all.

Nothing is folded silently: each fold (a refused value, or a whole series past a budget) is
handed to ``LabelGuard.on_fold``, which ``PipelineMetrics`` counts in
``pipeline_labels_folded_total{label}``, and logged once per label (or label set). Folds
happen only when a new label combination is first seen: the instruments' attribute caches
keep the answer, so a record of a known combination does no extra work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from taskdaemon.pipeline import telemetry as t

__all__ = ["DEFAULT_LABEL_LIMITS", "SDK_CARDINALITY_LIMIT", "LabelGuard", "SeriesBudget"]

_logger = logging.getLogger(__name__)

DEFAULT_LABEL_LIMITS: Mapping[str, int] = {
    t.LABEL_PIPELINE: 100,
    t.LABEL_STAGE: 500,
    t.LABEL_STATUS: 20,
    t.LABEL_TRIGGER_TYPE: 20,
}
_DEFAULT_LIMIT = 100

#: The OTel SDK's default cardinality limit: attribute sets an instrument keeps per reader.
SDK_CARDINALITY_LIMIT = 2_000


class LabelGuard:
    """Caps the distinct values of each metric label; later values fold into ``#other#``.

    Values already admitted stay admitted, so a series never changes label mid-life. Thread
    safe (the engine thread records, the reader thread observes). Logs one warning per label
    the first time it folds, and calls ``on_fold`` with the label at every fold.
    """

    def __init__(self, limits: Mapping[str, int] | None = None) -> None:
        self._limits = dict(DEFAULT_LABEL_LIMITS if limits is None else limits)
        self._seen: dict[str, set[str]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        #: Called (outside the lock) with the label of each folded value.
        self.on_fold: Callable[[str], None] | None = None

    def limit(self, label: str) -> int:
        """The cap of ``label``."""
        return self._limits.get(label, _DEFAULT_LIMIT)

    def fold(self, label: str, value: str) -> str:
        """``value`` if admitted (or admissible), else ``#other#``."""
        seen = self._seen.get(label)
        if (seen is not None and value in seen) or value == t.OTHER_LABEL_VALUE:
            return value
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) < self.limit(label):
                seen.add(value)
                return value
            warn = label not in self._warned
            self._warned.add(label)
        if warn:
            _logger.warning(
                "metric label %r exceeded %d distinct values; folding the rest into %r"
                " (counted in pipeline_labels_folded_total)",
                label,
                self.limit(label),
                t.OTHER_LABEL_VALUE,
            )
        if self.on_fold is not None:
            self.on_fold(label)
        return t.OTHER_LABEL_VALUE


class SeriesBudget:
    """At most ``SDK_CARDINALITY_LIMIT`` distinct label combinations of one instrument, one
    of them ``other``, the attribute dict with every label ``#other#``, which later ones
    become (module docstring). Called from attribute caches' misses only."""

    def __init__(self, guard: LabelGuard, *names: str) -> None:
        self._guard = guard
        #: The label set, as counted in ``pipeline_labels_folded_total{label}``.
        self.label = ",".join(names)
        self.other: dict[str, Any] = dict.fromkeys(names, t.OTHER_LABEL_VALUE)
        #: The series admitted so far, ``other``'s from the start (its slot kept back).
        self._series: set[tuple[Any, ...]] = {tuple(self.other.values())}
        self._warned = False
        self._lock = threading.Lock()

    def admit(self, labels: dict[str, Any]) -> dict[str, Any]:
        """``labels`` if its series exists or fits, else ``other``."""
        series = tuple(labels.values())
        with self._lock:
            if series in self._series:
                return labels
            if len(self._series) < SDK_CARDINALITY_LIMIT:
                self._series.add(series)
                return labels
            warn = not self._warned
            self._warned = True
        if warn:
            _logger.warning(
                "metric series of %s exceeded %d; recording the rest under %r"
                " (counted in pipeline_labels_folded_total)",
                self.label,
                SDK_CARDINALITY_LIMIT - 1,
                t.OTHER_LABEL_VALUE,
            )
        if self._guard.on_fold is not None:
            self._guard.on_fold(self.label)
        return self.other
