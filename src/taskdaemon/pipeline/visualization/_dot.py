"""Graphviz DOT, the taskdaemon format (docs/architecture.md, "Output formats").

``digraph pipeline { rankdir=LR; ... }`` (``TB`` for a long chain: ``_snapshot.direction``);
a stage is ``"planning" [label="Planning\\n(plan loop)", shape=box, style=rounded]``;
dependency edges are labelled by trigger (``"on completion"``, ``"on event\\nspec.ready"``,
plus an ``if <filter>`` line for filtered events). With a run overlay, nodes are filled with
their state's colour (``style="rounded,filled"``), get a third label line (``3 instances ·
1.2s``) and the graph a legend cluster of the states it shows. Conditions, manual approvals and
external events are dashed pseudo-nodes pointing at their stage: a condition is a diamond, an
approval an inverted trapezium, an external event a ``cds`` flag (Mermaid draws the same
families). A stage cancelled by another's failure gets a dotted edge from that stage, labelled
with the reason. Past ``LABELLED_EDGES_MAX`` stages an edge's text is its tooltip alone (the
SVG's hover text), which keeps a very wide fan-out's layout within ``dot``'s time bound. Every
string is quoted and escaped, so any stage name or expression renders with ``dot`` unchanged.
"""

from __future__ import annotations

import re

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.terminal_text import UNSEEN_ESCAPES
from taskdaemon.pipeline.visualization._cancel import cancellations
from taskdaemon.pipeline.visualization._snapshot import (
    DagGate,
    DagNode,
    DagSnapshot,
    direction,
    edge_text,
    gates,
    node_label_lines,
    node_tooltip,
    run_title,
    state_colour,
    states_present,
)

__all__ = ["render_dot_snapshot"]

