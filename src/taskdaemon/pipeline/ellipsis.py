"""Text cut to a length, its last character an ellipsis: the one rule every bounded message,
label and cell of taskdaemon follows, so that a cut reads the same everywhere. A refused value
is cut, redacted and quoted by ``quoting.quote``."""

from __future__ import annotations


def cut(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its first ``limit - 1`` and ``…``.

    The result never exceeds ``limit`` characters (``limit`` at least 1).
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cut_start(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else ``…`` and its last
    ``limit - 1``: for a path, whose end names what it is (the folder refused), not its
    start (``/home/…``)."""
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1 :]


def cut_line(text: str, limit: int) -> str:
    """``text`` on one line (every run of whitespace, line breaks included, one space), then
    cut as by :func:`cut`."""
    return cut(" ".join(text.split()), limit)
