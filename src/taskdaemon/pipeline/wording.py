"""Counts as people read them: ``1 event``, ``2 events``, never ``2 event(s)``; and the
sentence every view says of a pipeline nobody ran."""

from __future__ import annotations

from taskdaemon.pipeline.ellipsis import quote


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, with an ``s`` unless ``count`` is one (every noun counted here
    takes one)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def no_run_of(pipeline: str) -> str:
    """What ``runs list``, ``report`` and the web runs page say when the source holds no run of
    ``pipeline`` at all (a typo, say): "no runs" sent the reader to widen filters that were not
    the cause."""
    return f"no run of pipeline {quote(pipeline)} is known to this source"
