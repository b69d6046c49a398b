"""How a CLI process writes a debug dump of a run it runs (``dump`` at the prompt, SIGUSR1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["dump_writer"]


def dump_writer(
    engine: Any, observers: Sequence[Any]
) -> Callable[[str, str | None], Awaitable[str]] | None:
    """An async ``(run_id, path) -> written path`` for runs of ``engine``; None when this
    process cannot write dumps."""
    return None
