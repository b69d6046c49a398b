"""Counts as people read them: ``1 event``, ``2 events``, never ``2 event(s)``; and the
sentence every view says of a pipeline nobody ran."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from taskdaemon.pipeline.ellipsis import quote


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, with an ``s`` unless ``count`` is one (every noun counted here
    takes one)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def instance_counts(statuses: Iterable[str]) -> str:
    """``instances: 2 success, 1 paused``: a fanned-out stage's instances counted by status, as
    ``where`` says it at the debugger's prompt and in ``replay --step`` (the one said ``(3
    instances)``, the other ``(instances: 3 paused)``). Counted, not listed: a fan-out of 500
    made one line of 500 words."""
    return "instances: " + ", ".join(f"{n} {s}" for s, n in Counter(statuses).items())


def no_run_of(pipeline: str) -> str:
    """What ``runs list``, ``report`` and the web runs page say when the source holds no run of
    ``pipeline`` at all (a typo, say): "no runs" sent the reader to widen filters that were not
    the cause."""
    return f"no run of pipeline {quote(pipeline)} is known to this source"
