"""Cancellation edges: from the stage whose failure stopped a run to each stage the stop cancelled.

A run whose error strategy is not ``continue`` stops at its first failed stage and cancels what
is running. A cancelled node alone would not say why; every renderer draws the same dotted edge
from the cause, labelled with the reason (``cancelled: stage 'fail' failed (error_strategy:
fail)``). Stages the stop kept from starting are ``skipped`` and say so in their skip reason;
they get no edge, which would mostly repeat the dependency edges.
"""

from __future__ import annotations

from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.value_methods import ValueMethods
from taskdaemon.pipeline.visualization._snapshot import DagSnapshot, wrap

__all__ = ["DagCancellation", "cancellations"]


@frozen
class DagCancellation(ValueMethods):
    """A cancellation edge: ``source`` failed, which stopped the run and cancelled ``target``."""

    source: str
    target: str
    label: str  # the reason, folded into short lines
    description: str  # the reason on one line


def cancellations(snapshot: DagSnapshot) -> tuple[DagCancellation, ...]:
    """The cancellation edges of ``snapshot``, in node order (none without a run overlay)."""
    names = {node.name for node in snapshot.nodes}
    found = []
    for node in snapshot.nodes:
        cause = node.cancel_cause
        if node.state != "cancelled" or cause is None or cause == node.name or cause not in names:
            continue
        text = f"cancelled: {node.cancel_reason or f'stage {cause!r} failed'}"
        found.append(DagCancellation(cause, node.name, wrap(text, 32), text))
    return tuple(found)
