"""DOT output rendered by the real Graphviz ``dot``: SVG and PNG, with hostile stage names."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest

from pipeline_visualization_support import (
    PNG_MAGIC,
    failed_run,
    feature_delivery,
    hostile_pipeline,
    run_dot,
    svg_nodes,
)
from taskdaemon.pipeline.model import (
    Manual,
    OnCompletion,
    OnCondition,
    Pipeline,
    Stage,
)
from taskdaemon.pipeline.records import RunRecord, StageRecord
from taskdaemon.pipeline.visualization import render_dot, render_mermaid
from taskdaemon.pipeline.visualization._dot import LABELLED_EDGES_MAX


def stage_nodes(svg: bytes, pipeline: Pipeline) -> list[str]:
    """The SVG node titles that are stages of ``pipeline``."""
    names = {stage.name for stage in pipeline.stages}
    return [title for title in svg_nodes(svg) if title in names]


@pytest.mark.slow
def test_definition_svg_has_one_node_per_stage() -> None:
    """The definition's SVG holds exactly one node per stage, each once."""
    pipeline = feature_delivery()
    svg = run_dot(render_dot(pipeline), "svg")
    assert [s.name for s in pipeline.stages] == stage_nodes(svg, pipeline)


@pytest.mark.slow
def test_run_overlay_svg_has_one_node_per_stage_and_the_legend() -> None:
    """With a run overlay, the SVG has one node per stage plus the gates and the legend."""
    pipeline = feature_delivery()
    svg = run_dot(render_dot(pipeline, failed_run()), "svg")
    expected = [s.name for s in pipeline.stages] + [
        "condition:release:1",
        "approval:release:2",
        "legend",
    ]
    assert expected == svg_nodes(svg)


@pytest.mark.slow
def test_png_is_a_png() -> None:
    """dot -Tpng turns the overlay into a PNG image."""
    png = run_dot(render_dot(feature_delivery(), failed_run()), "png")
    assert png[:8] == PNG_MAGIC


@pytest.mark.slow
def test_hostile_names_render_unchanged() -> None:
    """Quotes, backslashes, newlines, keywords and markup in names render without warnings,
    and every stage keeps its exact name as its node id."""
    pipeline = hostile_pipeline()
    run = RunRecord(
        "0" * 32,
        "hostile",
        "running",
        0.0,
        None,
        tuple(StageRecord(s.name, s.loop, "pending") for s in pipeline.stages),
        (),
    )
    svg = run_dot(render_dot(pipeline, run), "svg")
    # A node id is the quoted name as written: backslashes doubled, a newline as \n.
    expected = [s.name.replace("\\", "\\\\").replace("\n", "\\n") for s in pipeline.stages]
    assert sorted(expected) == sorted(t for t in svg_nodes(svg) if t in expected)


def _lines(dot: str, start: str) -> list[str]:
    """The DOT lines that start with ``start`` (after the two-space indent)."""
    return [line for line in dot.splitlines() if line.startswith(f"  {start}")]


@pytest.mark.slow
def test_edges_say_how_the_target_depends_on_the_source() -> None:
    """An any-result completion edge is dashed, a success-only one solid, and a stage cancelled
    by another's failure gets a dotted, grey, non-ranking edge from the cause, labelled with
    the reason; Graphviz accepts all three."""
    reason = "stage 'fail' failed (error_strategy: fail)"
    pipeline = Pipeline(
        "p",
        (
            Stage("fail", "python", (Manual(),)),
            Stage("slow", "python", (Manual(),)),
            Stage("any", "python", (OnCompletion("fail", success_only=False),)),
            Stage("ok", "python", (OnCompletion("fail"),)),
        ),
    )
    run = RunRecord(
        "0" * 32,
        "p",
        "failure",
        0.0,
        1.0,
        (
            StageRecord("fail", "python", "failure"),
            StageRecord("slow", "python", "cancelled", cancel_reason=reason, cancel_cause="fail"),
            StageRecord("any", "python", "skipped"),
            StageRecord("ok", "python", "skipped"),
        ),
        (),
    )
    dot = render_dot(pipeline, run)
    assert _lines(dot, '"fail" ->') == [
        '  "fail" -> "any" [label="on completion\\n(any result)", '
        'tooltip="on completion of fail (any result)", style=dashed];',
        '  "fail" -> "ok" [label="on completion", tooltip="on completion of fail"];',
        '  "fail" -> "slow" [label="cancelled: stage \'fail\' failed\\n(error_strategy: fail)", '
        "style=dotted, color=grey40, fontcolor=grey30, constraint=false, "
        "tooltip=\"cancelled: stage 'fail' failed (error_strategy: fail)\"];",
    ]
    run_dot(dot, "svg")


@pytest.mark.slow
def test_gate_and_legend_ids_never_take_a_stage_name() -> None:
    """A stage named like a gate or like the legend keeps its id; the gate and the legend get
    a fresh one, so Graphviz draws every node once."""
    pipeline = Pipeline(
        "p",
        (
            Stage("condition:b:0", "python", (Manual(),)),
            Stage("condition:b:0_", "python", (Manual(),)),
            Stage("legend", "python", (Manual(),)),
            Stage("b", "python", (OnCondition("request.x == 1"),)),
        ),
    )
    run = RunRecord(
        "0" * 32,
        "p",
        "running",
        0.0,
        None,
        tuple(StageRecord(s.name, "python", "pending") for s in pipeline.stages),
        (),
    )
    dot = render_dot(pipeline, run)
    nodes = svg_nodes(run_dot(dot, "svg"))
    assert (
        '  "condition:b:0__" -> "b" [label="on condition", style=dashed, '
        'tooltip="on condition request.x == 1"];',
        ["condition:b:0", "condition:b:0_", "legend", "b", "condition:b:0__", "legend_"],
    ) == (_lines(dot, '"condition:b:0__" ->')[0], nodes)


