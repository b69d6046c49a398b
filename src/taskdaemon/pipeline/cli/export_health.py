"""One signal's export outcomes, as ``/readyz`` reports them (its ``span_export`` and
``log_export`` components).

:class:`ExportHealth` is fed by each wrapped exporter's streak (``cli/export_streaks.py``): the
results of the last ``window`` seconds, the last error with the name of the exporter that made
it, and what every exporter's failed exports lost (``span_losses.ExportFailures``, never
reset). :class:`ExportHealthSnapshot` is what ``http_health`` reads from it. The providers
that feed it are built by ``cli/telemetry.py``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from taskdaemon.pipeline.cli.span_losses import ExportFailures

__all__ = ["ExportHealth", "ExportHealthSnapshot"]


@dataclass(frozen=True, slots=True)
class ExportHealthSnapshot:
    """One signal's export results over the last ``window`` seconds (for ``/readyz``)."""

    exporters: tuple[str, ...]
    window: float
    failures: int
    successes: int
    last_error: str | None
    last_success_at: float | None

    @property
    def ok(self) -> bool:
        """Healthy unless exports failed in the window with no success after the last failure."""
        return self.failures == 0 or self.successes > 0


class ExportHealth:
    """Thread-safe record of one signal's export outcomes (spans', or log records'), fed by
    the wrapped exporters' streaks (``cli/export_streaks.py``). The last error is kept with
    the name of the exporter that failed (``/readyz`` says it)."""

    def __init__(self, *, window: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._results: deque[tuple[float, bool]] = deque(maxlen=1024)
        self._last_error: str | None = None
        self._last_success: float | None = None
        #: What each exporter's failed exports lost (spans or log records), never reset.
        self.failures = ExportFailures()
        self.exporters: list[str] = []

    def record(self, exporter: str, count: int, error: str | None) -> None:
        """Note one export's outcome (``error`` None: it went through); a failed one adds
        ``count`` (its spans or records) to ``exporter``'s."""
        now = self._clock()
        with self._lock:
            self._results.append((now, error is None))
            if error is None:
                self._last_success = now
            else:
                self._last_error = f"{exporter}: {error}"
        self.failures.record(exporter, count, error)

    def snapshot(self) -> ExportHealthSnapshot:
        """Outcomes in the window. ``successes`` counts only those after the last failure."""
        now = self._clock()
        with self._lock:
            recent = [(at, ok) for at, ok in self._results if now - at <= self.window]
            error = self._last_error
            last_success = self._last_success
        failures = sum(1 for _, ok in recent if not ok)
        last_failure = max((at for at, ok in recent if not ok), default=None)
        successes = sum(
            1 for at, ok in recent if ok and (last_failure is None or at > last_failure)
        )
        return ExportHealthSnapshot(
            exporters=tuple(self.exporters),
            window=self.window,
            failures=failures,
            successes=successes,
            last_error=error if failures else None,
            last_success_at=last_success,
        )
