"""Mermaid ``flowchart LR`` (``TB`` for a long chain, as DOT) with the DOT content: rounded
stage nodes, edge labels in ``|"…"|``, one ``classDef`` per state (same colours as DOT), dashed
pseudo-nodes for conditions (rhombus), approvals (inverted trapezoid) and external events
(flag), and a dotted edge, labelled with the reason, from a failed stage to each stage its
failure cancelled. Node ids are generated (``s0``, ``g0``), so any stage name is safe; label
text is quoted, and written as it is but for the few characters Mermaid would read as
something else (:func:`text`).

Decision: a box is headed by the stage's title (``feature_delivery`` as ``Feature Delivery``),
as DOT's is: DOT's label is a contract (docs/architecture.md, "Output formats") and Mermaid draws
the same content. The web page names boxes as written (``web._views.labelled``).
"""

from __future__ import annotations

import json
import re

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.terminal_text import shown
from taskdaemon.pipeline.visualization._cancel import cancellations
from taskdaemon.pipeline.visualization._snapshot import (
    STATE_HEX,
    DagSnapshot,
    direction,
    edge_text,
    gates,
    node_label_lines,
    run_title,
    state_colour,
    states_present,
)

__all__ = ["beyond_default_limits", "render_mermaid_snapshot"]

#: What label text writes other than as itself: ``&``, ``<`` and ``>`` as the three HTML
#: entities Mermaid decodes whether it draws labels as HTML or as SVG text, and ``"`` (which
#: would end the quoted label) as Mermaid's own code.
_WRITTEN = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "#quot;"})
#: A ``#`` that begins what Mermaid reads as its own entity code (``#quot;``, ``#9829;``: a
#: ``#``, ASCII word characters, a ``;``).
_CODE_START = re.compile(r"#(?=[A-Za-z0-9_]+;)")
# The DOT shapes' families (see _dot.py): rhombus (decision), inverted trapezoid (manual
# operation), asymmetric flag (incoming signal).
_GATE_SHAPES = {"condition": ("{", "}"), "approval": ("[\\", "/]"), "external_event": (">", "]")}


#: The longest label text, in characters: longer text is cut with an ellipsis (Mermaid refuses
#: a whole diagram over 50,000 characters by default, and entities multiply the length).
MAX_TEXT = 500


#: What Mermaid draws at most unless configured otherwise (``maxEdges``, ``maxTextSize``): past
#: either, GitHub and every renderer with the defaults show an error instead of the diagram.
DEFAULT_MAX_LINKS = 500
DEFAULT_MAX_CHARACTERS = 50_000


def beyond_default_limits(mermaid: str) -> str | None:
    """Why Mermaid with its defaults refuses to draw ``mermaid`` (this module's text), or None.

    A DAG of hundreds of stages passes Mermaid's limits; its text stays valid, for a renderer
    configured to draw more, but a user who pastes it into GitHub is told why it shows an
    error there and what draws it instead."""
    # Every link is written ``-->|`` or ``-.->|``; label text writes ``>`` as ``&gt;``.
    links = mermaid.count("->|")
    if links <= DEFAULT_MAX_LINKS and len(mermaid) <= DEFAULT_MAX_CHARACTERS:
        return None
    return (
        f"{links:,} links and {len(mermaid):,} characters: Mermaid draws at most "
        f"{DEFAULT_MAX_LINKS} links and {DEFAULT_MAX_CHARACTERS:,} characters unless configured "
        "to draw more (maxEdges, maxTextSize), so GitHub shows an error instead; "
        "--format svg draws it with Graphviz"
    )


def text(value: str) -> str:
    """Quoted Mermaid label text, cut to ``MAX_TEXT`` characters with an ellipsis: lines joined
    by ``<br/>``, each written as it is (``x > 0 · 3 instances``, ``é``, ``|``, brackets) but
    for what Mermaid would read as something else.

    Decision: Mermaid's documented way to write a character, its entity code (``#62;``), is
    used only where nothing else is read as the character: for ``"``, and for a ``#`` that
    would begin a code (``#35;``). Mermaid turns a code into an HTML character reference,
    which it resolves only when it draws labels as HTML: drawn as SVG text (``htmlLabels:
    false``) the label showed ``&#62;`` (and still shows ``&quot;`` for a ``"``, which no
    other spelling writes). Inside a quoted label the grammar takes every other character
    as text, but the label is read as HTML once parsed, so ``&``, ``<`` and ``>`` are
    written ``&amp;``, ``&lt;`` and ``&gt;``, which Mermaid decodes for both kinds of label
    (a bare ``>`` vanished from SVG text, and ``<b>`` would be markup). A control,
    bidirectional or invisible character is written as its escape (``\\x1b``, ``\\u202e``),
    as a terminal shows it (``terminal_text.shown``): this text is printed too. A label that
    would begin with a backtick begins with its code (``#96;``), as a backtick just after the
    quote opens a Markdown string. Not worked around: in a label of several lines (every
    node's), Mermaid reads a backslash and an ``n`` as a line break however they are
    written, as codes too."""
    lines = cut(value, MAX_TEXT).replace("\r\n", "\n").split("\n")
    written = [_CODE_START.sub("#35;", shown(line)).translate(_WRITTEN) for line in lines]
    joined = "<br/>".join(written)
    return '"' + ("#96;" + joined[1:] if joined.startswith("`") else joined) + '"'


def render_mermaid_snapshot(snapshot: DagSnapshot) -> str:
    """The Mermaid text of ``snapshot`` (ends with a newline)."""
    ids = {node.name: f"s{index}" for index, node in enumerate(snapshot.nodes)}
    title = cut(run_title(snapshot).replace("\n", " — "), MAX_TEXT)
    out = ["---", f"title: {json.dumps(title)}", "---", f"flowchart {direction(snapshot)}"]
    for node in snapshot.nodes:
        out.append(f"  {ids[node.name]}({text(chr(10).join(node_label_lines(node)))})")
    gate_list = gates(snapshot)
    for index, gate in enumerate(gate_list):
        opening, closing = _GATE_SHAPES[gate.kind]
        out.append(f"  g{index}{opening}{text(gate.label)}{closing}")
    for edge in snapshot.edges:
        arrow = "-.->" if edge.trigger == "on_completion" and edge.success_only is False else "-->"
        out.append(f"  {ids[edge.source]} {arrow}|{text(edge_text(edge))}| {ids[edge.target]}")
    for index, gate in enumerate(gate_list):
        out.append(f"  g{index} -.->|{text(gate.edge_label)}| {ids[gate.stage]}")
    for cancel in cancellations(snapshot):
        out.append(f"  {ids[cancel.source]} -.->|{text(cancel.label)}| {ids[cancel.target]}")
    if gate_list:
        out.append("  classDef gate fill:#ffffff,stroke:#888888,stroke-dasharray:4 3,color:#333333")
        out.append("  class " + ",".join(f"g{i}" for i in range(len(gate_list))) + " gate")
    for state in states_present(snapshot):
        css = f"fill:{STATE_HEX[state_colour(state)]},stroke:#333333,color:#000000"
        if state == "skipped":
            css += ",stroke-dasharray:4 3"
        members = ",".join(ids[n.name] for n in snapshot.nodes if n.state == state)
        class_name = "state_" + "".join(ch if ch.isalnum() else "_" for ch in state)
        out.append(f"  classDef {class_name} {css}")
        out.append(f"  class {members} {class_name}")
    return "\n".join(out) + "\n"
