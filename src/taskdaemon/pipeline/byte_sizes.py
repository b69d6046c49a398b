"""Byte counts as people read them: the one way every view writes a size (``runs show``'s
MEMORY, the report's PEAK MEM in every format but JSON, which gives bytes).

Decision: binary units without a space (``512B``, ``43.6MiB``), as :mod:`durations` writes
``850ms``: two views had spelled the same peak ``43.6MiB`` and ``43.6 MiB``.
"""

from __future__ import annotations

__all__ = ["format_bytes"]


def format_bytes(value: int | None) -> str:
    """``value`` bytes in B, KiB, MiB or GiB, one decimal past B (``-`` for unknown)."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}GiB"
