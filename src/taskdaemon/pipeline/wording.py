"""Counts as people read them: ``1 event``, ``2 events``, never ``2 event(s)``."""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, with an ``s`` unless ``count`` is one (every noun counted here
    takes one)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