_BARE = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)\Z")
_KEYWORDS = frozenset({"node", "edge", "graph", "digraph", "subgraph", "strict"})
_TEXT_KEYS = frozenset({"label", "tooltip"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# One shape family per gate kind, the same in Mermaid (GATE_SHAPE_FAMILIES): the flowchart
# symbols of a decision (condition), a manual operation (approval) and an incoming signal
# (external event).
_GATE_SHAPES = {"condition": "diamond", "approval": "invtrapezium", "external_event": "cds"}


#: The longest text of one DOT string, in characters: Graphviz refuses a quoted string over
#: 16,384 bytes, and 2,000 characters stay under it even escaped and all 4-byte UTF-8.
MAX_TEXT = 2000

#: Stages past which an edge says its trigger in its tooltip alone. ``dot`` lays a labelled
#: edge's text out as a node of its own, and in a very wide fan-out those nodes were most of
#: its layout's work, up to ``graphviz.DOT_TIMEOUT`` on a loaded machine, for as many copies
#: of ``on completion`` as stages (docs/architecture.md, "Output formats").
LABELLED_EDGES_MAX = 1000


def quote(text: str) -> str:
    """A DOT double-quoted string for ``text`` (an escString in labels: newline → ``\\n``).

    Backslashes are doubled so that ``dot`` never reads them as its own escapes (``\\N``,
    ``\\l``…); other control characters (C0, DEL, C1), which Graphviz rejects, become spaces.
    A bidirectional or invisible character (U+202E, U+200B) is written as its visible escape
    (``\\u202e``), as the terminal and the web page show it: printed, it reversed the rest of
    a line of the DOT text, and drawn, the rest of a label. Text over ``MAX_TEXT`` characters
    is cut, ending with an ellipsis.
    """
    text = cut(text, MAX_TEXT).replace("\r\n", "\n").translate(UNSEEN_ESCAPES)
    text = _CONTROL.sub(" ", text)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _value(key: str, text: str) -> str:
    # Plain identifiers stay bare, so the contract's `shape=box, style=rounded` reads as written;
    # free text is always quoted (a stage titled "Node" must not become a DOT keyword).
    if key in _TEXT_KEYS or not _BARE.match(text) or text.lower() in _KEYWORDS:
        return quote(text)
    return text


def _attrs(pairs: list[tuple[str, str]]) -> str:
    return "[" + ", ".join(f"{key}={_value(key, value)}" for key, value in pairs) + "]"


def _node_line(node: DagNode, node_id: str) -> str:
    pairs = [("label", "\n".join(node_label_lines(node))), ("shape", "box")]
    if node.state is None:
        pairs.append(("style", "rounded"))
    else:
        style = "rounded,filled,dashed" if node.state == "skipped" else "rounded,filled"
        pairs += [("style", style), ("fillcolor", state_colour(node.state))]
    pairs.append(("tooltip", node_tooltip(node)))
    return f"  {node_id} {_attrs(pairs)};"


def _id(name: str) -> str:
    """A node id for ``name``: itself, or when too long for Graphviz a cut that stays unique
    (its prefix, an ellipsis and a digest of the whole name)."""
    if len(name) <= MAX_TEXT:
        return quote(name)
    import hashlib  # noqa: PLC0415 - only for names too long to draw (OpenSSL's start-up)

    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return quote(f"{name[: MAX_TEXT - 14]}…{digest}")


def _unique(base: str, taken: set[str]) -> str:
    candidate = base
    while candidate in taken:
        candidate += "_"
    taken.add(candidate)
    return candidate


def _edge_line(source_id: str, target_id: str, pairs: list[tuple[str, str]], labelled: bool) -> str:
    kept = pairs if labelled else [pair for pair in pairs if pair[0] != "label"]
    return f"  {source_id} -> {target_id} {_attrs(kept)};"


def render_dot_snapshot(snapshot: DagSnapshot) -> str:
    """The DOT text of ``snapshot`` (ends with a newline)."""
    taken = {node.name for node in snapshot.nodes}
    labelled = len(snapshot.nodes) <= LABELLED_EDGES_MAX
    out = [
        "digraph pipeline {",
        f"  rankdir={direction(snapshot)};",
        f"  label={quote(run_title(snapshot))};",
        "  labelloc=t;",
        "  fontname=Helvetica;",
        "  node [fontname=Helvetica, fontsize=11];",
        "  edge [fontname=Helvetica, fontsize=9];",
        "",
    ]
    out.extend(_node_line(node, _id(node.name)) for node in snapshot.nodes)
    gate_list = gates(snapshot)
    if gate_list:
        out.append("")
    gate_ids: list[tuple[DagGate, str]] = []
    for gate in gate_list:
        gate_id = _id(_unique(f"{gate.kind}:{gate.stage}:{gate.index}", taken))
        gate_ids.append((gate, gate_id))
        pairs = [
            ("label", gate.label),
            ("shape", _GATE_SHAPES[gate.kind]),
            ("style", "dashed"),
            ("fontsize", "9"),
            ("tooltip", gate.description),
        ]
        out.append(f"  {gate_id} {_attrs(pairs)};")
    out.append("")
    for edge in snapshot.edges:
        pairs = [("label", edge_text(edge)), ("tooltip", edge.description or edge.label)]
        if edge.trigger == "on_completion" and edge.success_only is False:
            pairs.append(("style", "dashed"))
        out.append(_edge_line(_id(edge.source), _id(edge.target), pairs, labelled))
    for gate, gate_id in gate_ids:
        pairs = [("label", gate.edge_label), ("style", "dashed"), ("tooltip", gate.description)]
        out.append(_edge_line(gate_id, _id(gate.stage), pairs, labelled))
    for cancel in cancellations(snapshot):
        pairs = [
            ("label", cancel.label),
            ("style", "dotted"),
            ("color", "grey40"),
            ("fontcolor", "grey30"),
            ("constraint", "false"),
            ("tooltip", cancel.description),
        ]
        out.append(_edge_line(_id(cancel.source), _id(cancel.target), pairs, labelled))
    states = states_present(snapshot)
    if snapshot.run is not None and states:
        import html  # noqa: PLC0415 - only a run's legend needs it (html.entities: start-up)

        # One HTML-table node keeps the legend compact; states are our own plain words, and
        # unknown ones are escaped all the same.
        cells = "".join(
            f'<td bgcolor="{state_colour(state)}">{html.escape(state)}</td>' for state in states
        )
        table = (
            '<table border="0" cellborder="1" cellspacing="3" cellpadding="4">'
            f"<tr>{cells}</tr></table>"
        )
        legend_id = quote(_unique("legend", taken))
        out += [
            "",
            "  subgraph cluster_legend {",
            '    label="State";',
            "    fontsize=10;",
            "    style=dashed;",
            f"    {legend_id} [shape=plaintext, fontsize=9, label=<{table}>];",
            "  }",
        ]
    out.append("}")
    return "\n".join(out) + "\n"
