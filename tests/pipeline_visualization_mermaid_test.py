"""Mermaid output: structure a Mermaid parser needs, and escaping of hostile text."""

from __future__ import annotations

import re

from pipeline_visualization_support import failed_run, feature_delivery, hostile_pipeline
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, Pipeline, Stage
from taskdaemon.pipeline.visualization import render_mermaid
from taskdaemon.pipeline.visualization._mermaid import beyond_default_limits

NODE = re.compile(r'^  ([sg]\d+)(\(|\{|\[\\|>)"([^"]*)"(\)|\}|/\]|\])$')
EDGE = re.compile(r'^  ([sg]\d+) (-->|-\.->)\|"([^"]*)"\| (s\d+)$')
CLASS = re.compile(r"^  (classDef \w+ [\w:#,\- ]+|class [sg]\d+(,[sg]\d+)* \w+)$")


def parse(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Split a rendering into node labels and edges; fail on any line of another shape."""
    lines = text.splitlines()
    assert [lines[0], lines[2]] == ["---", "---"]
    assert lines[3] in ("flowchart LR", "flowchart TB")  # TB: a long chain (hostile names')
    assert lines[1].startswith("title: ")
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for line in lines[4:]:
        if match := NODE.match(line):
            nodes[match[1]] = match[3]
        elif match := EDGE.match(line):
            edges.append((match[1], match[4], match[3]))
        else:
            assert CLASS.match(line), line
    return nodes, edges


def test_every_line_is_a_node_edge_or_class() -> None:
    """The overlay parses into declared nodes, edges between them, and class lines."""
    nodes, edges = parse(render_mermaid(feature_delivery(), failed_run()))
    assert set() == {end for edge in edges for end in edge[:2]} - set(nodes)


def test_labels_use_br_and_entities() -> None:
    """Node labels join lines with <br/> and write the middle dot as an entity."""
    nodes, _ = parse(render_mermaid(feature_delivery(), failed_run()))
    assert (
        nodes["s2"] == "Implementation<br/>(phase loop)<br/>"
        "failure #183; 3 instances #183; 2 attempts #183; 1.2s"
    )


def test_states_get_class_definitions() -> None:
    """Each state present gets a classDef with its fill colour and the nodes in that state."""
    text = render_mermaid(feature_delivery(), failed_run())
    assert [line for line in text.splitlines() if "state_failure" in line] == [
        "  classDef state_failure fill:#ff6347,stroke:#333333,color:#000000",
        "  class s2 state_failure",
    ]


def test_hostile_text_is_escaped() -> None:
    """Quotes, pipes, brackets, markup and newlines in names never reach Mermaid raw."""
    pipeline = hostile_pipeline()
    nodes, edges = parse(render_mermaid(pipeline))
    assert len(pipeline.stages) + 3 == len(nodes)
    assert nodes["s0"] == "say #34;hi#34;<br/>(py#34;thon loop)"
    assert nodes["s6"] == "#60;b#62;html#60;/b#62; #38; co<br/>(python loop)"
    assert all(re.fullmatch(r"[^\"<>|\n]*", label.replace("<br/>", "")) for label in nodes.values())
    assert all("|" not in label for _, _, label in edges)


def _fan(links: int, gates: int = 0, name: str = "stage") -> str:
    """The Mermaid text of a stage started by the run and ``links`` stages its completion
    starts (named ``name_N``), the first ``gates`` of them also waiting for a condition (a
    gate's link each)."""
    fan = (
        Stage(
            f"{name}_{i}",
            "phase",
            (OnCompletion("stage_0"),) + ((OnCondition("true"),) if i <= gates else ()),
        )
        for i in range(1, links - gates + 1)
    )
    return render_mermaid(Pipeline("fan", (Stage("stage_0", "plan", (Manual(),)), *fan)))


def test_past_mermaids_default_limits_the_text_says_why_github_refuses_it() -> None:
    """Mermaid with its defaults draws 500 links (the gates' too) and 50,000 characters: one
    more link is said, with both counts and what draws it instead; long names push the text
    past 50,000 characters in fewer links."""
    assert (None, None) == (beyond_default_limits(_fan(500)), beyond_default_limits(_fan(500, 40)))
    said = beyond_default_limits(_fan(501, 40))
    long_names = _fan(400, name="n" * 120)
    assert said is not None
    assert said.startswith("501 links and ")
    assert said.endswith("--format svg draws it with Graphviz")
    assert len(long_names) > 50_000
    assert (beyond_default_limits(long_names) or "").startswith(
        f"400 links and {len(long_names):,} "
    )
