"""Pure renderers of a pipeline DAG with an optional run overlay: DOT, JSON, Mermaid.

Usage::

    from taskdaemon.pipeline.visualization import VisualizationFormat, render_dot, visualize

    render_dot(pipeline)                          # the definition alone
    render_dot(pipeline, run)                     # with a run rebuilt from spans
    render_mermaid(run=run)                       # from the spans alone (no definition)
    visualize(pipeline, VisualizationFormat.JSON, run=run)

Every renderer takes ``pipeline`` (a ``model.Pipeline``, or an already built ``DagSnapshot``)
and/or ``run`` (a ``records.RunRecord``), and returns text ending in a newline. They read no
clock and no global state: the same input gives the same bytes. ``DagWatcher``/``watch_run``
stream live snapshots from engine events for web pages and terminal views; ``watch_stored_run``
streams them from a span source, for a run in another process (``follow_stored_run``: with the
stretches in which a remote source had nothing new).

Formats: DOT ``digraph pipeline { rankdir=LR; ... }`` for Graphviz; JSON following the shipped
JSON Schema ``schemas/dag.schema.json``; Mermaid ``flowchart LR`` for GitHub (both ``TB`` for a
long chain). Their contract: docs/architecture.md, "Output formats".

Modules:

* ``_snapshot``: ``DagSnapshot``, the one data model every renderer draws: the DAG with its
  state overlay.
* ``_definition_texts``: a definition's texts as every snapshot of it draws them, redacted
  once per definition.
* ``_cancel``: cancellation edges, from the stage whose failure stopped a run to each stage
  the stop cancelled.
* ``_dot``: Graphviz DOT.
* ``_json``: the snapshot as JSON data, after ``schemas/dag.schema.json``.
* ``_mermaid``: a Mermaid ``flowchart``.
* ``_terminal``: a run's state for a terminal: one row per stage, as a ``rich`` table or
  plain lines.
* ``_live``: live snapshots from engine events (``DagWatcher``, ``watch_run``).
* ``_stored``: live snapshots of a run in another process, polled from a span source
  (``watch_stored_run``, ``follow_stored_run``).
"""

from __future__ import annotations

from enum import StrEnum
from importlib import import_module
from typing import TYPE_CHECKING, Any

from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.visualization._dot import render_dot_snapshot
from taskdaemon.pipeline.visualization._json import (
    dag_schema,
    render_json_snapshot,
    snapshot_to_dict,
    validate_dag,
)
from taskdaemon.pipeline.visualization._mermaid import render_mermaid_snapshot
from taskdaemon.pipeline.visualization._snapshot import (
    STATES,
    DagEdge,
    DagNode,
    DagSnapshot,
    DagTrigger,
    dag_snapshot,
    format_duration,
    title_case,
)

if TYPE_CHECKING:
    from taskdaemon.pipeline.visualization._live import DagWatcher, watch_run
    from taskdaemon.pipeline.visualization._stored import (
        follow_stored_run,
        recorded_pipeline,
        watch_stored_run,
    )

__all__ = [
    "STATES",
    "DagEdge",
    "DagNode",
    "DagSnapshot",
    "DagTrigger",
    "DagWatcher",
    "VisualizationFormat",
    "dag_schema",
    "dag_snapshot",
    "follow_stored_run",
    "format_duration",
    "recorded_pipeline",
    "render_dot",
    "render_json",
    "render_mermaid",
    "snapshot_dict",
    "title_case",
    "validate_dag",
    "visualize",
    "watch_run",
    "watch_stored_run",
]


#: The live views, imported when first used (PEP 562): they need asyncio and the engine's
#: events, which drawing a file (``taskdaemon dag``) does not (start-up time).
_LAZY: dict[str, str] = {
    "DagWatcher": "_live",
    "watch_run": "_live",
    "follow_stored_run": "_stored",
    "recorded_pipeline": "_stored",
    "watch_stored_run": "_stored",
}


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # resolve once
    return value


class VisualizationFormat(StrEnum):
    """The output formats of ``visualize`` (values are the CLI's ``--format`` names)."""

    DOT = "dot"
    JSON = "json"
    MERMAID = "mermaid"


def _snapshot(pipeline: Pipeline | DagSnapshot | None, run: RunRecord | None) -> DagSnapshot:
    if isinstance(pipeline, DagSnapshot):
        if run is not None:
            raise ValueError("pass either a DagSnapshot or a pipeline/run, not both")
        return pipeline
    return dag_snapshot(pipeline, run)


def render_dot(pipeline: Pipeline | DagSnapshot | None = None, run: RunRecord | None = None) -> str:
    """Graphviz DOT of the DAG (``dot -Tsvg`` renders it unchanged)."""
    return render_dot_snapshot(_snapshot(pipeline, run))


def render_json(
    pipeline: Pipeline | DagSnapshot | None = None,
    run: RunRecord | None = None,
    *,
    indent: int | None = 2,
) -> str:
    """The JSON document of the DAG, valid against ``dag_schema()`` (``indent=None``: compact)."""
    return render_json_snapshot(_snapshot(pipeline, run), indent=indent)


def snapshot_dict(
    pipeline: Pipeline | DagSnapshot | None = None, run: RunRecord | None = None
) -> dict[str, Any]:
    """The JSON document as a dict (for APIs that serialise themselves)."""
    return snapshot_to_dict(_snapshot(pipeline, run))


def render_mermaid(
    pipeline: Pipeline | DagSnapshot | None = None, run: RunRecord | None = None
) -> str:
    """Mermaid ``flowchart LR`` of the DAG (GitHub renders it in Markdown)."""
    return render_mermaid_snapshot(_snapshot(pipeline, run))


_RENDERERS = {
    VisualizationFormat.DOT: render_dot,
    VisualizationFormat.JSON: render_json,
    VisualizationFormat.MERMAID: render_mermaid,
}


def visualize(
    pipeline: Pipeline | DagSnapshot | None,
    fmt: VisualizationFormat | str = VisualizationFormat.DOT,
    run: RunRecord | None = None,
) -> str:
    """The DAG in ``fmt`` (an enum member or its value); ValueError for an unknown format.

    A thin delegate, kept as the one spelling that picks a renderer by format (the upstream
    API's name, used by ``examples/visualize_pipeline.py``): it calls ``render_dot``,
    ``render_json`` or ``render_mermaid`` and adds nothing.
    """
    return _RENDERERS[VisualizationFormat(fmt)](pipeline, run)
