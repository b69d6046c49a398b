"""The public surface of ``taskdaemon.pipeline`` is fenced: exactly the blessed names, all real."""

from __future__ import annotations

import subprocess
import sys

import pytest

import taskdaemon.pipeline as api

BLESSED = {
    "ConfigError", "DagWatcher", "Engine", "EngineObserver", "ExpressionError", "LoopRegistry",
    "MonitorMetrics", "PayloadCapture", "Pipeline", "PipelineInstrumentor", "PipelineMonitor",
    "RunHandle", "RunRecord", "RunResult", "RunStatus", "SpanSource", "SpanStore",
    "SqliteSpanProcessor", "Stage", "StageContext", "StageStatus", "TaskdaemonError",
    "ValidationIssue", "VisualizationFormat", "load_pipeline", "open_source", "parse_pipeline",
    "reconstruct_run", "render_dot", "render_json", "render_mermaid", "validate_pipeline",
    "watch_run", "watch_stored_run",
}  # fmt: skip


def test_all_is_exactly_the_blessed_names() -> None:
    """``__all__`` drifts only together with this list."""
    assert BLESSED == set(api.__all__)


def test_every_public_name_resolves_to_its_home_object() -> None:
    """Each re-exported name is the object defined in its module, not a copy."""
    for name in api.__all__:
        value = getattr(api, name)
        assert value.__module__.startswith("taskdaemon.pipeline"), name


def test_unknown_names_raise_attribute_error() -> None:
    """A typo is an AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="'Engin'"):
        api.Engin  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_engine_does_not_import_opentelemetry() -> None:
    """The engine side of the package stays free of OTel even through the package facade."""
    code = (
        "import sys\n"
        "from taskdaemon.pipeline import Engine, load_pipeline\n"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "False" == out.stdout.strip()
