"""A definition's texts as every snapshot of it draws them, redacted once per definition.

A served run's page draws a new snapshot at each change of the run, and the definition part of
each (its triggers, its edges' triggers, its descriptions) was redacted again every time,
though a definition never changes while its runs go on. :func:`definition_texts` makes them
once and keeps them for the definition object, as the monitor keeps a definition's span
attributes (``monitor/_books.PipelineInfo``), and on the same terms: a value known as a secret
since they were made (``masked_values.MASKED.generation`` moved on: a stage returned it under
``token``) was not masked in them, so they are made again.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Final, NamedTuple

from taskdaemon.pipeline.masked_values import MASKED
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.records import TriggerRecord
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.telemetry_codec import trigger_record

__all__ = ["DefinitionTexts", "definition_texts"]


class DefinitionTexts(NamedTuple):
    """A definition's texts, redacted: each stage's triggers and description in stage order,
    each edge's trigger in ``Pipeline.edges`` order, the pipeline's description, and the
    ``MASKED.generation`` they were redacted under."""

    triggers: tuple[tuple[TriggerRecord, ...], ...]
    descriptions: tuple[str, ...]
    edge_triggers: tuple[TriggerRecord, ...]
    description: str
    masked: int


#: How many definitions are kept: the runs a server shows at once are of a few. A weak
#: reference each, so a kept entry holds no definition alive; the oldest goes first.
_KEEP: Final = 32

_lock = threading.Lock()
_kept: OrderedDict[int, tuple[weakref.ref[Pipeline], DefinitionTexts]] = OrderedDict()


def definition_texts(pipeline: Pipeline) -> DefinitionTexts:
    """``pipeline``'s texts as a snapshot draws them, made at the first call for this object
    (and again once a value is known as a secret since): keyed by identity, not equality,
    since comparing two definitions costs as much as redacting one."""
    masked = MASKED.generation  # read first: a value learnt meanwhile makes them stale
    key = id(pipeline)
    with _lock:
        kept = _kept.get(key)
        if kept is not None and kept[0]() is pipeline and kept[1].masked == masked:
            _kept.move_to_end(key)
            return kept[1]
    texts = _made(pipeline, masked)
    with _lock:
        _kept[key] = (weakref.ref(pipeline), texts)
        _kept.move_to_end(key)
        while len(_kept) > _KEEP:
            _kept.popitem(last=False)
    return texts


def _made(pipeline: Pipeline, masked: int) -> DefinitionTexts:
    records: dict[int, TriggerRecord] = {}  # by the trigger's identity: an edge's is a stage's
    triggers = []
    for stage in pipeline.stages:
        made = tuple(trigger_record(trigger) for trigger in stage.triggers)
        records.update(zip(map(id, stage.triggers), made, strict=True))
        triggers.append(made)
    edge_triggers = tuple(
        records.get(id(edge.trigger)) or trigger_record(edge.trigger) for edge in pipeline.edges
    )
    return DefinitionTexts(
        tuple(triggers),
        # Free text, drawn as the triggers are: redacted as they are.
        tuple(redact_text(stage.description) for stage in pipeline.stages),
        edge_triggers,
        redact_text(pipeline.description),
        masked,
    )
