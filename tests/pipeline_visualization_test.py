"""Renderers: golden text per format, the snapshot model, and the public facade."""

from __future__ import annotations

import pytest

from pipeline_visualization_support import (
    RUN_ID,
    T0,
    attempt,
    check_golden,
    failed_run,
    feature_delivery,
)
from taskdaemon.pipeline.model import OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.records import EdgeRecord, RunRecord, StageRecord
from taskdaemon.pipeline.visualization import (
    VisualizationFormat,
    dag_snapshot,
    format_duration,
    render_dot,
    render_json,
    render_mermaid,
    title_case,
    visualize,
)

SUFFIX = {"dot": "dot", "json": "json", "mermaid": "mmd"}


@pytest.mark.parametrize("fmt", list(VisualizationFormat))
def test_definition_golden(fmt: VisualizationFormat) -> None:
    """The definition alone renders to the golden text of each format."""
    check_golden(f"feature_delivery.{SUFFIX[fmt]}", visualize(feature_delivery(), fmt))


@pytest.mark.parametrize("fmt", list(VisualizationFormat))
def test_run_overlay_golden(fmt: VisualizationFormat) -> None:
    """A failed run with retried, fan-out and skipped stages overlays the golden text."""
    check_golden(
        f"feature_delivery_run.{SUFFIX[fmt]}", visualize(feature_delivery(), fmt, failed_run())
    )


@pytest.mark.parametrize("fmt", list(VisualizationFormat))
def test_run_only_golden(fmt: VisualizationFormat) -> None:
    """A run record alone (span-based export) renders to the golden text of each format."""
    check_golden(f"run_only.{SUFFIX[fmt]}", visualize(None, fmt, run=failed_run()))


def test_dot_follows_the_contract_lines() -> None:
    """DOT starts with the contract header and draws stages and edges as documented."""
    text = render_dot(feature_delivery())
    assert text.splitlines()[:2] == ["digraph pipeline {", "  rankdir=LR;"]
    assert '"planning" [label="Planning\\n(plan loop)", shape=box, style=rounded,' in text
    assert '"planning" -> "specification" [label="on completion",' in text
    assert '[label="on event\\nspec.ready\\nif event.spec.dependencies_met == true",' in text


def test_running_stage_is_filled_green() -> None:
    """A running stage is drawn filled green with the contract's style."""
    pipeline = feature_delivery()
    run = RunRecord(
        RUN_ID,
        pipeline.name,
        "running",
        T0,
        None,
        (
            StageRecord(
                "planning", "plan", "running", (attempt("planning", 0, 1, "running", 0, 0),)
            ),
        ),
        (),
    )
    line = next(x for x in render_dot(pipeline, run).splitlines() if x.startswith('  "planning"'))
    assert 'style="rounded,filled", fillcolor=green,' in line


def test_run_only_snapshot_has_the_definition_shape() -> None:
    """From spans alone the same nodes, edges, triggers and filters come back as from the file."""
    from_definition = dag_snapshot(feature_delivery(), failed_run())
    from_spans = dag_snapshot(run=failed_run())
    assert from_definition.edges == from_spans.edges
    assert [n.triggers for n in from_definition.nodes] == [n.triggers for n in from_spans.nodes]
    assert [n.state for n in from_definition.nodes] == [n.state for n in from_spans.nodes]


def test_trigger_mode_recorded_on_spans_reaches_the_drawing() -> None:
    """A stage whose spans say ``all`` is drawn with "(all triggers)" from spans alone."""
    stage = StageRecord(
        name="release",
        loop="command",
        status="success",
        attempts=(attempt("release", 0, 1, "success", 0, 1),),
        triggers=("on completion of build", "manual approval"),
        trigger_mode="all",
    )
    run = RunRecord(RUN_ID, "p", "success", T0, T0 + 1, (stage,), ())
    (node,) = dag_snapshot(run=run).nodes
    assert "all" == node.trigger_mode
    assert "(all triggers)" in render_dot(run=run)


