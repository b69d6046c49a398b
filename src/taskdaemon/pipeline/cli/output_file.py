"""Where ``dag`` and ``report`` put their output: stdout, or the file ``-o`` names.

Decision: such a file holds run data (a run's stages, states and errors; a report's stage
names, durations and failures), so it is written as a debug dump is, whole and readable by its
owner only (``private_file.replace_privately``): a failed write (a full disk) leaves the
previous file as it was, and ``dag --watch``'s viewer never reads half of one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from taskdaemon.pipeline.private_file import replace_privately

__all__ = ["write_atomically", "write_output"]


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, whole and private (the module docstring)."""
    replace_privately(path, lambda handle: handle.write(text.encode("utf-8")))


def write_output(text: str, output: str | None) -> str | None:
    """Write ``text`` to stdout, or to the file ``output``; the one-line reason it could not
    be written, else None."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    try:
        write_atomically(Path(output), text)
    except OSError as exc:
        return f"cannot write {output}: {exc.strerror or exc}"
    return None
