"""Mermaid output: structure a Mermaid parser needs, and escaping of hostile text."""

from __future__ import annotations

import re

import pytest

from pipeline_visualization_support import failed_run, feature_delivery, hostile_pipeline
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, Pipeline, Stage
from taskdaemon.pipeline.visualization import render_mermaid
from taskdaemon.pipeline.visualization._mermaid import beyond_default_limits, text

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


def test_labels_use_br_and_write_characters_as_they_are() -> None:
    """Node labels join lines with <br/> and write the middle dot as itself: an entity code
    (``#183;``) showed as ``&#183;`` where Mermaid draws labels as SVG text."""
    nodes, _ = parse(render_mermaid(feature_delivery(), failed_run()))
    assert (
        nodes["s2"] == "Implementation<br/>(phase loop)<br/>"
        "failure · 3 instances · 2 attempts · 1.2s"
    )


def test_states_get_class_definitions() -> None:
    """Each state present gets a classDef with its fill colour and the nodes in that state."""
    text = render_mermaid(feature_delivery(), failed_run())
    assert [line for line in text.splitlines() if "state_failure" in line] == [
        "  classDef state_failure fill:#ff6347,stroke:#333333,color:#000000",
        "  class s2 state_failure",
    ]


def test_hostile_text_is_escaped() -> None:
    """Quotes, markup and newlines in names never reach Mermaid raw: a quote is Mermaid's code,
    markup HTML's entities; brackets, braces and the rest are written as they are, which a
    quoted label holds as text."""
    pipeline = hostile_pipeline()
    nodes, edges = parse(render_mermaid(pipeline))
    assert len(pipeline.stages) + 3 == len(nodes)
    assert nodes["s0"] == "say #quot;hi#quot;<br/>(py#quot;thon loop)"
    assert nodes["s6"] == "&lt;b&gt;html&lt;/b&gt; &amp; co<br/>(python loop)"
    assert nodes["s7"] == "{braces}; [brackets] -&gt; arrow<br/>(python loop)"
    assert all(re.fullmatch(r"[^\"<>\n]*", label.replace("<br/>", "")) for label in nodes.values())
    assert (
        "s0",
        "s10",
        "on event<br/>ev#quot;t<br/>if event.x == #quot;}\\#quot;#quot; &amp;&amp; "
        "size(event.y) &gt; 0",
    ) in edges


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("size(x) > 0", '"size(x) &gt; 0"'),
        ("a < b & c", '"a &lt; b &amp; c"'),
        ("x -->|y| z", '"x --&gt;|y| z"'),
        ('say "hi"', '"say #quot;hi#quot;"'),
        ("#fff; #1 a#b", '"#35;fff; #1 a#b"'),
        ("#quot; &amp;", '"#35;quot; &amp;amp;"'),
        ("`md` x", '"#96;md` x"'),
        ("x `md`", '"x `md`"'),
        ("é 日本 · — {[(;)]} %% \\", '"é 日本 · — {[(;)]} %% \\"'),
        ("a\nb\r\nc", '"a<br/>b<br/>c"'),
        ("esc\x1b[2J rtl\u202eab zero\u200bw", '"esc\\x1b[2J rtl\\u202eab zero\\u200bw"'),
    ],
)
def test_label_text_writes_characters_as_mermaid_draws_them(value: str, written: str) -> None:
    """Each character as itself, but ``&``, ``<`` and ``>`` as the HTML entities Mermaid
    decodes for labels drawn as HTML and as SVG text alike, ``"`` and a ``#`` that would begin
    an entity code as Mermaid's codes, a backtick that would open a Markdown string as its
    code, and what a terminal would act on as its visible escape."""
    assert written == text(value)


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