def test_unlabelled_span_edges_are_named_from_triggers() -> None:
    """Edges recorded without labels get the label of the target's matching trigger."""
    run = RunRecord(
        RUN_ID,
        "p",
        "success",
        T0,
        T0 + 1,
        (
            StageRecord("a", "python", "success", (), ("on run start",)),
            StageRecord("b", "python", "success", (), ("on event spec.ready",), ("a",)),
            StageRecord("c", "python", "success", (), ("on completion of b",), ("b",)),
        ),
        (EdgeRecord("a", "b", ""), EdgeRecord("b", "c", "")),
    )
    assert [e.label for e in dag_snapshot(run=run).edges] == [
        "on event\nspec.ready",
        "on completion",
    ]


def test_fan_out_and_retry_counts() -> None:
    """The fan-out node counts instances and attempts, and its error is the unrecovered one."""
    node = dag_snapshot(feature_delivery(), failed_run()).node("implementation")
    assert (
        node.instances,
        node.retries,
        node.error,
        pytest.approx(node.duration),
    ) == (3, 1, "tests failed", 1.2)


def test_recovered_retry_has_no_error() -> None:
    """A stage whose retry succeeded shows no error, though its first attempt failed."""
    assert dag_snapshot(feature_delivery(), failed_run()).node("planning").error is None


def test_snapshot_needs_an_input() -> None:
    """Rendering nothing is a ValueError, not an empty graph."""
    with pytest.raises(ValueError, match="pipeline, a run record, or both"):
        render_dot()


def test_visualize_dispatches_by_format() -> None:
    """visualize(pipeline, fmt) is the renderer of that format, by enum member or value."""
    pipeline = feature_delivery()
    assert [render_dot(pipeline), render_json(pipeline), render_mermaid(pipeline)] == [
        visualize(pipeline, VisualizationFormat.DOT),
        visualize(pipeline, "json"),
        visualize(pipeline, VisualizationFormat.MERMAID),
    ]


def test_renderers_accept_a_snapshot() -> None:
    """A prebuilt snapshot renders exactly like the pipeline and run it came from."""
    snapshot = dag_snapshot(feature_delivery(), failed_run())
    assert render_mermaid(feature_delivery(), failed_run()) == render_mermaid(snapshot)


def test_stages_missing_from_the_run_are_pending() -> None:
    """With a run overlay, a defined stage the run has not reached shows as pending."""
    pipeline = Pipeline("p", (Stage("a", "python", ()), Stage("b", "python", (OnCompletion("a"),))))
    run = RunRecord(RUN_ID, "p", "running", T0, None, (StageRecord("a", "python", "running"),), ())
    assert [n.state for n in dag_snapshot(pipeline, run).nodes] == ["running", "pending"]


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("planning", "Planning"),
        ("feature_delivery", "Feature Delivery"),
        ("release-gate", "Release Gate"),
        ("CI_build", "CI Build"),
        ("__", "__"),
    ],
)
def test_title_case(name: str, title: str) -> None:
    """Stage names in snake_case or kebab-case become title-cased words."""
    assert title == title_case(name)


@pytest.mark.parametrize("fmt", ["dot", "json"])
def test_a_definition_s_descriptions_are_drawn_redacted(fmt: str) -> None:
    """A pipeline's and a stage's descriptions are free text, drawn in DOT (so SVG) and JSON
    (``dag FILE``, a live run's drawings; Mermaid draws none): a credential written there by
    its shape is drawn redacted, as the stored run holds it."""
    secret = "Hunter2Secret-QQ"
    graph = Pipeline(
        "p",
        (Stage("a", "python", (), description=f"deploys with password={secret}"),),
        description=f"the key: api_key={secret}",
    )
    drawn = visualize(graph, fmt)
    assert (False, True) == (secret in drawn, "REDACTED" in drawn)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.35, "350ms"),
        (0.9996, "1.0s"),
        (1.2, "1.2s"),
        (59.96, "1m00s"),
        (125, "2m05s"),
        (120, "2m00s"),
        (3600, "1h00m"),
        (3720, "1h02m"),
        (None, "-"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    """Durations read as ms, s, m or h by size, the unit chosen after rounding."""
    assert text == format_duration(seconds)
