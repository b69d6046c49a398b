"""The one way every view writes a duration: the ``run`` summary and progress lines,
``runs list``, ``runs show`` and the DAG labels all call :func:`format_duration`.

Decision: compact units without a space (``850ms``, ``12.3s``, ``4m05s``, ``2h03m``), as
people type them in ``--since 10m`` and in pipeline files' ``timeout: 30s``. Each unit is
chosen after rounding, so 0.9996 s reads ``1.0s``, never ``1000ms``.
"""

from __future__ import annotations

__all__ = ["format_duration"]


def format_duration(seconds: float | None) -> str:
    """``850ms``, ``12.3s``, ``4m05s``, ``2h03m``; ``-`` for None (not measured, still open).

    Negative values (clock steps) read as zero.
    """
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    tenths = round(seconds * 10)
    if tenths < 600:
        return f"{tenths / 10:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes}m{rest:02d}s"
    hours, rest = divmod(whole, 3600)
    return f"{hours}h{rest // 60:02d}m"
