"""Where ``dag`` and ``report`` put their output: stdout, or the file ``-o`` names.

Decision: such a file holds run data (a run's stages, states and errors; a report's stage
names, durations and failures), so it is written as a debug dump is: readable by its owner
only (0600), whatever the umask. It is also written whole: a temporary file in the same folder,
renamed over the target, so a write that fails (a full disk) leaves the previous file as it
was, and a reader (``dag --watch``'s viewer) never sees half of one. The target is replaced,
not rewritten: a mode it had before does not carry over.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["write_atomically", "write_output"]


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename (mode 0600, see the module docstring)."""
    import tempfile  # noqa: PLC0415 - only a file written needs it (start-up time of stdout)

    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
