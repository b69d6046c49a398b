"""Auto-instrumentation: every :class:`~taskdaemon.pipeline.engine.Engine` gets a monitor.

Usage, with no code change::

    opentelemetry-instrument taskdaemon run examples/feature_delivery.yaml --auto-approve
    opentelemetry-instrument python my_script_using_the_engine.py

``opentelemetry-instrument`` finds :class:`PipelineInstrumentor` through the entry point
``opentelemetry_instrumentor: taskdaemon`` and calls ``instrument()``; the SDK providers are the
ones its configurator built from the ``OTEL_*`` variables (``opentelemetry-distro``'s, a
dependency of taskdaemon: with no configurator installed it builds none, and a script's runs
had no telemetry). In code::

    from taskdaemon.pipeline.instrumentation import PipelineInstrumentor
    PipelineInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)  # or the globals
    ...
    PipelineInstrumentor().uninstrument()

What it does: wraps ``Engine.__init__`` and ``Engine.add_observer`` (wrapt) so that each engine
created while instrumented gets one shared :class:`~taskdaemon.pipeline.monitor.PipelineMonitor`
observer (created in ``instrument()``, never at import, from the ``tracer_provider`` /
``meter_provider`` keyword arguments or the globals). An engine that already has its own
``PipelineMonitor`` (the ``taskdaemon run`` command attaches one, or its stand-in while the
monitor loads: an observer whose class sets ``is_pipeline_monitor = True``) is left alone, and
an engine that gets one later loses the automatic one, so runs are never traced twice.
``uninstrument()`` unwraps both methods and closes the shared monitor, so that its worker
thread does not outlive the instrumentation; engines built meanwhile keep their monitor (its
worker starts again if one of them runs). Both calls
are idempotent (``BaseInstrumentor`` guards them). ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=
taskdaemon`` makes ``opentelemetry-instrument`` skip it.

Decision: spans and metrics only, no run logs (the lifecycle records of ``run_log`` and a
command's output as log records), even with ``OTEL_LOGS_EXPORTER`` set: they are ``logging``
records at INFO, and a script's loggers, their levels and the root logger's handlers are the
script's, which an instrumentor that sets them would change under it (the distro adds its own
handler only when ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED`` asks it to). A script
that wants them calls ``cli.monitoring.start_monitoring``, as
``examples/pipeline_metrics_server.py`` does: the command's logging, store and exporters.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Collection, Mapping
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap

from taskdaemon.pipeline import engine as engine_module
from taskdaemon.pipeline.monitor import PipelineMonitor

__all__ = ["PipelineInstrumentor"]

_log = logging.getLogger(__name__)

_INSTRUMENTS = ("taskdaemon >= 0.1, < 1.0",)


def _is_monitor(observer: object) -> bool:
    """A PipelineMonitor, or an observer standing for one (see the module docstring)."""
    return (
        isinstance(observer, PipelineMonitor)
        or getattr(type(observer), "is_pipeline_monitor", False) is True
    )


class PipelineInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Attaches a :class:`PipelineMonitor` to every engine (see the module docstring)."""

    _monitor: PipelineMonitor | None = None
    _automatic: weakref.WeakKeyDictionary[Any, PipelineMonitor]

    def instrumentation_dependencies(self) -> Collection[str]:
        """The package versions this instrumentation supports."""
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        monitor = PipelineMonitor(
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
        )
        self._monitor = monitor
        self._automatic = weakref.WeakKeyDictionary()
        automatic = self._automatic

        def add_observer(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: Mapping[str, Any],
        ) -> Any:
            observer = args[0] if args else kwargs.get("observer")
            auto = automatic.get(instance)
            if _is_monitor(observer) and observer is not auto:
                # The engine's owner brought its own monitor: one trace per run, not two.
                _guarded(lambda: automatic.pop(instance, None) and instance.remove_observer(auto))
            return wrapped(*args, **kwargs)

        def init(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: Mapping[str, Any],
        ) -> Any:
            kwargs = dict(kwargs)
            observers = list(kwargs.get("observers", ()))  # it may be a one-shot iterable
            kwargs["observers"] = observers
            result = wrapped(*args, **kwargs)
            if not any(_is_monitor(o) for o in observers):
                automatic[instance] = monitor
                _guarded(lambda: instance.add_observer(monitor))
            return result

        wrapt.wrap_function_wrapper(engine_module, "Engine.add_observer", add_observer)
        wrapt.wrap_function_wrapper(engine_module, "Engine.__init__", init)

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap(engine_module.Engine, "__init__")
        unwrap(engine_module.Engine, "add_observer")
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            _guarded(monitor.close)


def _guarded(action: Callable[[], Any]) -> None:
    """Telemetry never breaks the application: log and swallow."""
    try:
        action()
    except Exception:
        _log.exception("taskdaemon instrumentation failed (ignored)")
