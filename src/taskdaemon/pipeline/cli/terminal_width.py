"""The width of the terminal a command writes to, or None for a pipe or a file: what the
``run`` summary, its progress lines and the history tables (``runs list``, ``runs show``,
``report``) fit themselves to. Imports nothing of taskdaemon (the CLI's start-up)."""

from __future__ import annotations

import os
import sys
from typing import IO

__all__ = ["summary_width"]


def summary_width(stream: IO[str] | None = None) -> int | None:
    """The columns of the terminal ``stream`` (stdout by default) is (``COLUMNS`` first, as
    ``shutil`` reads it), or None when it is not a terminal: a pipe or a file gets the summary
    (and the progress lines, on stderr) unfitted."""
    stream = sys.stdout if stream is None else stream
    try:
        if not stream.isatty():
            return None
        columns = int(os.environ.get("COLUMNS") or 0)
        if columns <= 0:
            columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return None
    # A pseudo-terminal nobody sized says 0 columns: its width is unknown, as a pipe's is.
    return columns if columns > 0 else None
