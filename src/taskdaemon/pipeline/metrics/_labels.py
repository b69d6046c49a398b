"""The label guard: caps the distinct values of each metric label (cardinality).

Every label value a metric records passes through ``LabelGuard.fold``, which keeps at most
``limits[label]`` distinct values (``DEFAULT_LABEL_LIMITS``, else 100) and folds later ones into
``#other#``, logging once per label, so a pipeline or stage name made per run cannot grow the
series without bound.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from taskdaemon.pipeline import telemetry as t

__all__ = ["DEFAULT_LABEL_LIMITS", "LabelGuard"]

_logger = logging.getLogger(__name__)

DEFAULT_LABEL_LIMITS: Mapping[str, int] = {
    t.LABEL_PIPELINE: 100,
    t.LABEL_STAGE: 500,
    t.LABEL_STATUS: 20,
    t.LABEL_TRIGGER_TYPE: 20,
}
_DEFAULT_LIMIT = 100


class LabelGuard:
    """Caps the distinct values of each metric label; later values fold into ``#other#``.

    Values already admitted stay admitted, so a series never changes label mid-life. Thread
    safe (the engine thread records, the reader thread observes). Logs one warning per label
    the first time it folds.
    """

    def __init__(self, limits: Mapping[str, int] | None = None) -> None:
        self._limits = dict(DEFAULT_LABEL_LIMITS if limits is None else limits)
        self._seen: dict[str, set[str]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def limit(self, label: str) -> int:
        """The cap of ``label``."""
        return self._limits.get(label, _DEFAULT_LIMIT)

    def fold(self, label: str, value: str) -> str:
        """``value`` if admitted (or admissible), else ``#other#``."""
        seen = self._seen.get(label)
        if seen is not None and value in seen:
            return value
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) < self.limit(label):
                seen.add(value)
                return value
            if label not in self._warned:
                self._warned.add(label)
                _logger.warning(
                    "metric label %r exceeded %d distinct values; folding the rest into %r",
                    label,
                    self.limit(label),
                    t.OTHER_LABEL_VALUE,
                )
            return t.OTHER_LABEL_VALUE
