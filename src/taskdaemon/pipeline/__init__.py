"""The pipeline subsystem: define pipelines, run them, observe them the OpenTelemetry way.

The blessed names are re-exported here and resolved lazily (PEP 562), so importing the engine
never imports OpenTelemetry, and ``import taskdaemon.pipeline`` costs nothing::

    from taskdaemon.pipeline import Engine, PipelineMonitor, load_pipeline

    pipeline = load_pipeline("examples/feature_delivery.yaml")
    monitor = PipelineMonitor()                     # global OTel providers unless injected
    async with Engine(observers=[monitor]) as engine:
        result = await engine.run(pipeline, {"goal": "ship it"})
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "ConfigError",
    "DagWatcher",
    "Engine",
    "EngineObserver",
    "ExpressionError",
    "LoopRegistry",
    "MonitorMetrics",
    "PayloadCapture",
    "Pipeline",
    "PipelineInstrumentor",
    "PipelineMonitor",
    "RunHandle",
    "RunRecord",
    "RunResult",
    "RunStatus",
    "SpanSource",
    "SpanStore",
    "SqliteSpanProcessor",
    "Stage",
    "StageContext",
    "StageStatus",
    "TaskdaemonError",
    "ValidationIssue",
    "VisualizationFormat",
    "load_pipeline",
    "open_source",
    "parse_pipeline",
    "reconstruct_run",
    "render_dot",
    "render_json",
    "render_mermaid",
    "validate_pipeline",
    "watch_run",
    "watch_stored_run",
]

#: Where each public name lives (module relative to this package).
_HOMES: dict[str, str] = {
    "ConfigError": "errors",
    "ExpressionError": "errors",
    "TaskdaemonError": "errors",
    "ValidationIssue": "errors",
    "Pipeline": "model",
    "Stage": "model",
    "validate_pipeline": "validation",
    "load_pipeline": "config",
    "parse_pipeline": "config",
    "RunStatus": "state",
    "StageStatus": "state",
    "EngineObserver": "events",
    "Engine": "engine",
    "RunHandle": "engine",
    "RunResult": "engine",
    "LoopRegistry": "loops",
    "StageContext": "stage_context",
    "PipelineMonitor": "monitor",
    "MonitorMetrics": "metrics",
    "PayloadCapture": "payloads",
    "PipelineInstrumentor": "instrumentation",
    "RunRecord": "records",
    "SpanSource": "tracking",
    "SpanStore": "tracking",
    "SqliteSpanProcessor": "tracking",
    "open_source": "tracking",
    "reconstruct_run": "tracking",
    "DagWatcher": "visualization",
    "VisualizationFormat": "visualization",
    "render_dot": "visualization",
    "render_json": "visualization",
    "render_mermaid": "visualization",
    "watch_run": "visualization",
    "watch_stored_run": "visualization",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # let type checkers and IDEs see the real objects
    from taskdaemon.pipeline.config import load_pipeline, parse_pipeline
    from taskdaemon.pipeline.engine import Engine, RunHandle, RunResult
    from taskdaemon.pipeline.errors import (
        ConfigError,
        ExpressionError,
        TaskdaemonError,
        ValidationIssue,
    )
    from taskdaemon.pipeline.events import EngineObserver
    from taskdaemon.pipeline.instrumentation import PipelineInstrumentor
    from taskdaemon.pipeline.loops import LoopRegistry
    from taskdaemon.pipeline.metrics import MonitorMetrics
    from taskdaemon.pipeline.model import Pipeline, Stage
    from taskdaemon.pipeline.monitor import PipelineMonitor
    from taskdaemon.pipeline.payloads import PayloadCapture
    from taskdaemon.pipeline.records import RunRecord
    from taskdaemon.pipeline.stage_context import StageContext
    from taskdaemon.pipeline.state import RunStatus, StageStatus
    from taskdaemon.pipeline.tracking import (
        SpanSource,
        SpanStore,
        SqliteSpanProcessor,
        open_source,
        reconstruct_run,
    )
    from taskdaemon.pipeline.validation import validate_pipeline
    from taskdaemon.pipeline.visualization import (
        DagWatcher,
        VisualizationFormat,
        render_dot,
        render_json,
        render_mermaid,
        watch_run,
        watch_stored_run,
    )