def test_carriage_returns_and_control_characters_in_names() -> None:
    """A CRLF in a name is one line break and other control characters become spaces (which
    Graphviz would reject)."""
    pipeline = Pipeline("p", (Stage("a\r\nb\x07c", "python", (Manual(),)),))
    (node,) = _lines(render_dot(pipeline), '"a')
    assert node.startswith('  "a\\nb c" [label="a\\nb c\\n(python loop)"')


def test_text_over_2000_characters_is_cut_with_an_ellipsis() -> None:
    """A DOT string keeps up to 2,000 characters; a longer one keeps 1,999 and an ellipsis
    (Graphviz refuses quoted strings over 16,384 bytes)."""
    labels = [
        _lines(render_dot(Pipeline("p" * n, (Stage("a", "python", (Manual(),)),))), "label=")
        for n in (2000, 2001)
    ]
    assert [[f'  label="{"p" * 2000}";'], [f'  label="{"p" * 1999}…";']] == labels


def test_long_node_ids_are_cut_and_stay_unique() -> None:
    """A name of 2,000 characters is its own node id; a longer one becomes its first 1,986
    characters, an ellipsis and the first 12 hex digits of its SHA-256 (lone surrogates
    included), so two long names sharing a prefix stay two nodes."""
    exact, over, odd = "n" * 2000, "n" * 2001, "n" * 2000 + "\ud800"

    def cut(name: str) -> str:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        return f"{'n' * 1986}…{digest}"

    pipeline = Pipeline(
        "p",
        (
            Stage(exact, "python", (Manual(),)),
            Stage(over, "python", (OnCompletion(exact),)),
            Stage(odd, "python", (Manual(),)),
        ),
    )
    ids = [line.split(" [", 1)[0] for line in _lines(render_dot(pipeline), '"n')]
    assert [
        f'  "{exact}"',
        f'  "{cut(over)}"',
        f'  "{cut(odd)}"',
        f'  "{exact}" -> "{cut(over)}"',
    ] == ids
    assert cut(over) != cut(odd)


@pytest.mark.slow
def test_run_without_stages_has_no_legend() -> None:
    """A run known only by its run span (no stage yet) draws no empty legend; Graphviz accepts
    the graph."""
    dot = render_dot(None, RunRecord("0" * 32, "p", "running", 0.0, None, (), ()))
    assert ("cluster_legend" in dot, svg_nodes(run_dot(dot, "svg"))) == (False, [])


def _chain(length: int) -> Pipeline:
    """``length`` stages, each started by the completion of the one before."""
    triggers = [(Manual(approval_required=False),)]
    triggers += [(OnCompletion(f"s{i - 1:03d}"),) for i in range(1, length)]
    return Pipeline("chain", tuple(Stage(f"s{i:03d}", "python", t) for i, t in enumerate(triggers)))


def _fan_out(width: int) -> Pipeline:
    """A root stage and ``width`` stages started by its completion."""
    root = Stage("root", "python", (Manual(approval_required=False),))
    fan = (Stage(f"w{i:03d}", "python", (OnCompletion("root"),)) for i in range(width))
    return Pipeline("fan", (root, *fan))


@pytest.mark.parametrize(
    ("width", "labels"), [(LABELLED_EDGES_MAX - 1, 1), (LABELLED_EDGES_MAX, 0)]
)
def test_a_fan_out_past_the_bound_says_its_triggers_in_tooltips(width: int, labels: int) -> None:
    """Up to ``LABELLED_EDGES_MAX`` stages every edge is labelled; past it none is, each
    keeping its trigger as its tooltip, and the stages are drawn as before."""
    dot = render_dot(_fan_out(width))
    edges = _lines(dot, '"root" ->')
    tooltip = 'tooltip="on completion of root"'
    assert (width, width * labels, width, width) == (
        len(edges),
        sum("label=" in line for line in edges),
        sum(tooltip in line for line in edges),
        len(_lines(dot, '"w')),
    )


def _size(svg: bytes) -> tuple[float, float]:
    """The drawing's width and height in points."""
    root = ET.fromstring(svg)
    return float(root.get("width", "").removesuffix("pt")), float(
        root.get("height", "").removesuffix("pt")
    )


@pytest.mark.parametrize(("length", "rankdir"), [(6, "LR"), (7, "TB")])
def test_a_chain_of_more_than_six_stages_is_laid_out_top_to_bottom(
    length: int, rankdir: str
) -> None:
    """Six chained stages are drawn left to right, as the contract has it; seven top to bottom,
    in DOT and in Mermaid alike."""
    pipeline = _chain(length)
    assert (f"  rankdir={rankdir};", f"flowchart {rankdir}") == (
        render_dot(pipeline).splitlines()[1],
        render_mermaid(pipeline).splitlines()[3],
    )


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", [_chain(300), _fan_out(200)], ids=["deep", "wide"])
def test_a_deep_or_a_wide_dag_scrolls_down_not_sideways(pipeline: Pipeline) -> None:
    """Graphviz draws 300 chained stages, and 200 parallel ones, as a drawing far taller than
    wide, within a screen's width: the chain drawn left to right was 690 inches wide."""
    width, height = _size(run_dot(render_dot(pipeline), "svg"))
    assert (True, True) == (width < 10 * 72, height > 10 * width), (width, height)
